"""PerspNet checkpoints: weights plus everything needed to use them (model config, crop, topology).

A checkpoint is a ``torch.save`` dict with ``format == CHECKPOINT_FORMAT``; loading anything else, or a
checkpoint whose weights do not fit its config, is a :class:`CheckpointError` with a one-line message.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from perspnet.datasets.record import FaceTopology
from perspnet.network.config import ModelConfig
from perspnet.network.model import PerspNet
from perspnet.crop import CropConfig

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "default_checkpoint_path"]

CHECKPOINT_FORMAT = "perspnet-tracker/checkpoint-v1"
# The checkpoint shipped in the repository, used when none is given.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "perspnet_lite.pt"


class CheckpointError(ValueError):
    """Missing, unreadable or incompatible checkpoint."""


def default_checkpoint_path() -> Path:
    return Path(os.environ.get("PERSPNET_CHECKPOINT", DEFAULT_CHECKPOINT))


def save_checkpoint(path: Path, model: PerspNet, topology: FaceTopology, crop: CropConfig,
                    extra: dict | None = None, half: bool = False) -> None:
    """Write ``model`` with its config, crop settings and topology to ``path`` atomically.

    ``half=True`` stores float tensors as float16 (a shipped checkpoint; they load back as float32).
    ``extra`` holds training state (optimizer, step, ...) for resuming.
    """
    from baseio.atomic import atomic_path

    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "model_config": model.config.to_dict(),
               "crop": dataclasses.asdict(crop), "topology_name": topology.name,
               "topology_triangles": np.asarray(topology.triangles), "topology_uvs": np.asarray(topology.uvs),
               "state_dict": state, **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                    ) -> tuple[PerspNet, FaceTopology, CropConfig, dict]:
    """Load a checkpoint -> ``(model in eval mode, topology, crop config, the raw dict)``."""
    path = Path(path) if path is not None else default_checkpoint_path()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a perspnet-tracker checkpoint (expected format {CHECKPOINT_FORMAT})")
    try:
        config = ModelConfig.from_dict(payload["model_config"])
        topology = FaceTopology(payload["topology_name"], np.asarray(payload["topology_triangles"], np.int32),
                                np.asarray(payload["topology_uvs"], np.float64))
        model = PerspNet(config, topology.uvs)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload["state_dict"].items()})
    except (KeyError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:200]
        raise CheckpointError(f"{path}: checkpoint does not match its architecture ({first})") from None
    try:
        crop = CropConfig.from_dict(payload["crop"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: unusable crop settings ({str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), topology, crop, payload
