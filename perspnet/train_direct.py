"""Training of the "Direct 6DoF regress" baseline on the same data, crops and augmentation as PerspNet."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.network import config as presets
from perspnet.network.direct import DIRECT_FORMAT, DirectRegressNet, pose_from_output
from perspnet.train import RecordDataset, TrainConfig, scheduled_batches
from perspnet.crop import CropConfig
from perspnet.training_data import TargetBuilder, collate
from baseio.atomic import atomic_path

__all__ = ["train_direct"]


def train_direct(cfg: TrainConfig) -> Path:
    """Train the baseline (no resume: it is short) and write ``cfg.out / "direct.pt"``.

    Loss: L1 on the rotation matrix entries + L1 on t in decimetres (both of order 0.01-0.1 when close).
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    records = ArkitLayoutDataset(cfg.data)
    model_cfg = getattr(presets, cfg.preset)()
    crop = CropConfig()
    loader = torch.utils.data.DataLoader(
        RecordDataset(records, TargetBuilder(records.topology, model_cfg, crop), cache_gb=cfg.cache_gb),
        batch_size=cfg.batch_size,
        shuffle=True, drop_last=True, num_workers=cfg.workers, collate_fn=collate,
        persistent_workers=cfg.workers > 0)
    model = DirectRegressNet(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    with tqdm(total=cfg.iterations, desc="train direct", unit="it") as bar:
        for step, batch in scheduled_batches(loader, opt, cfg, 0):
            out = model(model_cfg.normalize_images(batch["image"]))
            R, t = pose_from_output(out, batch["box"].float(), batch["K"].float())
            loss = (R - batch["R"].float()).abs().mean() + 10 * (t - batch["t"].float()).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            if (step + 1) % cfg.log_every == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}")
    out_path = Path(cfg.out) / "direct.pt"
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        torch.save({"format": DIRECT_FORMAT, "model_config": model_cfg.to_dict(), "crop_margin": crop.margin,
                    "train_config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
                    "state_dict": {k: v.half() if v.is_floating_point() else v
                                   for k, v in model.state_dict().items()}}, tmp)
    return out_path
