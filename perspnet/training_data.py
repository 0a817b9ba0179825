"""From a :class:`FaceRecord` to PerspNet's input crop and targets (any mesh topology).

The crop is a square around the face, warped by an affine map ``A`` (full-image pixels -> crop pixels,
pixel centres at integers on both sides). Targets are rendered directly in crop space with the
rasterizer, so the face mask and the per-pixel (triangle, barycentric) correspondence are exact.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from perspnet.conventions import project_points
from perspnet.datasets.record import FaceRecord, FaceTopology
from perspnet.network.config import COORD_SCALE, ModelConfig
from perspnet.raster import extend_raster, interpolate, rasterize, rasterize_uv

MAX_DECODE_REDUCTION = 8  # the largest JPEG decode reduction OpenCV offers

__all__ = ["CropConfig", "crop_affine", "turn_crop_affine", "box_from_points", "area_shrink_factor", "warp_crop", "TargetBuilder", "collate"]


@dataclass(frozen=True)
class CropConfig:
    """How the face crop is taken. ``margin``: crop side / face box side. Jitter applies in training only:
    centre shift as a fraction of the box side, log-uniform scale factor range.

    ``off_centre_prob``: in training, the share of crops whose centre is moved ``off_centre_shift`` (a
    range, fractions of the box side, in a random direction) off the face, so that part of the face leaves
    the crop and background fills the rest. Centred crops never show a crop with little face in it, and the
    tracker's crops after a fast move or a lost face do: the segmentation must say "no face" there
    (the tracker re-detects when its mask shrinks). A crop keeps at least ``min_face_frac`` of its pixels
    on the face (else the shift is drawn again, then dropped).

    ``shading_gradient``: in training, each crop is multiplied by a linear brightness ramp ``1 + g d . p``
    (``p`` the pixel in [-1, 1]^2 crop coordinates, ``d`` a random unit direction, ``g`` uniform in
    ``[0, shading_gradient]``): a face texture carries the lighting of the photograph it came from, and a
    ramp over the crop moves the shipped model's pitch on held-out faces by about 0.6 degrees at g = 0.3,
    so the network should not read pose from it. 0: off.

    ``turn_jitter_deg``: in training, each crop is turned about its centre by an angle uniform in
    ``[-turn_jitter_deg, turn_jitter_deg]`` (:func:`turn_crop_affine`); the canonical targets do not change
    and the pixels' correspondences follow the crop. The renders' faces roll little (sd 10 degrees) and
    their light comes from above in the camera frame on average, so without it the network may read roll
    from cues that turn with the crop. 0: off."""

    margin: float = 1.5
    shift_jitter: float = 0.1
    scale_jitter: tuple[float, float] = (0.9, 1.12)
    off_centre_prob: float = 0.0
    off_centre_shift: tuple[float, float] = (0.4, 0.9)
    min_face_frac: float = 0.03
    shading_gradient: float = 0.0
    turn_jitter_deg: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.turn_jitter_deg <= 180.0:
            raise ValueError(f"turn_jitter_deg must be in [0, 180], got {self.turn_jitter_deg}")


def box_from_points(points_px: np.ndarray) -> np.ndarray:
    """Square box ``(cx, cy, side)`` (pixels) around points ``(N, 2)``: centre of their extent, side = largest extent."""
    lo, hi = points_px.min(0), points_px.max(0)
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, max(hi[0] - lo[0], hi[1] - lo[1], 1.0)])


def crop_affine(box: np.ndarray, size: int, margin: float) -> np.ndarray:
    """``(2, 3)`` affine ``A``: full-image pixel -> crop pixel for a crop of ``side = margin * box side``
    centred on the box, resampled to ``size x size`` (pixel centres at integers on both sides)."""
    cx, cy, side = box
    side = side * margin
    s = size / side
    x0, y0 = cx - side / 2, cy - side / 2
    # the crop's left edge is x0 (image coordinates, pixel centres at integers), so crop pixel j's centre
    # lies at image x = x0 + (j + 0.5) / s; the box centre lands on the crop's centre (size - 1) / 2, and
    # the map commutes with resizing the image (the same crop from a half-size decode, see decode_reduction)
    return np.array([[s, 0.0, -x0 * s - 0.5], [0.0, s, -y0 * s - 0.5]])


def turn_crop_affine(A: np.ndarray, size: int, angle_deg: float) -> np.ndarray:
    """The crop affine ``A (2, 3)`` (full image -> crop pixels) followed by a turn of the crop by
    ``angle_deg`` about its centre ``((size - 1) / 2, (size - 1) / 2)``, counter-clockwise as seen on screen
    (image y points down): the face in the new crop appears turned by ``angle_deg`` that way."""
    c = (size - 1) / 2
    a = np.deg2rad(angle_deg)
    turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return np.hstack([turn @ A[:, :2], (turn @ (A[:, 2] - c) + c)[:, None]])


def area_shrink_factor(scale: float) -> int:
    """The power of two ``k >= 1`` that :func:`warp_crop` area-averages by before warping at ``scale``
    (crop pixels per image pixel): the largest with ``k * scale <= 1``, so the warp itself never shrinks by
    2x or more. A power of two, so an image already shrunk by a smaller power of two (a reduced JPEG
    decode, :meth:`TargetBuilder.decode_reduction`) needs the rest, ``k / reduction``, and gets the same crop."""
    k = 1
    while 2 * k * scale <= 1.0:
        k *= 2
    return k


def warp_crop(image_rgb: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 crop of ``image_rgb`` under the similarity ``A`` (area-averaged when
    shrinking 2x or more)."""
    k = area_shrink_factor(float(np.hypot(A[0, 0], A[1, 0])))
    if k > 1:  # pre-shrink to limit aliasing (whole k x k blocks: a partial last one would stretch the rest), then warp
        h, w = image_rgb.shape[0] // k, image_rgb.shape[1] // k
        small = cv2.resize(image_rgb[: h * k, : w * k], (w, h), interpolation=cv2.INTER_AREA)
        S = np.diag([k, k, 1.0])
        S[:2, 2] = (k - 1) / 2  # small pixel i's centre is at full-res (i + 0.5) * k - 0.5
        A = np.vstack([A, [0, 0, 1]]) @ S
        A, image_rgb = A[:2], small
    return cv2.warpAffine(image_rgb, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _colour_jitter(rng: np.random.Generator, crop: np.ndarray, shading_gradient: float = 0.0) -> np.ndarray:
    img = crop.astype(np.float32)
    if shading_gradient > 0:  # brightness ramp across the crop (CropConfig.shading_gradient)
        angle, g = rng.uniform(0, 2 * np.pi), rng.uniform(0, shading_gradient)
        ramp = np.linspace(-1.0, 1.0, img.shape[0], dtype=np.float32)
        img *= (1 + g * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]))[:, :, None]
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
        crop is the same while decoding costs a fraction (7.5 ms -> 2.8 ms for a 1280x720 frame at k = 2)."""
        side = box_from_points(project_points(K, verts_cam_m))[2] * self.crop.margin * self.crop.scale_jitter[0]
        return min(area_shrink_factor(self.config.input_size / side), MAX_DECODE_REDUCTION)

    def trim(self, record: FaceRecord) -> FaceRecord:
        """The record cut down to the pixels that any crop of it (every jitter, off-centre shift included)
        can read, with ``K`` moved to match: the same examples from a fraction of the memory, so decoded
        records can be kept between epochs (:class:`perspnet.train.RecordDataset`).

        The cut starts on a multiple of the largest area-averaging block :func:`warp_crop` can use for this
        face, so its pre-shrunk pixels are the full image's, and keeps two blocks past the farthest crop edge
        for the bilinear warp; crops and targets match the untrimmed record's to float rounding."""
        c = self.crop
        face_box = box_from_points(project_points(record.K, record.verts_cam_m))
        side = face_box[2] * c.margin * c.scale_jitter[1]
        block = area_shrink_factor(self.config.input_size / side)
        shift = c.shift_jitter + (c.off_centre_shift[1] if c.off_centre_prob > 0 else 0.0)  # per axis
        half_side = side / 2 * (np.sqrt(2.0) if c.turn_jitter_deg > 0 else 1.0)  # a turned square's reach
        reach = face_box[2] * shift + half_side + 2 * block + 1
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
        off_centre = rng is not None and self.crop.off_centre_prob > 0 and rng.random() < self.crop.off_centre_prob
        turn = self.crop.turn_jitter_deg
        turn_deg = rng.uniform(-turn, turn) if rng is not None and turn > 0 else 0.0
        for attempt in range(3 if off_centre else 1):
            box = self._jittered_box(face_box, rng, off_centre and attempt < 2)
            A = crop_affine(box, size, self.crop.margin)
            if turn_deg:  # (no turn leaves A as it was, to the bit)
                A = turn_crop_affine(A, size, turn_deg)
            crop_px = px @ A[:, :2].T + A[:, 2]
            raster = rasterize(crop_px, verts_cam[:, 2], self.topology.triangles, size, size, cull_back=True)
            if raster.mask.mean() >= self.crop.min_face_frac:
                break
        crop = warp_crop(record.image_rgb, A, size)
        if rng is not None:
            crop = _colour_jitter(rng, crop, self.crop.shading_gradient)
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

    def _jittered_box(self, face_box: np.ndarray, rng: np.random.Generator | None, off_centre: bool) -> np.ndarray:
        """The crop's box ``(cx, cy, side)`` (pixels): the face box, jittered in training (class doc)."""
        if rng is None:
            return face_box
        box = face_box + np.array([*rng.uniform(-1, 1, 2) * self.crop.shift_jitter * face_box[2], 0.0])
        if off_centre:
            angle = rng.uniform(0, 2 * np.pi)
            box[:2] += np.array([np.cos(angle), np.sin(angle)]) * rng.uniform(*self.crop.off_centre_shift) * face_box[2]
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
