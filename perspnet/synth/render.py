"""Render a textured face with its head context under a pinhole camera, with exact ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from perspnet.conventions import project_points, transform_points
from perspnet.face_model import FaceModel
from perspnet.raster import RasterBuffers, interpolate, rasterize, rasterize_uv
from perspnet.synth.head_mesh import head_topology, head_vertices

__all__ = ["Light", "RenderedFace", "render_face", "uv_position_map", "vertex_normals"]


@dataclass(frozen=True)
class Light:
    """Lambert + ambient lighting. ``direction_cam``: unit vector from the surface towards the light,
    camera frame; ``(0, 0, -1)`` lights the face from the camera."""

    direction_cam: tuple[float, float, float] = (0.0, 0.0, -1.0)
    ambient: float = 0.55
    diffuse: float = 0.5


@dataclass
class RenderedFace:
    """One rendered image and its per-pixel ground truth (all ``(H, W, ...)`` in image pixels).

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, the face region (the 898 face triangles; not the head context).
        tri_id: ``(H, W)`` int32 face triangle seen at each pixel, -1 outside the face.
        bary: ``(H, W, 3)`` float32 perspective-correct barycentric weights of that triangle's vertices.
        depth_m: ``(H, W)`` float32 camera z of the face surface, inf outside the face.
    """

    image: np.ndarray
    mask: np.ndarray
    tri_id: np.ndarray
    bary: np.ndarray
    depth_m: np.ndarray


def vertex_normals(verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals ``(N, 3)``; for front-wound meshes they point out of the surface."""
    e1 = verts[triangles[:, 1]] - verts[triangles[:, 0]]
    e2 = verts[triangles[:, 2]] - verts[triangles[:, 0]]
    fn = np.cross(e1, e2)
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, triangles[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@numba.njit(cache=True, nogil=True)
def _shade_kernel(image, tri_id, bary, triangles, uvs, normals, alpha, texture, light_dir, ambient, diffuse
                  ):  # pragma: no cover - compiled
    """Textured Lambert + ambient shading of every drawn pixel, blended by the interpolated vertex
    opacity over what ``image`` holds, in place."""
    height, width = tri_id.shape
    size = texture.shape[0]
    for y in range(height):
        for x in range(width):
            f = tri_id[y, x]
            if f < 0:
                continue
            a, b, c = triangles[f, 0], triangles[f, 1], triangles[f, 2]
            w0, w1, w2 = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
            tu = (w0 * uvs[a, 0] + w1 * uvs[b, 0] + w2 * uvs[c, 0]) * size - 0.5
            tv = (w0 * uvs[a, 1] + w1 * uvs[b, 1] + w2 * uvs[c, 1]) * size - 0.5
            nx = w0 * normals[a, 0] + w1 * normals[b, 0] + w2 * normals[c, 0]
            ny = w0 * normals[a, 1] + w1 * normals[b, 1] + w2 * normals[c, 1]
            nz = w0 * normals[a, 2] + w1 * normals[b, 2] + w2 * normals[c, 2]
            norm = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-6
            lam = (nx * light_dir[0] + ny * light_dir[1] + nz * light_dir[2]) / norm
            shade = ambient + diffuse * min(max(lam, 0.0), 1.0)
            opacity = w0 * alpha[a] + w1 * alpha[b] + w2 * alpha[c]
            tu = min(max(tu, 0.0), size - 1.001)
            tv = min(max(tv, 0.0), size - 1.001)
            i0, j0 = int(tv), int(tu)
            fy, fx = tv - i0, tu - j0
            for ch in range(3):
                v = ((1 - fy) * ((1 - fx) * texture[i0, j0, ch] + fx * texture[i0, j0 + 1, ch])
                     + fy * ((1 - fx) * texture[i0 + 1, j0, ch] + fx * texture[i0 + 1, j0 + 1, ch]))
                v = opacity * min(max(v * shade, 0.0), 255.0) + (1.0 - opacity) * image[y, x, ch]
                image[y, x, ch] = min(max(v + 0.5, 0.0), 255.0)


@lru_cache(maxsize=8)
def _uv_raster(face_model: FaceModel, size: int) -> RasterBuffers:
    return rasterize_uv(face_model.uvs, face_model.triangles, size)


def uv_position_map(face_model: FaceModel, verts_face_m: np.ndarray, size: int) -> np.ndarray:
    """UV position map ``(size, size, 3)`` float32: canonical xyz (metres) per texel, 0 outside the face UVs.

    The UV-space raster of the topology is cached, so this is one interpolation per call.
    """
    return interpolate(verts_face_m, face_model.triangles, _uv_raster(face_model, size))


def render_face(face_model: FaceModel, verts_face_m: np.ndarray, R_cam_face: np.ndarray, t_cam_face: np.ndarray,
                K: np.ndarray, height: int, width: int, texture: np.ndarray, background: np.ndarray,
                light: Light = Light()) -> RenderedFace:
    """Render a face and its context ring over a background.

    Args:
        face_model: topology (triangles, UVs) of the 468-vertex mesh.
        verts_face_m: ``(468, 3)`` face shape, canonical frame, metres.
        R_cam_face, t_cam_face: pose, ``X_cam = R @ X + t`` (metres).
        K: ``(3, 3)`` camera matrix (pixels).
        height, width: image size.
        texture: ``(T, T, 3)`` uint8 head atlas (:mod:`perspnet.synth.head_mesh`).
        background: ``(height, width, 3)`` uint8 RGB.
        light: lighting.

    The face is drawn over the context ring, so the ring never hides the face and the face mask equals
    what a face-only rasterization gives.
    """
    topo = head_topology(face_model)
    head_cam = transform_points(R_cam_face, t_cam_face, head_vertices(verts_face_m))
    px = project_points(K, head_cam)
    z = head_cam[:, 2]
    face = rasterize(px, z, topo.face_triangles, height, width, cull_back=True)
    ring = rasterize(px, z, topo.ring_triangles, height, width, cull_back=True)

    normals = vertex_normals(head_cam, topo.triangles).astype(np.float32)
    image = background.copy()
    light_dir = np.asarray(light.direction_cam, np.float32)
    uvs = topo.atlas_uvs.astype(np.float32)
    # The head context first, then the face over it: the face is drawn wherever it covers a pixel.
    for raster, tris in ((ring, topo.ring_triangles), (face, topo.face_triangles)):
        _shade_kernel(image, raster.tri_id, raster.bary, tris, uvs, normals, topo.alpha, texture, light_dir,
                      np.float32(light.ambient), np.float32(light.diffuse))
    return RenderedFace(image=image, mask=face.tri_id >= 0, tri_id=face.tri_id, bary=face.bary, depth_m=face.depth)
