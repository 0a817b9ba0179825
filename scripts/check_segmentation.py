"""How well PerspNet's face segmentation says "face" and "no face", on a test set (ours or ARKitFace layout).

Per face, crops around the ground-truth face box moved by ``shift`` box sides (0 = the centred crop that
training always showed; 0.5 cuts part of the face off; 1.0 leaves little face; 1.5 almost none), each in a
random direction (seeded). Prints per shift the true and the predicted share of the crop that is face, the
share predicted face where there is none, and the IoU of the predicted mask with the true one (the mesh
rendered into the crop; over the crops with some face). The tracker re-detects
when a crop's predicted mask shrinks (``tracker.online.OnlineConfig.redetect_mask_drop``), so face left in
crops with little or no face is what lets a track follow the wrong place.

Usage: python scripts/check_segmentation.py --data data/synth_test [--checkpoint CKPT] [--limit 300]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.conventions import project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.inference import PerspNetPredictor
from perspnet.raster import rasterize
from perspnet.crop import box_from_points

SHIFTS = (0.0, 0.5, 1.0, 1.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    records = ArkitLayoutDataset(args.data)
    predictor = PerspNetPredictor(args.checkpoint, device="cpu")
    size = predictor.config.input_size
    rng = np.random.default_rng(args.seed)
    stats = {s: {"true": [], "pred": [], "false": [], "iou": []} for s in SHIFTS}
    for i in tqdm(np.linspace(0, len(records) - 1, min(args.limit, len(records))).round().astype(int), desc="faces"):
        rec = records[i]
        px = project_points(rec.K, rec.verts_cam_m)
        face_box = box_from_points(px)
        angles = rng.uniform(0, 2 * np.pi, len(SHIFTS))
        boxes = [face_box + np.array([np.cos(a) * s * face_box[2], np.sin(a) * s * face_box[2], 0.0])
                 for s, a in zip(SHIFTS, angles)]
        net = predictor.network([rec.image_rgb] * len(boxes), boxes, keep_masks=True)
        for s, A, pred in zip(SHIFTS, net["affine"], net["mask"]):
            crop_px = px @ A[:, :2].T + A[:, 2]
            true = rasterize(crop_px, rec.verts_cam_m[:, 2], records.topology.triangles, size, size,
                             cull_back=True).mask
            stats[s]["true"].append(true.mean())
            stats[s]["pred"].append(pred.mean())
            stats[s]["false"].append((pred & ~true).mean())
            if true.any():
                stats[s]["iou"].append((true & pred).sum() / (true | pred).sum())
    print(f"means over {len(stats[0.0]['true'])} faces; shares of the crop's pixels")
    print(f"{'shift (box sides)':>18} {'true face':>10} {'predicted':>10} {'false face':>11} {'mask IoU':>9}")
    for s in SHIFTS:
        iou = f"{np.mean(stats[s]['iou']):.3f}" if stats[s]["iou"] else "-"
        print(f"{s:>18.1f} {np.mean(stats[s]['true']):>10.3f} {np.mean(stats[s]['pred']):>10.3f} "
              f"{np.mean(stats[s]['false']):>11.3f} {iou:>9}")


if __name__ == "__main__":
    main()
