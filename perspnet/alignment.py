"""Similarity alignment of point sets (Umeyama 1991)."""
from __future__ import annotations

import numpy as np

__all__ = ["fit_similarity"]


def fit_similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``dst ~ s * R @ src + t`` for corresponding points ``(N, 3)``.

    Args:
        src, dst: ``(N, 3)`` corresponding points (any frames/units; dst's unit / src's unit gives s).
        weights: ``(N,)`` non-negative weights, uniform when None.

    Returns:
        ``(s, R (3, 3) proper rotation, t (3,))``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    var_s = (w * (xs ** 2).sum(1)).sum()
    s = float(np.trace(np.diag(S) @ D) / var_s)
    t = mu_d - s * R @ mu_s
    return s, R, t
