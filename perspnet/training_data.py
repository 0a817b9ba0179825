"""From a :class:`FaceRecord` to PerspNet's input crop and targets (any mesh topology).

The crop is a square around the face, warped by an affine map ``A`` (full-image pixels -> crop pixels,
pixel centres at integers on both sides). Targets are rendered directly in crop space with the
rasterizer, so the face mask and the per-pixel (triangle, barycentric) correspondence are exact.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from perspnet.conventions import project_points
from perspnet.datasets.record import FaceRecord, FaceTopology
from perspnet.network.config import COORD_SCALE, ModelConfig
from perspnet.crop import CropConfig, area_shrink_factor, box_from_points, crop_affine, warp_crop
from perspnet.raster import extend_raster, interpolate, rasterize, rasterize_uv

MAX_DECODE_REDUCTION = 8  # the largest JPEG decode reduction OpenCV offers

__all__ = ["TargetBuilder", "collate"]


def _colour_jitter(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    img = crop.astype(np.float32)
    img = img * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)  # contrast/brightness
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.6, 1.4)  # saturation
    img *= rng.normal(1.0, 0.05, 3)  # white balance
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(img, 0, 255).astype(np.uint8)


UV_TARGET_RING = 2.0  # texels of linear extrapolation around the face's UV region in the UV map target


class TargetBuilder:
    """Turns records into network inputs and targets for one mesh topology and model config.

    Args:
        topology: triangles and UVs of the dataset's mesh.
        config: model config (crop size S, UV size U, points m).
        crop: crop settings.
    """

    def __init__(self, topology: FaceTopology, config: ModelConfig, crop: CropConfig = CropConfig()):
        self.topology = topology
        self.config = config
        self.crop = crop
        # the UV map target continues 2 texels past the face's UV region, so that sampling X_hat at a
        # border vertex's UV (bilinear, see perspnet.network.model) reads that vertex, not the background
        size = config.uv_size
        self.uv_raster = extend_raster(rasterize_uv(topology.uvs, topology.triangles, size),
                                       topology.uvs * size - 0.5, topology.triangles, UV_TARGET_RING)
        self.uv_weight = self.uv_raster.mask.astype(np.float32)

    def decode_reduction(self, K: np.ndarray, verts_cam_m: np.ndarray) -> int:
        """How much smaller (1, 2, 4 or 8) the image of a face may be decoded with no change to its crop.

        ``K (3, 3)`` and ``verts_cam_m (n, 3)`` (camera frame, metres) give the face box; the crop, at its
        largest scale jitter, is area-averaged by :func:`area_shrink_factor` before warping, and a JPEG
        decoded at ``1 / k`` (``cv2.IMREAD_REDUCED_COLOR_k``) has already averaged ``k x k`` blocks, so the
        crop is the same while decoding costs a fraction (libjpeg skips the fine DCT coefficients)."""
        side = box_from_points(project_points(K, verts_cam_m))[2] * self.crop.margin * self.crop.scale_jitter[0]
        return min(area_shrink_factor(self.config.input_size / side), MAX_DECODE_REDUCTION)

    def trim(self, record: FaceRecord) -> FaceRecord:
        """The record cut down to the pixels that any crop of it (every jitter included) can read, with ``K`` moved to match: the same examples from a fraction of the memory, so decoded
        records can be kept between epochs (:class:`perspnet.train.RecordDataset`).

        The cut starts on a multiple of the largest area-averaging block :func:`warp_crop` can use for this
        face, so its pre-shrunk pixels are the full image's, and keeps two blocks past the farthest crop edge
        for the bilinear warp; crops and targets match the untrimmed record's to float rounding."""
        c = self.crop
        face_box = box_from_points(project_points(record.K, record.verts_cam_m))
        side = face_box[2] * c.margin * c.scale_jitter[1]
        block = area_shrink_factor(self.config.input_size / side)
        reach = face_box[2] * c.shift_jitter + side / 2 + 2 * block + 1  # per axis
        w, h = record.image_size_wh
        x0, y0 = (max(int(np.floor((v - reach) / block)) * block, 0) for v in face_box[:2])
        x1, y1 = min(int(np.ceil(face_box[0] + reach)) + 1, w), min(int(np.ceil(face_box[1] + reach)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return record
        K = record.K.copy()
        K[:2, 2] -= (x0, y0)
        return dataclasses.replace(record, image_rgb=np.ascontiguousarray(record.image_rgb[y0:y1, x0:x1]), K=K)

    def __call__(self, record: FaceRecord, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        """One training example; ``rng=None`` means evaluation (no jitter, deterministic choice of pixels).

        Returns a dict of numpy arrays: ``image (S, S, 3) uint8``, ``choose (m,) int64``,
        ``seg (S, S) bool``, ``uv_map (3, U, U)`` and ``points (m, 3)`` (network units),
        ``corr_vert_ids (m, 3) int64``, ``corr_bary (m, 3)``, ``affine (2, 3)`` full image -> crop,
        ``box (3,)`` the (jittered) face box (cx, cy, side) in pixels, ``K (3, 3)``, ``R (3, 3)``, ``t (3,)``, ``verts_face (n, 3)`` metres.
        """
        size = self.config.input_size
        verts_cam = record.verts_cam_m
        px = project_points(record.K, verts_cam)
        face_box = box_from_points(px)
        box = self._jittered_box(face_box, rng)
        A = crop_affine(box, size, self.crop.margin)
        crop_px = px @ A[:, :2].T + A[:, 2]
        raster = rasterize(crop_px, verts_cam[:, 2], self.topology.triangles, size, size, cull_back=True)
        crop = warp_crop(record.image_rgb, A, size)
        if rng is not None:
            crop = _colour_jitter(rng, crop)
        seg = raster.mask
        choose = self._choose(seg, rng)
        rows, cols = np.divmod(choose, size)
        tri = raster.tri_id[rows, cols]
        vert_ids = self.topology.triangles[np.maximum(tri, 0)].astype(np.int64)
        bary = raster.bary[rows, cols].astype(np.float32)
        verts_net = record.verts_face_m * COORD_SCALE
        points = np.einsum("mk,mkc->mc", bary, verts_net[vert_ids]).astype(np.float32)
        uv_map = interpolate(verts_net, self.topology.triangles, self.uv_raster).transpose(2, 0, 1)
        return {"image": crop, "choose": choose, "seg": seg, "uv_map": np.ascontiguousarray(uv_map),
                "points": points, "corr_vert_ids": vert_ids, "corr_bary": bary, "affine": A,
                "box": box, "K": record.K, "R": record.R_cam_face, "t": record.t_cam_face,
                "verts_face": record.verts_face_m}

    def _jittered_box(self, face_box: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """The crop's box ``(cx, cy, side)`` (pixels): the face box, jittered in training
        (:class:`perspnet.crop.CropConfig`)."""
        if rng is None:
            return face_box
        box = face_box + np.array([*rng.uniform(-1, 1, 2) * self.crop.shift_jitter * face_box[2], 0.0])
        box[2] *= np.exp(rng.uniform(*np.log(self.crop.scale_jitter)))
        return box

    def _choose(self, seg: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """``m`` flat pixel indices inside the face mask (repeated when there are fewer)."""
        m = self.config.n_points
        inside = np.flatnonzero(seg)
        if len(inside) == 0:
            raise ValueError("face not visible in the crop")
        if rng is None:
            idx = np.linspace(0, len(inside) - 1, m).round().astype(int) if len(inside) >= m else np.arange(m) % len(inside)
            return inside[idx].astype(np.int64)
        return inside[rng.choice(len(inside), m, replace=len(inside) < m)].astype(np.int64)


def collate(examples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack examples into a batch of tensors (images stay uint8 ``(B, S, S, 3)``)."""
    return {k: torch.from_numpy(np.stack([e[k] for e in examples])) for k in examples[0]}
