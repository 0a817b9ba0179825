"""PerspNet (Kao et al., TIP 2023): canonical face shape as a UV position map, face mask, and the
correspondence matrix from sampled crop pixels to mesh vertices.

Data flow for a crop ``(B, 3, S, S)`` (normalised, see :mod:`perspnet.network.config`) and ``m`` chosen
pixels ``choose (B, m)`` (flat indices ``row * S + col`` into the crop):

* ResNet-18 encoder -> features at strides 2 .. 32; a conv head on the stride-32 feature.
* Decoder 1 (UV branch, no skips): ``k`` x2 up-sampling layers to ``(B, F, U, U)`` 3D features and the
  UV position map ``(B, 3, U, U)``: canonical face coordinates in network units
  (``COORD_SCALE * metres``, canonical face frame of :mod:`perspnet.conventions`).
* Decoder 2 (image branch, skips from the encoder and the input): five x2 up-sampling layers to
  ``(B, F, S, S)`` 2D image features and face segmentation logits ``(B, 2, S, S)`` (class 1 = face).
* Correspondence head: per chosen pixel, the local feature is [MLP(image feature at the pixel),
  2D sinusoidal encoding of its position]; the 2D global feature is an MLP of the local features
  averaged over the ``m`` points; the 3D global feature is an MLP of the UV features sampled at the
  ``n`` vertices' UVs, averaged over the vertices. [local, global 2D, global 3D] -> MLP -> logits over
  the ``n`` vertices; their softmax over vertices is the correspondence matrix ``M (B, m, n)``.
* ``X_hat (B, n, 3)``: the UV map sampled at the vertices' UVs; ``X_corr = M @ X_hat (B, m, 3)``: the
  canonical point seen at each chosen pixel, to be paired with the pixel for PnP.

UV sampling convention (:func:`sample_uv_map`): a ``U x U`` map covers the UV square [0, 1]^2 with
``u`` along columns (right) and ``v`` along rows (down); texel ``(row r, col c)`` is centred at
``u = (c + 0.5) / U, v = (r + 0.5) / U``. Sampling is bilinear between texel centres
(``grid_sample(align_corners=False)``) and clamps to the border texels outside them. A ground-truth
UV map must be rendered with the same texel centres.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perspnet.network.config import ModelConfig
from perspnet.network.resnet import resnet18

__all__ = [
    "PerspNet",
    "ImageDecoder",
    "UVDecoder",
    "CorrespondenceHead",
    "sample_uv_map",
    "sample_pixel_features",
    "position_encoding_2d",
    "spread_choose_from_mask",
]


def sample_uv_map(maps: torch.Tensor, uvs: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample UV-space maps at texture coordinates (convention in the module doc).

    Args:
        maps: ``(B, C, U, U)`` maps over the UV square, e.g. a UV position map (C = 3).
        uvs: ``(n, 2)`` texture coordinates ``(u, v)`` in [0, 1], u right, v down.

    Returns:
        ``(B, n, C)`` sampled values.
    """
    grid = (2.0 * uvs.to(maps.dtype) - 1.0).view(1, 1, -1, 2).expand(maps.shape[0], -1, -1, -1)
    sampled = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[:, :, 0, :].transpose(1, 2)


def sample_pixel_features(feats: torch.Tensor, choose: torch.Tensor) -> torch.Tensor:
    """Features of chosen crop pixels from a full-resolution feature map over the crop.

    Args:
        feats: ``(B, C, S, S)`` features, one per crop pixel.
        choose: ``(B, m)`` long flat pixel indices ``row * S + col``.

    Returns:
        ``(B, C, m)`` features.
    """
    b, c = feats.shape[:2]
    return feats.reshape(b, c, -1).gather(2, choose.unsqueeze(1).expand(-1, c, -1))


def position_encoding_2d(choose: torch.Tensor, size: int, num_freqs: int) -> torch.Tensor:
    """Sinusoidal encoding of pixel positions in a square crop.

    Pixel ``(row, col)`` has normalised coordinates ``x = (2 col + 1) / S - 1``, ``y = (2 row + 1) / S - 1``
    in (-1, 1) (pixel centres, x right, y down); with ``w_k = pi * 2**k``, ``k < L``, the encoding is
    ``[sin(w x), cos(w x), sin(w y), cos(w y)]``, each block ``L`` channels.

    Args:
        choose: ``(B, m)`` long flat pixel indices ``row * S + col``.
        size: ``S``, the crop side in pixels.
        num_freqs: ``L``.

    Returns:
        ``(B, 4 L, m)`` float32 encoding.
    """
    row = torch.div(choose, size, rounding_mode="floor")
    col = choose - row * size
    x = (2.0 * col.float() + 1.0) / size - 1.0
    y = (2.0 * row.float() + 1.0) / size - 1.0
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, device=choose.device, dtype=torch.float32)
    wx = x.unsqueeze(1) * freqs.view(1, -1, 1)  # (B, L, m)
    wy = y.unsqueeze(1) * freqs.view(1, -1, 1)
    return torch.cat([wx.sin(), wx.cos(), wy.sin(), wy.cos()], dim=1)


def spread_choose_from_mask(mask: torch.Tensor, m: int) -> torch.Tensor:
    """Choose ``m`` pixels spread evenly over each crop's mask, as flat indices for :meth:`PerspNet.forward`.

    The pixels are the mask's, in raster order, at ``m`` evenly spaced ranks (points spread over the whole
    face constrain PnP better than as many random draws, which cluster; docs/experiments.md, "Test time");
    with fewer than ``m`` they all repeat (wrapping). An empty mask falls back to the central square of the
    crop (rows and columns ``S // 4 .. S - S // 4 - 1``). Deterministic.

    Args:
        mask: ``(B, S, S)`` bool, True on the face (e.g. the predicted ``seg_logits.argmax(1) == 1``).
        m: number of pixels per crop.

    Returns:
        ``(B, m)`` long indices ``row * S + col``, on ``mask``'s device.
    """
    if mask.ndim != 3 or mask.shape[1] != mask.shape[2]:
        raise ValueError(f"mask must be (B, S, S), got {tuple(mask.shape)}")
    batch, size = mask.shape[0], mask.shape[1]
    flat = mask.reshape(batch, -1).bool().cpu()
    lo, hi = size // 4, size - size // 4
    rows, cols = torch.meshgrid(torch.arange(lo, hi), torch.arange(lo, hi), indexing="ij")
    centre = (rows * size + cols).reshape(-1)
    out = torch.empty(batch, m, dtype=torch.long)
    for b in range(batch):
        idx = flat[b].nonzero().squeeze(1)
        if idx.numel() == 0:
            idx = centre
        if idx.numel() >= m:
            out[b] = idx[torch.linspace(0, idx.numel() - 1, m).round().long()]
        else:
            out[b] = idx.repeat(-(-m // idx.numel()))[:m]
    return out.to(mask.device)


def _conv_bn_act(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True),
    )


def _mlp(dims: list[int]) -> nn.Sequential:
    """Point-wise MLP on ``(B, dims[0], N)``: 1x1 Conv1d + ReLU for each consecutive pair of ``dims``."""
    layers: list[nn.Module] = []
    for cin, cout in zip(dims[:-1], dims[1:]):
        layers += [nn.Conv1d(cin, cout, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ImageDecoder(nn.Module):
    """Decoder 2: stride-32 head feature + encoder skips + input image -> 2D features at full resolution.

    One layer per skip, each ``x2 up-sample -> concat skip -> conv-BN-LeakyReLU``; the skips are the
    encoder features at strides 16, 8, 4, 2 and the input image; output channels ``decoder_dims`` then
    ``feat_dim``. Channel dropout after every layer but the last.

    Args:
        head_dim: channels of the stride-32 head feature.
        skip_dims: channels of the skips at strides 16, 8, 4, 2 and 1 (the image).
        decoder_dims: output channels at strides 16, 8, 4, 2.
        feat_dim: output channels of the last layer.
        dropout: ``Dropout2d`` probability.
    """

    def __init__(self, head_dim: int, skip_dims: tuple[int, ...], decoder_dims: tuple[int, ...],
                 feat_dim: int, dropout: float) -> None:
        super().__init__()
        outs = list(decoder_dims[: len(skip_dims) - 1]) + [feat_dim]
        ins = [head_dim] + outs[:-1]
        self.layers = nn.ModuleList(_conv_bn_act(i + s, o) for i, s, o in zip(ins, skip_dims, outs))
        self.drop = nn.Dropout2d(dropout)

    def forward(self, head: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """``head (B, head_dim, S/32, S/32)``, skips at strides 16, 8, 4, 2, 1 -> ``(B, feat_dim, S, S)``."""
        x = head
        for i, (layer, skip) in enumerate(zip(self.layers, skips)):
            x = layer(torch.cat([_up2(x), skip], dim=1))
            if i < len(self.layers) - 1:
                x = self.drop(x)
        return x


class UVDecoder(nn.Module):
    """Decoder 1: stride-32 head feature -> UV features ``(B, feat_dim, U, U)`` and UV position map.

    ``k`` layers ``x2 up-sample -> conv-BN-LeakyReLU`` with output channels ``decoder_dims[:k-1]`` then
    ``feat_dim``, channel dropout after every layer but the last, then a 1x1 conv to 3 channels
    (canonical xyz, network units; no output squashing).

    Args:
        head_dim: channels of the stride-32 head feature.
        decoder_dims: channels of the intermediate layers (the first ``k - 1`` are used).
        feat_dim: channels of the UV features.
        upsamplings: ``k``, with ``U = (S / 32) * 2**k``.
        dropout: ``Dropout2d`` probability.
    """

    def __init__(self, head_dim: int, decoder_dims: tuple[int, ...], feat_dim: int, upsamplings: int,
                 dropout: float) -> None:
        super().__init__()
        outs = list(decoder_dims[: upsamplings - 1]) + [feat_dim]
        ins = [head_dim] + outs[:-1]
        self.layers = nn.ModuleList(_conv_bn_act(i, o) for i, o in zip(ins, outs))
        self.drop = nn.Dropout2d(dropout)
        self.to_xyz = nn.Conv2d(feat_dim, 3, 1)

    def forward(self, head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, head_dim, S/32, S/32)`` -> UV features ``(B, feat_dim, U, U)``, UV map ``(B, 3, U, U)``."""
        x = head
        for i, layer in enumerate(self.layers):
            x = layer(_up2(x))
            if i < len(self.layers) - 1:
                x = self.drop(x)
        return x, self.to_xyz(x)


class CorrespondenceHead(nn.Module):
    """Logits of the correspondence matrix from chosen pixels' features and the UV features.

    The first layer of the assignment MLP acts on ``[local, global_2d, global_3d]``; it is computed as
    ``W_local @ local + W_global @ [global_2d, global_3d]`` (same function, without repeating the global
    features ``m`` times).

    Args:
        config: sizes (``feat_dim``, ``local_dim``, ``pe_num_freqs``, ``global_hidden``, ``global_dim``,
            ``assign_hidden``, ``input_size``).
        n_verts: ``n``, vertices of the face mesh (columns of ``M``).
    """

    def __init__(self, config: ModelConfig, n_verts: int) -> None:
        super().__init__()
        c = config
        self.size, self.num_freqs = c.input_size, c.pe_num_freqs
        point_dim = c.local_dim + c.pe_dim
        self.local_mlp = _mlp([c.feat_dim, c.local_dim])
        self.global_2d = _mlp([point_dim, c.global_hidden, c.global_dim])
        self.global_3d = _mlp([c.feat_dim, c.global_hidden, c.global_dim])
        hidden = list(c.assign_hidden)
        self.assign_local = nn.Conv1d(point_dim, hidden[0], 1)
        self.assign_global = nn.Linear(2 * c.global_dim, hidden[0], bias=False)
        self.assign_rest = nn.Sequential(nn.ReLU(inplace=True), *_mlp(hidden), nn.Conv1d(hidden[-1], n_verts, 1))

    def forward(self, image_feats: torch.Tensor, vert_feats: torch.Tensor, choose: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image_feats: ``(B, feat_dim, S, S)`` 2D image features.
            vert_feats: ``(B, feat_dim, n)`` UV features at the vertices' UVs.
            choose: ``(B, m)`` long flat pixel indices ``row * S + col``.

        Returns:
            ``(B, m, n)`` correspondence logits.
        """
        gathered = sample_pixel_features(image_feats, choose)  # (B, C, m)
        pe = position_encoding_2d(choose, self.size, self.num_freqs).to(gathered.dtype)
        local = torch.cat([self.local_mlp(gathered), pe], dim=1)  # (B, local_dim + 4L, m)
        global_2d = self.global_2d(local).mean(dim=2)  # (B, G)
        global_3d = self.global_3d(vert_feats).mean(dim=2)  # (B, G)
        first = self.assign_local(local) + self.assign_global(torch.cat([global_2d, global_3d], 1)).unsqueeze(2)
        return self.assign_rest(first).transpose(1, 2)


class PerspNet(nn.Module):
    """PerspNet: UV position map, face segmentation and 2D-3D correspondence matrix (module doc).

    Args:
        config: model configuration; ``config.input_size`` is the crop side ``S`` the network accepts.
        vert_uvs: ``(n, 2)`` texture coordinates of the face mesh's vertices in [0, 1] (u right, v down),
            e.g. ``load_face_model().uvs``; stored as the buffer ``vert_uvs`` (float32).

    Example:
        >>> import torch
        >>> from perspnet.network.config import lite
        >>> net = PerspNet(lite(), torch.rand(468, 2)).eval()
        >>> out = net(torch.zeros(1, 3, 128, 128), torch.arange(256).view(1, 256))
        >>> tuple(out["corr_prob"].shape), tuple(out["uv_map"].shape)
        ((1, 256, 468), (1, 3, 64, 64))
    """

    def __init__(self, config: ModelConfig, vert_uvs: torch.Tensor | np.ndarray) -> None:
        super().__init__()
        if isinstance(vert_uvs, torch.Tensor):
            uvs = vert_uvs.detach().to("cpu", torch.float32).clone()
        else:
            uvs = torch.tensor(np.asarray(vert_uvs), dtype=torch.float32)
        if uvs.ndim != 2 or uvs.shape[1] != 2:
            raise ValueError(f"vert_uvs must be (n, 2), got {tuple(uvs.shape)}")
        self.config = config
        self.register_buffer("vert_uvs", uvs)
        c = config
        self.encoder = resnet18(c.width_mult)
        enc = self.encoder.out_channels  # strides 2, 4, 8, 16, 32
        self.head = nn.Sequential(nn.Conv2d(enc[4], c.head_dim, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c.head_dim), nn.ReLU(inplace=True))
        skip_dims = (enc[3], enc[2], enc[1], enc[0], 3)
        self.image_decoder = ImageDecoder(c.head_dim, skip_dims, c.decoder_dims, c.feat_dim, c.dropout)
        self.seg_head = nn.Conv2d(c.feat_dim, 2, 1)
        self.uv_decoder = UVDecoder(c.head_dim, c.decoder_dims, c.feat_dim, c.uv_upsamplings,
                                    c.dropout if c.uv_dropout is None else c.uv_dropout)
        self.corr_head = CorrespondenceHead(c, uvs.shape[0])

    @property
    def n_verts(self) -> int:
        return int(self.vert_uvs.shape[0])

    def forward(self, image: torch.Tensor, choose: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            image: ``(B, 3, S, S)`` normalised crop (``config.normalize_images``), ``S = config.input_size``.
            choose: ``(B, m)`` long flat indices ``row * S + col`` of the sampled crop pixels.

        Returns:
            dict of (all coordinates in network units, canonical face frame):
            ``uv_map (B, 3, U, U)``, ``seg_logits (B, 2, S, S)``, ``corr_logits (B, m, n)``,
            ``corr_prob (B, m, n)`` (rows sum to 1), ``verts_hat (B, n, 3)``, ``points_corr (B, m, 3)``.
        """
        return self.correspond(self.encode(image), choose)

    def encode(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The dense part (everything but the correspondence head): ``uv_map (B, 3, U, U)``,
        ``seg_logits (B, 2, S, S)``, ``verts_hat (B, n, 3)``, plus the features :meth:`correspond` needs.
        At test time the pixels to correspond are sampled in the predicted mask, so the two run apart."""
        size = self.config.input_size
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, size, size):
            raise ValueError(f"image must be (B, 3, {size}, {size}), got {tuple(image.shape)}")
        x2, x4, x8, x16, x32 = self.encoder(image)
        head = self.head(x32)
        image_feats = self.image_decoder(head, [x16, x8, x4, x2, image])
        seg_logits = self.seg_head(image_feats)
        uv_feats, uv_map = self.uv_decoder(head)
        return {"uv_map": uv_map, "seg_logits": seg_logits, "image_feats": image_feats,
                "vert_feats": sample_uv_map(uv_feats, self.vert_uvs).transpose(1, 2),  # (B, feat_dim, n)
                "verts_hat": sample_uv_map(uv_map, self.vert_uvs)}

    def correspond(self, dense: dict[str, torch.Tensor], choose: torch.Tensor) -> dict[str, torch.Tensor]:
        """Correspondences of the ``choose (B, m)`` pixels given :meth:`encode`'s output (see forward)."""
        batch = dense["uv_map"].shape[0]
        if choose.ndim != 2 or choose.shape[0] != batch or choose.dtype != torch.long:
            raise ValueError(f"choose must be (B, m) long with B = {batch}, got {tuple(choose.shape)} {choose.dtype}")
        corr_logits = self.corr_head(dense["image_feats"], dense["vert_feats"], choose)
        corr_prob = corr_logits.softmax(dim=2)
        return {"uv_map": dense["uv_map"], "seg_logits": dense["seg_logits"], "corr_logits": corr_logits,
                "corr_prob": corr_prob, "verts_hat": dense["verts_hat"],
                "points_corr": torch.bmm(corr_prob, dense["verts_hat"])}
