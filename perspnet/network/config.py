"""PerspNet's model configuration, loss weights, network coordinate unit and image normalisation.

A checkpoint stores ``ModelConfig.to_dict()`` and is rebuilt with :meth:`ModelConfig.from_dict`,
which rejects unknown keys and bad values, so a checkpoint is never loaded with the wrong
preprocessing or sizes.

Network unit
------------
The network predicts canonical face coordinates (the canonical face frame of
:mod:`perspnet.conventions`) in *network units*: ``X_net = COORD_SCALE * X_face_m``. The canonical
mesh lies within about +-0.1 m, so network values lie within about +-1.

Image normalisation
-------------------
Crops enter the network as ``(B, 3, S, S)`` float: RGB in [0, 1], minus ``image_mean``, divided by
``image_std`` (ImageNet statistics); see :meth:`ModelConfig.normalize_images`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from perspnet.validate import check_int, check_range, check_tuple, drop_removed

__all__ = ["COORD_SCALE", "IMAGENET_MEAN", "IMAGENET_STD", "LossWeights", "ModelConfig", "paper", "lite"]

COORD_SCALE = 10.0  # network unit per metre: X_net = COORD_SCALE * X_face_m
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB
_MAX_UV_UPSAMPLINGS = 5
# Settings of removed options as older checkpoints store them, with the one value this code builds (their
# record: "Removed options" in docs/experiments.md).
REMOVED_MODEL_KEYS = {"image_stride": 1}
REMOVED_LOSS_KEYS = {"rotation": 0.0}


@dataclass(frozen=True)
class LossWeights:
    """Weights of the training loss ``w_shape L_S + w_matrix L_M + w_corr L_corr + w_seg L_seg``.

    Attributes:
        shape: ``w_S``, weight of the L1 loss on the UV position map.
        matrix: ``w_M``, weight of the correspondence-matrix loss (KL + entropy).
        corr: ``w_corr``, weight of the L1 loss on the corresponded 3D points ``X_corr``.
        seg: ``w_seg``, weight of the face segmentation cross-entropy.
        entropy: weight of the row entropy of ``M`` inside ``L_M`` (``L_M = KL + entropy * H``).
    """

    shape: float = 0.5
    matrix: float = 0.01
    corr: float = 1.0
    seg: float = 0.01
    entropy: float = 0.1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_range(f"loss.{f.name}", getattr(self, f.name), 0.0)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and hyper-parameters of :class:`perspnet.network.model.PerspNet`.

    Attributes:
        input_size: ``S``, side of the square input crop in pixels; a multiple of 32.
        uv_size: ``U``, side of the predicted UV position map; ``(S / 32) * 2**k`` with ``1 <= k <= 5``
            (``k`` is the number of up-sampling layers of the UV decoder).
        n_points: ``m``, pixels sampled in the crop for the correspondence matrix.
        width_mult: ResNet-18 width multiplier (1.0: widths 64/128/256/512).
        head_dim: channels of the conv head on the stride-32 encoder feature, shared by both decoders.
        decoder_dims: channels of the decoder layers at strides 16, 8, 4, 2.
        feat_dim: channels of the 2D image features (at the crop's full resolution) and of the UV (3D)
            features.
        local_dim: channels of the per-pixel image feature after its point-wise MLP.
        pe_num_freqs: ``L``, frequencies ``pi * 2**k`` (k < L) of the 2D sinusoidal position encoding
            of pixel coordinates normalised to [-1, 1]; the encoding has ``4 L`` channels.
        global_hidden: hidden width of the MLPs giving the 2D and 3D global features.
        global_dim: channels of each global feature.
        assign_hidden: hidden widths (at least one) of the MLP giving the correspondence logits.
        dropout: channel-dropout probability in the intermediate decoder layers.
        uv_dropout: the same in the UV-map decoder alone; ``None``: ``dropout``.
        image_mean: RGB mean subtracted from images in [0, 1].
        image_std: RGB std dividing images in [0, 1].
        loss: training loss weights.
    """

    input_size: int = 192
    uv_size: int = 192
    n_points: int = 1024
    width_mult: float = 1.0
    head_dim: int = 256
    decoder_dims: tuple[int, int, int, int] = (256, 128, 64, 32)
    feat_dim: int = 32
    local_dim: int = 64
    pe_num_freqs: int = 6
    global_hidden: int = 128
    global_dim: int = 1024
    assign_hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.15
    uv_dropout: float | None = None
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        for name in ("input_size", "uv_size", "n_points", "head_dim", "feat_dim", "local_dim",
                     "pe_num_freqs", "global_hidden", "global_dim"):
            check_int(name, getattr(self, name), 1)
        for i, dim in enumerate(check_tuple("decoder_dims", self.decoder_dims, length=4)):
            check_int(f"decoder_dims[{i}]", dim, 1)
        for i, dim in enumerate(check_tuple("assign_hidden", self.assign_hidden, min_length=1)):
            check_int(f"assign_hidden[{i}]", dim, 1)
        for i, v in enumerate(check_tuple("image_mean", self.image_mean, length=3)):
            check_range(f"image_mean[{i}]", v)
        for i, v in enumerate(check_tuple("image_std", self.image_std, length=3)):
            check_range(f"image_std[{i}]", v, 0.0, lo_open=True)
        check_range("width_mult", self.width_mult, 0.0, lo_open=True)
        check_range("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        if self.uv_dropout is not None:
            check_range("uv_dropout", self.uv_dropout, 0.0, 1.0, hi_open=True)
        if not isinstance(self.loss, LossWeights):
            raise ValueError(f"loss must be LossWeights, got {type(self.loss).__name__}")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        _uv_upsamplings(self.input_size, self.uv_size)

    @property
    def uv_upsamplings(self) -> int:
        """Number ``k`` of x2 up-sampling layers taking the stride-32 feature to the ``U x U`` UV map."""
        return _uv_upsamplings(self.input_size, self.uv_size)

    @property
    def pe_dim(self) -> int:
        """Channels of the 2D position encoding, ``4 * pe_num_freqs``."""
        return 4 * self.pe_num_freqs

    def normalize_images(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, S, S, 3)`` uint8 RGB crops -> ``(B, 3, S, S)`` float32 network input (see module doc)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (B, S, S, 3) uint8 RGB, got {tuple(images.shape)} {images.dtype}")
        x = images.permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(self.image_mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of built-in types (tuples become lists), for checkpoints and JSON."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`. Missing keys take the defaults (the paper's values); keys of removed
        options are dropped when they hold the value the code now always uses
        (:func:`perspnet.validate.drop_removed`); other unknown keys, in the config or in ``loss``, raise
        ``ValueError`` naming them."""
        data = drop_removed("ModelConfig", data, REMOVED_MODEL_KEYS)
        _reject_unknown(cls, data, "ModelConfig")
        loss = data.pop("loss", {})
        if isinstance(loss, Mapping):
            loss = drop_removed("ModelConfig.loss", loss, REMOVED_LOSS_KEYS)
            _reject_unknown(LossWeights, loss, "ModelConfig.loss")
            loss = LossWeights(**loss)
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs, loss=loss)


def paper() -> ModelConfig:
    """The paper's setting: 192 x 192 crops, UV map at input size, m = 1024, full ResNet-18."""
    return ModelConfig()


def lite() -> ModelConfig:
    """A small setting for training and running on a few CPU cores: 128 x 128 crops, 64 x 64 UV map,
    m = 256, ResNet-18 at half width and slimmer decoders and correspondence head.

    Loss weights as the paper's except ``seg = 0.2`` (paper: 0.01): test-time pixels are sampled inside the
    *predicted* mask, and with a short CPU schedule the paper's weight left the segmentation near chance,
    so PnP got background pixels (docs/experiments.md, "Training recipe")."""
    return ModelConfig(
        loss=LossWeights(seg=0.2),
        input_size=128,
        uv_size=64,
        n_points=256,
        width_mult=0.5,
        head_dim=128,
        decoder_dims=(64, 32, 16, 16),
        feat_dim=16,
        local_dim=32,
        pe_num_freqs=5,
        global_hidden=64,
        global_dim=256,
        assign_hidden=(256, 128),
    )


def _uv_upsamplings(input_size: int, uv_size: int) -> int:
    base = input_size // 32
    allowed = [base * 2**k for k in range(1, _MAX_UV_UPSAMPLINGS + 1)]
    if uv_size not in allowed:
        raise ValueError(f"uv_size must be one of {allowed} for input_size {input_size}, got {uv_size}")
    return allowed.index(uv_size) + 1


def _reject_unknown(cls: type, data: Mapping[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys: {sorted(known)}")
