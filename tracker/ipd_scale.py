"""Metric scale of a clip from the subject's known inter-pupillary distance (``track-video --ipd-mm``).

From one camera, the scene ``s (R X + t)`` projects to the same image for every ``s``; the network's shape
fixes ``s`` by a learned prior on face size. Given the subject's true IPD, two factors fix it instead:

1. ``ipd / size_ipd(identity)``: the size of the identity's eye region (:meth:`FaceModel.size_ipd_m`)
   brought to the true IPD.
2. ``eye_depth_ratio``: the frames' poses are fitted to the whole face, so their depth is that of the
   whole shape; when the network's proportions are off (an eye region too large for the rest of the face,
   say), the eye region sits at another depth than the one its size calls for. Per frame, the translation
   is re-fitted to the eye-region correspondences alone (rotation kept; linear least squares on the
   projection equations) and ``tz_eye / tz`` taken; the clip's factor is the median over frames that see
   both eyes. So the depth is set where the IPD is measured.

The whole scene (identity and every translation) is scaled by the product, which keeps every projection
and rotation as it was. On the four synthetic evaluation clips (``scripts/eval_tracking.py``, shipped lite
model, raw poses), factor 2 took the IPD-sized tz error from 8.3/2.6/8.0/3.3% to 6.4/2.8/5.8/2.0%
(approach/turn/talk/static). On single images it does not help (one frame's eye region is too few points).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perspnet.face_model import EYE_REGION_RADIUS_M, FaceModel
from tracker.measure import Measurement
from tracker.surface import MeshIndex, points_on_shape

__all__ = ["IpdScale", "MIN_EYE_POINTS", "MIN_EYE_FRAMES", "ipd_scene_scale", "translation_for_rotation"]

MIN_EYE_POINTS = 8  # correspondences needed around each eye for a frame to count
MIN_EYE_FRAMES = 3  # frames needed for the eye-depth factor; fewer and it is 1


@dataclass(frozen=True)
class IpdScale:
    """Scale applied to the scene for a known IPD.

    Attributes:
        scale: ``size_factor * eye_depth_ratio``, the factor applied to the identity and every translation.
        size_factor: ``ipd / size_ipd(identity)``.
        eye_depth_ratio: median ``tz_eye / tz`` over ``eye_frames`` frames (1.0 when too few).
        eye_frames: frames that saw both eyes and entered the median.
    """

    scale: float
    size_factor: float
    eye_depth_ratio: float
    eye_frames: int


def translation_for_rotation(R: np.ndarray, points_face_m: np.ndarray, points_px: np.ndarray,
                             K: np.ndarray) -> np.ndarray:
    """Least-squares translation ``(3,)`` (metres) that, with rotation ``R (3, 3)`` fixed, projects
    ``points_face_m (k, 3)`` (canonical, metres) onto ``points_px (k, 2)`` (ideal pixels): linear in ``t``
    after multiplying out the depth, ``x_n (Y_z + t_z) = Y_x + t_x`` with ``x_n`` the normalized coordinate."""
    Y = np.asarray(points_face_m, np.float64) @ np.asarray(R, np.float64).T
    xn = (points_px[:, 0] - K[0, 2]) / K[0, 0]
    yn = (points_px[:, 1] - K[1, 2]) / K[1, 1]
    k = len(Y)
    A = np.zeros((2 * k, 3))
    A[:k, 0], A[:k, 2] = 1.0, -xn
    A[k:, 1], A[k:, 2] = 1.0, -yn
    b = np.concatenate([xn * Y[:, 2] - Y[:, 0], yn * Y[:, 2] - Y[:, 1]])
    return np.linalg.lstsq(A, b, rcond=None)[0]


def ipd_scene_scale(ipd_m: float, identity: np.ndarray, records: np.ndarray, measurements: list[Measurement | None],
                    mesh: MeshIndex, K: np.ndarray, face_model: FaceModel) -> IpdScale:
    """The scene scale for a subject of IPD ``ipd_m`` (metres); see the module docstring.

    Args:
        ipd_m: the subject's inter-pupillary distance, metres.
        identity: ``(n, 3)`` the clip's identity shape, canonical frame, metres.
        records: :class:`tracker.refine.FrameStore` records (correspondences as mesh coordinates, ideal pixels).
        measurements: per record, the pose solved on ``identity`` (:func:`tracker.refine.refine_poses`).
        mesh: the topology.
        K: ``(3, 3)`` camera matrix.
        face_model: the canonical mesh (eye centres, ``size_ipd_m``).
    """
    size_factor = ipd_m / face_model.size_ipd_m(identity)
    right, left = face_model.eye_centres(identity)
    ratios = []
    for rec, m in zip(records, measurements):
        if m is None or not m.accepted:
            continue
        X = points_on_shape(rec["tri"], rec["bary"].astype(np.float64), identity, mesh)
        near_right = np.linalg.norm(X - right, axis=1) < EYE_REGION_RADIUS_M
        near_left = np.linalg.norm(X - left, axis=1) < EYE_REGION_RADIUS_M
        if near_right.sum() < MIN_EYE_POINTS or near_left.sum() < MIN_EYE_POINTS:
            continue
        eyes = near_right | near_left
        t_eye = translation_for_rotation(m.pnp.R_cam_face, X[eyes], rec["points_px"][eyes].astype(np.float64), K)
        if t_eye[2] > 0:
            ratios.append(t_eye[2] / m.pnp.t_cam_face[2])
    ratio = float(np.median(ratios)) if len(ratios) >= MIN_EYE_FRAMES else 1.0
    return IpdScale(size_factor * ratio, float(size_factor), ratio, len(ratios))
