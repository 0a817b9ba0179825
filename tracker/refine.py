"""Second pass: every frame's pose re-solved against the clip's final identity.

While streaming, each frame's PnP can only use the identity estimated so far, which is still settling in
the first frames (its size, and so every translation, moves by a few percent). The streaming pass keeps
each frame's correspondences (:class:`tracker.online.Correspondences`, as mesh coordinates) and raw
predicted shape in a :class:`FrameStore` on disk; once the clip has been read, :func:`refine_poses`
solves every frame again with the final identity (frame shape = identity + bounded residual), warm
from the streaming pose. All output poses then rest on one shape, the one written as the identity.

Disk: one fixed-size record per frame, ``m * 24 + n * 12 + 100`` bytes (m sampled pixels, n vertices;
about 12 kB for the lite model), appended as frames arrive and read back through a memory map, so
memory does not grow with the clip's length.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tracker.identity import IdentityEstimator
from tracker.measure import Correspondences, FrameResult, MeasureConfig, Measurement, solve_frame
from tracker.surface import MeshIndex

__all__ = ["FrameStore", "refine_poses"]


class FrameStore:
    """Append-only file of per-frame records: ``has`` (a measurement was made), the streaming pose
    (``accepted``, ``R (3, 3)``, ``t (3,)`` metres), the correspondences (``points_px (m, 2)``, ``tri (m,)``,
    ``bary (m, 3)``), ``verts_raw (n, 3)`` metres and ``eye_px (4, 2)`` (the sampled eye corners,
    :attr:`tracker.online.FrameResult.eye_corners_px`; nan when not sampled). Frames without a measurement
    hold zeros.

    Args:
        path: the file (created, truncated); the caller removes it.
        n_points: ``m``, correspondences per frame.
        n_verts: ``n``, mesh vertices.
    """

    def __init__(self, path: str | os.PathLike[str], n_points: int, n_verts: int) -> None:
        self.path = Path(path)
        self.dtype = np.dtype([("has", "?"), ("accepted", "?"), ("R", "<f8", (3, 3)), ("t", "<f8", (3,)),
                               ("points_px", "<f4", (n_points, 2)), ("tri", "<i4", (n_points,)),
                               ("bary", "<f4", (n_points, 3)), ("verts_raw", "<f4", (n_verts, 3)),
                               ("eye_px", "<f8", (4, 2))])
        self._file = open(self.path, "wb")
        self.n_frames = 0

    def append(self, result: FrameResult) -> None:
        """Write one frame's record (in stream order)."""
        rec = np.zeros(1, self.dtype)
        m, corr = result.measurement, result.correspondences
        rec["eye_px"] = np.nan if result.eye_corners_px is None else result.eye_corners_px
        if m is not None and corr is not None:
            rec["has"] = True
            rec["accepted"] = m.accepted
            if m.accepted:
                rec["R"], rec["t"] = m.pnp.R_cam_face, m.pnp.t_cam_face
            rec["points_px"], rec["tri"], rec["bary"] = corr.points_px, corr.tri, corr.bary
            rec["verts_raw"] = result.verts_raw_face_m
        rec.tofile(self._file)
        self.n_frames += 1

    def close(self) -> None:
        self._file.close()

    def records(self) -> np.ndarray:
        """``(N,)`` read-only memory map of the records (call after :meth:`close`)."""
        if self.n_frames == 0:
            return np.zeros(0, self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n_frames,))


def refine_poses(records: np.ndarray, identity: IdentityEstimator, mesh: MeshIndex, K: np.ndarray,
                 config: MeasureConfig) -> tuple[list[Measurement | None], np.ndarray]:
    """Re-solve each recorded frame with ``identity``'s (final) shape; see the module docstring.

    Args:
        records: ``(N,)`` :class:`FrameStore` records.
        identity: the clip's identity estimator after the whole clip (refreshed here).
        mesh: the topology.
        K: ``(3, 3)`` camera matrix (the stored pixels are undistorted).
        config: PnP policy; the streaming pose (when accepted) is the prior.

    Returns:
        Per frame the :class:`tracker.measure.Measurement` (None without correspondences) and
        ``shape_dev_mm (N,)`` against the final identity (nan without correspondences).
    """
    identity.refresh()
    out: list[Measurement | None] = []
    dev = np.full(len(records), np.nan)
    for k, rec in enumerate(records):
        if not rec["has"]:
            out.append(None)
            continue
        corr = Correspondences(rec["points_px"].astype(np.float64), rec["tri"], rec["bary"].astype(np.float64))
        prior = (rec["R"], rec["t"]) if rec["accepted"] else None
        m, shape = solve_frame(corr, rec["verts_raw"].astype(np.float64), identity, mesh, K, prior, config)
        out.append(m)
        dev[k] = shape.dev_mm
    return out, dev
