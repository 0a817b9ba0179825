"""``perspnet-predict``: metric 6DoF pose and 3D shape of every face in single images, from K.

    perspnet-predict IMAGE... | DIR [--intrinsics K.json] [--out DIR] [--checkpoint CKPT] [--device auto|cpu|cuda]

Outputs and method: :mod:`pipelines.predict`. Exit codes: 0 done (an image without a face is reported on
stderr); 2 unusable input (missing file, not an image, bad K.json, bad checkpoint), with a one-line error
naming the file and nothing written; 1 an output could not be written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baseio.atomic import OutputError
from perspnet.checkpoint import CheckpointError
from perspnet.face_model import FaceModelNotFound
from perspnet.intrinsics import IntrinsicsError
from pipelines.cli import add_device, error, make_parser
from pipelines.predict import IMAGE_SUFFIXES, PredictConfig, PredictError, predict_images

PROG = "perspnet-predict"


def build_parser() -> argparse.ArgumentParser:
    from perspnet.inference import TTA_VIEWS

    ap = make_parser(PROG, "Every face in single images: metric 6DoF pose (PerspNet + PnP with the camera's K) "
                     "and 3D shape; per image a CSV, an overlay PNG and an OBJ per face.")
    ap.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_DIR",
                    help=f"image files, or folders of images ({' '.join(IMAGE_SUFFIXES)})")
    ap.add_argument("--intrinsics", type=Path, default=None,
                    help="K.json (fx fy cx cy width height [dist]); without it a default field of view is assumed")
    ap.add_argument("--out", type=Path, default=Path("perspnet_predict"), help="output folder")
    ap.add_argument("--checkpoint", type=Path, default=None, help="PerspNet checkpoint (default: the shipped one)")
    add_device(ap)
    ap.add_argument("--tta", choices=sorted(TTA_VIEWS), default="none",
                    help="test-time augmentation, as perspnet-eval's ('flip' adds the mirrored crop)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = PredictConfig(tuple(args.inputs), args.out, args.intrinsics, args.checkpoint, args.device, args.tta)
        results = predict_images(config, notify=lambda m: print(f"{PROG}: {m}", file=sys.stderr))
    except (PredictError, IntrinsicsError, CheckpointError, FaceModelNotFound, ValueError) as err:
        return error(PROG, err)
    except OutputError as err:
        return error(PROG, err, 1)
    for r in results:
        print(f"{r.image}: {r.faces} face(s), {r.posed} with a pose")
    faces, posed = sum(r.faces for r in results), sum(r.posed for r in results)
    print(f"{len(results)} image(s), {faces} face(s), {posed} with a pose; wrote {config.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
