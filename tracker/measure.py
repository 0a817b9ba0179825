"""One frame's pose measurement: PnP warm-started from the predicted pose, with a cold-start fallback.

Points and frames as in :mod:`perspnet.pnp`: ``points_px (N, 2)`` ideal (undistorted) pixels, ``points_face_m
(N, 3)`` canonical face frame in metres, ``X_cam = R_cam_face @ X_face + t_cam_face``.

:func:`measure_pose` solves warm from the prior (the track's prediction for this frame). The warm result is
*inconsistent* when it failed, has an inlier ratio below ``min_inlier_ratio``, an RMS reprojection error above
``max_reproj_frac`` of the RANSAC inlier threshold, or lies far from the prior (rotation more than
``max_prior_rot_deg``, or translation more than ``max_prior_trans_frac`` of the prior's depth): a fast move,
or a warm start caught in a wrong minimum. Then the pose is also solved cold (no prior) and the more confident
result is kept. A measurement is *accepted* when PnP succeeded with ``confidence >= min_confidence``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perspnet.conventions import rotation_angle_deg
from perspnet.pnp import PnPConfig, PnPResult, solve_pose
from perspnet.validate import check_range
from tracker.identity import FrameShape, IdentityEstimator
from tracker.surface import MeshIndex, points_on_shape

__all__ = ["MeasureConfig", "Measurement", "measure_pose", "Correspondences", "FrameResult", "solve_frame"]


@dataclass(frozen=True)
class MeasureConfig:
    """Settings of :func:`measure_pose`. Validated on construction.

    Attributes:
        pnp: the solver's settings (RANSAC threshold, iterations, refinement); the same defaults as for
            single images (the size-relative RANSAC threshold).
        min_inlier_ratio: warm results with fewer inliers / correspondences are re-solved cold.
        max_reproj_frac: warm results whose inliers' RMS reprojection error exceeds this fraction of
            the RANSAC inlier threshold (``PnPResult.threshold_px``) are re-solved cold (errors spread evenly below the threshold give
            an RMS of about 0.58 of it).
        max_prior_rot_deg: warm results rotated further from the prior (degrees) are re-solved cold.
        max_prior_trans_frac: warm results further from the prior than this fraction of its depth
            are re-solved cold.
        min_confidence: PnP confidence (in [0, 1]) needed to accept a measurement.
    """

    pnp: PnPConfig = PnPConfig()
    min_inlier_ratio: float = 0.5
    max_reproj_frac: float = 0.7
    max_prior_rot_deg: float = 20.0
    max_prior_trans_frac: float = 0.2
    min_confidence: float = 0.05

    def __post_init__(self) -> None:
        for name in ("min_inlier_ratio", "min_confidence"):
            check_range(f"MeasureConfig.{name}", getattr(self, name), 0.0, 1.0)
        for name in ("max_reproj_frac", "max_prior_rot_deg", "max_prior_trans_frac"):
            check_range(f"MeasureConfig.{name}", getattr(self, name), 0.0, lo_open=True)


@dataclass(frozen=True)
class Measurement:
    """Outcome of :func:`measure_pose`.

    Attributes:
        pnp: the kept PnP result.
        accepted: ``pnp.success`` and ``pnp.confidence >= min_confidence``.
        cold_fallback: the warm result was inconsistent and the cold one was solved (kept or not).
    """

    pnp: PnPResult
    accepted: bool
    cold_fallback: bool


def _consistent(res: PnPResult, prior: tuple[np.ndarray, np.ndarray], n_points: int, cfg: MeasureConfig) -> bool:
    if (not res.success or res.n_inliers < cfg.min_inlier_ratio * n_points
            or res.reproj_err_px > cfg.max_reproj_frac * res.threshold_px):
        return False
    R0, t0 = prior
    far_rot = rotation_angle_deg(R0, res.R_cam_face) > cfg.max_prior_rot_deg
    far_trans = np.linalg.norm(res.t_cam_face - t0) > cfg.max_prior_trans_frac * abs(t0[2])
    return not (far_rot or far_trans)


def measure_pose(points_px: np.ndarray, points_face_m: np.ndarray, K: np.ndarray,
                 prior: tuple[np.ndarray, np.ndarray] | None, config: MeasureConfig = MeasureConfig()) -> Measurement:
    """Pose of one frame from its correspondences; see the module docstring.

    Args:
        points_px: ``(N, 2)`` undistorted pixels.
        points_face_m: ``(N, 3)`` canonical face frame, metres.
        K: ``(3, 3)`` camera matrix, pixels.
        prior: predicted ``(R_cam_face (3, 3), t_cam_face (3,) metres)`` for this frame, or None.
        config: see :class:`MeasureConfig`.
    """
    res = solve_pose(points_px, points_face_m, K, prior=prior, config=config.pnp)
    fallback = prior is not None and not _consistent(res, prior, len(points_px), config)
    if fallback:
        cold = solve_pose(points_px, points_face_m, K, prior=None, config=config.pnp)
        if cold.success and (not res.success or cold.confidence > res.confidence):
            res = cold
    return Measurement(res, bool(res.success and res.confidence >= config.min_confidence), fallback)


@dataclass(frozen=True)
class Correspondences:
    """One frame's 2D-3D correspondences, with the 3D side kept as mesh coordinates.

    Attributes:
        points_px: ``(m, 2)`` undistorted full-image pixels of the sampled face pixels.
        tri: ``(m,)`` int triangle of each pixel's point on the frame's predicted mesh.
        bary: ``(m, 3)`` its barycentric coordinates (:mod:`tracker.surface`).
    """

    points_px: np.ndarray
    tri: np.ndarray
    bary: np.ndarray


@dataclass(frozen=True)
class FrameResult:
    """One frame's outcome.

    Attributes:
        index: the frame's index in the stream.
        timestamp_s: stream timestamp, seconds.
        filter_time_s: the strictly increasing time the filter used, seconds.
        box: ``(3,)`` (cx, cy, side) pixels PerspNet was run on, or None.
        box_source: "track" (predicted pose), "detect" (detector on this frame), "reanchor" (detector on
            this frame, near the predicted box), "redetect" (detector on this frame after its first box
            missed the face), "detect-reuse" (an earlier detection in the batch) or "none".
        measurement: the PnP outcome against the identity estimated so far, None when PerspNet did not
            run or saw too little face.
        shape: the frame shape used for PnP, None without a measurement.
        verts_raw_face_m: ``(n, 3)`` PerspNet's raw predicted shape, metres, None without a measurement.
        correspondences: the frame's correspondences, None without a measurement.
        eye_corners_px: ``(4, 2)`` undistorted pixels of the landmarker's eye corners
            (:data:`perspnet.landmark_ids.EYE_CORNERS`) of the face in ``box``, when sampled (step 5).
    """

    index: int
    timestamp_s: float
    filter_time_s: float
    box: np.ndarray | None
    box_source: str
    measurement: Measurement | None = None
    shape: FrameShape | None = None
    verts_raw_face_m: np.ndarray | None = None
    correspondences: Correspondences | None = None
    eye_corners_px: np.ndarray | None = None


def solve_frame(corr: Correspondences, verts_raw_face_m: np.ndarray, identity: IdentityEstimator, mesh: MeshIndex,
                K: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None, config: MeasureConfig
                ) -> tuple[Measurement, FrameShape]:
    """PnP of one frame against ``identity``'s current shape: frame shape = identity + bounded residual of
    ``verts_raw_face_m (n, 3)`` (metres), 3D points = ``corr``'s mesh coordinates evaluated on it,
    then :func:`tracker.measure.measure_pose` with ``K`` and the ``prior`` pose."""
    shape = identity.frame_shape(verts_raw_face_m)
    points_face = points_on_shape(corr.tri, corr.bary, shape.verts_face_m, mesh)
    return measure_pose(corr.points_px, points_face, K, prior, config), shape
