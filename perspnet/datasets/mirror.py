"""Left-right mirror images of labelled faces, for flip augmentation.

Mirroring an image about its vertical centre line is the same as mirroring the scene about the camera's
y-z plane (``F = diag(-1, 1, 1)`` in the OpenCV camera frame) and moving the principal point to
``cx' = W - 1 - cx``. The mirrored face is itself a face of the same topology: vertex ``i`` of the mirrored
mesh sits where the mirror image of vertex ``mirror[i]`` (its left-right twin) lies, so its canonical
vertices are ``F @ X[mirror]`` (the canonical face frame's x axis runs across the face), and its pose is
``(F R F, F t)``. Nothing is resampled: every target (mask, per-pixel correspondences, UV map) follows
exactly from the mirrored record.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment

from perspnet.datasets.record import FaceRecord

__all__ = ["mirror_vertex_map", "mirror_record"]

_FLIP_X = np.diag([-1.0, 1.0, 1.0])


def mirror_vertex_map(verts_face_m: np.ndarray, triangles: np.ndarray, tol_m: float = 0.01) -> np.ndarray:
    """``(n,)`` index of each vertex's left-right twin, from a roughly symmetric template mesh.

    The twins are the one-to-one assignment of the template's mirror image (about its mean x) to its
    vertices with the least total distance, so a template whose asymmetry exceeds the vertex spacing in
    places still gives the right map (the mean of 16 synthetic identities, worst asymmetry 4.7 mm, gives
    MediaPipe's exact twins; a single identity 4% wrong).

    Args:
        verts_face_m: ``(n, 3)`` template vertices in the canonical face frame (metres), e.g. the mean
            mesh of a few records.
        triangles: ``(F, 3)`` vertex indices.
        tol_m: the largest distance allowed between a vertex's mirror image and its twin.

    Raises:
        ValueError: the mesh is not symmetric: a twin is further than ``tol_m``, the twins are not
            pairwise, or a triangle's twin is not a triangle of the mesh.
    """
    verts = np.asarray(verts_face_m, dtype=np.float64)
    verts = verts - np.array([verts[:, 0].mean(), 0.0, 0.0])
    dist = np.linalg.norm((verts @ _FLIP_X)[:, None, :] - verts[None, :, :], axis=-1)
    _, mirror = linear_sum_assignment(dist)
    worst = float(dist[np.arange(len(verts)), mirror].max())
    if worst > tol_m:
        raise ValueError(f"mesh not left-right symmetric: a vertex's mirror image is {worst * 1000:.1f} mm "
                         f"from its twin (tolerance {tol_m * 1000:.1f} mm)")
    if not np.array_equal(mirror[mirror], np.arange(len(verts))):
        raise ValueError("mesh not left-right symmetric: the vertex twins are not pairwise")
    tris = {tuple(sorted(t)) for t in np.asarray(triangles).tolist()}
    if any(tuple(sorted(mirror[t])) not in tris for t in np.asarray(triangles)):
        raise ValueError("mesh not left-right symmetric: a triangle's mirror image is not a triangle")
    return mirror.astype(np.int64)


def mirror_record(record: FaceRecord, mirror: np.ndarray) -> FaceRecord:
    """The record's left-right mirror image (see the module docstring), frames and units unchanged.

    Args:
        record: an undistorted record with a mesh.
        mirror: ``(n,)`` from :func:`mirror_vertex_map` for the record's topology.
    """
    if record.verts_face_m is None:
        raise ValueError(f"mirror_record: record {record.subject}/{record.img_id} has no mesh")
    if record.dist is not None and np.any(record.dist):
        raise ValueError(f"mirror_record: record {record.subject}/{record.img_id} has lens distortion")
    width = record.image_size_wh[0]
    K = _FLIP_X @ record.K @ _FLIP_X  # fx, fy, cy kept; skew negated; cx -> -cx, then shifted below
    K[0, 2] += width - 1
    return dataclasses.replace(
        record, image_rgb=np.ascontiguousarray(record.image_rgb[:, ::-1]), K=K,
        R_cam_face=_FLIP_X @ record.R_cam_face @ _FLIP_X, t_cam_face=_FLIP_X @ record.t_cam_face,
        verts_face_m=record.verts_face_m[mirror] @ _FLIP_X)
