"""``analyze-jitter``: jitter (second difference, Savitzky-Golay residual) and ground-truth error of pose tracks.

    analyze-jitter poses.csv [other.csv ...] [--gt gt.csv] [--reference poses.csv] [--labels A B ...] [--out DIR]

A ``poses.csv`` with ``raw_`` columns counts as two runs, ``LABEL:filtered`` and ``LABEL:raw``, or as one,
``LABEL:raw``, when the ``summary.json`` beside it says it was written with ``--filter none``. Prints a
table (one row per run) and writes ``jitter.json``, ``jitter.csv``, ``jitter_timeseries.png`` and
``jitter_spectrum.png`` into ``--out``. With ``--reference`` (an independent track of the same clip, e.g.
``mediapipe-track``'s poses.csv; its raw poses are used), each input with filtered and raw poses also gets the
over-smoothing correlation per axis (:func:`tracker.jitter.oversmoothing`), in the table, in ``jitter.json``
and in ``jitter_oversmoothing.png``. Exit codes: 0 done, 2 unusable input (one-line error naming the
file), 1 an output could not be written. Metric definitions: :mod:`tracker.jitter`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baseio.atomic import OutputError
from pipelines.cli import error, make_parser
from tracker.jitter import (SAVGOL_ORDER, SAVGOL_WINDOW, JitterInputError, analyze, load_gt, load_pose_runs,
                            oversmoothing)
from tracker.jitter_report import format_tables, write_report

PROG = "analyze-jitter"


def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(PROG, "Jitter and ground-truth error of pose tracks (metrics: tracker.jitter).")
    ap.add_argument("poses", type=Path, nargs="+", help="poses.csv files (one run each, two with raw_ columns)")
    ap.add_argument("--gt", type=Path, default=None, help="gt.csv with frame timestamp_s qw qx qy qz tx ty tz")
    ap.add_argument("--reference", type=Path, default=None, metavar="POSES_CSV",
                    help="an independent track of the same clip (e.g. mediapipe-track's poses.csv): measure "
                         "over-smoothing against its raw poses")
    ap.add_argument("--labels", nargs="+", default=None, help="one run label per poses file (default: names)")
    ap.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current folder)")
    ap.add_argument("--savgol-window", type=int, default=SAVGOL_WINDOW, help="odd, frames (default %(default)s)")
    ap.add_argument("--savgol-order", type=int, default=SAVGOL_ORDER,
                    help="polynomial order (default %(default)s)")
    return ap


def _default_labels(paths: list[Path]) -> list[str]:
    """File stems, or ``folder/stem`` when two inputs share a stem (``a/poses.csv``, ``b/poses.csv``)."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.poses):
        return error(PROG, f"--labels has {len(args.labels)} names for {len(args.poses)} poses files")
    if args.savgol_window % 2 == 0 or not 0 <= args.savgol_order < args.savgol_window:
        return error(PROG, "--savgol-window must be odd and larger than --savgol-order")
    labels = args.labels or _default_labels(args.poses)
    try:
        per_file = [load_pose_runs(path, label) for path, label in zip(args.poses, labels)]
        gt = load_gt(args.gt) if args.gt is not None else None
        reference = (load_pose_runs(args.reference, f"{args.reference.parent.name}/{args.reference.stem}")[-1]
                     if args.reference is not None else None)
    except JitterInputError as err:
        return error(PROG, err)
    runs = [run for file_runs in per_file for run in file_runs]
    oversmooth = None
    if reference is not None:
        pairs = [(file_runs, label) for file_runs, label in zip(per_file, labels) if len(file_runs) == 2]
        if not pairs:
            return error(PROG, "--reference needs a poses file with filtered and raw poses; no input has both")
        oversmooth = [oversmoothing(*file_runs, reference, label) for file_runs, label in pairs]
    metrics = analyze(runs, gt, args.savgol_window, args.savgol_order)
    print(format_tables(metrics, args.savgol_window, args.savgol_order, oversmooth))
    try:
        paths = write_report(args.out, metrics, runs, gt, args.savgol_window, args.savgol_order, oversmooth,
                             None if args.reference is None else str(args.reference))
    except (OutputError, OSError) as err:
        return error(PROG, err, 1)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
