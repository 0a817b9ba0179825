"""One face shape per clip: a robust running estimate of the identity from PerspNet's per-frame shapes.

The network predicts a canonical shape ``X_hat (n, 3)`` (canonical face frame, metres) for every frame.
Single frames are noisy, and a free per-frame shape can trade its size against depth (a smaller face
further away projects alike), so the tracker estimates one identity over the clip and lets each frame
deviate from it by a bounded expression residual only.

Estimate (:class:`IdentityEstimator`)
-------------------------------------
For each confident frame (weight = its PnP confidence):

1. Size and placement of the raw shape: centroid ``c (3,)`` and size ``s`` = RMS distance of the vertices
   from ``c`` (metres). The shape is kept normalised: ``V = (X_hat - c) / s``.
2. Similarity removed: each ``V`` is rotated onto the running identity (Kabsch: translation and scale are
   already gone), ``A = R V``.
3. Identity = per-vertex, per-coordinate confidence-weighted median of the ``A`` (renormalised to unit
   size), turned back by the weighted median of the rotations ``R`` (their rotation vectors, per
   component), scaled by the weighted median of the sizes ``s`` and placed at the weighted median of the
   centroids ``c``. So shape, orientation, size and placement in the canonical frame are each the median
   over the clip (not those of whichever frame came first); medians ignore outlier frames up to half of
   the total weight.

Memory is bounded: at most ``max_samples`` normalised shapes are kept; when full, every other one is
dropped and from then on only every ``stride``-th offered frame is stored (``stride`` doubles each time),
so the kept frames stay spread evenly over the clip. :attr:`IdentityEstimator.identity` is always the
median of every shape kept; the *running* identity used by :meth:`frame_shape` (and as the rotation
target of step 2) is refreshed only when the shapes kept have grown by ``1 / REFRESH_FRACTION`` since its
last refresh (each refresh aligns and sorts all of them), so it lags by a few frames at most.

Per-frame shape (:meth:`IdentityEstimator.frame_shape`)
-------------------------------------------------------
The frame's raw shape, similarity-aligned to the identity, minus the identity is the expression residual. That
similarity is fitted robustly (:func:`perspnet.alignment.fit_similarity`, Umeyama, reweighted ``ALIGN_ROUNDS``
times with weights ``1 / max(r, ALIGN_FLOOR_M)`` of the vertex residuals ``r``), so an expression (an open
mouth) does not drag the rest of the face out of place; each vertex's residual is clipped to
``max_residual_mm``. Frame shape = identity + clipped residual, so its size is the identity's.
``shape_dev_mm`` = mean per-vertex norm of the unclipped residual: how far that frame's raw prediction (up to
a similarity) is from the identity, millimetres.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(0.0, 0.05, (50, 3))
    >>> est = IdentityEstimator()
    >>> for _ in range(21):
    ...     _ = est.add(true + rng.normal(0.0, 0.001, true.shape), weight=1.0)
    >>> bool(np.abs(est.identity - true).mean() < 0.0005)
    True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scipy.spatial.transform import Rotation

from perspnet.alignment import fit_similarity
from perspnet.conventions import MM_PER_M
from perspnet.validate import check_int, check_range

__all__ = ["IdentityConfig", "FrameShape", "IdentityEstimator", "weighted_median", "ALIGN_ROUNDS", "ALIGN_FLOOR_M",
           "REFRESH_FRACTION"]

ALIGN_ROUNDS = 4  # least-squares fit, then 3 reweighted fits (an L1-like fit of the vertex distances)
ALIGN_FLOOR_M = 0.001  # residuals below 1 mm are weighted alike (noise level of a predicted vertex)
REFRESH_FRACTION = 8  # the running identity is refreshed after n_samples / 8 new samples (at least 1)


@dataclass(frozen=True)
class IdentityConfig:
    """Settings of :class:`IdentityEstimator`. Validated on construction.

    Attributes:
        max_residual_mm: largest per-vertex expression residual a frame's shape may have, millimetres.
        min_confidence: frames whose PnP confidence (in [0, 1]) is below this do not update the identity.
        max_samples: normalised shapes kept for the median (memory: ``max_samples * n * 12`` bytes).
    """

    max_residual_mm: float = 5.0
    min_confidence: float = 0.2
    max_samples: int = 256

    def __post_init__(self) -> None:
        check_range("max_residual_mm", self.max_residual_mm, 0.0)
        check_range("min_confidence", self.min_confidence, 0.0, 1.0)
        check_int("max_samples", self.max_samples, 2)


@dataclass(frozen=True)
class FrameShape:
    """A frame's shape under the identity constraint.

    Attributes:
        verts_face_m: ``(n, 3)`` identity + clipped residual, canonical face frame, metres.
        dev_mm: mean per-vertex distance of the similarity-aligned raw shape from the identity, mm.
    """

    verts_face_m: np.ndarray
    dev_mm: float


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted median along axis 0: ``values (K, ...)``, ``weights (K,)`` >= 0 with a positive sum.

    Per element, the smallest value whose cumulative weight (values sorted ascending) reaches half the
    total (the lower weighted median). Returns ``(...)``.

        >>> weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 1.0])).item()
        2.0
        >>> weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0])).item()
        10.0
    """
    values = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) != len(values) or len(w) == 0 or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("weights must be (K,) non-negative with a positive sum, K = len(values) >= 1")
    columns = np.ascontiguousarray(values.reshape(len(w), -1).T)  # (M, K): sort along contiguous rows
    order = np.argsort(columns, axis=1)
    first = (np.cumsum(w[order], axis=1) < 0.5 * w.sum()).sum(axis=1)  # first index reaching half the weight
    rows = np.arange(len(columns))
    return columns[rows, order[rows, first]].reshape(values.shape[1:])


def _rotations_onto(shapes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Kabsch: rotations ``(K, 3, 3)`` best turning each centred ``shapes[k] (n, 3)`` onto the centred
    ``reference (n, 3)`` (``reference ~ shapes[k] @ R[k].T``), proper (det +1)."""
    cov = np.einsum("ni,knj->kij", reference, shapes)  # sum of reference x shape^T
    U, _, Vt = np.linalg.svd(cov)
    D = np.ones((len(shapes), 3))
    D[:, 2] = np.sign(np.linalg.det(U @ Vt))
    return U @ (D[:, :, None] * Vt)


def _centre_size(verts: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid ``(3,)`` and RMS distance of the vertices from it (the shape's size)."""
    c = verts.mean(axis=0)
    return c, float(np.sqrt(((verts - c) ** 2).sum(axis=1).mean()))


class IdentityEstimator:
    """Running robust identity of one clip; see the module docstring for the method.

    Args:
        config: see :class:`IdentityConfig`.
    """

    def __init__(self, config: IdentityConfig = IdentityConfig()) -> None:
        self.config = config
        self._unit: list[np.ndarray] = []  # (n, 3) float32 raw shapes, centred, unit size
        self._centres: list[np.ndarray] = []
        self._sizes: list[float] = []
        self._weights: list[float] = []
        self.stride = 1  # store every stride-th accepted frame
        self.n_accepted = 0  # frames that passed min_confidence
        self._identity: np.ndarray | None = None
        self._unit_identity: np.ndarray | None = None  # the identity centred, unit size
        self._new_samples = 0  # stored since self._identity was computed

    @property
    def n_samples(self) -> int:
        """Shapes currently kept for the median."""
        return len(self._unit)

    @property
    def identity(self) -> np.ndarray | None:
        """``(n, 3)`` identity shape from every shape kept, canonical face frame, metres; None before the
        first accepted frame."""
        if self._new_samples:
            self.refresh()
        return self._identity

    def _running(self) -> np.ndarray | None:
        """The identity, refreshed only on the ``REFRESH_FRACTION`` schedule (module docstring)."""
        if self._new_samples >= max(1, self.n_samples // REFRESH_FRACTION):
            self.refresh()
        return self._identity

    def refresh(self) -> None:
        """Recompute the running identity from every shape kept (after the last frame, before using
        :meth:`frame_shape` with the final identity)."""
        if not self._unit:
            return
        w = np.asarray(self._weights)
        shapes = np.stack(self._unit).astype(np.float64)
        rotations = _rotations_onto(shapes, shapes[0] if self._unit_identity is None else self._unit_identity)
        unit = weighted_median(np.einsum("kij,knj->kni", rotations, shapes), w)
        unit -= unit.mean(axis=0)
        unit /= _centre_size(unit)[1]
        turn = Rotation.from_rotvec(weighted_median(Rotation.from_matrix(rotations).as_rotvec(), w)).as_matrix()
        self._unit_identity = unit @ turn  # R^T x per vertex: back to the median orientation of the raw shapes
        size = float(weighted_median(np.asarray(self._sizes), w))
        self._identity = self._unit_identity * size + weighted_median(np.stack(self._centres), w)
        self._new_samples = 0

    @classmethod
    def merged(cls, estimators: list[IdentityEstimator]) -> IdentityEstimator:
        """One estimator holding the shapes kept by each of ``estimators`` (the tracks of one face; they
        are left unchanged), thinned as :meth:`add` thins when over ``max_samples``; the first one's config."""
        out = cls(estimators[0].config)
        for est in estimators:
            out._unit += est._unit
            out._centres += est._centres
            out._sizes += est._sizes
            out._weights += est._weights
            out.n_accepted += est.n_accepted
        while len(out._unit) > out.config.max_samples:
            for samples in (out._unit, out._centres, out._sizes, out._weights):
                del samples[1::2]
            out.stride *= 2
        out._new_samples = len(out._unit)
        return out

    def _aligned(self, verts: np.ndarray) -> np.ndarray:
        """``verts (n, 3)`` with its similarity to the running identity removed (robust fit, module doc;
        unchanged when there is no identity)."""
        identity = self._running()
        if identity is None:
            return verts
        weights = None
        for _ in range(ALIGN_ROUNDS):
            s, R, t = fit_similarity(verts, identity, weights)
            aligned = s * verts @ R.T + t
            weights = 1.0 / np.maximum(np.linalg.norm(aligned - identity, axis=1), ALIGN_FLOOR_M)
        return aligned

    def add(self, verts_face_m: np.ndarray, weight: float) -> bool:
        """Offer a frame's raw predicted shape ``(n, 3)`` (metres) with its confidence ``weight`` in [0, 1].

        Returns True when the shape was stored (it passed ``min_confidence`` and the stride).
        """
        verts = np.asarray(verts_face_m, dtype=np.float64)
        if not (weight >= self.config.min_confidence and weight > 0 and np.isfinite(verts).all()):
            return False
        self.n_accepted += 1
        if (self.n_accepted - 1) % self.stride:
            return False
        centre, size = _centre_size(verts)
        self._unit.append(((verts - centre) / size).astype(np.float32))
        self._centres.append(centre)
        self._sizes.append(size)
        self._weights.append(float(weight))
        if len(self._unit) > self.config.max_samples:
            for samples in (self._unit, self._centres, self._sizes, self._weights):
                del samples[1::2]
            self.stride *= 2
        self._new_samples += 1
        return True

    def frame_shape(self, verts_face_m: np.ndarray) -> FrameShape:
        """The frame's shape: identity + residual clipped per vertex (see module doc).

        Before any frame was accepted the raw shape is used as it is (``dev_mm`` 0). Uses the running
        identity: call :meth:`refresh` first for the one of every shape kept.
        """
        verts = np.asarray(verts_face_m, dtype=np.float64)
        identity = self._running()
        if identity is None:
            return FrameShape(verts.copy(), 0.0)
        residual = self._aligned(verts) - identity
        norm = np.linalg.norm(residual, axis=1)
        limit = self.config.max_residual_mm / MM_PER_M
        clipped = residual * np.minimum(1.0, limit / np.maximum(norm, 1e-12))[:, None]
        return FrameShape(identity + clipped, float(norm.mean() * MM_PER_M))
