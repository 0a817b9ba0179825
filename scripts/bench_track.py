"""Time track-video per stage on a 720p synthetic clip on the CPU: milliseconds per frame for decode,
detect, network, identity (mesh coordinates, identity update), PnP (streaming pass), refine (second PnP
pass on the final identity), filter and write, and the frames per second of the whole run.

    .venv/bin/python scripts/bench_track.py [--checkpoint CKPT] [--frames 90] [--batch-size 8]
                                            [--threads N] [--overlay] [--clip DIR]

The clip (1280 x 720, "mixed" motion, 30 fps) is rendered into a temporary folder unless ``--clip`` names
a folder holding ``video.mp4`` and ``K.json``. Model loading and the first batch's warm-up are included.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from perspnet.synth.bank import default_bank
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.sampler import SampleGenerator
from pipelines.track_video import STAGES, TrackConfig, track_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--overlay", action="store_true", help="also time writing overlay.mp4")
    parser.add_argument("--clip", type=Path, default=None, help="folder with video.mp4 and K.json")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip
        if clip is None:
            clip = write_clip(Path(tmp) / "clip", 0, ClipConfig(motion="mixed", frames=args.frames, width=1280,
                                                                height=720), SampleGenerator(default_bank(), "test"))
        result = track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=Path(tmp) / "out",
                                         checkpoint=args.checkpoint, device="cpu", batch_size=args.batch_size,
                                         overlay=args.overlay), notify=None)
    s = result.summary
    print(f"{s['frames']} frames of {s['video_info']['width']}x{s['video_info']['height']}, "
          f"{s['frames_with_pose']} with a pose, batch {args.batch_size}, {torch.get_num_threads()} torch threads")
    print(f"{'stage':>10} {'ms/frame':>9}")
    for stage in STAGES:
        print(f"{stage:>10} {s['stage_ms_per_frame'][stage]:9.2f}")
    print(f"{'total':>10} {1000.0 * s['total_seconds'] / s['frames']:9.2f}   ({s['processing_fps']:.2f} frames/s)")


if __name__ == "__main__":
    main()
