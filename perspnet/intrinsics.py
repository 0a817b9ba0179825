"""Pinhole camera intrinsics: the K.json file, validation, scaling to a video's size, undistortion.

Units and frames follow :mod:`perspnet.conventions`: pixels, OpenCV camera axes, pixel centres at
integer coordinates with (0, 0) the top-left pixel's centre, so the image spans
``[-0.5, width - 0.5] x [-0.5, height - 0.5]``.

K.json is one JSON object::

    {"fx": 1450.2, "fy": 1450.2, "cx": 959.5, "cy": 539.5, "width": 1920, "height": 1080,
     "dist": [0.08, -0.21, 0.0, 0.0, 0.1]}

``fx fy cx cy`` in pixels for images of ``width x height`` pixels; ``dist`` optional (absent or
null: no distortion), OpenCV's order ``k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tau_x tau_y]]]]``,
4, 5, 8, 12 or 14 numbers. No other keys are allowed, so a misspelt key is an error, not ignored.

Refused (:class:`IntrinsicsError`, one line naming the file): text that is not JSON, a key given twice
(JSON parsers keep the last value silently), a missing or unknown key, a value that is not a finite number,
a focal length or size that is not positive, a fractional size, a bad ``dist``; and, in :func:`for_video`, a
video whose aspect ratio differs from ``width x height``. Accepted with a warning
(:func:`plausibility_warnings`): values that are valid but unlikely for a real camera, each named with its
likely cause: ``fx / fy`` beyond :data:`MAX_PIXEL_ASPECT` (a digit too many or too few), a field of view
outside [:data:`MIN_FOV_DEG`, :data:`MAX_FOV_DEG`] degrees (a focal length in millimetres rather than pixels,
or a digit too many), and a principal point outside the image (normal for cropped or stabilised footage).
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from baseio.atomic import write_json_atomic

__all__ = [
    "DEFAULT_HFOV_DEG",
    "DIST_LENGTHS",
    "MAX_PIXEL_ASPECT",
    "MIN_FOV_DEG",
    "MAX_FOV_DEG",
    "IntrinsicsError",
    "Intrinsics",
    "intrinsics_from_dict",
    "load_intrinsics",
    "save_intrinsics",
    "default_intrinsics",
    "plausibility_warnings",
    "for_video",
    "undistort_points",
]

# Horizontal field of view assumed when the user has no calibration: typical of laptop webcams
# (about 60-65 degrees) and between a phone main camera held landscape (about 65-70) and portrait
# (about 50). Depth scales with the focal length, so a wrong guess scales metric distances.
DEFAULT_HFOV_DEG = 60.0
DIST_LENGTHS = (4, 5, 8, 12, 14)  # lengths OpenCV accepts for distortion coefficients
# Plausibility bounds (warnings, not errors). Real cameras have square pixels or nearly so (anamorphic
# and DV footage reach about 1.33-1.5); a larger fx / fy is almost always a typing slip.
MAX_PIXEL_ASPECT = 1.5
# Pinhole fields of view of real lenses: long telephotos reach about 5 degrees, and beyond about 170 degrees
# the pinhole model cannot describe the lens at all (a fisheye needs its own model).
MIN_FOV_DEG, MAX_FOV_DEG = 5.0, 170.0
_KEYS = ("fx", "fy", "cx", "cy", "width", "height", "dist")
_REQUIRED = _KEYS[:6]
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


class IntrinsicsError(ValueError):
    """Invalid or unusable intrinsics; the one-line message names the file (when there is one)."""


def _number(name: str, value: Any) -> float:
    """``value`` as a finite float, or IntrinsicsError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise IntrinsicsError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise IntrinsicsError(f"{name} must be finite, got {value!r}")
    return number


def _size(name: str, value: Any) -> int:
    """``value`` as a positive integer pixel count (an integral float such as 640.0 is accepted)."""
    number = _number(name, value)
    if number != int(number):
        raise IntrinsicsError(f"{name} must be a whole number of pixels, got {value!r}")
    if number <= 0:
        raise IntrinsicsError(f"{name} must be positive, got {value!r}")
    return int(number)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics for images of ``width x height`` pixels, validated on construction.

    Attributes:
        fx, fy: focal lengths [px], > 0.
        cx, cy: principal point [px], finite; usually inside the image ``[-0.5, width - 0.5] x
            [-0.5, height - 0.5]``, but cropped or stabilised footage may put it outside
            (:func:`plausibility_warnings` says so).
        width, height: image size [px] these values belong to.
        dist: OpenCV distortion coefficients (4, 5, 8, 12 or 14, see module doc), or None.

    Raises:
        IntrinsicsError: a value is non-numeric or non-finite, a focal length or size is not positive, or
            ``dist`` has a bad length.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    dist: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        width, height = _size("width", self.width), _size("height", self.height)
        values = {name: _number(name, getattr(self, name)) for name in ("fx", "fy", "cx", "cy")}
        for name in ("fx", "fy"):
            if values[name] <= 0:
                raise IntrinsicsError(f"{name} must be positive, got {values[name]!r}")
        dist = self.dist
        if dist is not None:
            if isinstance(dist, (str, bytes)) or not hasattr(dist, "__len__"):
                raise IntrinsicsError(f"dist must be a list of numbers or null, got {dist!r}")
            if len(dist) not in DIST_LENGTHS:
                raise IntrinsicsError(
                    f"dist must have {', '.join(map(str, DIST_LENGTHS))} coefficients "
                    f"(OpenCV order k1 k2 p1 p2 k3 ...), got {len(dist)}"
                )
            dist = tuple(_number(f"dist[{i}]", d) for i, d in enumerate(dist))
        for name, value in (*values.items(), ("width", width), ("height", height), ("dist", dist)):
            object.__setattr__(self, name, value)

    @property
    def K(self) -> np.ndarray:
        """``(3, 3) float64`` camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera for the image resized to ``width x height`` pixels.

        ``fx, cx`` scale with ``s = width / self.width`` and ``fy, cy`` with ``height / self.height``.
        With pixel centres at integer coordinates the principal point maps as
        ``cx' = (cx + 0.5) * s - 0.5`` (the mapping ``cv2.resize`` uses), not ``cx * s``.
        Distortion coefficients act on normalised coordinates and are unchanged.
        """
        return Intrinsics(
            fx=self.fx * width / self.width,
            fy=self.fy * height / self.height,
            cx=(self.cx + 0.5) * width / self.width - 0.5,
            cy=(self.cy + 0.5) * height / self.height - 0.5,
            width=width,
            height=height,
            dist=self.dist,
        )

    def to_dict(self) -> dict[str, Any]:
        """The K.json object; ``dist`` is left out when None."""
        out: dict[str, Any] = {
            "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
            "width": self.width, "height": self.height,
        }
        if self.dist is not None:
            out["dist"] = list(self.dist)
        return out


def intrinsics_from_dict(data: Any) -> Intrinsics:
    """Validate a parsed K.json object (see module doc) into Intrinsics; IntrinsicsError otherwise."""
    if not isinstance(data, dict):
        raise IntrinsicsError(f"expected a JSON object with keys {', '.join(_REQUIRED)}, "
                              f"got {type(data).__name__}")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise IntrinsicsError(f"missing key(s) {', '.join(missing)}")
    unknown = sorted(repr(str(key))[1:-1] for key in data if key not in _KEYS)  # escaped: one line even for "\n"
    if unknown:
        raise IntrinsicsError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
    return Intrinsics(**{key: data[key] for key in _KEYS if key in data})


class _DuplicateKey(ValueError):
    """A JSON object holds a key twice; raised while parsing, so the values can still be named."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` ``object_pairs_hook``: the object as a dict, or _DuplicateKey naming the key."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(f"key {key!r} appears twice ({seen[key]!r} and then {value!r}); "
                                "JSON readers keep only the last, so remove the wrong one")
        seen[key] = value
    return seen


def load_intrinsics(path: str | os.PathLike[str]) -> Intrinsics:
    """Read and validate a K.json file (values that are valid but unlikely: :func:`plausibility_warnings`).

    Raises:
        IntrinsicsError: one line ``<path>: <problem>`` for a missing or unreadable file, text that
            is not JSON, a key given twice (in any object), or content that fails validation (see
            :class:`Intrinsics`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise IntrinsicsError(f"{path}: file not found") from err
    except UnicodeDecodeError as err:
        raise IntrinsicsError(f"{path}: not JSON (not UTF-8 text)") from err
    except OSError as err:
        raise IntrinsicsError(f"{path}: cannot read ({err.strerror or err})") from err
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as err:
        raise IntrinsicsError(f"{path}: {err}") from None
    except json.JSONDecodeError as err:
        raise IntrinsicsError(f"{path}: not JSON ({err.msg} at line {err.lineno} column {err.colno})") from err
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
        raise IntrinsicsError(f"{path}: not JSON ({err})") from err
    try:
        return intrinsics_from_dict(data)
    except IntrinsicsError as err:
        raise IntrinsicsError(f"{path}: {err}") from err


def save_intrinsics(path: str | os.PathLike[str], intr: Intrinsics) -> None:
    """Write ``intr`` as K.json atomically; ``load_intrinsics`` gives back an equal object."""
    write_json_atomic(path, intr.to_dict())


def default_intrinsics(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> Intrinsics:
    """Guessed intrinsics for a ``width x height`` image when no calibration is available.

    Square pixels with ``fx = fy = (width / 2) / tan(hfov / 2)``, the principal point at the image
    centre ``((width - 1) / 2, (height - 1) / 2)``, no distortion. ``hfov_deg`` is the horizontal
    field of view in degrees, in (0, 180); see ``DEFAULT_HFOV_DEG``.
    """
    if not 0.0 < hfov_deg < 180.0:
        raise IntrinsicsError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return Intrinsics(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)


def _fov_deg(focal_px: float, size_px: int) -> float:
    return math.degrees(2.0 * math.atan(size_px / 2.0 / focal_px))


def plausibility_warnings(intr: Intrinsics) -> list[str]:
    """One line per value of ``intr`` that is valid but unlikely for a real camera, naming the value and its
    likely cause (module doc); empty for a plausible camera.

    >>> plausibility_warnings(Intrinsics(fx=1000, fy=1000, cx=959.5, cy=539.5, width=1920, height=1080))
    []
    >>> plausibility_warnings(Intrinsics(fx=116239, fy=1162, cx=959.5, cy=539.5, width=1920, height=1080))[0]
    'fx / fy = 100 (fx=116239.0, fy=1162.0): real cameras have nearly square pixels; a digit too many or too few?'
    """
    warnings = []
    aspect = intr.fx / intr.fy
    if max(aspect, 1.0 / aspect) > MAX_PIXEL_ASPECT:
        warnings.append(f"fx / fy = {aspect:.3g} (fx={intr.fx!r}, fy={intr.fy!r}): real cameras have nearly square "
                        "pixels; a digit too many or too few?")
    for axis, focal, size in (("horizontal", intr.fx, intr.width), ("vertical", intr.fy, intr.height)):
        fov = _fov_deg(focal, size)
        name = "fx" if axis == "horizontal" else "fy"
        if fov < MIN_FOV_DEG:
            warnings.append(f"{axis} field of view {fov:.3g} degrees ({name}={focal!r} px for {size} px): narrower "
                            "than any usual lens; a digit too many, or K for a larger image?")
        elif fov > MAX_FOV_DEG:
            warnings.append(f"{axis} field of view {fov:.4g} degrees ({name}={focal!r} px for {size} px): wider than "
                            "a pinhole camera can see; a focal length in millimetres rather than pixels "
                            "(f_px = f_mm * image width px / sensor width mm)?")
        if fov < MIN_FOV_DEG or fov > MAX_FOV_DEG:
            break  # the other axis has the same cause
    for name, value, size in (("cx", intr.cx, intr.width), ("cy", intr.cy, intr.height)):
        if not -0.5 <= value <= size - 0.5:
            warnings.append(f"principal point {name}={value!r} is outside the image [-0.5, {size - 0.5}]: normal "
                            "for cropped or stabilised footage; otherwise K is for another image size, or cx and "
                            "cy are swapped")
    return warnings


def _same_aspect(w0: int, h0: int, w1: int, h1: int) -> bool:
    """True when ``w1 x h1`` is ``w0 x h0`` resized, allowing one pixel of rounding per side."""
    return abs(w1 * h0 / w0 - h1) <= 1.0 or abs(h1 * w0 / h0 - w1) <= 1.0


def for_video(intr: Intrinsics, width: int, height: int) -> tuple[Intrinsics, str | None]:
    """Intrinsics for video frames of ``width x height`` (upright, as ``iter_frames`` yields them).

    Returns ``(intr, None)`` when the sizes match; ``(intr.scaled_to(width, height), message)``
    when the video is the calibrated image resized (same aspect ratio within a pixel's rounding).

    Raises:
        IntrinsicsError: the aspect ratios differ (cropping or a different camera mode cannot be
            fixed by scaling); a 90-degree rotated size gets a hint about orientation.
    """
    if (width, height) == (intr.width, intr.height):
        return intr, None
    calibrated, video = f"{intr.width}x{intr.height}", f"{width}x{height}"
    if _same_aspect(intr.width, intr.height, width, height):
        scaled = intr.scaled_to(width, height)
        return scaled, (
            f"intrinsics are for {calibrated} but the video is {video}: scaled K by "
            f"{width / intr.width:.4g} (same aspect ratio)"
        )
    hint = ""
    if _same_aspect(intr.height, intr.width, width, height):
        hint = (
            "; the video looks rotated by 90 degrees relative to the calibration images (frames "
            "are read upright, with rotation metadata applied): calibrate in that orientation, "
            "or rotate K (swap fx/fy, and cx/cy as the rotation maps them)"
        )
    raise IntrinsicsError(
        f"intrinsics are for {calibrated} but the video is {video}: the aspect ratios differ, "
        f"so K cannot be scaled to it{hint}"
    )


def undistort_points(points_px: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Remove lens distortion from pixel positions: ``(N, 2)`` distorted -> ``(N, 2)`` ideal pinhole pixels.

    Uses ``cv2.undistortPointsIter`` with ``P = K`` (output stays in pixels of the same camera),
    iterated to convergence. Returns a float64 copy unchanged when ``intr.dist`` is None.
    """
    points = np.asarray(points_px, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points_px must have shape (N, 2), got {points.shape}")
    if intr.dist is None or len(points) == 0:
        return points.copy()
    K = intr.K
    undistorted = cv2.undistortPointsIter(
        points.reshape(-1, 1, 2), K, np.asarray(intr.dist), None, K, _UNDISTORT_CRITERIA
    )
    return undistorted.reshape(-1, 2)
