"""Measure the data engine's ground truth and realism, and draw a contact sheet.

1. Geometry round trip on N samples: each masked pixel's barycentric reconstruction of the camera-frame
   surface point, projected with K, lands on the pixel centre (max error, px); the rendered mask versus
   the silhouette of the projected front-facing triangles (IoU).
2. Realism: MediaPipe Face Landmarker on samples with |yaw| <= 45 degrees: detection rate on the full
   frame and on a square crop of 2.6x the face around it (MediaPipe's short-range detector misses faces
   that are small in a large frame, a limit of the detector's input size, not of the face's look); and
   the median distance between its landmarks and our projected vertices, as a fraction of the face size.
3. ``contact_sheet.png`` of 32 samples (train split) and ``clip_strip.png`` (8 frames of an ``approach``
   and of a ``turn`` clip of a held-out identity) in --out.

Usage: python scripts/check_synth_quality.py [--n 100] [--split test] [--out runs/synth_quality]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from perspnet.conventions import project_points
from perspnet.landmarker import FaceLandmarker
from perspnet.synth.bank import default_bank
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.sampler import SampleGenerator, SynthSample
from baseio.video_io import iter_frames


def round_trip(sample: SynthSample, triangles: np.ndarray) -> tuple[float, float]:
    """(max reprojection error of the barycentric reconstruction over masked pixels in px, mask IoU)."""
    rows, cols = np.nonzero(sample.mask)
    corners = sample.verts_cam_m[triangles[sample.tri_id[rows, cols]]]  # (P, 3, 3)
    points = np.einsum("pk,pkc->pc", sample.bary[rows, cols].astype(np.float64), corners)
    err = np.linalg.norm(project_points(sample.K, points) - np.column_stack([cols, rows]), axis=1)
    sil = silhouette(project_points(sample.K, sample.verts_cam_m), triangles, sample.mask.shape)
    iou = (sil & sample.mask).sum() / max((sil | sample.mask).sum(), 1)
    return float(err.max()), float(iou)


def silhouette(px: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies in a front-facing projected triangle: an independent numpy point-in-triangle
    test (not the rasterizer), ``(H, W)`` bool."""
    out = np.zeros(shape, bool)
    for tri in px[triangles]:
        (x0, y0), (x1, y1), (x2, y2) = tri
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area >= 0:  # back-facing or degenerate
            continue
        xs = np.arange(max(int(np.ceil(tri[:, 0].min())), 0), min(int(np.floor(tri[:, 0].max())), shape[1] - 1) + 1)
        ys = np.arange(max(int(np.ceil(tri[:, 1].min())), 0), min(int(np.floor(tri[:, 1].max())), shape[0] - 1) + 1)
        if len(xs) == 0 or len(ys) == 0:
            continue
        gx, gy = np.meshgrid(xs, ys)
        inside = (((x1 - gx) * (y2 - gy) - (x2 - gx) * (y1 - gy)) / area >= 0) & \
                 (((x2 - gx) * (y0 - gy) - (x0 - gx) * (y2 - gy)) / area >= 0) & \
                 (((x0 - gx) * (y1 - gy) - (x1 - gx) * (y0 - gy)) / area >= 0)
        out[gy[inside], gx[inside]] = True
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/synth_quality"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bank = default_bank()
    gen = SampleGenerator(bank, args.split)
    rng = np.random.default_rng(args.seed)
    tris = gen.face_model.triangles
    errs, ious, detected, detected_crop, lm_errs, n_frontal = [], [], 0, 0, [], 0
    with FaceLandmarker("image") as landmarker:
        for _ in tqdm(range(args.n), desc="samples"):
            s = gen.sample(rng)
            e, iou = round_trip(s, tris)
            errs.append(e)
            ious.append(iou)
            if abs(s.yaw_pitch_roll_deg[0]) <= 45:
                n_frontal += 1
                px = project_points(s.K, s.verts_cam_m)
                lo, hi = px.min(0), px.max(0)
                size = np.max(hi - lo)
                detected += bool(landmarker.detect(s.image))
                x0, y0 = np.maximum((lo + hi) / 2 - 1.3 * size, 0).astype(int)
                x1, y1 = np.minimum((lo + hi) / 2 + 1.3 * size, s.image.shape[1::-1]).astype(int)
                faces = landmarker.detect(np.ascontiguousarray(s.image[y0:y1, x0:x1]))
                if faces:
                    detected_crop += 1
                    err = np.linalg.norm(faces[0].points_px + (x0, y0) - px, axis=1)
                    lm_errs.append(np.median(err) / size)
    report = {
        "n": args.n, "split": args.split,
        "round_trip_max_px": float(np.max(errs)), "round_trip_median_of_max_px": float(np.median(errs)),
        "mask_iou_min": float(np.min(ious)), "mask_iou_mean": float(np.mean(ious)),
        "mediapipe_frontal_samples": n_frontal, "mediapipe_detection_rate_full_frame": detected / max(n_frontal, 1),
        "mediapipe_detection_rate_face_crop": detected_crop / max(n_frontal, 1),
        "mediapipe_landmark_err_median_frac": float(np.median(lm_errs)) if lm_errs else None,
        "mediapipe_landmark_err_p90_frac": float(np.percentile(lm_errs, 90)) if lm_errs else None,
    }
    print(json.dumps(report, indent=1))
    (args.out / "quality.json").write_text(json.dumps(report, indent=1))

    sheet_gen = SampleGenerator(bank, "train")
    tiles = []
    for _ in range(32):
        img = sheet_gen.sample(rng).image
        h, w = img.shape[:2]
        k = 240 / max(h, w)
        img = cv2.resize(img, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
        tile = np.zeros((240, 240, 3), np.uint8)
        tile[:img.shape[0], :img.shape[1]] = img
        tiles.append(tile)
    sheet = np.vstack([np.hstack(tiles[r * 8:(r + 1) * 8]) for r in range(4)])
    cv2.imwrite(str(args.out / "contact_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))  # BGR at the edge
    print(f"wrote {args.out / 'contact_sheet.png'}")

    strips = []
    for motion in ("approach", "turn"):
        clip = write_clip(args.out / f"clip_{motion}", args.seed, ClipConfig(motion=motion, frames=48), gen)
        frames = [f.image_rgb for f in iter_frames(clip / "video.mp4")][::6]
        strips.append(np.hstack([cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames]))
    cv2.imwrite(str(args.out / "clip_strip.png"), cv2.cvtColor(np.vstack(strips), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out / 'clip_strip.png'}")


if __name__ == "__main__":
    main()
