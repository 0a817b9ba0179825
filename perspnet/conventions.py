"""The project's coordinate conventions, fixed once. Everything else imports from here.

Frames and units
----------------
* Camera frame (OpenCV): x right, y down, z forward (out of the lens), metres.
* Canonical face frame: the face at identity rotation looks straight into the camera, upright:
  x towards the image's right (the subject's left), y down (towards the chin), z from the face
  towards the back of the head. Metres. Origin: the canonical mesh's origin (near the head centre).
* A pose ``(R_cam_face, t_cam_face)`` maps canonical face points to the camera:
  ``X_cam = R_cam_face @ X_face + t_cam_face``.
* Pixels: ``u = K @ X_cam / z``; pixel centres at integer coordinates, (0, 0) the top-left pixel's centre.
* Images enter the library as ``(H, W, 3) uint8`` RGB.

Rotations
---------
* Stored as 3x3 matrices or unit quaternions in (w, x, y, z) order with w >= 0.
* Euler angles are for reporting only: ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` (intrinsic Y-X'-Z''),
  degrees, about the camera axes. Positive yaw turns the face towards image left (the subject's
  right), positive pitch makes the face look down, positive roll rotates the face clockwise in the image.

Dataset conventions (ARKitFace's OpenGL row vectors, BIWI's millimetres) are converted in their loaders.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "EULER_ORDER",
    "MM_PER_M",
    "quat_wxyz_from_matrix",
    "matrix_from_quat_wxyz",
    "euler_deg_from_matrix",
    "matrix_from_euler_deg",
    "transform_points",
    "project_points",
    "rotation_angle_deg",
]

EULER_ORDER = "YXZ"  # scipy intrinsic order: yaw about y, then pitch about x', then roll about z''
MM_PER_M = 1000.0


def quat_wxyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> unit quaternions ``(..., 4)`` in (w, x, y, z), w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    q_xyzw = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    q = np.concatenate([q_xyzw[:, 3:], q_xyzw[:, :3]], axis=1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(R.shape[:-2] + (4,))


def matrix_from_quat_wxyz(q: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` in (w, x, y, z) (normalised here) -> rotation matrices ``(..., 3, 3)``."""
    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    R = Rotation.from_quat(np.concatenate([flat[:, 1:], flat[:, :1]], axis=1)).as_matrix()
    return R.reshape(q.shape[:-1] + (3, 3))


def euler_deg_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> ``(..., 3)`` (yaw, pitch, roll) in degrees, see module doc."""
    R = np.asarray(R, dtype=np.float64)
    ypr = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler(EULER_ORDER, degrees=True)
    return ypr.reshape(R.shape[:-2] + (3,))


def matrix_from_euler_deg(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(yaw, pitch, roll) in degrees -> ``(3, 3)`` rotation ``Ry(yaw) @ Rx(pitch) @ Rz(roll)``."""
    return Rotation.from_euler(EULER_ORDER, [yaw, pitch, roll], degrees=True).as_matrix()


def transform_points(R: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``X_cam = R @ X + t`` for points ``(N, 3)``; R ``(3, 3)``, t ``(3,)``. Returns ``(N, 3)``."""
    return np.asarray(points) @ np.asarray(R).T + np.asarray(t).reshape(1, 3)


def project_points(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points ``(N, 3)`` (metres, z > 0) -> pixels ``(N, 2)``."""
    p = np.asarray(points_cam, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    return p[:, :2] / p[:, 2:3]


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Geodesic angle between rotations ``(..., 3, 3)`` in degrees."""
    R_rel = np.swapaxes(np.asarray(R_a), -1, -2) @ np.asarray(R_b)
    cos = (np.trace(R_rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
