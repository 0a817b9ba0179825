"""The README's two pictures, from a clip the project renders itself.

    .venv/bin/python scripts/make_readme_figures.py [--work runs/readme_figures] [--seed 0] [--motion mixed]

Steps, each a real command: ``perspnet-synth clip`` renders a held-out subject (``--motion``, 90 frames,
1280x720), ``track-video --overlay --faces largest`` tracks it with the shipped checkpoint (the clip has one
face), then this script writes
``docs/img/overlay.png`` (one frame of ``overlay.mp4``: the frame where the face is nearest the camera
among those with a pose, scaled to 640 px wide) and ``docs/img/stability.png`` (``track-video``'s own
stability plot, scaled to 900 px wide). Both are palette PNGs, so each stays well under 300 kB.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baseio.video_io import iter_frames  # noqa: E402

BIN = Path(sys.executable).parent
MAX_BYTES = 300_000


def _run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def _save_png(image: Image.Image, width: int, path: Path) -> None:
    """``image`` scaled to ``width`` px (aspect kept), 256-colour palette, optimised; fails above MAX_BYTES."""
    height = round(image.height * width / image.width)
    small = image.convert("RGB").resize((width, height), Image.LANCZOS).quantize(256, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, optimize=True)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{path}: {size} bytes, over the README's {MAX_BYTES}")
    print(f"wrote {path} ({width}x{height}, {size // 1000} kB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "readme_figures", help="scratch folder")
    ap.add_argument("--seed", type=int, default=0, help="perspnet-synth clip --seed")
    ap.add_argument("--motion", default="mixed", help="perspnet-synth clip --motion")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go")
    args = ap.parse_args()
    clip, track = args.work / "clip", args.work / "track"
    _run(str(BIN / "perspnet-synth"), "clip", "--seed", str(args.seed), "--motion", args.motion, "--out", str(clip))
    _run(str(BIN / "track-video"), str(clip / "video.mp4"), "--intrinsics", str(clip / "K.json"), "--out",
         str(track), "--overlay", "--faces", "largest")
    poses = pd.read_csv(track / "poses.csv")
    with_pose = poses[poses.success == 1]
    if with_pose.empty:
        raise SystemExit(f"{track / 'poses.csv'}: no frame has a pose; nothing to show")
    pick = int(with_pose.frame[with_pose.tz.idxmin()])
    frame = next(f for f in iter_frames(track / "overlay.mp4") if f.index == pick)
    _save_png(Image.fromarray(np.ascontiguousarray(frame.image_rgb)), 640, args.out / "overlay.png")
    _save_png(Image.open(track / "stability.png"), 900, args.out / "stability.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
