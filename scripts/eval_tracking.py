"""Tracking accuracy and stability on synthetic clips with ground truth (held-out identities).

For each motion (approach, turn, talk, static): make a clip, track it with ``track-video`` (raw per-frame
PnP and the filtered track, without and with ``--ipd-mm`` from the clip's identity.json) and with the
MediaPipe Face Landmarker + PnP(K) baseline; print per run MAE_t (mm), MAE_r (deg), the jitter (RMS of the
second difference of tz in mm and of yaw in degrees, and their mean over the six axes relative to raw),
tz error as a fraction of the distance, and for ``approach`` the per-vertex spread of the per-frame shapes.

With ``--approach-identities``, also tracks one ``approach`` clip per held-out identity (the first seed
from 200 up that draws it), without and with ``--ipd-mm``, and prints the filtered tz error of each: the
error left with ``--ipd-mm`` depends on how far each face's proportions are from what its IPD predicts.

Usage: python scripts/eval_tracking.py [--frames 90] [--checkpoint CKPT] [--out runs/eval_tracking]
                                       [--approach-identities]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from perspnet.conventions import matrix_from_quat_wxyz
from perspnet.synth.bank import default_bank
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.sampler import SampleGenerator
from pipelines.mediapipe_track import MediaPipeTrackConfig, mediapipe_track
from pipelines.track_video import TrackConfig, track_video
from tracker.jitter import gt_error, load_gt, load_pose_runs, second_diff_rms

MOTIONS = ("approach", "turn", "talk", "static")
AXES = ("tx", "ty", "tz", "yaw", "pitch", "roll")


def shape_spread_mm(out_dir: Path) -> float | None:
    """Mean over vertices of the per-vertex standard deviation (over frames with a pose) of the per-frame
    canonical shapes, recovered from ``meshes.npz`` and the filtered poses, mm."""
    import pandas as pd

    meshes = np.load(out_dir / "meshes.npz")["verts_cam_m"].astype(np.float64)
    poses = pd.read_csv(out_dir / "poses.csv")
    ok = poses["success"].to_numpy(bool) & np.isfinite(meshes).all(axis=(1, 2))
    if ok.sum() < 2:
        return None
    R = matrix_from_quat_wxyz(poses.loc[ok, ["qw", "qx", "qy", "qz"]].to_numpy())
    t = poses.loc[ok, ["tx", "ty", "tz"]].to_numpy()
    canon = np.einsum("fji,fnj->fni", R, meshes[ok] - t[:, None, :])  # R^T (X - t)
    return float(canon.std(axis=0).mean() * 1000.0)


def tz_error_pct(series, gt) -> float:
    """Mean of |tz - tz_gt| / tz_gt over the frames where both have a pose, percent."""
    common, i, j = np.intersect1d(series.frame[series.valid], gt.frame, return_indices=True)
    if common.size == 0:
        return float("nan")
    tz = series.t_m[np.flatnonzero(series.valid)[i], 2]
    return float(np.mean(np.abs(tz - gt.t_m[j, 2]) / gt.t_m[j, 2]) * 100.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/eval_tracking"))
    ap.add_argument("--approach-identities", action="store_true",
                    help="also an approach clip per held-out identity (tz error with and without --ipd-mm)")
    args = ap.parse_args()
    gen = SampleGenerator(default_bank(), "test")
    rows = []
    for k, motion in enumerate(MOTIONS):
        clip = write_clip(args.out / motion / "clip", args.seed + k, ClipConfig(motion=motion, frames=args.frames),
                          gen)
        ipd = json.loads((clip / "identity.json").read_text())["ipd_mm"]
        gt = load_gt(clip / "gt.csv")
        runs = {}
        for tag, ipd_mm in (("", None), (" +ipd", ipd)):
            out = args.out / motion / ("track_ipd" if tag else "track")
            track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=out,
                                    checkpoint=args.checkpoint, device="cpu", ipd_mm=ipd_mm,
                                    save_meshes=motion == "approach" and not tag))
            for series in load_pose_runs(out / "poses.csv", "perspnet"):
                runs[series.label + tag] = series
        mp_out = args.out / motion / "mediapipe"
        mediapipe_track(MediaPipeTrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=mp_out))
        runs["mediapipe+pnp"] = load_pose_runs(mp_out / "poses.csv", "mediapipe+pnp")[0]
        raw_jitter = second_diff_rms(runs["perspnet:raw"])
        for name, series in runs.items():
            err = gt_error(series, gt)
            jit = second_diff_rms(series)
            rows.append({"motion": motion, "run": name, "frames_with_pose": err.n_matched,
                         "mae_t_mm": err.mae_t_mm, "mae_r_deg": err.mae_r_deg, "mae_tz_mm": err.mae["tz"],
                         "tz_err_pct": tz_error_pct(series, gt), "jitter_tz_mm": jit["tz"],
                         "jitter_yaw_deg": jit["yaw"],
                         "jitter_reduction_x": float(np.mean([raw_jitter[a] / jit[a] for a in AXES]))})
        if motion == "approach":
            rows.append({"motion": motion, "run": "per-frame shape spread",
                         "shape_spread_mm": shape_spread_mm(args.out / motion / "track")})
    if args.approach_identities:
        rows += approach_per_identity(gen, args)
    (args.out / "tracking.json").write_text(json.dumps(rows, indent=1, default=float))
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    filtered_mae_r = [r["mae_r_deg"] for r in rows if r["run"] == "perspnet:filtered"
                      or r["run"].startswith("identity ")]
    print(f"filtered MAE_r over {len(filtered_mae_r)} clips (the motions and the identities' approach clips): "
          f"mean {np.mean(filtered_mae_r):.2f}, median {np.median(filtered_mae_r):.2f} deg")


def approach_per_identity(gen: SampleGenerator, args) -> list[dict]:
    """Filtered tz error (percent) of an ``approach`` clip of each held-out identity, without and with
    ``--ipd-mm``, and the filtered track's MAE_t (mm) and MAE_r (deg) without it."""
    seeds: dict[str, int] = {}
    for seed in range(200, 400):
        name = gen.draw_identity(np.random.default_rng(seed))[0].name
        seeds.setdefault(name, seed)
        if len(seeds) == len(gen.identities):
            break
    rows = []
    for name, seed in seeds.items():
        base = args.out / "approach_identities" / name
        clip = write_clip(base / "clip", seed, ClipConfig(motion="approach", frames=args.frames), gen)
        ipd = json.loads((clip / "identity.json").read_text())["ipd_mm"]
        gt = load_gt(clip / "gt.csv")
        row = {"motion": "approach", "run": f"identity {name}", "ipd_mm": ipd}
        for key, ipd_mm in (("tz_err_pct", None), ("tz_err_pct_ipd", ipd)):
            out = base / ("track_ipd" if ipd_mm else "track")
            track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=out,
                                    checkpoint=args.checkpoint, device="cpu", ipd_mm=ipd_mm))
            filtered = next(s for s in load_pose_runs(out / "poses.csv", "perspnet") if s.label.endswith("filtered"))
            row[key] = tz_error_pct(filtered, gt)
            if ipd_mm is None:
                err = gt_error(filtered, gt)
                row.update(mae_t_mm=err.mae_t_mm, mae_r_deg=err.mae_r_deg)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
