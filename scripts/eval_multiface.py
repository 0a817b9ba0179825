"""Several faces: ids and accuracy on two-face clips, time per frame by number of faces, single-face regression.

1. Ids (``--part ids``): two-face clips (:mod:`perspnet.synth.multi_clips`: ``cross`` with three seeds, a
   distant ``cross`` with faces at 2.5 and 4 m in 1920x1080, ``leave``, ``late``) tracked with
   ``track-video --faces all``; per clip the id switches and IDF1 (:mod:`tracker.mot_metrics`, tracked boxes
   against the true meshes' boxes) and, per true face, MAE_t (mm) and MAE_r (deg) of the filtered track
   of the tracked face mapped to it.
2. Speed (``--part speed``): a 1280x720 mosaic of four 640x360 single-face clips, with 1, 2 or 4 of its
   tiles showing a face (the others a still background), tracked with ``--faces all``: milliseconds per
   frame, whole run and per stage.
3. Single face (``--part single``): two of scripts/eval_tracking.py's clips (approach, turn; its seeds)
   tracked with ``--faces all`` and ``--faces largest`` here, and, with ``--old-src DIR`` (a source tree of
   an earlier commit, e.g. ``git archive cd4e506 | tar -x -C DIR``), with that code in a subprocess: MAE_t,
   MAE_r of the filtered track and milliseconds per frame.

Usage: python scripts/eval_multiface.py [--part ids speed single] [--out runs/eval_multiface] [--old-src DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from baseio.video_io import VideoWriter, iter_frames
from perspnet.synth.bank import default_bank
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.multi_clips import MultiClipConfig, write_multi_clip
from perspnet.synth.sampler import SampleGenerator
from pipelines.track_video import TrackConfig, track_video
from tracker.jitter import gt_error, load_gt, load_pose_runs
from tracker.mot_metrics import id_metrics, tracked_boxes, true_boxes

ID_CLIPS = {  # name -> (seed, config)
    "cross-11": (11, MultiClipConfig("cross")),
    "cross-12": (12, MultiClipConfig("cross")),
    "cross-13": (13, MultiClipConfig("cross")),
    "cross-distant": (14, MultiClipConfig("cross", near_m=2.5, far_m=4.0, width=1920, height=1080, fx=1400.0)),
    "leave-11": (11, MultiClipConfig("leave")),
    "late-11": (11, MultiClipConfig("late")),
}
SINGLE_CLIPS = {"approach": 100, "turn": 101}  # scripts/eval_tracking.py's motions and seeds


def part_ids(gen: SampleGenerator, out: Path) -> list[dict]:
    rows = []
    for name, (seed, cfg) in ID_CLIPS.items():
        clip = write_multi_clip(out / "ids" / name / "clip", seed, cfg, gen)
        result = track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json",
                                         out=out / "ids" / name / "track", device="cpu"), notify=None)
        m = id_metrics(tracked_boxes(result.out_dir / "poses.csv"), true_boxes(clip))
        runs = {r.label: r for r in load_pose_runs(result.out_dir / "poses.csv", "p")}
        for true_id in (0, 1):
            tracked = [t for t, g in m.mapping.items() if g == true_id]
            label = f"p face {tracked[0]}:filtered" if tracked else None
            label = label if label in runs else ("p:filtered" if tracked and "p:filtered" in runs else None)
            err = gt_error(runs[label], load_gt(clip / f"gt_{true_id}.csv")) if label else None
            rows.append({"clip": name, "true_face": true_id, "tracked_id": tracked[0] if tracked else None,
                         "id_switches": m.id_switches, "idf1": m.idf1, "faces_found": len(result.summary["faces"]),
                         "frames_matched": m.per_true_id.get(true_id, {}).get(tracked[0], 0) if tracked else 0,
                         "frames_true": sum(g == true_id for faces in true_boxes(clip).values() for g, _ in faces),
                         "mae_t_mm": err.mae_t_mm if err else None, "mae_r_deg": err.mae_r_deg if err else None,
                         "ms_per_frame": 1000 * result.summary["total_seconds"] / result.summary["frames"]})
    return rows


def _mosaic(gen: SampleGenerator, out: Path, n_faces: int, frames: int) -> Path:
    """A 1280x720 video: 2x2 tiles of 640x360 single-face clips, the first ``n_faces`` with their face,
    the others their first frame's background corner (no face), held still."""
    tiles = []
    for k in range(4):
        clip = write_clip(out / "tiles" / f"tile{k}", 300 + k, ClipConfig(motion="talk", frames=frames, width=640,
                                                                        height=360, fx=500.0), gen)
        images = [f.image_rgb for f in iter_frames(clip / "video.mp4")]
        if k >= n_faces:
            still = np.full_like(images[0], 0)
            still[:] = images[0][:40, :40].mean(axis=(0, 1)).astype(np.uint8)
            images = [still] * len(images)
        tiles.append(images)
    path = out / f"mosaic_{n_faces}.mp4"
    with VideoWriter(path, 1280, 720, Fraction(30)) as writer:
        for f in range(frames):
            writer.write(np.vstack([np.hstack([tiles[0][f], tiles[1][f]]), np.hstack([tiles[2][f], tiles[3][f]])]))
    return path


def part_speed(gen: SampleGenerator, out: Path, frames: int = 60) -> list[dict]:
    rows = []
    for n_faces in (1, 2, 4):
        video = _mosaic(gen, out / "speed", n_faces, frames)
        start = time.perf_counter()
        result = track_video(TrackConfig(video=video, out=out / "speed" / f"track_{n_faces}", device="cpu"),
                             notify=None)
        wall = time.perf_counter() - start
        s = result.summary
        rows.append({"faces_in_view": n_faces, "faces_tracked": len(s["faces"]),
                     "ms_per_frame": 1000 * wall / s["frames"],
                     **{f"{k}_ms": v for k, v in s["stage_ms_per_frame"].items() if v >= 0.05}})
    return rows


_OLD_RUN = """
import json, sys, time
from pipelines.track_video import TrackConfig, track_video
start = time.perf_counter()
r = track_video(TrackConfig(video=sys.argv[1], intrinsics=sys.argv[2], out=sys.argv[3], device="cpu"), notify=None)
print(json.dumps({"seconds": time.perf_counter() - start, "frames": r.summary["frames"]}))
"""


def part_single(gen: SampleGenerator, out: Path, old_src: Path | None) -> list[dict]:
    rows = []
    for motion, seed in SINGLE_CLIPS.items():
        clip = write_clip(out / "single" / motion / "clip", seed, ClipConfig(motion=motion, frames=90), gen)
        gt = load_gt(clip / "gt.csv")
        variants = [("now --faces all", "all"), ("now --faces largest", "largest")]
        variants += [(f"old {old_src.name}", None)] if old_src else []
        for name, faces in variants:
            track_out = out / "single" / motion / name.replace(" ", "_")
            start = time.perf_counter()
            if faces is None:
                done = subprocess.run([sys.executable, "-c", _OLD_RUN, str(clip / "video.mp4"), str(clip / "K.json"),
                                       str(track_out)], env={"PYTHONPATH": str(old_src), "PATH": "/usr/bin:/bin"},
                                      capture_output=True, text=True, check=True)
                seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
            else:
                track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=track_out,
                                        device="cpu", faces=faces), notify=None)
                seconds = time.perf_counter() - start
            filtered = next(r for r in load_pose_runs(track_out / "poses.csv", "p") if r.label.endswith("filtered"))
            err = gt_error(filtered, gt)
            rows.append({"clip": motion, "code": name, "frames_with_pose": err.n_matched, "mae_t_mm": err.mae_t_mm,
                         "mae_r_deg": err.mae_r_deg, "ms_per_frame": 1000 * seconds / 90})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", nargs="+", choices=("ids", "speed", "single"), default=["ids", "speed", "single"])
    ap.add_argument("--out", type=Path, default=Path("runs/eval_multiface"))
    ap.add_argument("--old-src", type=Path, default=None, help="source tree of an earlier commit (part single)")
    args = ap.parse_args()
    gen = SampleGenerator(default_bank(), "test")
    parts = {"ids": lambda: part_ids(gen, args.out), "speed": lambda: part_speed(gen, args.out),
             "single": lambda: part_single(gen, args.out, args.old_src)}
    for part in args.part:
        rows = parts[part]()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{part}.json").write_text(json.dumps(rows, indent=1, default=float))
        print(f"== {part}")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
