"""``perspnet-train``: train PerspNet on an ARKitFace-layout folder (ours or the real dataset).

Resumes from ``OUT/last.pt`` when it exists; writes ``OUT/final.pt`` (float16 weights), ``OUT/train_log.csv``
and ``OUT/training_curves.png``. The shipped recipe: ``scripts/train_lite.sh``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perspnet.train import PRESETS, TrainConfig, train
from pipelines.cli import add_device, error, make_parser


PROG = "perspnet-train"


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(data=Path("."), out=Path("."))
    ap = make_parser(PROG, __doc__)
    ap.add_argument("--config", dest="preset", choices=PRESETS, default=d.preset,
                    help="network preset (perspnet.network.config)")
    ap.add_argument("--data", type=Path, required=True, help="ARKitFace-layout folder with index.csv")
    ap.add_argument("--out", type=Path, required=True,
                    help="run folder: checkpoints, log and curves; a run there with last.pt resumes")
    ap.add_argument("--iterations", type=int, default=d.iterations, help="optimizer steps")
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help="training examples per step")
    ap.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (warm-up, then cosine decay)")
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay, metavar="WD",
                    help="AdamW's decoupled weight decay, on every parameter (default %(default)s)")
    ap.add_argument("--seed", type=int, default=d.seed, help="random seed: initial weights, data order, augmentation")
    ap.add_argument("--workers", type=int, default=d.workers, help="data-loading processes (0: in the main process)")
    ap.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    ap.add_argument("--ckpt-every", type=int, default=d.ckpt_every, metavar="N",
                    help="write OUT/last.pt (the resume point) every N steps")
    add_device(ap, d.device)
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward pass (needs native bf16: AVX512-BF16/AMX CPUs, CUDA)")
    ap.add_argument("--dropout", type=float, default=d.dropout, metavar="P",
                    help="channel-dropout probability in both decoders (default: the preset's)")
    ap.add_argument("--uv-dropout", type=float, default=d.uv_dropout, metavar="P",
                    help="channel-dropout probability in the UV-map decoder alone (default: as --dropout)")
    ap.add_argument("--cache-gb", type=float, default=d.cache_gb, metavar="GB",
                    help="keep decoded training records (trimmed to their crops' reach) in memory up to GB between "
                         "epochs, per data-loading process (default: none)")
    ap.add_argument("--init", type=Path, default=d.init, metavar="CKPT",
                    help="start from this checkpoint's weights (fine-tuning; optimizer and schedule start afresh)")
    ap.add_argument("--direct", action="store_true",
                    help="train the 'direct 6DoF regress' baseline instead (writes OUT/direct.pt)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.data / "index.csv").is_file():
        return error(PROG, f"{args.data}: no index.csv (an ARKitFace-layout folder is expected)")
    direct = vars(args).pop("direct")
    try:
        cfg = TrainConfig(**vars(args))
    except ValueError as e:  # a bad option value
        return error(PROG, e)
    if direct:
        from perspnet.train_direct import train_direct

        print(f"direct-regression checkpoint: {train_direct(cfg)}")
        return 0
    try:
        print(f"final checkpoint: {train(cfg)}")
    except ValueError as e:  # a setting this machine cannot run: one line, no traceback
        return error(PROG, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
