"""Peak memory of track-video against the video's length: does it grow with the number of frames?

    .venv/bin/python scripts/bench_memory.py [--frames 750 3000] [--width 640 --height 360] [--checkpoint CKPT]

A short synthetic clip (test identity, "mixed" motion) is rendered once and played back and forth into
videos of each length; each video is tracked in a child process whose resident memory (VmRSS, read from
/proc every 0.1 s) is sampled. Prints per length the peak RSS, the disk scratch of the refine pass
(:class:`tracker.refine.FrameStore`) and the growth per frame between the shortest and the longest video.
Linux only (/proc).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from perspnet.synth.bank import default_bank
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.sampler import SampleGenerator
from baseio.video_io import VideoWriter, iter_frames


def _track(video: Path, intrinsics: Path, out: Path, checkpoint: Path | None) -> None:
    from pipelines.track_video import TrackConfig, track_video

    track_video(TrackConfig(video=video, intrinsics=intrinsics, out=out, checkpoint=checkpoint, device="cpu"))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _loop_video(frames: list, n: int, fps: int, path: Path) -> None:
    """Write ``n`` frames playing ``frames`` forwards and backwards (no jump at the turns)."""
    cycle = frames + frames[-2:0:-1]
    h, w = frames[0].shape[:2]
    with VideoWriter(path, width=w, height=h, fps=Fraction(fps)) as writer:
        for k in range(n):
            writer.write(cycle[k % len(cycle)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[750, 3000])
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--checkpoint", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        clip = write_clip(tmp / "clip", 3, ClipConfig(motion="mixed", frames=60, width=args.width,
                                                      height=args.height), SampleGenerator(default_bank(), "test"))
        base = [f.image_rgb for f in iter_frames(clip / "video.mp4")]
        rows = []
        for n in sorted(args.frames):
            video = tmp / f"loop_{n}.mp4"
            _loop_video(base, n, 30, video)
            proc = mp.get_context("spawn").Process(target=_track, args=(video, clip / "K.json", tmp / f"out_{n}",
                                                                        args.checkpoint))
            start = time.perf_counter()
            proc.start()
            peak = 0.0
            while proc.is_alive():
                try:
                    peak = max(peak, _rss_mb(proc.pid))
                except (FileNotFoundError, ProcessLookupError):
                    break
                time.sleep(0.1)
            proc.join()
            if proc.exitcode != 0:
                raise SystemExit(f"tracking {video} failed (exit {proc.exitcode})")
            rows.append((n, peak, time.perf_counter() - start))
            video.unlink()
        print(f"{'frames':>7} {'peak RSS MB':>12} {'seconds':>8}")
        for n, peak, sec in rows:
            print(f"{n:7d} {peak:12.1f} {sec:8.1f}")
        if len(rows) > 1:
            (n0, p0, _), (n1, p1, _) = rows[0], rows[-1]
            print(f"growth: {1024 * (p1 - p0) / (n1 - n0):.2f} kB per frame "
                  f"(an hour at 30 fps: {(p1 - p0) / (n1 - n0) * 108000:.0f} MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
