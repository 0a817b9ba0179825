"""Points on a triangle mesh as (triangle, barycentric) coordinates, to carry them from one shape to another.

PerspNet gives, for each sampled pixel, a canonical 3D point ``X_corr = M @ X_hat`` (a soft combination of
the frame's predicted vertices ``X_hat``). The tracker does not use ``X_corr`` directly: it finds the point
of the mesh ``X_hat`` closest to ``X_corr`` (:func:`closest_on_mesh`) and evaluates the same triangle and
barycentric coordinates on another shape with the same topology, the clip's identity
(:func:`points_on_shape`). The offset of ``X_corr`` from the surface is dropped. The mapping is invariant
to a similarity transform of ``X_hat``, so a frame's scale or placement errors do not reach PnP.

    >>> import numpy as np
    >>> verts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> mesh = MeshIndex(np.array([[0, 1, 2]]), n_verts=3)
    >>> tri, bary = closest_on_mesh(np.array([[0.25, 0.25, 0.3]]), verts, mesh)
    >>> tri.tolist(), np.round(bary, 3).tolist()
    ([0], [[0.5, 0.25, 0.25]])
    >>> points_on_shape(tri, bary, 2.0 * verts, mesh).tolist()
    [[0.5, 0.5, 0.0]]
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["MeshIndex", "closest_on_triangles", "closest_on_mesh", "points_on_shape"]

NEAREST_VERTICES = 2  # candidate triangles: those around each point's 2 nearest vertices


class MeshIndex:
    """A triangle list with each vertex's incident triangles, for candidate lookups.

    Args:
        triangles: ``(T, 3)`` int vertex indices.
        n_verts: number of vertices of the shapes the triangles index.
    """

    def __init__(self, triangles: np.ndarray, n_verts: int) -> None:
        self.triangles = np.asarray(triangles, dtype=np.int64)
        self.n_verts = int(n_verts)
        incident: list[list[int]] = [[] for _ in range(self.n_verts)]
        for k, tri in enumerate(self.triangles):
            for v in tri:
                incident[v].append(k)
        width = max(len(ts) for ts in incident)
        # (n_verts, width) triangle ids, padded by repeating a vertex's first triangle (harmless duplicates)
        self.vertex_triangles = np.array([ts + [ts[0]] * (width - len(ts)) if ts else [0] * width
                                          for ts in incident], dtype=np.int64)


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]


def closest_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of each triangle ``(a, b, c)`` to each point, as barycentric coordinates.

    Ericson's region test (*Real-Time Collision Detection*, 5.1.5): vertex, edge or face region of the
    point, decided from six dot products, evaluated for all pairs at once.

    Args:
        points, a, b, c: ``(..., 3)`` broadcastable, any frame and unit.

    Returns:
        ``bary (..., 3)`` weights of ``(a, b, c)`` (non-negative, summing to 1) and ``dist (...)`` the
        distance from the point to that closest point.
    """
    ab, ac = b - a, c - a
    ap, bp, cp = points - a, points - b, points - c
    d1, d2, d3, d4, d5, d6 = _dot(ab, ap), _dot(ac, ap), _dot(ab, bp), _dot(ac, bp), _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)

    total = va + vb + vc
    v, w = ratio(vb, total), ratio(vc, total)  # inside the face
    # the regions in Ericson's order of tests, applied last-first so that the first test wins
    t = ratio(d4 - d3, (d4 - d3) + (d5 - d6))
    bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    v, w = np.where(bc, 1 - t, v), np.where(bc, t, w)
    t = ratio(d2, d2 - d6)
    edge_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    v, w = np.where(edge_ac, 0.0, v), np.where(edge_ac, t, w)
    corner_c = (d6 >= 0) & (d5 <= d6)
    v, w = np.where(corner_c, 0.0, v), np.where(corner_c, 1.0, w)
    t = ratio(d1, d1 - d3)
    edge_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    v, w = np.where(edge_ab, t, v), np.where(edge_ab, 0.0, w)
    corner_b = (d3 >= 0) & (d4 <= d3)
    v, w = np.where(corner_b, 1.0, v), np.where(corner_b, 0.0, w)
    corner_a = (d1 <= 0) & (d2 <= 0)
    v, w = np.where(corner_a, 0.0, v), np.where(corner_a, 0.0, w)
    closest = a + v[..., None] * ab + w[..., None] * ac
    return np.stack([1.0 - v - w, v, w], axis=-1), np.linalg.norm(points - closest, axis=-1)


def closest_on_mesh(points: np.ndarray, verts: np.ndarray, mesh: MeshIndex) -> tuple[np.ndarray, np.ndarray]:
    """Closest mesh point to each of ``points`` ``(m, 3)`` on the mesh ``verts`` ``(n, 3)`` (same frame/unit).

    Searches the triangles around each point's ``NEAREST_VERTICES`` nearest vertices (exact for the
    near-surface points PerspNet predicts; a far point may get a slightly farther triangle).

    Returns:
        ``tri (m,)`` triangle index into ``mesh.triangles`` and ``bary (m, 3)`` its barycentric weights.
    """
    points = np.asarray(points, dtype=np.float64)
    verts = np.asarray(verts, dtype=np.float64)
    _, nearest = cKDTree(verts).query(points, k=NEAREST_VERTICES)
    candidates = mesh.vertex_triangles[nearest].reshape(len(points), -1)  # (m, C)
    corners = verts[mesh.triangles[candidates]]  # (m, C, 3, 3)
    bary, dist = closest_on_triangles(points[:, None, :], corners[..., 0, :], corners[..., 1, :],
                                      corners[..., 2, :])
    pick = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    return candidates[rows, pick], bary[rows, pick]


def points_on_shape(tri: np.ndarray, bary: np.ndarray, verts: np.ndarray, mesh: MeshIndex) -> np.ndarray:
    """Evaluate (triangle, barycentric) coordinates on a shape: ``(m,)``, ``(m, 3)``, ``verts (n, 3)`` ->
    ``(m, 3)`` points in the frame and unit of ``verts``."""
    corners = np.asarray(verts, dtype=np.float64)[mesh.triangles[tri]]  # (m, 3, 3)
    return np.einsum("mk,mkc->mc", bary, corners)
