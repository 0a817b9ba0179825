"""Crop geometry: the square face box, the affine map from full-image pixels to the network's crop, and
the warp. Shared by training targets, inference, the baselines and the tracker.

The crop is a square around the face, warped by an affine map ``A (2, 3)`` (full-image pixels -> crop
pixels, pixel centres at integers on both sides).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CropConfig", "box_from_points", "crop_affine", "turn_crop_affine", "area_shrink_factor", "warp_crop"]

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
