"""``perspnet-synth``: build the face bank, write synthetic samples (ARKitFace layout) or a synthetic clip."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perspnet.synth.bank import build_bank, default_bank, load_bank
from baseio.atomic import OutputError


def _parser() -> argparse.ArgumentParser:
    from perspnet.synth.clips import MOTIONS

    ap = argparse.ArgumentParser(prog="perspnet-synth", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bank", help="build the face bank from packaged media (+ your own photos/videos)")
    b.add_argument("--out", type=Path, default=None, help="bank folder (default: the cache's bank)")
    b.add_argument("--media", type=Path, nargs="*", default=[], help="extra image/video files or folders")
    s = sub.add_parser("samples", help="write N samples in the ARKitFace layout with an index.csv")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", choices=("train", "test"), default="train")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--bank", type=Path, default=None, help="bank folder (default: the cache's bank)")
    s.add_argument("--workers", type=int, default=1, help="processes drawing samples (same files for any number)")
    c = sub.add_parser("clip", help="write a clip: video.mp4, K.json, gt.csv, identity.json")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--frames", type=int, default=90)
    c.add_argument("--fps", type=int, default=30)
    c.add_argument("--motion", choices=MOTIONS, default="mixed")
    c.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    c.add_argument("--split", choices=("train", "test"), default="test")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--bank", type=Path, default=None)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, OutputError) as e:  # bad values, missing bank, unwritable output: one line
        print(f"perspnet-synth: error: {e}", file=sys.stderr)
        return 2


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
    cfg = ClipConfig(motion=args.motion, frames=args.frames, fps=args.fps, width=width, height=height,
                     split=args.split)
    out = write_clip(args.out, args.seed, cfg, SampleGenerator(bank, args.split))
    print(f"wrote {args.motion} clip ({args.frames} frames) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
