"""``perspnet-synth``: build the face bank, write synthetic samples (ARKitFace layout) or a synthetic clip."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perspnet.synth.bank import build_bank, default_bank, load_bank
from baseio.atomic import OutputError
from pipelines.cli import add_subparser, error, make_parser


PROG = "perspnet-synth"


def build_parser() -> argparse.ArgumentParser:
    from perspnet.synth.clips import MOTIONS
    from perspnet.synth.multi_clips import SCENARIOS

    ap = make_parser(PROG, __doc__)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = add_subparser(sub, "bank", "build the face bank from packaged media (+ your own photos/videos)")
    b.add_argument("--out", type=Path, default=None, help="bank folder (default: the cache's bank)")
    b.add_argument("--media", type=Path, nargs="*", default=[], metavar="PATH",
                   help="extra image/video files or folders to take faces from")
    s = add_subparser(sub, "samples", "write N samples in the ARKitFace layout with an index.csv")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same samples")
    s.add_argument("--split", choices=("train", "test"), default="train",
                   help="which identities of the face bank to draw from")
    s.add_argument("--out", type=Path, required=True, help="output folder (ARKitFace layout)")
    s.add_argument("--bank", type=Path, default=None, help="bank folder (default: the cache's bank)")
    s.add_argument("--workers", type=int, default=1, help="processes drawing samples (same files for any number)")
    c = add_subparser(sub, "clip", "write a clip: video.mp4, K.json, gt.csv, identity.json")
    c.add_argument("--seed", type=int, default=0, help="random seed: identity, camera and motion")
    c.add_argument("--frames", type=int, default=90, help="number of frames")
    c.add_argument("--fps", type=int, default=30, help="frames per second")
    c.add_argument("--motion", choices=MOTIONS, default="mixed",
                   help="head motion (perspnet.synth.clips); shake: quick turns, nods and rolls up to 300 deg/s; "
                        "replay: the trajectory of --motion-from")
    c.add_argument("--motion-from", type=Path, default=None, metavar="CSV",
                   help="poses.csv (track-video, mediapipe-track) or gt.csv whose head trajectory --motion replay "
                        "replays, resampled to --fps by its timestamps")
    c.add_argument("--size", default="1280x720", help="frame size, WIDTHxHEIGHT")
    c.add_argument("--split", choices=("train", "test"), default="test",
                   help="which identities of the face bank to draw from")
    c.add_argument("--out", type=Path, required=True, help="output folder")
    c.add_argument("--bank", type=Path, default=None, help="bank folder (default: the cache's bank)")
    c.add_argument("--faces", type=int, choices=(1, 2), default=1,
                   help="faces in the clip; 2: two identities along --scenario (perspnet.synth.multi_clips), "
                        "gt.csv gets face_id (--motion is then not used)")
    c.add_argument("--scenario", choices=SCENARIOS, default="cross",
                   help="with --faces 2: cross (paths cross, face 0 in front), leave (face 1 leaves and comes "
                        "back) or late (no face until the last 40%% of the clip)")
    c.add_argument("--near-m", type=float, default=0.9, help="with --faces 2: depth of face 0 (in front), metres")
    c.add_argument("--far-m", type=float, default=1.4, help="with --faces 2: depth of face 1, metres (up to 4 for "
                   "distant faces)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, OutputError) as e:  # bad values, missing bank, unwritable output: one line
        return error(PROG, e)


def _run(args: argparse.Namespace) -> int:
    if args.command == "bank":
        from perspnet.assets import cache_dir

        bank = build_bank(args.out or cache_dir() / "bank", args.media)
        print(f"face bank: {len(bank.identities)} identities "
              f"({sum(i.split == 'train' for i in bank.identities)} train)")
        return 0
    bank = load_bank(args.bank) if args.bank else default_bank()
    from perspnet.synth.sampler import SampleGenerator

    if args.command == "samples":
        from perspnet.synth.dataset_writer import write_samples

        out = write_samples(args.out, args.n, args.seed, args.split, SampleGenerator(bank, args.split),
                            workers=args.workers)
        print(f"wrote {args.n} {args.split} samples to {out}")
        return 0
    from perspnet.synth.clips import ClipConfig, write_clip

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {args.size!r} is not WIDTHxHEIGHT") from None
    if args.faces == 2:
        from perspnet.synth.multi_clips import MultiClipConfig, write_multi_clip

        multi = MultiClipConfig(scenario=args.scenario, frames=args.frames, fps=args.fps, width=width, height=height,
                                near_m=args.near_m, far_m=args.far_m, split=args.split)
        out = write_multi_clip(args.out, args.seed, multi, SampleGenerator(bank, args.split))
        print(f"wrote two-face {args.scenario} clip ({args.frames} frames) to {out}")
        return 0
    cfg = ClipConfig(motion=args.motion, frames=args.frames, fps=args.fps, width=width, height=height,
                     split=args.split, motion_from=args.motion_from)
    out = write_clip(args.out, args.seed, cfg, SampleGenerator(bank, args.split))
    print(f"wrote {args.motion} clip ({args.frames} frames) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
