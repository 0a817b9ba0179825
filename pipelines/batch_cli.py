"""``batch-process``: track every video under a folder, in parallel, resumably; a summary table and plot at the end.

    batch-process CLIPS_DIR --out OUT_DIR [--intrinsics K.json] [--workers N] [--force]
                  [--executor local|dask] [--scheduler ADDRESS] [--checkpoint CKPT] [--device auto|cpu|cuda]

Per clip, track-video's outputs in ``OUT_DIR/<clip path without extension>/``; a sidecar ``<clip>.K.json``
overrides ``--intrinsics``. ``OUT_DIR/summary.csv`` and ``summary.png`` at the end. Rerunning skips the
clips already complete (``--force`` tracks them again). Details: :mod:`pipelines.batch`.

Exit codes: 0 no clip failed (each is ok, no_face, no_pose or skipped; no_face and no_pose are counted apart);
1 a clip failed (see summary.csv); 2 the batch cannot start (one-line error: missing CLIPS_DIR, unwritable
OUT_DIR, bad --intrinsics or checkpoint, no videos); 130 / 143 interrupted by SIGINT / SIGTERM (rerun the same
command to finish).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baseio.atomic import OutputError
from pipelines.cli import add_device, add_quiet, error, interruptible, interrupted, make_parser, show_progress
from pipelines.batch import EXECUTORS, BatchArgumentError, BatchConfig, run_batch

PROG = "batch-process"


def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(PROG, "Track every video under a folder (mp4 mov avi mkv m4v "
                     "webm): track-video's outputs per clip, summary.csv and summary.png.")
    ap.add_argument("clips_dir", type=Path, metavar="CLIPS_DIR", help="folder searched recursively for videos")
    ap.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    ap.add_argument("--intrinsics", type=Path, default=None,
                    help="K.json for clips without a sidecar <clip>.K.json (default: track-video's default FOV)")
    ap.add_argument("--workers", type=int, default=None,
                    help="clips tracked in parallel (default: one per GPU with CUDA, else half the usable CPU cores)")
    ap.add_argument("--force", action="store_true", help="track clips again even when their outputs are complete")
    ap.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local process pool (default) or an existing Dask cluster (--scheduler)")
    ap.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="PerspNet checkpoint (default: the shipped one)")
    add_device(ap)
    add_quiet(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = BatchConfig(clips_dir=args.clips_dir, out_dir=args.out, intrinsics=args.intrinsics,
                             workers=args.workers, force=args.force, executor=args.executor,
                             scheduler=args.scheduler, checkpoint=args.checkpoint, device=args.device,
                             progress=show_progress(args))
    except ValueError as err:  # a bad option value
        return error(PROG, err)
    try:
        with interruptible():
            result = run_batch(config)
    except BatchArgumentError as err:
        return error(PROG, err)
    except OutputError as err:  # the summary could not be written
        return error(PROG, err, 1)
    except KeyboardInterrupt as err:
        return interrupted(PROG, err, "finished clips keep their outputs, rerun the same command to track the rest")
    for outcome in result.outcomes:
        if outcome.status == "failed":
            print(f"{PROG}: failed: {outcome.clip}: {outcome.message}", file=sys.stderr)
    counts = result.counts
    log = f"; tracebacks in {result.errors_log}" if result.errors_log else ""
    apart = "".join(f", {counts[s]} {s.replace('_', ' ')}" for s in ("no_face", "no_pose") if counts[s])
    print(f"{len(result.outcomes)} clips: {counts['ok']} ok{apart}, {counts['skipped']} skipped, {counts['failed']} "
          f"failed; wrote {result.summary_csv}, {result.summary_png}{log}")
    return 0 if result.all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
