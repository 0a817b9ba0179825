"""The in-memory form of one labelled face image, and the mesh topology that goes with a dataset.

Every loader (:mod:`perspnet.datasets.arkit`, :mod:`perspnet.datasets.biwi`) returns a :class:`FaceRecord`
already in the project's frames (:mod:`perspnet.conventions`): OpenCV camera, canonical face frame,
metres, RGB ``uint8`` images. Dataset conventions never leave their loader module.

A :class:`FaceTopology` is the fixed connectivity of a dataset's meshes (triangles and texture
coordinates); records carry only vertex positions. It is stored next to the data as ``topology.npz``
with keys ``name`` (0-d unicode), ``triangles`` ``(F, 3)`` int32 and ``uvs`` ``(n, 2)`` float64.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["DatasetFormatError", "FaceRecord", "FaceTopology"]


class DatasetFormatError(ValueError):
    """A dataset file exists but does not hold what its layout promises (keys, shapes, values).

    The message is one line and starts with the offending file's path.
    """


def _as_array(name: str, value, shape: tuple, dtype) -> np.ndarray:
    """``value`` as an array of ``dtype``; ``shape`` entries of ``None`` match any size."""
    a = np.asarray(value, dtype=dtype)
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"FaceRecord.{name}: expected shape {want}, got {a.shape}")
    return a


@dataclass(eq=False)
class FaceRecord:
    """One face image with its camera and ground truth, in the project's frames and units.

    Attributes:
        image_rgb: ``(H, W, 3)`` uint8, RGB.
        K: ``(3, 3)`` float64 pinhole intrinsics for ``image_rgb``, pixels (centres at integers).
        R_cam_face: ``(3, 3)`` float64 rotation, canonical face frame -> OpenCV camera frame.
        t_cam_face: ``(3,)`` float64, the face frame's origin in the camera frame, metres;
            ``X_cam = R_cam_face @ X_face + t_cam_face``. (For BIWI the origin is BIWI's head-model
            origin, see :mod:`perspnet.datasets.biwi`.)
        verts_face_m: ``(n, 3)`` float64 mesh vertices in the canonical face frame, metres; ``None``
            where the dataset has no per-image mesh (BIWI).
        subject: subject id, e.g. ``"0001"``.
        action: facial-action / sequence id (``""`` where the dataset has none).
        img_id: image id within (subject, action), a string (leading zeros matter).
        ipd_mm: the subject's inter-pupillary distance in millimetres, or ``None`` if unknown.
        dist: OpenCV distortion coefficients ``(k,)`` (k1, k2, p1, p2[, k3...]) for ``image_rgb``, or
            ``None`` for an undistorted image.
    """

    image_rgb: np.ndarray
    K: np.ndarray
    R_cam_face: np.ndarray
    t_cam_face: np.ndarray
    verts_face_m: np.ndarray | None
    subject: str
    action: str
    img_id: str
    ipd_mm: float | None = None
    dist: np.ndarray | None = None

    def __post_init__(self) -> None:
        img = np.asarray(self.image_rgb)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"FaceRecord.image_rgb: expected (H, W, 3) uint8, got {img.shape} {img.dtype}")
        self.image_rgb = img
        self.K = _as_array("K", self.K, (3, 3), np.float64)
        self.R_cam_face = _as_array("R_cam_face", self.R_cam_face, (3, 3), np.float64)
        self.t_cam_face = _as_array("t_cam_face", self.t_cam_face, (3,), np.float64)
        if self.verts_face_m is not None:
            self.verts_face_m = _as_array("verts_face_m", self.verts_face_m, (None, 3), np.float64)
        if self.dist is not None:
            self.dist = _as_array("dist", self.dist, (None,), np.float64)
        if self.ipd_mm is not None:
            self.ipd_mm = float(self.ipd_mm)
        self.subject, self.action, self.img_id = str(self.subject), str(self.action), str(self.img_id)

    @property
    def image_size_wh(self) -> tuple[int, int]:
        """``(width, height)`` of ``image_rgb`` in pixels."""
        return int(self.image_rgb.shape[1]), int(self.image_rgb.shape[0])

    @property
    def verts_cam_m(self) -> np.ndarray | None:
        """``(n, 3)`` float64 mesh vertices in the camera frame, metres (``R @ X + t``); ``None`` without a mesh."""
        if self.verts_face_m is None:
            return None
        return self.verts_face_m @ self.R_cam_face.T + self.t_cam_face


@dataclass(frozen=True, eq=False)
class FaceTopology:
    """Mesh connectivity shared by all records of a dataset.

    Attributes:
        name: e.g. ``"mediapipe468"``, ``"arkitface1220"``.
        triangles: ``(F, 3)`` int32 vertex indices into the records' ``verts_face_m``.
        uvs: ``(n, 2)`` float64 texture coordinates in [0, 1], one per vertex; ``n`` is the vertex count.
    """

    name: str
    triangles: np.ndarray
    uvs: np.ndarray

    def __post_init__(self) -> None:
        tris = np.asarray(self.triangles)
        uvs = np.asarray(self.uvs, dtype=np.float64)
        if tris.ndim != 2 or tris.shape[1] != 3 or not np.issubdtype(tris.dtype, np.integer):
            raise ValueError(f"FaceTopology.triangles: expected (F, 3) integers, got {tris.shape} {tris.dtype}")
        if uvs.ndim != 2 or uvs.shape[1] != 2:
            raise ValueError(f"FaceTopology.uvs: expected (n, 2), got {uvs.shape}")
        if tris.size and (tris.min() < 0 or tris.max() >= uvs.shape[0]):
            raise ValueError(
                f"FaceTopology.triangles: indices must lie in [0, {uvs.shape[0]}), got [{tris.min()}, {tris.max()}]")
        object.__setattr__(self, "triangles", tris.astype(np.int32))
        object.__setattr__(self, "uvs", uvs)
        object.__setattr__(self, "name", str(self.name))

    @property
    def n_verts(self) -> int:
        return int(self.uvs.shape[0])

    @classmethod
    def mediapipe(cls, bundle: str | os.PathLike | None = None) -> FaceTopology:
        """MediaPipe's 468-vertex canonical mesh topology, from :func:`perspnet.face_model.load_face_model`."""
        from perspnet.face_model import load_face_model

        model = load_face_model(bundle)
        return cls("mediapipe468", np.array(model.triangles), np.array(model.uvs))

    def save(self, file: str | os.PathLike | BinaryIO) -> None:
        """Write ``name``, ``triangles``, ``uvs`` as an ``.npz`` to a path or an open binary file.

        Written exactly where asked (numpy appends no suffix when given a file object); callers that need
        atomicity pass a temporary file (see :class:`perspnet.datasets.arkit.ArkitLayoutWriter`).
        """
        arrays = dict(name=np.array(self.name), triangles=self.triangles, uvs=self.uvs)
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as f:
                np.savez(f, **arrays)
        else:
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceTopology:
        """Read a ``topology.npz`` written by :meth:`save`; clear one-line errors naming the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: topology file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"triangles", "uvs"} - set(z.files)
                if missing:
                    raise DatasetFormatError(f"{path}: missing key(s) {sorted(missing)}; has {sorted(z.files)}")
                name = str(z["name"]) if "name" in z.files else path.stem
                return cls(name, z["triangles"], z["uvs"])
        except DatasetFormatError:
            raise
        except ValueError as e:
            raise DatasetFormatError(f"{path}: {e}") from None
        except OSError as e:
            raise DatasetFormatError(f"{path}: not a readable .npz ({e})") from None

    @classmethod
    def from_npy(cls, triangles_npy: str | os.PathLike, uvs_npy: str | os.PathLike, name: str,
                 n_verts: int | None = None) -> FaceTopology:
        """Build a topology from separate ``.npy`` files (ARKitFace ships ``npy/tris_*.npy``, ``npy/uv_coords_*.npy``).

        Args:
            triangles_npy: ``(F, 3)`` integer vertex indices.
            uvs_npy: ``(m, 2)`` texture coordinates.
            name: the topology's name.
            n_verts: the dataset meshes' vertex count. ARKitFace's UV files cover 1279 vertices, its 1220 mesh
                vertices followed by 59 derived ones (a scaled face contour and mouth/eye centres) used only
                to render UV position maps; with ``n_verts`` set, UVs beyond it and triangles that use them
                are dropped so the topology matches the meshes in the ``_info.npz`` files.
        """
        arrays = []
        for p in (Path(triangles_npy), Path(uvs_npy)):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: topology .npy file not found")
            try:
                arrays.append(np.load(p, allow_pickle=False))
            except (ValueError, OSError) as e:
                raise DatasetFormatError(f"{p}: not a readable .npy ({e})") from None
        tris, uvs = arrays
        if tris.ndim != 2 or tris.shape[1] != 3:
            raise DatasetFormatError(f"{triangles_npy}: expected (F, 3) triangles, got {tris.shape}")
        if uvs.ndim != 2 or uvs.shape[1] != 2:
            raise DatasetFormatError(f"{uvs_npy}: expected (n, 2) uvs, got {uvs.shape}")
        if n_verts is not None:
            if uvs.shape[0] < n_verts:
                raise DatasetFormatError(f"{uvs_npy}: has {uvs.shape[0]} uvs, the meshes have {n_verts} vertices")
            tris = tris[(tris < n_verts).all(axis=1)]
            uvs = uvs[:n_verts]
        try:
            return cls(name, tris.astype(np.int64), uvs)
        except ValueError as e:
            raise DatasetFormatError(f"{triangles_npy}: {e}") from None
