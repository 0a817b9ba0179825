"""The face mesh extended with a context ring (forehead/hair, ears, jaw/neck) for rendering with head context.

Two rings of vertices follow the face outline (``landmark_ids.FACE_OVAL``): each ring vertex is its oval
vertex pushed outwards in the image plane of the canonical face and backwards (+z, into the head), as
face-profiling methods extend a face mesh. The ring is textured from the photo around the face; the
face mask stays the 898 face triangles only.

Texture atlas: one square texture holds the face (its MediaPipe UVs shrunk by ``ATLAS_FACE_SCALE``
about the centre) and the ring around it, so one UV set and one texture serve the whole head mesh.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from perspnet import landmark_ids as lm
from perspnet.face_model import FaceModel

__all__ = ["HeadTopology", "head_topology", "head_vertices"]

ATLAS_FACE_SCALE = 0.55  # face UVs occupy the central 55% of the atlas
# (outwards factor relative to the oval's distance from the face centre, backwards offset relative to
# the face height) of each ring, inner to outer.
RING_STEPS = ((0.22, 0.10), (0.45, 0.28), (0.75, 0.50))
UV_RING_STEPS = (0.25, 0.50, 0.80)  # outwards factor of each ring in the atlas
RING_ALPHA = (1.0, 1.0, 0.0)  # opacity of each ring: the outer band fades into the background


@dataclass(frozen=True)
class HeadTopology:
    """Fixed topology of the extended head mesh.

    Attributes:
        n_face_verts: vertices of the face mesh (468); ring vertices follow them.
        face_triangles: ``(898, 3)`` the face mesh's triangles.
        ring_triangles: ``(R, 3)`` triangles of the context ring (indices into the extended vertices).
        atlas_uvs: ``(468 + ring, 2)`` texture coordinates in the atlas, [0, 1].
        mirror: ``(468 + ring,)`` index of each vertex's left-right mirror twin.
        alpha: ``(468 + ring,)`` opacity per vertex (1 on the face, fading to 0 at the outer ring).
    """

    n_face_verts: int
    face_triangles: np.ndarray
    ring_triangles: np.ndarray
    atlas_uvs: np.ndarray
    mirror: np.ndarray
    alpha: np.ndarray

    @property
    def triangles(self) -> np.ndarray:
        """``(898 + R, 3)``: face triangles first, then ring triangles."""
        return np.concatenate([self.face_triangles, self.ring_triangles])


def _ring_offsets(points: np.ndarray, centre: np.ndarray, steps) -> list[np.ndarray]:
    """Per ring ``(n_oval, D)``: points pushed away from the centre by each step's factor."""
    return [points + f * (points - centre) for f in steps]


def head_vertices(verts_face: np.ndarray) -> np.ndarray:
    """Extend face vertices ``(..., 468, 3)`` (canonical frame, metres) with the ring -> ``(..., 468 + 108, 3)``."""
    verts_face = np.asarray(verts_face, np.float64)
    oval = verts_face[..., lm.FACE_OVAL, :]
    centre = verts_face.mean(axis=-2, keepdims=True)
    height = verts_face[..., lm.CHIN, 1] - verts_face[..., lm.FOREHEAD, 1]
    rings = []
    for out, back in RING_STEPS:
        ring = oval.copy()
        ring[..., :2] = oval[..., :2] + out * (oval[..., :2] - centre[..., :2])
        ring[..., 2] = oval[..., 2] + back * height[..., None]
        rings.append(ring)
    return np.concatenate([verts_face] + rings, axis=-2)


@lru_cache(maxsize=2)
def _topology(face_model: FaceModel) -> HeadTopology:
    n = face_model.n_verts
    n_oval = len(lm.FACE_OVAL)
    oval_ids = np.asarray(lm.FACE_OVAL)
    ring_start = [n + k * n_oval for k in range(len(RING_STEPS))]
    inner = [oval_ids] + [np.arange(s, s + n_oval) for s in ring_start]
    tris = []
    for a, b in zip(inner[:-1], inner[1:]):
        for i in range(n_oval):
            j = (i + 1) % n_oval
            tris.append((a[i], b[i], b[j]))
            tris.append((a[i], b[j], a[j]))
    ring_tris = np.asarray(tris, np.int32)

    uv_face = 0.5 + (face_model.uvs - 0.5) * ATLAS_FACE_SCALE
    uv_oval = uv_face[oval_ids]
    uv_centre = uv_face.mean(axis=0, keepdims=True)
    atlas = np.concatenate([uv_face] + _ring_offsets(uv_oval, uv_centre, UV_RING_STEPS))

    verts = head_vertices(face_model.verts_face_m)
    # Winding: make ring triangles front-facing like the face (normal z < 0 in the canonical frame).
    e1 = verts[ring_tris[:, 1]] - verts[ring_tris[:, 0]]
    e2 = verts[ring_tris[:, 2]] - verts[ring_tris[:, 0]]
    if np.median(np.cross(e1, e2)[:, 2]) > 0:
        ring_tris = ring_tris[:, [0, 2, 1]]
    mirrored = verts * np.array([-1.0, 1.0, 1.0])
    d2 = ((mirrored[:, None, :] - verts[None, :, :]) ** 2).sum(-1)
    mirror = d2.argmin(axis=1).astype(np.int32)
    alpha = np.concatenate([np.ones(n)] + [np.full(n_oval, a) for a in RING_ALPHA]).astype(np.float32)
    for a in (ring_tris, atlas, mirror, alpha):
        a.setflags(write=False)
    return HeadTopology(n, face_model.triangles, ring_tris, atlas, mirror, alpha)


def head_topology(face_model: FaceModel) -> HeadTopology:
    """The extended head mesh's topology for ``face_model`` (cached)."""
    return _topology(face_model)
