"""``track-video``: metric 6DoF face pose per frame and one identity shape per clip, from a video and K.

    track-video input.mp4 --intrinsics K.json [--out DIR] [--device auto|cpu|cuda] [--batch-size N]
                [--filter none|forward|smooth] [--ipd-mm X] [--overlay] [--save-meshes] [--checkpoint CKPT]
                [--faces all|largest|N]

Outputs and method: :mod:`pipelines.track_video`. Exit codes: 0 done; 2 unusable input (missing file,
not a video, bad K.json, bad checkpoint), with a one-line error and nothing written; 1 an output could
not be written (full disk, ...); 130 / 143 interrupted by SIGINT / SIGTERM, nothing published.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perspnet.checkpoint import CheckpointError
from perspnet.face_model import FaceModelNotFound
from perspnet.intrinsics import IntrinsicsError
from baseio.atomic import OutputError
from pipelines.cli import add_device, add_quiet, error, interruptible, interrupted, make_parser, show_progress
from pipelines.track_video import TrackConfig, TrackError, track_video
from baseio.video_io import VideoError
from tracker.smoother import MODES

PROG = "track-video"


def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(PROG, "Track a face in a video: metric 6DoF pose per frame "
                     "(PerspNet + PnP with the camera's K) and one identity shape per clip.")
    ap.add_argument("video", type=Path, help="input video (any format FFmpeg reads)")
    ap.add_argument("--intrinsics", type=Path, default=None,
                    help="K.json (fx fy cx cy width height [dist]); without it a default field of view is assumed")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: <video stem>_track beside it)")
    add_device(ap)
    ap.add_argument("--batch-size", type=int, default=8, help="frames per network batch (default %(default)s)")
    ap.add_argument("--filter", choices=MODES, default="smooth",
                    help="temporal filter: none, forward (causal Kalman) or smooth (offline RTS, default)")
    ap.add_argument("--ipd-mm", type=float, default=None,
                    help="the subject's inter-pupillary distance in mm: rescales the shape and all translations")
    ap.add_argument("--min-run-frames", type=int, default=3,
                    help="keep a pose only in a run of at least this many consecutive accepted frames (default "
                         "%(default)s; 1 keeps every accepted frame)")
    ap.add_argument("--overlay", action="store_true", help="also write overlay.mp4 (mesh and axes on each frame)")
    ap.add_argument("--save-meshes", action="store_true", help="also write meshes.npz (per-frame camera-space meshes)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="PerspNet checkpoint (default: the shipped one)")
    ap.add_argument("--faces", default="all",
                    help="all (every face, each with its own face_id), largest (one face, the largest), or N (at "
                         "most N faces at a time) (default %(default)s)")
    add_quiet(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = TrackConfig(video=args.video, intrinsics=args.intrinsics, out=args.out, checkpoint=args.checkpoint,
                             device=args.device, batch_size=args.batch_size, filter=args.filter, ipd_mm=args.ipd_mm,
                             overlay=args.overlay, save_meshes=args.save_meshes, min_run_frames=args.min_run_frames,
                             faces=args.faces, progress=show_progress(args))
    except ValueError as err:  # a bad option value
        return error(PROG, err)
    try:
        with interruptible():
            result = track_video(config)
    except (VideoError, IntrinsicsError, CheckpointError, FaceModelNotFound, TrackError) as err:
        return error(PROG, err)
    except OutputError as err:
        return error(PROG, err, 1)
    except KeyboardInterrupt as err:  # SIGINT or SIGTERM: the staging folder is gone with the unwinding
        return interrupted(PROG, err, "nothing published, rerun to start again")
    s = result.summary
    ident = s["identity"]
    identity = (f", identity as large as a face of IPD {ident['size_ipd_mm']:.1f} mm"
                if ident else ", no identity")
    faces = "" if len(s["faces"]) < 2 else f", {len(s['faces'])} faces (identity of face 0)"
    print(f"{s['frames']} frames, {s['frames_with_pose']} with a pose ({100 * s['detection_rate']:.0f}%)"
          f"{faces}{identity}, {s['processing_fps']:.1f} frames/s; wrote {result.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
