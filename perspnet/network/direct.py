"""The paper's "Direct 6DoF regress" ablation: the same ResNet-18 backbone regressing pose directly.

Output: a 6D rotation (two columns of R, Gram-Schmidt, Zhou et al. 2019) and the face origin's position
relative to the crop box: pixel offset ``(du, dv)`` in box sides and ``dlogz`` against the distance at
which a face of ``NOMINAL_FACE_M`` would span the box. With the true K this gives a metric translation,
so the baseline uses the camera as fairly as PerspNet does.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from perspnet.network.config import ModelConfig
from perspnet.network.resnet import resnet18
from perspnet.crop import crop_affine, warp_crop

__all__ = ["DirectRegressNet", "DirectRegressor", "rotation_from_6d", "pose_from_output", "DIRECT_FORMAT",
           "default_direct_checkpoint"]

DIRECT_FORMAT = "perspnet-tracker/direct-regress-v1"
NOMINAL_FACE_M = 0.2  # metric extent of a face box side at the reference distance
_DEFAULT = Path(__file__).resolve().parents[2] / "checkpoints" / "direct_lite.pt"


def default_direct_checkpoint() -> Path:
    return Path(os.environ.get("PERSPNET_DIRECT_CHECKPOINT", _DEFAULT))


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """``(B, 6)`` two raw column vectors -> ``(B, 3, 3)`` rotation (columns a, b, a x b after Gram-Schmidt)."""
    a = nn.functional.normalize(x[:, :3], dim=1)
    b = nn.functional.normalize(x[:, 3:] - (a * x[:, 3:]).sum(1, keepdim=True) * a, dim=1)
    return torch.stack([a, b, torch.cross(a, b, dim=1)], dim=2)


def pose_from_output(out: torch.Tensor, boxes: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output ``(B, 9)``, boxes ``(B, 3)`` (cx, cy, side px), K ``(B, 3, 3)`` -> R ``(B, 3, 3)``, t ``(B, 3)`` m."""
    R = rotation_from_6d(out[:, :6])
    u = boxes[:, 0] + out[:, 6] * boxes[:, 2]
    v = boxes[:, 1] + out[:, 7] * boxes[:, 2]
    z = K[:, 0, 0] * NOMINAL_FACE_M / boxes[:, 2] * torch.exp(out[:, 8])
    x = (u - K[:, 0, 2]) / K[:, 0, 0] * z
    y = (v - K[:, 1, 2]) / K[:, 1, 1] * z
    return R, torch.stack([x, y, z], dim=1)


class DirectRegressNet(nn.Module):
    """ResNet-18 (``config.width_mult``) -> global average pool -> MLP -> 9 pose numbers.

    Input ``(B, 3, S, S)`` normalised crops; output ``(B, 9)``: 6D rotation, du, dv, dlogz.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = resnet18(config.width_mult)
        c = self.encoder.out_channels[-1]
        self.head = nn.Sequential(nn.Linear(c, 256), nn.ReLU(inplace=True), nn.Linear(256, 9))
        with torch.no_grad():  # start at identity rotation, box centre, reference distance
            self.head[-1].weight.mul_(0.01)
            self.head[-1].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0, 0, 0, 0]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(image)[-1].mean(dim=(2, 3)))


class DirectRegressor:
    """Loaded direct-regression checkpoint: ``predict(images, boxes, Ks) -> [(R, t), ...]``."""

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str = "auto"):
        from perspnet.checkpoint import CheckpointError
        from perspnet.inference import pick_device

        path = Path(checkpoint) if checkpoint is not None else default_direct_checkpoint()
        if not path.is_file():
            raise CheckpointError(f"{path}: direct-regression checkpoint not found")
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(payload, dict) or payload.get("format") != DIRECT_FORMAT:
            raise CheckpointError(f"{path}: not a direct-regression checkpoint ({DIRECT_FORMAT})")
        self.device = pick_device(device)
        self.model = DirectRegressNet(ModelConfig.from_dict(payload["model_config"]))
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                    for k, v in payload["state_dict"].items()})
        self.model.to(self.device).eval()
        self.margin = float(payload["crop_margin"])

    @torch.no_grad()
    def predict(self, images, boxes, Ks) -> list[tuple[np.ndarray, np.ndarray]]:
        cfg, size = self.model.config, self.model.config.input_size
        crops = np.stack([warp_crop(img, crop_affine(np.asarray(b, float), size, self.margin), size)
                          for img, b in zip(images, boxes)])
        out = self.model(cfg.normalize_images(torch.from_numpy(crops).to(self.device)))
        R, t = pose_from_output(out.double().cpu(), torch.tensor(np.stack(boxes), dtype=torch.float64),
                                torch.tensor(np.stack(Ks), dtype=torch.float64))
        return [(R[i].numpy(), t[i].numpy()) for i in range(len(images))]
