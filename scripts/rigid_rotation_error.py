"""The rigid rotation in a checkpoint's correspondences (``L_rot``), and ``L_corr``, on crops of datasets.

For crops spread evenly over each dataset (ARKitFace layout; no augmentation, the ground-truth face box and
pixels, network in eval mode): the angle of the rigid rotation that best carries the true points of the
crop's chosen pixels onto ``X_corr`` (:func:`perspnet.network.losses.corr_rigid_rotation`; PnP turns it
into rotation error of the pose), and the L1 error of ``X_corr`` (mm, ``|dx| + |dy| + |dz|``).
On the training set against the test set it separates under-fitting from the step to unseen faces.

Usage: python scripts/rigid_rotation_error.py --data data/synth_train data/synth_test [--checkpoint CKPT]
       [--crops 256]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from perspnet.checkpoint import load_checkpoint
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.network.config import COORD_SCALE
from perspnet.network.losses import corr_points_l1, corr_rigid_rotation
from perspnet.train import RecordDataset
from perspnet.training_data import TargetBuilder, collate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+", required=True)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--crops", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, _, crop, _ = load_checkpoint(args.checkpoint)
    cfg = model.config
    for folder in args.data:
        records = ArkitLayoutDataset(folder)
        dataset = RecordDataset(records, TargetBuilder(records.topology, cfg, crop), augment=False)
        ids = np.linspace(0, len(dataset) - 1, min(args.crops, len(dataset))).round().astype(int)
        angles_deg, corr_mm = [], []
        for start in range(0, len(ids), args.batch_size):
            batch = collate([dataset[i] for i in ids[start:start + args.batch_size]])
            with torch.no_grad():
                out = model(cfg.normalize_images(batch["image"]), batch["choose"])
            points_corr = out["points_corr"].float()
            angles_deg += np.degrees(corr_rigid_rotation(points_corr, batch["points"]).norm(dim=1).numpy()).tolist()
            corr_mm.append(float(corr_points_l1(points_corr, batch["points"])) * 1000.0 / COORD_SCALE * len(points_corr))
        print(f"{folder}: {len(ids)} crops, L_rot mean {np.mean(angles_deg):.2f} median {np.median(angles_deg):.2f} "
              f"deg, L_corr {np.sum(corr_mm) / len(ids):.2f} mm")


if __name__ == "__main__":
    main()
