"""Metric scale of a clip from the subject's known inter-pupillary distance (``track-video --ipd-mm``).

From one camera, the scene ``s (R X + t)`` projects to the same image for every ``s``; the network's shape
fixes ``s`` by a learned prior on face size. Given the subject's true IPD, the eyes fix it instead: the
IPD is the distance between the eye centres (each the midpoint of the eye's two corners, landmarks
33/133 and 362/263), and MediaPipe's Face Landmarker finds those corners in the image. Per sampled frame
(:func:`eye_anchor_depth`): the two eye centres lie on the camera rays through their pixels, and the
segment between them is ``ipd`` long along the eye axis that the frame's rotation gives (the identity's
eye axis turned by ``R``); the least-squares points on the two rays fix how far the eyes are. The ratio
of that depth to the eye depth of the frame's pose (identity's eye midpoint at ``R, t``) is one sample;
the clip's scale is the median over the sampled frames within :data:`MAX_EYE_YAW_DEG` of frontal (the
landmarker places eye corners less surely on turned faces).

So the depth is set where the IPD is measured, by the landmarker's eye corners rather than by the
network's shape, which places the eyes less surely (comparison: docs/experiments.md, "Tracker"); what is
left is mostly the landmarker's own eye-corner bias on some faces.

Without enough sampled frames (``MIN_EYE_FRAMES``) the scale falls back to ``size_factor``: the identity's
eye region brought to the IPD (:meth:`perspnet.face_model.FaceModel.size_ipd_m`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perspnet.face_model import FaceModel
from tracker.measure import Measurement

__all__ = ["IpdScale", "IPD_EYE_EVERY", "MAX_EYE_YAW_DEG", "MIN_EYE_FRAMES", "eye_anchor_depth",
           "ipd_scene_scale"]

IPD_EYE_EVERY = 3  # with --ipd-mm the landmarker samples the eye corners on every third frame
MAX_EYE_YAW_DEG = 30.0  # frames whose eye axis turns further out of the image plane are not used
MIN_EYE_FRAMES = 3  # sampled frames needed for the eye anchor; fewer and the scale is the size factor


@dataclass(frozen=True)
class IpdScale:
    """Scale applied to the scene for a known IPD.

    Attributes:
        scale: the factor applied to the identity and every translation.
        method: ``"eyes"`` (median eye-anchor ratio) or ``"size"`` (too few eye frames: ``size_factor``).
        size_factor: ``ipd / size_ipd(identity)``, what scaling the identity's eye region alone would give.
        eye_frames: sampled frames that entered the median.
    """

    scale: float
    method: str
    size_factor: float
    eye_frames: int


def eye_anchor_depth(eye_corners_px: np.ndarray, eye_axis_cam: np.ndarray, ipd_m: float,
                     K: np.ndarray) -> float | None:
    """Depth (metres, camera z) of the eye centres' midpoint from their pixels and the known IPD.

    Args:
        eye_corners_px: ``(4, 2)`` ideal (undistorted) pixels of landmarks 33, 133 (the subject's right
            eye) and 362, 263 (left eye), as :data:`perspnet.landmark_ids.EYE_CORNERS`.
        eye_axis_cam: ``(3,)`` direction from the right to the left eye centre in the camera frame.
        ipd_m: the distance between the eye centres, metres.
        K: ``(3, 3)`` camera matrix.

    Returns:
        The mean depth of the two eye centres, each on the ray through its pixel (mean of its corners),
        placed by least squares so that left minus right is ``ipd_m`` along ``eye_axis_cam``; None when
        the solution puts an eye behind the camera.
    """
    right, left = eye_corners_px[:2].mean(axis=0), eye_corners_px[2:].mean(axis=0)
    K_inv = np.linalg.inv(K)
    ray_right, ray_left = K_inv @ np.array([*right, 1.0]), K_inv @ np.array([*left, 1.0])  # z = 1
    d = np.asarray(eye_axis_cam, np.float64)
    d = d * (ipd_m / np.linalg.norm(d))
    (s_left, s_right), *_ = np.linalg.lstsq(np.column_stack([ray_left, -ray_right]), d, rcond=None)
    if s_left <= 0 or s_right <= 0:
        return None
    return float(0.5 * (s_left + s_right))


def ipd_scene_scale(ipd_m: float, identity: np.ndarray, eye_corners_px: np.ndarray,
                    measurements: list[Measurement | None], K: np.ndarray, face_model: FaceModel) -> IpdScale:
    """The scene scale for a subject of IPD ``ipd_m`` (metres); see the module docstring.

    Args:
        ipd_m: the subject's inter-pupillary distance, metres.
        identity: ``(n, 3)`` the clip's identity shape, canonical frame, metres.
        eye_corners_px: ``(N, 4, 2)`` per frame the landmarker's eye corners (ideal pixels,
            :func:`eye_anchor_depth`), nan where the frame was not sampled.
        measurements: per frame, the pose solved on ``identity`` (:func:`tracker.refine.refine_poses`).
        K: ``(3, 3)`` camera matrix.
        face_model: the canonical mesh (eye centres, ``size_ipd_m``).
    """
    size_factor = ipd_m / face_model.size_ipd_m(identity)
    right, left = face_model.eye_centres(identity)
    max_out_of_plane = math.sin(math.radians(MAX_EYE_YAW_DEG))
    ratios = []
    for corners, m in zip(eye_corners_px, measurements):
        if m is None or not m.accepted or not np.isfinite(corners).all():
            continue
        R, t = m.pnp.R_cam_face, m.pnp.t_cam_face
        axis = R @ (left - right)
        if abs(axis[2]) > max_out_of_plane * np.linalg.norm(axis):
            continue
        depth = eye_anchor_depth(corners, axis, ipd_m, K)
        if depth is not None:
            ratios.append(depth / float((R @ (0.5 * (left + right)) + t)[2]))
    if len(ratios) < MIN_EYE_FRAMES:
        return IpdScale(float(size_factor), "size", float(size_factor), len(ratios))
    return IpdScale(float(np.median(ratios)), "eyes", float(size_factor), len(ratios))
