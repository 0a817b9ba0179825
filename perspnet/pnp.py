"""Metric 6DoF face pose from 2D-3D correspondences: PnP-RANSAC with the true camera matrix, then LM.

The network predicts, for sampled pixels, the canonical face point seen there. With the camera matrix ``K``
known, PnP gives rotation and *metric* translation (the canonical points carry the scale, in metres).

Pipeline of :func:`solve_pose`:

1. Input checks (shapes, finite values, N >= 6, points not all identical / collinear, a valid K);
   any failure returns ``PnPResult(success=False, reason=...)``, never raises.
2. ``cv2.solvePnPRansac``. OpenCV's RANSAC always fits its minimal 5-point samples with EPnP; the fit on the
   consensus set uses ``config.cold_method`` (EPnP or SQPnP) for a cold start, or, when a prior pose is
   given, the iterative (LM) solver started from the prior (``useExtrinsicGuess=True``). A warm start that
   finds no consensus falls back to the cold start.
3. ``cv2.solvePnPRefineLM`` on the RANSAC inliers (``config.refine``). When a cold start with EPnP ends
   with fewer points within the threshold than RANSAC's consensus set had, an SQPnP fit on that set is
   refined too, and the pose with more points within the threshold is kept (ties: the smaller sum of
   squared errors, each capped at the threshold): EPnP's fit of noisy, nearly flat point sets is
   occasionally far off and LM does not always climb back (docs/experiments.md, "Test time").
4. Inliers re-classified with the final pose (reprojection error < the threshold, see :class:`PnPConfig`);
   fewer than ``config.min_inliers`` inliers, or an inlier behind the camera, is a failure.

Frames and units follow :mod:`perspnet.conventions`: pixels in the full image, pixel centres at integer
coordinates; canonical face points in metres; ``X_cam = R_cam_face @ X_face + t_cam_face``.

Example (exact correspondences of a cube's corners and centre plus axis points):

>>> import numpy as np
>>> from perspnet.conventions import matrix_from_euler_deg, transform_points, project_points
>>> K = np.array([[1000.0, 0, 639.5], [0, 1000.0, 359.5], [0, 0, 1]])
>>> X = np.array([[x, y, z] for x in (-.05, .05) for y in (-.05, .05) for z in (-.05, .05)] + [[0, 0, 0.]])
>>> R, t = matrix_from_euler_deg(20, -10, 5), np.array([0.02, -0.01, 0.5])
>>> res = solve_pose(project_points(K, transform_points(R, t, X)), X, K)
>>> bool(res.success), res.n_inliers, bool(np.allclose(res.t_cam_face, t, atol=1e-6))
(True, 9, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from perspnet.validate import check_choice, check_int, check_range

__all__ = ["PnPConfig", "PnPResult", "solve_pose", "solve_pose_batch", "MIN_POINTS"]

MIN_POINTS = 6  # fewest correspondences accepted (OpenCV's RANSAC draws 5-point samples)
_COLD_FLAGS = {"epnp": cv2.SOLVEPNP_EPNP, "sqpnp": cv2.SOLVEPNP_SQPNP}


@dataclass(frozen=True)
class PnPConfig:
    """Settings of :func:`solve_pose`.

    Attributes:
        reproj_threshold_px: RANSAC inlier threshold on the reprojection error, pixels (OpenCV's default 8;
            the PerspNet authors' test code uses OpenCV's defaults): the smallest threshold used.
        reproj_threshold_frac: the threshold grows to this fraction of the face's radius in the image (the
            median distance of the pixels from their median, robust to outliers; about a third of the face's
            width) when that is more than ``reproj_threshold_px``, so it scales with the face's size in the
            image, as the pixel error of a 3D point error does. The threshold used is also the scale of
            ``confidence``. 0 for a fixed threshold. A fixed pixel threshold rejects good points on large
            faces; the comparison is in docs/experiments.md ("Test time", "Tracker").
        iterations: maximum RANSAC iterations.
        ransac_confidence: RANSAC's target probability, in (0, 1), of having drawn one all-inlier sample;
            it stops early once reached.
        min_inliers: fewest inliers of the final pose for success (>= 6).
        refine: Levenberg-Marquardt refinement (``cv2.solvePnPRefineLM``) on the inliers.
        refine_max_iter: LM iteration cap.
        cold_method: ``"epnp"`` or ``"sqpnp"``: solver for the fit on the RANSAC consensus set when there is
            no prior pose.
    """

    reproj_threshold_px: float = 8.0
    reproj_threshold_frac: float = 0.3
    iterations: int = 200
    ransac_confidence: float = 0.999
    min_inliers: int = MIN_POINTS
    refine: bool = True
    refine_max_iter: int = 30
    cold_method: str = "epnp"

    def __post_init__(self) -> None:
        check_range("reproj_threshold_px", self.reproj_threshold_px, 0.0, lo_open=True)
        check_range("reproj_threshold_frac", self.reproj_threshold_frac, 0.0, 2.0)
        check_int("iterations", self.iterations, 1)
        check_range("ransac_confidence", self.ransac_confidence, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("min_inliers", self.min_inliers, MIN_POINTS)
        check_int("refine_max_iter", self.refine_max_iter, 1)
        check_choice("cold_method", self.cold_method, sorted(_COLD_FLAGS))


@dataclass(frozen=True)
class PnPResult:
    """Outcome of :func:`solve_pose`.

    Attributes:
        success: True when a pose with at least ``min_inliers`` inliers, all in front of the camera, was found.
        R_cam_face: ``(3, 3)`` rotation canonical face -> camera (OpenCV axes); NaN when not ``success``.
        t_cam_face: ``(3,)`` canonical origin in the camera frame, metres; NaN when not ``success``.
        inlier_mask: ``(N,)`` bool, reprojection error under the final pose < ``threshold_px``
            (all False when the input was rejected before solving).
        n_inliers: ``inlier_mask.sum()``.
        reproj_err_px: RMS reprojection error over the inliers, pixels (NaN when there are none).
        confidence: in [0, 1]: ``inlier_ratio * clip(1 - reproj_err_px / threshold_px, 0, 1)``,
            with ``inlier_ratio = n_inliers / N``; 0 when not ``success``. It is 1 only for exact data
            with no outliers, falls linearly as the inliers' RMS error approaches the threshold, and in
            proportion to the outlier fraction.
        threshold_px: the RANSAC inlier threshold used, pixels (see :class:`PnPConfig`; NaN when the input
            was rejected before solving).
        reason: empty on success, else why it failed.
    """

    success: bool
    R_cam_face: np.ndarray
    t_cam_face: np.ndarray
    inlier_mask: np.ndarray
    n_inliers: int
    reproj_err_px: float
    confidence: float
    threshold_px: float
    reason: str = ""


def _failure(n: int, reason: str, inlier_mask: np.ndarray | None = None, reproj_err_px: float = np.nan,
             threshold_px: float = np.nan) -> PnPResult:
    mask = np.zeros(n, dtype=bool) if inlier_mask is None else inlier_mask
    return PnPResult(False, np.full((3, 3), np.nan), np.full(3, np.nan), mask, int(mask.sum()),
                     float(reproj_err_px), 0.0, float(threshold_px), reason)


def _check_inputs(points_px: np.ndarray, points_face_m: np.ndarray, K: np.ndarray,
                  dist: np.ndarray | None) -> str:
    """Empty string when the input can be solved, else the reason it cannot."""
    if points_px.ndim != 2 or points_px.shape[1] != 2:
        return f"points_px must be (N, 2), got {points_px.shape}"
    if points_face_m.ndim != 2 or points_face_m.shape[1] != 3:
        return f"points_face_m must be (N, 3), got {points_face_m.shape}"
    if points_px.shape[0] != points_face_m.shape[0]:
        return f"{points_px.shape[0]} pixels but {points_face_m.shape[0]} face points"
    if points_px.shape[0] < MIN_POINTS:
        return f"{points_px.shape[0]} correspondences, need >= {MIN_POINTS}"
    if not (np.isfinite(points_px).all() and np.isfinite(points_face_m).all()):
        return "non-finite (NaN/inf) correspondences"
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        return f"invalid camera matrix K: {K.tolist()}"
    if dist is not None and not np.isfinite(dist).all():
        return "non-finite distortion coefficients"
    if np.ptp(points_px, axis=0).max() < 1e-6:
        return "all image points identical"
    centred = points_face_m - points_face_m.mean(axis=0)  # singular values from the 3x3 scatter: cheap for many points
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(centred.T @ centred)[::-1], 0.0, None))
    if sv[0] < 1e-9 or sv[1] < 1e-6 * sv[0]:
        return "face points identical or collinear"
    return ""


def _residuals_px(rvec: np.ndarray, tvec: np.ndarray, points_face_m: np.ndarray, points_px: np.ndarray,
                  K: np.ndarray, dist: np.ndarray | None) -> np.ndarray:
    """Reprojection error ``(N,)`` in pixels of each correspondence under pose (rvec, tvec)."""
    proj, _ = cv2.projectPoints(points_face_m, rvec, tvec, K, dist)
    return np.linalg.norm(proj.reshape(-1, 2) - points_px, axis=1)


def _threshold_px(points_px: np.ndarray, config: PnPConfig) -> float:
    """RANSAC inlier threshold for these ``(N, 2)`` pixels, see :class:`PnPConfig`."""
    radius = float(np.median(np.linalg.norm(points_px - np.median(points_px, axis=0), axis=1)))
    return max(config.reproj_threshold_px, config.reproj_threshold_frac * radius)


def _ransac(points_px: np.ndarray, points_face_m: np.ndarray, K: np.ndarray, dist: np.ndarray | None,
            prior: tuple[np.ndarray, np.ndarray] | None, config: PnPConfig, threshold_px: float):
    """``cv2.solvePnPRansac``, warm from ``prior`` when given. Returns (ok, rvec, tvec, inlier_mask)."""
    kwargs = dict(iterationsCount=config.iterations, reprojectionError=threshold_px,
                  confidence=config.ransac_confidence)
    if prior is not None:
        rvec0 = cv2.Rodrigues(np.asarray(prior[0], dtype=np.float64))[0]
        tvec0 = np.asarray(prior[1], dtype=np.float64).reshape(3, 1).copy()
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            points_face_m, points_px, K, dist, rvec=rvec0, tvec=tvec0, useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE, **kwargs)
    else:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            points_face_m, points_px, K, dist, flags=_COLD_FLAGS[config.cold_method], **kwargs)
    mask = np.zeros(points_px.shape[0], dtype=bool)
    if ok and inliers is not None:
        mask[inliers.ravel()] = True
    ok = bool(ok) and mask.sum() >= MIN_POINTS and np.isfinite(rvec).all() and np.isfinite(tvec).all()
    return ok, rvec, tvec, mask


def _refine(rvec: np.ndarray, tvec: np.ndarray, points_px: np.ndarray, points_face_m: np.ndarray, K: np.ndarray,
            dist: np.ndarray | None, mask: np.ndarray, config: PnPConfig):
    """LM on the consensus set ``mask (N,)`` when ``config.refine``; returns ``(rvec, tvec, residuals_px (N,))``."""
    if config.refine:
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, config.refine_max_iter, 1e-10)
        rvec, tvec = cv2.solvePnPRefineLM(points_face_m[mask], points_px[mask], K, dist, rvec, tvec, criteria)
    return rvec, tvec, _residuals_px(rvec, tvec, points_face_m, points_px, K, dist)


def _fit_score(residuals_px: np.ndarray, threshold_px: float) -> tuple[int, float]:
    """Larger is better: points within the threshold, then minus the sum of squared errors capped at it."""
    return int((residuals_px < threshold_px).sum()), -float(np.sum(np.minimum(residuals_px, threshold_px) ** 2))


def solve_pose(points_px: np.ndarray, points_face_m: np.ndarray, K: np.ndarray, dist: np.ndarray | None = None,
               prior: tuple[np.ndarray, np.ndarray] | None = None, config: PnPConfig = PnPConfig()) -> PnPResult:
    """Face pose from 2D-3D correspondences; see the module doc for the steps.

    Args:
        points_px: ``(N, 2)`` float pixel coordinates (u right, v down) in the full image, pixel centres at
            integers; observed (distorted) pixels when ``dist`` is given.
        points_face_m: ``(N, 3)`` float canonical face points matching ``points_px``, canonical face frame, metres.
        K: ``(3, 3)`` camera matrix, pixels.
        dist: OpenCV distortion coefficients ``(4|5|8|12|14,)``, or None for none.
        prior: optional ``(R_cam_face (3, 3), t_cam_face (3,) metres)``, e.g. the previous frame's pose, used
            as the warm start of the iterative solver.
        config: see :class:`PnPConfig`.

    Returns:
        :class:`PnPResult`; on bad input or no solution ``success`` is False with a ``reason`` (never raises).
    """
    try:
        points_px = np.ascontiguousarray(points_px, dtype=np.float64)
        points_face_m = np.ascontiguousarray(points_face_m, dtype=np.float64)
        K = np.asarray(K, dtype=np.float64)
        dist = None if dist is None else np.asarray(dist, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        return _failure(0, f"inputs not numeric arrays: {e}")
    n = points_px.shape[0] if points_px.ndim == 2 else 0
    reason = _check_inputs(points_px, points_face_m, K, dist)
    if not reason and prior is not None:
        R0, t0 = (np.asarray(a, dtype=np.float64) for a in prior)
        if R0.shape != (3, 3) or t0.size != 3 or not (np.isfinite(R0).all() and np.isfinite(t0).all()):
            reason = "prior must be a finite ((3, 3), (3,)) pose"
    if reason:
        return _failure(n, reason)

    threshold = _threshold_px(points_px, config)
    try:
        ok, rvec, tvec, mask = _ransac(points_px, points_face_m, K, dist, prior, config, threshold)
        cold = prior is None
        if not ok and prior is not None:
            ok, rvec, tvec, mask = _ransac(points_px, points_face_m, K, dist, None, config, threshold)
            cold = True
        if not ok:
            return _failure(n, "RANSAC found no consensus set", threshold_px=threshold)
        rvec, tvec, residuals = _refine(rvec, tvec, points_px, points_face_m, K, dist, mask, config)
        if cold and config.cold_method == "epnp" and (residuals < threshold).sum() < mask.sum():
            sq_ok, sq_rvec, sq_tvec = cv2.solvePnP(points_face_m[mask], points_px[mask], K, dist,
                                                   flags=cv2.SOLVEPNP_SQPNP)
            if sq_ok:
                alt = _refine(sq_rvec, sq_tvec, points_px, points_face_m, K, dist, mask, config)
                if _fit_score(alt[2], threshold) > _fit_score(residuals, threshold):
                    rvec, tvec, residuals = alt
    except cv2.error as e:
        return _failure(n, f"OpenCV error: {e.err}", threshold_px=threshold)

    mask = residuals < threshold
    n_inliers = int(mask.sum())
    rms = float(np.sqrt(np.mean(residuals[mask] ** 2))) if n_inliers else float("nan")
    if n_inliers < config.min_inliers:
        return _failure(n, f"{n_inliers} inliers < min_inliers={config.min_inliers}", mask, rms, threshold)
    R = cv2.Rodrigues(rvec)[0]
    t = tvec.reshape(3)
    if (points_face_m[mask] @ R[2] + t[2]).min() <= 0:
        return _failure(n, "solution puts inliers behind the camera", mask, rms, threshold)
    confidence = n_inliers / n * float(np.clip(1.0 - rms / threshold, 0.0, 1.0))
    return PnPResult(True, R, t.copy(), mask, n_inliers, rms, confidence, threshold)


def solve_pose_batch(points_px: Sequence[np.ndarray], points_face_m: Sequence[np.ndarray], K: np.ndarray,
                     dist: np.ndarray | None = None,
                     priors: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
                     config: PnPConfig = PnPConfig()) -> list[PnPResult]:
    """:func:`solve_pose` over B samples, each with its own number of correspondences.

    Args:
        points_px: B arrays ``(N_i, 2)``, full-image pixels.
        points_face_m: B arrays ``(N_i, 3)``, canonical face frame, metres.
        K: ``(3, 3)`` shared camera matrix, or ``(B, 3, 3)`` one per sample.
        dist: shared distortion coefficients, or None.
        priors: None, or B entries each None or ``(R_cam_face (3, 3), t_cam_face (3,))``.
        config: shared :class:`PnPConfig`.

    Returns:
        B :class:`PnPResult`, in order.
    """
    b = len(points_px)
    if len(points_face_m) != b or (priors is not None and len(priors) != b):
        raise ValueError(f"batch sizes differ: {b} pixel sets, {len(points_face_m)} face point sets, "
                         f"{None if priors is None else len(priors)} priors")
    K = np.asarray(K, dtype=np.float64)
    Ks = np.broadcast_to(K, (b, 3, 3)) if K.ndim == 2 else K
    if Ks.shape != (b, 3, 3):
        raise ValueError(f"K must be (3, 3) or ({b}, 3, 3), got {K.shape}")
    priors = [None] * b if priors is None else priors
    return [solve_pose(p, f, k, dist, pr, config) for p, f, k, pr in zip(points_px, points_face_m, Ks, priors)]
