"""Baseline tracker: MediaPipe Face Landmarker (VIDEO mode) + the canonical mean mesh + PnP with K.

    mediapipe-track input.mp4 --intrinsics K.json [--out DIR] [--filter none|forward|smooth]

Per frame: the landmarker, in VIDEO mode (it tracks between frames; stream timestamps), gives the largest
face's 468 landmarks; they are undistorted and matched to the canonical mesh's 468 vertices
(``load_face_model().verts_face_m``, an average adult face, IPD about 63 mm, the same shape for every
subject), and PnP (:func:`perspnet.pnp.solve_pose`, warm-started from the previous frame's pose) gives the
pose. It writes ``poses.csv`` with the columns of ``track-video`` (:mod:`pipelines.track_outputs`;
``shape_dev_mm`` stays empty), ``stability.png`` and ``summary.json`` into ``DIR`` (default
``<video stem>_mediapipe`` beside the video), so ``analyze-jitter`` compares the two trackers.
Exit codes as ``track-video``: 2 unusable input, 1 output not written.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.face_model import FaceModelNotFound, load_face_model
from perspnet.intrinsics import IntrinsicsError, undistort_points
from perspnet.landmarker import FaceLandmarker
from perspnet.pnp import PnPConfig, solve_pose
from perspnet.validate import check_choice
from perspnet.crop import box_from_points
from baseio.atomic import OutputError, write_json_atomic
from pipelines.cli import add_quiet, error, make_parser, show_progress
from pipelines.track_outputs import PoseTrack, jitter_summary, plot_stability, staged_folder, write_poses_csv
from pipelines.track_video import STAGES, camera_for_video
from baseio.video_io import DecodeReport, VideoError, iter_frames, probe_video
from tracker.kalman import LANDMARK_FILTER, FilterConfig
from tracker.online import TIME_NUDGE_S, StageTimer
from tracker.smoother import MODES, filter_track

__all__ = ["MediaPipeTrackConfig", "mediapipe_track", "main"]

PROG = "mediapipe-track"


@dataclass(frozen=True)
class MediaPipeTrackConfig:
    """What :func:`mediapipe_track` does.

    Attributes:
        video: input video.
        intrinsics: K.json, or None for the default field of view.
        out: output folder; None means ``<video folder>/<video stem>_mediapipe``.
        filter: "none" (default: the raw baseline), "forward" or "smooth".
        pnp: PnP settings.
        filter_config: filter settings; default :data:`tracker.kalman.LANDMARK_FILTER` (landmark poses).
        progress: progress bar on stderr.
    """

    video: Path
    intrinsics: Path | None = None
    out: Path | None = None
    filter: str = "none"
    pnp: PnPConfig = PnPConfig()
    filter_config: FilterConfig = LANDMARK_FILTER
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("video", "intrinsics", "out"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        check_choice("filter", self.filter, MODES)

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.video.parent / f"{self.video.stem}_mediapipe"


def mediapipe_track(config: MediaPipeTrackConfig) -> tuple[PoseTrack, dict]:
    """Run the baseline over ``config.video`` and write its outputs; returns the track and the summary.

    Raises:
        VideoError, IntrinsicsError, FaceModelNotFound: unusable input (nothing is written).
        OutputError: an output could not be written.
    """
    start = time.perf_counter()
    info = probe_video(config.video)
    intr, notes = camera_for_video(config.intrinsics, info.width, info.height)
    mesh = load_face_model().verts_face_m
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    timer, report = StageTimer(), DecodeReport()
    rows: dict[str, list] = {k: [] for k in ("frame", "time", "filter_time", "ok", "conf", "inliers", "err", "R",
                                             "t", "box")}
    previous = None  # last successful pose, the warm start
    with staged_folder(config.out_dir, ("poses.csv", "stability.png", "summary.json")) as stage:
        with FaceLandmarker("video", max_faces=1) as landmarker, \
                tqdm(total=info.n_frames_estimate, unit="frame", disable=not config.progress) as bar:
            frames = iter_frames(config.video, report)
            while True:
                with timer("decode"):
                    frame = next(frames, None)
                if frame is None:
                    break
                with timer("detect"):
                    faces = landmarker.detect(frame.image_rgb, frame.timestamp_s)
                res, box = None, np.full(3, np.nan)
                if faces:
                    box = box_from_points(faces[0].points_px)
                    with timer("pnp"):
                        res = solve_pose(undistort_points(faces[0].points_px, intr), mesh, intr.K, prior=previous,
                                         config=config.pnp)
                ok = res is not None and res.success
                previous = (res.R_cam_face, res.t_cam_face) if ok else None
                last = rows["filter_time"][-1] if rows["filter_time"] else -math.inf
                rows["frame"].append(frame.index)
                rows["time"].append(frame.timestamp_s)
                rows["filter_time"].append(max(frame.timestamp_s, last + TIME_NUDGE_S))
                rows["ok"].append(ok)
                rows["conf"].append(res.confidence if ok else 0.0)
                rows["inliers"].append(res.n_inliers if ok else np.nan)
                rows["err"].append(res.reproj_err_px if ok else np.nan)
                rows["R"].append(res.R_cam_face if ok else np.full((3, 3), np.nan))
                rows["t"].append(res.t_cam_face if ok else np.full(3, np.nan))
                rows["box"].append(box)
                bar.update(1)
        ok = np.asarray(rows["ok"], dtype=bool)
        R_raw, t_raw = np.asarray(rows["R"]), np.asarray(rows["t"])
        with timer("filter"):
            R, t, valid, _ = filter_track(np.asarray(rows["filter_time"]), [(a, b) if k else None for k, a, b in
                                                                            zip(ok, R_raw, t_raw)],
                                          np.where(ok, rows["conf"], 1.0), config.filter_config, config.filter)
        R[~(ok & valid)], t[~(ok & valid)] = np.nan, np.nan
        n = len(ok)
        track = PoseTrack(np.asarray(rows["frame"], np.int64), np.asarray(rows["time"]), ok,
                          np.asarray(rows["conf"]), np.asarray(rows["inliers"], float), np.asarray(rows["err"]),
                          R, t, R_raw, t_raw, np.asarray(rows["box"]).reshape(n, 3), np.full(n, np.nan))
        with timer("write"):
            write_poses_csv(stage / "poses.csv", track)
            plot_stability(stage / "stability.png", track, f"{config.video.name}, MediaPipe + PnP: "
                           f"{int(ok.sum())} / {n} frames with a pose, filter {config.filter}")
            jitter = jitter_summary(stage / "poses.csv", "mediapipe", str(config.out_dir / "poses.csv"),
                                    config.filter != "none")
        if not report.ok:
            notes.append(f"warning: {config.video}: {report.summary()}")
        total_s = time.perf_counter() - start
        seconds = {s: timer.seconds.get(s, 0.0) for s in STAGES if s not in ("eyes", "network", "identity")}
        summary = {
            "video": str(config.video), "out_dir": str(config.out_dir), "method": "mediapipe_pnp",
            "frames": n, "frames_with_pose": int(ok.sum()), "detection_rate": float(ok.mean()) if n else 0.0,
            "processing_fps": n / total_s, "total_seconds": round(total_s, 4),
            "stage_seconds": {s: round(v, 4) for s, v in seconds.items()},
            "stage_ms_per_frame": {s: round(1000.0 * v / max(n, 1), 3) for s, v in seconds.items()},
            "filter": config.filter, "camera": intr.to_dict(), "decode": report.summary(),
            "jitter": jitter, "notes": notes}
        write_json_atomic(stage / "summary.json", summary)
    return track, summary


def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(PROG, "Baseline: MediaPipe landmarks + canonical mesh + PnP(K), poses.csv like track-video's.")
    ap.add_argument("video", type=Path, help="input video (any format FFmpeg reads)")
    ap.add_argument("--intrinsics", type=Path, default=None, help="K.json (default: a default field of view)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: <video stem>_mediapipe)")
    ap.add_argument("--filter", choices=MODES, default="none", help="temporal filter")
    add_quiet(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = MediaPipeTrackConfig(args.video, args.intrinsics, args.out, args.filter, progress=show_progress(args))
    try:
        _, summary = mediapipe_track(config)
    except (VideoError, IntrinsicsError, FaceModelNotFound) as err:
        return error(PROG, err)
    except OutputError as err:
        return error(PROG, err, 1)
    print(f"{summary['frames']} frames, {summary['frames_with_pose']} with a pose "
          f"({100 * summary['detection_rate']:.0f}%); wrote {config.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
