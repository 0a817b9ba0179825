"""Z-buffered triangle rasterizer (numba) for a pinhole camera and for UV space.

Pixel centres sit at integer coordinates: pixel (row i, column j) is the point (u, v) = (j, i).
Barycentric weights are perspective-correct: ``b_k`` weights vertex k of the triangle such that the
3D point on the triangle seen through that pixel is ``sum_k b_k X_k``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["RasterBuffers", "rasterize", "rasterize_uv", "extend_raster", "interpolate", "interpolate_pixels"]


@dataclass
class RasterBuffers:
    """Per-pixel result of :func:`rasterize`.

    Attributes:
        tri_id: ``(H, W)`` int32 index of the visible triangle, -1 where nothing was drawn.
        bary: ``(H, W, 3)`` float32 perspective-correct barycentric weights of that triangle's vertices.
        depth: ``(H, W)`` float32 camera-frame z (metres) of the visible surface, ``inf`` where empty.
    """

    tri_id: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(H, W)`` bool, True where a triangle was drawn."""
        return self.tri_id >= 0


@numba.njit(cache=True, nogil=True)
def _raster_kernel(px, z, tris, cull_back, tri_id, bary, depth):  # pragma: no cover - compiled
    height, width = tri_id.shape
    for f in range(tris.shape[0]):
        i0, i1, i2 = tris[f, 0], tris[f, 1], tris[f, 2]
        z0, z1, z2 = z[i0], z[i1], z[i2]
        if z0 <= 0.0 or z1 <= 0.0 or z2 <= 0.0:
            continue  # behind or on the camera plane: not drawn (faces stay in front of the camera)
        x0, y0 = px[i0, 0], px[i0, 1]
        x1, y1 = px[i1, 0], px[i1, 1]
        x2, y2 = px[i2, 0], px[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or (cull_back and area > 0.0):
            continue
        xmin = max(int(np.ceil(min(x0, x1, x2))), 0)
        xmax = min(int(np.floor(max(x0, x1, x2))), width - 1)
        ymin = max(int(np.ceil(min(y0, y1, y2))), 0)
        ymax = min(int(np.floor(max(y0, y1, y2))), height - 1)
        if xmin > xmax or ymin > ymax:
            continue
        inv_area = 1.0 / area
        iz0, iz1, iz2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
        for y in range(ymin, ymax + 1):
            for x in range(xmin, xmax + 1):
                # screen-space barycentrics from edge functions
                l0 = ((x1 - x) * (y2 - y) - (x2 - x) * (y1 - y)) * inv_area
                l1 = ((x2 - x) * (y0 - y) - (x0 - x) * (y2 - y)) * inv_area
                l2 = 1.0 - l0 - l1
                if l0 < 0.0 or l1 < 0.0 or l2 < 0.0:
                    continue
                inv_z = l0 * iz0 + l1 * iz1 + l2 * iz2
                zz = 1.0 / inv_z
                if zz >= depth[y, x]:
                    continue
                depth[y, x] = zz
                tri_id[y, x] = f
                bary[y, x, 0] = l0 * iz0 * zz
                bary[y, x, 1] = l1 * iz1 * zz
                bary[y, x, 2] = l2 * iz2 * zz


def rasterize(
    points_px: np.ndarray,
    depth_m: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    cull_back: bool = False,
) -> RasterBuffers:
    """Rasterize a projected mesh with a z-buffer.

    Args:
        points_px: ``(N, 2)`` projected vertices in pixels (u right, v down).
        depth_m: ``(N,)`` camera-frame z of the vertices (metres, > 0 to be drawn).
        triangles: ``(F, 3)`` vertex indices.
        height, width: output size in pixels.
        cull_back: skip triangles wound clockwise on screen (back faces of a mesh whose front faces
            are counter-clockwise in image coordinates, like :class:`perspnet.face_model.FaceModel`).

    Returns:
        :class:`RasterBuffers` of shape ``(height, width)``.
    """
    tri_id = np.full((height, width), -1, np.int32)
    bary = np.zeros((height, width, 3), np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    _raster_kernel(np.ascontiguousarray(points_px, np.float64), np.ascontiguousarray(depth_m, np.float64),
                   np.ascontiguousarray(triangles, np.int32), cull_back, tri_id, bary, depth)
    return RasterBuffers(tri_id, bary, depth)


def rasterize_uv(uvs: np.ndarray, triangles: np.ndarray, size: int) -> RasterBuffers:
    """Rasterize a mesh in UV space: texel (i, j) has its centre at uv = ((j + 0.5) / size, (i + 0.5) / size).

    Args:
        uvs: ``(N, 2)`` texture coordinates in [0, 1] (u right, v down).
        triangles: ``(F, 3)`` vertex indices.
        size: texture side in texels.

    Returns:
        :class:`RasterBuffers` ``(size, size)``; barycentrics are affine in UV, depth is 1 where drawn.
    """
    return rasterize(np.asarray(uvs) * size - 0.5, np.ones(len(uvs)), triangles, size, size)


def extend_raster(raster: RasterBuffers, points_px: np.ndarray, triangles: np.ndarray, ring: float
                  ) -> RasterBuffers:
    """Extend a raster of a flat (affine) mapping, such as :func:`rasterize_uv`'s, by a ring of pixels
    around what was drawn: a pixel within ``ring`` pixels of a drawn one takes the triangle of its nearest
    drawn pixel, with barycentrics extrapolated (some negative) at its own centre. :func:`interpolate`
    then continues each border triangle's linear function outwards, so a bilinear lookup at a vertex on
    the border of the drawn region reads that vertex's value instead of mixing in the background.

    Args:
        raster: buffers from :func:`rasterize` / :func:`rasterize_uv` (barycentrics affine in pixels).
        points_px: ``(N, 2)`` the vertices in the raster's pixel coordinates (for :func:`rasterize_uv`:
            ``uvs * size - 0.5``).
        triangles: ``(F, 3)`` vertex indices.
        ring: width of the ring, pixels (Euclidean distance to the nearest drawn pixel centre).

    Returns:
        New :class:`RasterBuffers`; drawn pixels are unchanged, ring pixels get depth 1.
    """
    from scipy.ndimage import distance_transform_edt

    dist, (near_r, near_c) = distance_transform_edt(~raster.mask, return_indices=True)
    rows, cols = np.nonzero((dist > 0) & (dist <= ring))
    tri_id, bary, depth = raster.tri_id.copy(), raster.bary.copy(), raster.depth.copy()
    tri = raster.tri_id[near_r[rows, cols], near_c[rows, cols]]
    corners = np.asarray(points_px, np.float64)[np.asarray(triangles)[tri]]  # (P, 3, 2)
    edges = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=-1)  # (P, 2, 2)
    rel = np.column_stack([cols, rows]).astype(np.float64) - corners[:, 0]
    l12 = np.linalg.solve(edges, rel[..., None])[..., 0]  # (P, 2): weights of corners 1 and 2
    tri_id[rows, cols] = tri
    bary[rows, cols] = np.column_stack([1.0 - l12.sum(1), l12])
    depth[rows, cols] = 1.0
    return RasterBuffers(tri_id, bary, depth)


def interpolate(attributes: np.ndarray, triangles: np.ndarray, raster: RasterBuffers,
                background: float = 0.0) -> np.ndarray:
    """Interpolate per-vertex attributes ``(N, C)`` over the raster -> ``(H, W, C)`` float32."""
    h, w = raster.tri_id.shape
    out = np.full((h, w, np.shape(attributes)[1]), background, np.float32)
    rows, cols = np.nonzero(raster.tri_id >= 0)
    out[rows, cols] = interpolate_pixels(attributes, triangles, raster.tri_id[rows, cols], raster.bary[rows, cols])
    return out


def interpolate_pixels(attributes: np.ndarray, triangles: np.ndarray, tri_id: np.ndarray, bary: np.ndarray
                       ) -> np.ndarray:
    """Interpolate per-vertex attributes ``(N, C)`` at P pixels given their ``tri_id (P,)`` (all >= 0)
    and ``bary (P, 3)`` -> ``(P, C)`` float32."""
    out = np.empty((len(tri_id), np.shape(attributes)[1]), np.float32)
    _interp_kernel(np.ascontiguousarray(attributes, np.float32), np.ascontiguousarray(triangles, np.int32),
                   np.ascontiguousarray(tri_id, np.int32), np.ascontiguousarray(bary, np.float32), out)
    return out


@numba.njit(cache=True, nogil=True)
def _interp_kernel(attributes, triangles, tri_id, bary, out):  # pragma: no cover - compiled
    for p in range(tri_id.shape[0]):
        f = tri_id[p]
        a, b, c = triangles[f, 0], triangles[f, 1], triangles[f, 2]
        for k in range(out.shape[1]):
            out[p, k] = bary[p, 0] * attributes[a, k] + bary[p, 1] * attributes[b, k] + bary[p, 2] * attributes[c, k]
