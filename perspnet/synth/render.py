"""Render a textured face with its head context under a pinhole camera, with exact ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from perspnet.conventions import project_points, transform_points
from perspnet.face_model import FaceModel
from perspnet.raster import RasterBuffers, interpolate, interpolate_pixels, rasterize, rasterize_uv
from perspnet.synth.head_mesh import head_topology, head_vertices

__all__ = ["Light", "RenderedFace", "render_face", "sample_texture", "uv_position_map", "vertex_normals"]


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


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a square ``(T, T, C)`` texture at ``uv (P, 2)`` in [0, 1] -> ``(P, C)`` float32."""
    p = len(uv)
    cols = 1024  # remap maps must stay under 32767 rows
    rows = -(-p // cols)
    grid = np.zeros((rows * cols, 2), np.float32)
    grid[:p] = uv * texture.shape[0] - 0.5
    grid = grid.reshape(rows, cols, 2)
    out = cv2.remap(texture, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, -1)[:p].astype(np.float32)


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

    # Shade only the drawn pixels: the face wherever it is drawn, else the head context behind it.
    attrs = np.concatenate([topo.atlas_uvs, vertex_normals(head_cam, topo.triangles)], axis=1)  # uv, normal
    image = background.copy()
    for raster, tris, keep in ((ring, topo.ring_triangles, face.tri_id < 0), (face, topo.face_triangles, None)):
        drawn = raster.tri_id >= 0 if keep is None else (raster.tri_id >= 0) & keep
        rows, cols = np.nonzero(drawn)
        if len(rows) == 0:
            continue
        per_pixel = interpolate_pixels(attrs, tris, raster.tri_id[rows, cols], raster.bary[rows, cols])
        albedo = sample_texture(texture, per_pixel[:, :2])
        n = per_pixel[:, 2:]
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
        shade = light.ambient + light.diffuse * np.clip(n @ np.asarray(light.direction_cam, np.float32), 0, 1)
        image[rows, cols] = np.clip(albedo * shade[:, None], 0, 255).astype(np.uint8)
    return RenderedFace(image=image, mask=face.tri_id >= 0, tri_id=face.tri_id, bary=face.bary, depth_m=face.depth)
