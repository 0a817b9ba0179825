"""BIWI Kinect Head Pose database (Fanelli et al. 2013), official ``hpdb`` layout, for pose evaluation.

Layout::

    hpdb/<NN>/frame_<XXXXX>_rgb.png     640x480 colour image
    hpdb/<NN>/frame_<XXXXX>_pose.txt    3 rows of R, a blank line, 1 row of t (mm)
    hpdb/<NN>/rgb.cal                   colour camera: K (3 rows), blank, distortion (1 row), blank,
                                        R (3 rows), blank, t (1 row, mm), blank, "width height"
    hpdb/<NN>/depth.cal                 the same for the depth camera (identity extrinsics; unused here)
    hpdb/<NN>.obj                       the subject's neutral head template (unused here)

Conventions, as the PerspNet authors' ``data/biwi_preprocess.py`` uses them:

* ``pose.txt`` maps the head-model frame to the depth camera, in mm: ``X_depth = R @ X_head + t``.
* ``rgb.cal``'s extrinsics map the depth camera to the colour camera: ``X_rgb = R_cal @ X_depth + t_cal``.
* Both cameras use OpenCV axes (x right, y down, z forward); ``K`` of ``rgb.cal`` projects ``X_rgb``.

What evaluation on BIWI compares: pose only. BIWI has no per-frame mesh (the ``.obj`` is one neutral
template per subject), so records carry ``verts_face_m = None`` and BIWI scores rotation (geodesic angle,
yaw/pitch/roll errors) and translation. The translation is that of BIWI's head-model origin (``t_head_face_m``
shifts it); a tracker's estimate of our canonical origin differs from it by a fixed offset per face model,
which must be applied (or translation left out) before comparing.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from perspnet.conventions import MM_PER_M
from perspnet.datasets.record import DatasetFormatError, FaceRecord

__all__ = ["R_BIWIHEAD_FACE", "T_BIWIHEAD_ARKITFACE_M", "BiwiCalibration", "read_calibration", "read_pose",
           "BiwiDataset"]

# Rotation of our canonical face frame in BIWI's head-model frame: X_head = R_BIWIHEAD_FACE @ X_face + t_head_face.
# It is the identity: BIWI's head-model axes already are our canonical axes. At R = I in pose.txt the subject
# faces the (OpenCV-axes) camera upright, so the model's x points to the image right, y down (chin) and z
# away from the camera, into the head. The official preprocessing confirms it: it turns BIWI's template into
# ARKit's face-anchor frame with diag(1, -1, -1) alone, the same flip that turns ARKit's frame into ours
# (perspnet.datasets.arkit.FLIP_YZ), and the two cancel. A residual pitch offset between BIWI's template
# "frontal" and MediaPipe's canonical one is not known from the data and is taken as zero, as PerspNet does.
R_BIWIHEAD_FACE = np.eye(3)

# Origin of PerspNet's ARKit-aligned face frame in BIWI's head-model frame, metres (canonical axes): 1 cm up
# and 2.1 cm deeper into the head, the offset PerspNet's biwi_preprocess applies before its evaluation.
# Pass it as ``t_head_face_m`` to reproduce PerspNet's translation targets.
T_BIWIHEAD_ARKITFACE_M = np.array([0.0, -0.010, 0.021])

_FRAME_RE = re.compile(r"^frame_(\d+)_rgb\.png$")


@dataclass(frozen=True, eq=False)
class BiwiCalibration:
    """One ``*.cal`` file.

    Attributes:
        K: ``(3, 3)`` float64 intrinsics, pixels.
        dist: ``(4,)`` float64 OpenCV distortion (k1, k2, p1, p2).
        R: ``(3, 3)`` float64 extrinsic rotation (for ``rgb.cal``: depth camera -> colour camera).
        t_mm: ``(3,)`` float64 extrinsic translation, millimetres.
        size_wh: ``(width, height)`` or ``None`` if the file has no size line.
    """

    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t_mm: np.ndarray
    size_wh: tuple[int, int] | None


def _numeric_rows(path: Path, what: str) -> list[list[float]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append([float(x) for x in line.split()])
            except ValueError:
                raise DatasetFormatError(f"{path}: line {n} is not numeric: {line.strip()[:60]!r}") from None
    return rows


def _nearest_rotation(R: np.ndarray, path: Path) -> np.ndarray:
    """The rotation closest to ``R``; BIWI prints 6 digits, so its matrices are orthonormal to ~1e-6 only."""
    U, _, Vt = np.linalg.svd(R)
    Q = U @ Vt
    if np.linalg.det(Q) < 0 or np.abs(Q - R).max() > 1e-3:
        raise DatasetFormatError(f"{path}: matrix is not a rotation: {R.round(4).tolist()}")
    return Q


def read_calibration(path: str | os.PathLike) -> BiwiCalibration:
    """Parse a BIWI ``rgb.cal``/``depth.cal`` (non-empty rows: K x3, distortion, R x3, t[, width height])."""
    path = Path(path)
    rows = _numeric_rows(path, "calibration file")
    lengths = [len(r) for r in rows]
    if lengths[:8] != [3, 3, 3, 4, 3, 3, 3, 3] or lengths[8:] not in ([], [2]):
        raise DatasetFormatError(f"{path}: expected rows of 3,3,3 (K), 4 (distortion), 3,3,3 (R), 3 (t mm)"
                                 f"[, 2 (width height)], got row lengths {lengths}")
    K = np.array(rows[0:3])
    if K[2].tolist() != [0.0, 0.0, 1.0] or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DatasetFormatError(f"{path}: not an intrinsic matrix: {K.tolist()}")
    R = _nearest_rotation(np.array(rows[4:7]), path)
    size = (int(rows[8][0]), int(rows[8][1])) if len(rows) > 8 else None
    return BiwiCalibration(K=K, dist=np.array(rows[3]), R=R, t_mm=np.array(rows[7]), size_wh=size)


def read_pose(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``frame_XXXXX_pose.txt`` -> ``(R_depth_head (3, 3), t_depth_head_mm (3,))``."""
    path = Path(path)
    rows = _numeric_rows(path, "pose file")
    if [len(r) for r in rows] != [3, 3, 3, 3]:
        raise DatasetFormatError(f"{path}: expected 3 rows of R and 1 row of t (3 numbers each), "
                                 f"got row lengths {[len(r) for r in rows]}")
    return _nearest_rotation(np.array(rows[:3]), path), np.array(rows[3])


class BiwiDataset:
    """BIWI frames as :class:`FaceRecord` s: colour image, ``K``/``dist`` of ``rgb.cal``, pose in the colour
    camera in metres, ``verts_face_m = None``.

    Args:
        root: the ``hpdb`` folder, or a folder containing ``hpdb``.
        subjects: sequence folders to use (``"01"`` or ``1``); default all with an ``rgb.cal``.
        t_head_face_m: ``(3,)`` origin of the returned face frame in BIWI's head-model frame, metres;
            default zero (BIWI's head origin). See :data:`T_BIWIHEAD_ARKITFACE_M`.

    Record fields: ``subject`` = ``"NN"``, ``action`` = ``""``, ``img_id`` = ``"XXXXX"``.
    """

    def __init__(self, root: str | os.PathLike, subjects: Sequence[str | int] | None = None,
                 t_head_face_m: Sequence[float] | np.ndarray | None = None):
        root = Path(root)
        if (root / "hpdb").is_dir():
            root = root / "hpdb"
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: BIWI hpdb folder not found")
        self.root = root
        self.t_head_face_m = np.zeros(3) if t_head_face_m is None else np.asarray(t_head_face_m, np.float64)
        if subjects is None:
            names = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "rgb.cal").is_file())
            if not names:
                raise FileNotFoundError(f"{root}: no sequence folder with an rgb.cal (expected hpdb/<NN>/rgb.cal)")
        else:
            names = [f"{int(s):02d}" if isinstance(s, (int, np.integer)) else str(s) for s in subjects]
        self.calibration: dict[str, BiwiCalibration] = {n: read_calibration(root / n / "rgb.cal") for n in names}
        self.frames: list[tuple[str, str]] = []
        for n in names:
            ids = sorted(m.group(1) for p in (root / n).iterdir() if (m := _FRAME_RE.match(p.name)))
            self.frames += [(n, i) for i in ids]

    def __len__(self) -> int:
        return len(self.frames)

    def paths(self, i: int) -> tuple[Path, Path]:
        """``(frame_XXXXX_rgb.png, frame_XXXXX_pose.txt)`` of item ``i``."""
        subject, frame = self.frames[i]
        folder = self.root / subject
        return folder / f"frame_{frame}_rgb.png", folder / f"frame_{frame}_pose.txt"

    def __getitem__(self, i: int) -> FaceRecord:
        subject, frame = self.frames[i]
        png, pose_txt = self.paths(i)
        cal = self.calibration[subject]
        bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetFormatError(f"{png}: cannot decode image")
        image_rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # IO edge: OpenCV decodes BGR, the library works in RGB
        if cal.size_wh is not None and cal.size_wh != (image_rgb.shape[1], image_rgb.shape[0]):
            raise DatasetFormatError(f"{png}: image is {image_rgb.shape[1]}x{image_rgb.shape[0]}, "
                                     f"{self.root / subject / 'rgb.cal'} says {cal.size_wh[0]}x{cal.size_wh[1]}")
        R_depth_head, t_depth_head_mm = read_pose(pose_txt)
        # depth camera -> colour camera (rgb.cal extrinsics), still in mm
        R_cam_head = cal.R @ R_depth_head
        t_cam_head_m = (cal.R @ t_depth_head_mm + cal.t_mm) / MM_PER_M
        # head-model frame -> our canonical face frame
        R_cam_face = R_cam_head @ R_BIWIHEAD_FACE
        t_cam_face = R_cam_head @ self.t_head_face_m + t_cam_head_m
        return FaceRecord(image_rgb=image_rgb, K=cal.K.copy(), R_cam_face=R_cam_face, t_cam_face=t_cam_face,
                          verts_face_m=None, subject=subject, action="", img_id=frame, ipd_mm=None,
                          dist=cal.dist.copy())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
