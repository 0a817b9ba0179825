"""``perspnet-eval``: the paper's Table 2 (pose) and Table 4 (shape) on a test set, for PerspNet and baselines."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from perspnet.checkpoint import CheckpointError
from perspnet.evaluate import EvalConfig, evaluate
from perspnet.inference import TTA_VIEWS
from perspnet.metrics import format_table
from baseio.atomic import OutputError, write_json_atomic
from pipelines.cli import add_device, error, make_parser


PROG = "perspnet-eval"


def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(PROG, __doc__)
    ap.add_argument("--data", type=Path, required=True,
                    help="test folder in the ARKitFace layout (index.csv; perspnet-synth samples, ARKitFace) or BIWI")
    ap.add_argument("--checkpoint", type=Path, default=None, help="PerspNet checkpoint (default: the shipped lite model)")
    ap.add_argument("--baselines", action="store_true",
                    help="also score MediaPipe + PnP(K) and the direct 6DoF regression baseline")
    ap.add_argument("--direct-checkpoint", type=Path, default=None,
                    help="direct 6DoF regression checkpoint (default: the shipped one, with --baselines)")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="score the first N samples only (default: all)")
    ap.add_argument("--batch-size", type=int, default=16, metavar="N", help="crops per network batch")
    add_device(ap)
    ap.add_argument("--json", type=Path, default=None, metavar="FILE",
                    help="also write the results table as JSON here (default: print only)")
    ap.add_argument("--tta", choices=sorted(TTA_VIEWS), default="none",
                    help="PerspNet test-time augmentation: 'flip' adds the mirrored crop, 'turn' 6 views (mirrored, turned "
                         "by +-10 degrees), 'full' 14 views (mirrored, turned by +-5 and +-10 degrees, scaled by 0.9 "
                         "and 1.1), all correspondences in one PnP")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json is not None:  # fail before the evaluation, not after it
        folder = args.json.parent if str(args.json.parent) else Path(".")
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            return error(PROG, f"{args.json}: cannot write the results there ({folder} is not a writable folder)")
    direct = args.direct_checkpoint
    if args.baselines and direct is None:
        from perspnet.network.direct import default_direct_checkpoint

        direct = default_direct_checkpoint() if default_direct_checkpoint().is_file() else None
    try:
        results = evaluate(EvalConfig(data=args.data, checkpoint=args.checkpoint, baselines=args.baselines,
                                      direct_checkpoint=direct, limit=args.limit, batch_size=args.batch_size,
                                      device=args.device, tta=args.tta))
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        return error(PROG, e)
    print(format_table(results))
    if args.json is not None:
        # JSON has no NaN: a metric without samples (a method that failed everywhere) is written as null
        clean = {m: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                 for m, r in results.items()}
        try:
            write_json_atomic(args.json, clean)
        except OutputError as e:
            return error(PROG, e, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
