"""Crop geometry: the square face box, the affine map from full-image pixels to the network's crop, and
the warp. Shared by training targets, inference, the baselines and the tracker.

The crop is a square around the face, warped by an affine map ``A (2, 3)`` (full-image pixels -> crop
pixels, pixel centres at integers on both sides).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np

from perspnet.validate import ANY, check_range, check_tuple, drop_removed

__all__ = ["CropConfig", "box_from_points", "crop_affine", "turn_crop_affine", "area_shrink_factor", "warp_crop"]


@dataclass(frozen=True)
class CropConfig:
    """How the face crop is taken.

    Attributes:
        margin: crop side / face box side.
        shift_jitter: in training, the crop centre moves up to this fraction of the box side along each axis.
        scale_jitter: in training, the crop side is scaled by a log-uniform factor in this range.
    """

    margin: float = 1.5
    shift_jitter: float = 0.1
    scale_jitter: tuple[float, float] = (0.9, 1.12)

    def __post_init__(self) -> None:
        check_range("margin", self.margin, 0.0, lo_open=True)
        check_range("shift_jitter", self.shift_jitter, 0.0)
        lo, hi = check_tuple("scale_jitter", self.scale_jitter, length=2)
        check_range("scale_jitter[0]", lo, 0.0, lo_open=True)
        check_range("scale_jitter[1]", hi, lo)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CropConfig:
        """A config as a checkpoint stores it (``dataclasses.asdict``; lists for tuples). Keys of removed
        training options are dropped when they are off (:func:`perspnet.validate.drop_removed`)."""
        kept = drop_removed("CropConfig", data, REMOVED_CROP_KEYS)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kept.items()})


# Removed training-crop options as older checkpoints store them, with the value meaning "off" (their record:
# "Removed options" in docs/experiments.md); the shift range and face fraction only acted with off-centre crops.
REMOVED_CROP_KEYS = {"off_centre_prob": 0.0, "off_centre_shift": ANY, "min_face_frac": ANY,
                     "shading_gradient": 0.0, "turn_jitter_deg": 0.0}


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
        # Only the blocks under the crop (and their bilinear neighbours) are shrunk: each block is averaged on
        # its own, so they are the same as in the whole shrunk image, and a face is a small part of a frame.
        corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float)
        A_inv = np.linalg.inv(np.vstack([A, [0, 0, 1]]))
        full = corners @ A_inv[:2, :2].T + A_inv[:2, 2]
        small_xy = (full - (k - 1) / 2) / k  # small pixel i's centre is at full-res (i + 0.5) * k - 0.5
        x0, y0 = np.clip(np.floor(small_xy.min(0)).astype(int) - 1, 0, [w, h])
        x1, y1 = np.clip(np.ceil(small_xy.max(0)).astype(int) + 2, 0, [w, h])
        if x1 <= x0 or y1 <= y0:  # the crop lies outside the image
            return np.zeros((size, size, 3), np.uint8)
        small = cv2.resize(image_rgb[y0 * k: y1 * k, x0 * k: x1 * k], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        S = np.diag([k, k, 1.0])
        S[:2, 2] = (k - 1) / 2 + k * np.array([x0, y0])  # pixel i of the shrunk part: block x0 + i of the image
        A = np.vstack([A, [0, 0, 1]]) @ S
        A, image_rgb = A[:2], small
    return cv2.warpAffine(image_rgb, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
