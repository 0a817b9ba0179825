"""ARKitFace's on-disk layout: a loader for it (the official dataset and our synthetic data) and a writer.

Layout (official ARKitFace, Kao et al. 2023; our data engine writes the same)::

    <root>/image/<subject_id>/<facial_action>/<img_id>_ar.jpg
    <root>/info/<subject_id>/<facial_action>/<img_id>_info.npz
    <root>/index.csv                      # columns subject_id, facial_action, img_id[, extra...]
    <root>/npy/projection_matrix.txt      # official data: one 4x4 OpenGL projection for all images
    <root>/topology.npz                   # ours; the official data ships npy/tris_*.npy, npy/uv_coords_*.npy

``_info.npz`` keys:

* ``verts`` ``(1220, 3)`` (ours: ``(n, 3)`` float32), metres, in ARKit's face-anchor frame: x towards the
  viewer's right (the face's left), y up, z out of the face towards the viewer.
* ``R_t`` ``(4, 4)``: the pose as a ROW-vector OpenGL matrix, ``cam_gl_h = verts_h @ R_t``; the OpenGL
  camera has x right, y up, z backwards, so a visible face has ``R_t[3, 2] < 0``.
* ours only: ``K`` ``(3, 3)`` float64 OpenCV intrinsics, ``ipd_mm`` (scalar), optionally ``dist``.

Without ``K`` the camera comes from the projection matrix through ARKitFace's projection chain
(:func:`project_arkit_official`): ``verts_h @ R_t @ M_proj @ M1``, M1 the viewport, divide by the 4th
coordinate, image ``y = h - y``. :func:`K_from_projection_matrix` turns it into our pinhole ``K``.

All ARKit/OpenGL conventions are converted here and nowhere else (see :mod:`perspnet.conventions`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from perspnet.datasets.record import DatasetFormatError, FaceRecord, FaceTopology
from baseio.atomic import atomic_path

__all__ = [
    "FLIP_YZ",
    "encode_jpeg",
    "ARKIT_N_VERTS",
    "INDEX_COLUMNS",
    "K_from_projection_matrix",
    "projection_matrix_from_K",
    "project_arkit_official",
    "viewport_matrix",
    "pose_from_arkit_R_t",
    "arkit_R_t_from_pose",
    "load_projection_matrix",
    "ArkitLayoutDataset",
    "ArkitLayoutWriter",
]

# diag(1, -1, -1), a rotation of 180 degrees about x. It maps ARKit's face-anchor frame (y up, z out of the
# face) to our canonical face frame (y down, z into the head), and the OpenGL camera frame (y up, z backwards)
# to the OpenCV camera frame (y down, z forward). It is its own inverse.
FLIP_YZ = np.diag([1.0, -1.0, -1.0])

ARKIT_N_VERTS = 1220  # vertices of ARKit's face mesh (ARFaceGeometry)
INDEX_COLUMNS = ("subject_id", "facial_action", "img_id")
JPEG_QUALITY = 95
PROJECTION_MATRIX_FILE = Path("npy") / "projection_matrix.txt"
# The official release's topology files; their 1279 rows are the 1220 mesh vertices + 59 derived ones.
OFFICIAL_TRIANGLES_FILE = Path("npy") / "tris_2500x3_202110.npy"
OFFICIAL_UVS_FILE = Path("npy") / "uv_coords_std_202109.npy"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


# --------------------------------------------------------------------------------------------- camera

def viewport_matrix(width: int, height: int) -> np.ndarray:
    """ARKitFace's row-vector viewport ``M1`` ``(4, 4)``: NDC [-1, 1] -> [0, width] x [0, height] (y up)."""
    w2, h2 = width / 2.0, height / 2.0
    return np.array([[w2, 0, 0, 0], [0, h2, 0, 0], [0, 0, 1, 0], [w2, h2, 0, 1]], dtype=np.float64)


def project_arkit_official(verts_arkit: np.ndarray, R_t: np.ndarray, M_proj: np.ndarray,
                           width: int, height: int) -> np.ndarray:
    """ARKitFace's own projection chain, kept as the reference our ``K`` is checked against.

    Args:
        verts_arkit: ``(N, 3)`` points in ARKit's face-anchor frame, metres.
        R_t: ``(4, 4)`` row-vector OpenGL pose (``cam_gl_h = verts_h @ R_t``).
        M_proj: ``(4, 4)`` row-vector OpenGL projection matrix.
        width, height: image size in pixels.

    Returns:
        ``(N, 2)`` float64 pixels ``(x right, y down)``: ``verts_h @ R_t @ M_proj @ M1``, divided by the
        4th coordinate, then ``y = height - y``.
    """
    v = np.asarray(verts_arkit, dtype=np.float64)
    vh = np.concatenate([v, np.ones((v.shape[0], 1))], axis=1)
    p = vh @ np.asarray(R_t, np.float64) @ np.asarray(M_proj, np.float64) @ viewport_matrix(width, height)
    p = p / p[:, 3:4]
    return np.stack([p[:, 0], height - p[:, 1]], axis=1)


def K_from_projection_matrix(M_proj: np.ndarray, width: int, height: int) -> np.ndarray:
    """OpenCV intrinsics ``(3, 3)`` equivalent to ARKitFace's projection chain for a ``width x height`` image.

    With ``P = M_proj`` (row-vector, so ``clip = [x_gl, y_gl, z_gl, 1] @ P``), ``s = -P[2, 3]`` (1 for
    ARKit), camera points ``(x, y, z)`` in OpenCV axes (``x_gl = x, y_gl = -y, z_gl = -z``)::

        fx = P[0, 0] * width / (2 s)      cx = width / 2 * (1 - P[2, 0] / s)
        fy = P[1, 1] * height / (2 s)     cy = height / 2 * (1 + P[2, 1] / s)

    so that ``K @ X_cam / z`` equals the official chain's pixels exactly (verified for random poses in
    ``tests/test_datasets.py``). Half-pixel convention: we take the chain's output as pixel coordinates
    with pixel centres at integers, as the official code does (it crops, warps and runs PnP with them
    directly). A strict OpenGL-viewport reading would put pixel centres at +0.5 and shift ``cx, cy`` by
    -0.5 px; we do not apply that shift.

    Raises:
        ValueError: ``M_proj`` is not a row-vector OpenGL perspective matrix without skew (e.g. it was
            given transposed, column-vector style).
    """
    P = np.asarray(M_proj, dtype=np.float64)
    if P.shape != (4, 4):
        raise ValueError(f"projection matrix: expected shape (4, 4), got {P.shape}")
    must_be_zero = [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3), (3, 0), (3, 1), (3, 3)]
    scale = max(abs(P[0, 0]), abs(P[1, 1]), 1.0)
    bad = [ij for ij in must_be_zero if abs(P[ij]) > 1e-9 * scale]
    if bad or not P[2, 3] < 0 or P[0, 0] <= 0 or P[1, 1] <= 0:
        hint = " (it looks transposed: ARKitFace's matrix is row-vector, P[2, 3] = -1)" if P[3, 2] == -1 else ""
        raise ValueError(f"projection matrix is not a row-vector OpenGL perspective matrix without skew{hint}: "
                         f"{np.array2string(P, separator=',').replace(chr(10), '')}")
    s = -P[2, 3]
    return np.array([
        [P[0, 0] * width / (2.0 * s), 0.0, width / 2.0 * (1.0 - P[2, 0] / s)],
        [0.0, P[1, 1] * height / (2.0 * s), height / 2.0 * (1.0 + P[2, 1] / s)],
        [0.0, 0.0, 1.0],
    ])


def projection_matrix_from_K(K: np.ndarray, width: int, height: int,
                             near_m: float = 0.001, far_m: float = 1000.0) -> np.ndarray:
    """Row-vector OpenGL projection ``(4, 4)`` whose ARKitFace chain reproduces ``K`` (inverse of
    :func:`K_from_projection_matrix`); ``near_m``/``far_m`` only set the depth rows."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or K[0, 1] != 0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise ValueError(f"K: expected a (3, 3) pinhole matrix without skew, got {K.tolist()}")
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * K[0, 0] / width
    P[1, 1] = 2.0 * K[1, 1] / height
    P[2, 0] = 1.0 - 2.0 * K[0, 2] / width
    P[2, 1] = 2.0 * K[1, 2] / height - 1.0
    P[2, 2] = -(far_m + near_m) / (far_m - near_m)
    P[2, 3] = -1.0
    P[3, 2] = -2.0 * far_m * near_m / (far_m - near_m)
    return P


def load_projection_matrix(path: str | os.PathLike) -> np.ndarray:
    """Read ``npy/projection_matrix.txt`` (4 rows of 4 numbers) as a ``(4, 4)`` float64 array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: projection matrix file not found")
    try:
        P = np.loadtxt(path, dtype=np.float64)
    except ValueError as e:
        raise DatasetFormatError(f"{path}: not a 4x4 text matrix ({e})") from None
    if P.shape != (4, 4):
        raise DatasetFormatError(f"{path}: expected a 4x4 matrix, got shape {P.shape}")
    try:
        K_from_projection_matrix(P, 2, 2)  # validate the form once, at load time
    except ValueError as e:
        raise DatasetFormatError(f"{path}: {e}") from None
    return P


# ----------------------------------------------------------------------------------------------- pose

def pose_from_arkit_R_t(R_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ARKitFace row-vector OpenGL ``R_t`` ``(4, 4)`` -> ``(R_cam_face (3, 3), t_cam_face (3,) metres)``.

    ``R_gl = R_t[:3, :3].T``, ``t_gl = R_t[3, :3]`` act on ARKit face points, giving OpenGL camera points;
    conjugating by :data:`FLIP_YZ` on both sides gives canonical face -> OpenCV camera. Only signs change,
    so the conversion is exact.
    """
    R_t = np.asarray(R_t, dtype=np.float64)
    R_gl, t_gl = R_t[:3, :3].T, R_t[3, :3]
    return FLIP_YZ @ R_gl @ FLIP_YZ, FLIP_YZ @ t_gl


def arkit_R_t_from_pose(R_cam_face: np.ndarray, t_cam_face: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pose_from_arkit_R_t`: our pose -> ARKitFace's ``(4, 4)`` row-vector OpenGL ``R_t``."""
    R_t = np.eye(4)
    R_t[:3, :3] = (FLIP_YZ @ np.asarray(R_cam_face, np.float64) @ FLIP_YZ).T
    R_t[3, :3] = FLIP_YZ @ np.asarray(t_cam_face, np.float64)
    return R_t


def _check_R_t(R_t: np.ndarray, path: Path) -> None:
    if R_t.shape != (4, 4):
        raise DatasetFormatError(f"{path}: 'R_t' must have shape (4, 4), got {R_t.shape}")
    if not np.all(np.isfinite(R_t)):
        raise DatasetFormatError(f"{path}: 'R_t' has non-finite entries")
    if np.abs(R_t[:3, 3]).max() > 1e-6 or abs(R_t[3, 3] - 1.0) > 1e-6:
        raise DatasetFormatError(f"{path}: 'R_t' is not a row-vector affine matrix (last column must be "
                                 f"[0, 0, 0, 1], got {R_t[:, 3].tolist()}; was it stored column-vector style?)")
    R = R_t[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) <= 0:
        raise DatasetFormatError(f"{path}: 'R_t'[:3, :3] is not a rotation (det {np.linalg.det(R):.6f})")
    if not R_t[3, 2] < 0:
        raise DatasetFormatError(f"{path}: 'R_t'[3, 2] = {R_t[3, 2]:.6g} >= 0: the face is not in front of the "
                                 f"OpenGL camera (z backwards)")


# --------------------------------------------------------------------------------------------- loader

class ArkitLayoutDataset:
    """Random access to a dataset in ARKitFace's layout; each item is a :class:`FaceRecord` in our frames.

    Args:
        root: dataset root (holds ``image/`` and ``info/``).
        csv_path: index CSV with columns ``subject_id, facial_action, img_id`` (read as strings, extra
            columns kept in :attr:`index`); default ``<root>/index.csv``.
        topology: a :class:`FaceTopology`; or a path to a ``topology.npz``; or a pair
            ``(triangles_npy, uvs_npy)`` of ARKitFace-style ``.npy`` files (trimmed to 1220 vertices, see
            :meth:`FaceTopology.from_npy`). Default: ``<root>/topology.npz``, else the official
            ``<root>/npy/tris_2500x3_202110.npy`` + ``<root>/npy/uv_coords_std_202109.npy``.
        projection_matrix: ``(4, 4)`` row-vector OpenGL projection, or a path to its text file, used for items
            whose npz has no ``K``. Default: ``<root>/npy/projection_matrix.txt`` if it exists.

    Attributes:
        index: the CSV as a DataFrame (one row per item).
        topology: the :class:`FaceTopology` of every item's ``verts_face_m``.
        projection_matrix: ``(4, 4)`` or ``None``.
    """

    def __init__(self, root: str | os.PathLike, csv_path: str | os.PathLike | None = None,
                 topology: FaceTopology | str | os.PathLike | tuple | None = None,
                 projection_matrix: np.ndarray | str | os.PathLike | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset root not found")
        self.csv_path = Path(csv_path) if csv_path is not None else self.root / "index.csv"
        self.index = self._read_index(self.csv_path)
        self.topology = self._resolve_topology(topology)
        self.projection_matrix = self._resolve_projection(projection_matrix)

    @staticmethod
    def _read_index(csv_path: Path) -> pd.DataFrame:
        if not csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: index CSV not found")
        try:
            # Only empty fields are missing values: ids such as "NA" or "nan" stay strings.
            df = pd.read_csv(csv_path, dtype={c: str for c in INDEX_COLUMNS}, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DatasetFormatError(f"{csv_path}: unreadable CSV ({str(e).splitlines()[0]})") from None
        missing = [c for c in INDEX_COLUMNS if c not in df.columns]
        if missing:
            raise DatasetFormatError(f"{csv_path}: missing column(s) {missing}; has {list(df.columns)}")
        empty = df[list(INDEX_COLUMNS)].isna().any(axis=1).to_numpy()
        if empty.any():
            rows = (np.flatnonzero(empty) + 1).tolist()[:10]
            raise DatasetFormatError(f"{csv_path}: empty id field(s) in data row(s) {rows}")
        return df.reset_index(drop=True)

    def _resolve_topology(self, topology) -> FaceTopology:
        if isinstance(topology, FaceTopology):
            return topology
        if isinstance(topology, tuple):
            tris_npy, uvs_npy = topology
            return FaceTopology.from_npy(tris_npy, uvs_npy, name="arkitface1220", n_verts=ARKIT_N_VERTS)
        if topology is not None:
            return FaceTopology.load(topology)
        own = self.root / "topology.npz"
        if own.is_file():
            return FaceTopology.load(own)
        tris, uvs = self.root / OFFICIAL_TRIANGLES_FILE, self.root / OFFICIAL_UVS_FILE
        if tris.is_file() and uvs.is_file():
            return FaceTopology.from_npy(tris, uvs, name="arkitface1220", n_verts=ARKIT_N_VERTS)
        raise FileNotFoundError(
            f"{own}: no mesh topology found (nor {tris} + {uvs}); pass topology=FaceTopology(...), "
            f"a topology.npz path, or (triangles_npy, uvs_npy)")

    def _resolve_projection(self, projection_matrix) -> np.ndarray | None:
        if projection_matrix is None:
            default = self.root / PROJECTION_MATRIX_FILE
            if not default.is_file():
                return None
            projection_matrix = default
        if isinstance(projection_matrix, (str, os.PathLike)):
            return load_projection_matrix(projection_matrix)
        P = np.asarray(projection_matrix, dtype=np.float64)
        K_from_projection_matrix(P, 2, 2)  # raises ValueError on a malformed matrix
        return P

    def __len__(self) -> int:
        return len(self.index)

    def _row(self, i: int) -> tuple[str, str, str]:
        n = len(self.index)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items ({self.csv_path})")
        row = self.index.iloc[i]
        return str(row["subject_id"]), str(row["facial_action"]), str(row["img_id"])

    def image_path(self, i: int) -> Path:
        """``<root>/image/<subject_id>/<facial_action>/<img_id>_ar.jpg`` of item ``i``."""
        s, a, k = self._row(i)
        return self.root / "image" / s / a / f"{k}_ar.jpg"

    def info_path(self, i: int) -> Path:
        """``<root>/info/<subject_id>/<facial_action>/<img_id>_info.npz`` of item ``i``."""
        s, a, k = self._row(i)
        return self.root / "info" / s / a / f"{k}_info.npz"

    def __getitem__(self, i: int) -> FaceRecord:
        return self.load(i)

    def load(self, i: int, reduction: Callable[[np.ndarray, np.ndarray], int] | None = None) -> FaceRecord:
        """Item ``i``; ``reduction(K (3, 3), verts_cam_m (n, 3)) -> k`` in 1, 2, 4, 8, given the full-size
        camera and the camera-frame mesh (metres), has the image decoded ``k`` times smaller
        (``cv2.IMREAD_REDUCED_COLOR_k``: each pixel the mean of a ``k x k`` block) and ``K`` scaled to it."""
        subject, action, img_id = self._row(i)
        img_path, npz_path = self.image_path(i), self.info_path(i)
        info = _read_info_npz(npz_path)
        verts = info["verts"]
        if verts.ndim != 2 or verts.shape[1] != 3:
            raise DatasetFormatError(f"{npz_path}: 'verts' must have shape (n, 3), got {verts.shape}")
        if verts.shape[0] != self.topology.n_verts:
            raise DatasetFormatError(f"{npz_path}: 'verts' has {verts.shape[0]} vertices, topology "
                                     f"'{self.topology.name}' has {self.topology.n_verts}")
        R_t = info["R_t"].astype(np.float64)
        _check_R_t(R_t, npz_path)
        R_cam_face, t_cam_face = pose_from_arkit_R_t(R_t)
        verts_face_m = verts.astype(np.float64) @ FLIP_YZ  # ARKit face-anchor frame -> canonical face frame

        if "K" in info:
            K = info["K"].astype(np.float64)
            if K.shape != (3, 3):
                raise DatasetFormatError(f"{npz_path}: 'K' must have shape (3, 3), got {K.shape}")
        elif self.projection_matrix is not None:
            w, h = _image_size(img_path)
            K = K_from_projection_matrix(self.projection_matrix, w, h)
        else:
            raise FileNotFoundError(f"{npz_path}: has no 'K' and no projection matrix was given or found at "
                                    f"{self.root / PROJECTION_MATRIX_FILE}")
        k = 1 if reduction is None else reduction(K, verts_face_m @ R_cam_face.T + t_cam_face)
        image_rgb = _read_jpg_rgb(img_path, k)
        if k > 1:  # reduced pixel i is the mean of full pixels [i k, (i + 1) k): x' = (x + 0.5) / k - 0.5
            K = np.diag([1 / k, 1 / k, 1.0]) @ K
            K[:2, 2] += (1 / k - 1) / 2
        ipd = info.get("ipd_mm")
        ipd_mm = None if ipd is None or not np.isfinite(ipd).all() else float(ipd)
        dist = info.get("dist")
        return FaceRecord(image_rgb=image_rgb, K=K, R_cam_face=R_cam_face, t_cam_face=t_cam_face,
                          verts_face_m=verts_face_m, subject=subject, action=action, img_id=img_id,
                          ipd_mm=ipd_mm, dist=None if dist is None else dist.astype(np.float64).ravel())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _read_info_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: info npz not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            info = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise DatasetFormatError(f"{path}: not a readable .npz ({e})") from None
    missing = [k for k in ("verts", "R_t") if k not in info]
    if missing:
        raise DatasetFormatError(f"{path}: missing key(s) {missing}; has {sorted(info)}")
    return info


_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


def _read_jpg_rgb(path: Path, reduction: int = 1) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    if reduction not in _REDUCED_FLAGS:
        raise ValueError(f"{path}: decode reduction must be one of {sorted(_REDUCED_FLAGS)}, got {reduction}")
    bgr = cv2.imread(str(path), _REDUCED_FLAGS[reduction])
    if bgr is None:
        raise DatasetFormatError(f"{path}: cannot decode image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # IO edge: OpenCV decodes BGR, the library works in RGB


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetFormatError(f"{path}: cannot read image header ({e})") from None


# --------------------------------------------------------------------------------------------- writer

class ArkitLayoutWriter:
    """Writes :class:`FaceRecord` s in ARKitFace's layout, readable by :class:`ArkitLayoutDataset`.

    Each file is written atomically (temporary name, then ``os.replace``), so a crashed run leaves no
    truncated file. :meth:`close` writes ``index.csv`` and ``topology.npz``; use the writer as a context
    manager or call :meth:`close`. One writer per root: ``close`` replaces an existing ``index.csv``.

    Args:
        root: output root; created if missing.
        topology: the records' mesh topology; default :meth:`FaceTopology.mediapipe` (468 vertices).
    """

    def __init__(self, root: str | os.PathLike, topology: FaceTopology | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.topology = topology if topology is not None else FaceTopology.mediapipe()
        self._rows: list[dict] = []
        self._keys: set[tuple[str, str, str]] = set()
        self._closed = False

    def __enter__(self) -> ArkitLayoutWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, record: FaceRecord, extra: dict | None = None, jpg: bytes | None = None) -> None:
        """Write ``record``'s jpg and npz; ``extra`` (column -> scalar) goes into its ``index.csv`` row.
        ``jpg``: ``record.image_rgb`` already encoded by :func:`encode_jpeg` (e.g. in another process)."""
        if self._closed:
            raise RuntimeError(f"{self.root}: writer already closed")
        key = (record.subject, record.action, record.img_id)
        for name, value in zip(INDEX_COLUMNS, key):
            if not _SAFE_ID.match(value):
                raise ValueError(f"{name} {value!r}: use letters, digits, '_', '-', '.' (it becomes a path part)")
        if key in self._keys:
            raise ValueError(f"duplicate record {key} in {self.root}")
        extra = dict(extra or {})
        clash = set(extra) & set(INDEX_COLUMNS)
        if clash:
            raise ValueError(f"extra columns {sorted(clash)} clash with the index columns")
        if record.verts_face_m is None:
            raise ValueError(f"record {key}: the ARKit layout needs verts_face_m")
        if record.verts_face_m.shape[0] != self.topology.n_verts:
            raise ValueError(f"record {key}: {record.verts_face_m.shape[0]} vertices, topology "
                             f"'{self.topology.name}' has {self.topology.n_verts}")

        subject, action, img_id = key
        img_path = self.root / "image" / subject / action / f"{img_id}_ar.jpg"
        npz_path = self.root / "info" / subject / action / f"{img_id}_info.npz"
        if jpg is None:
            jpg = encode_jpeg(record.image_rgb, img_path)
        arrays = {
            "verts": (record.verts_face_m @ FLIP_YZ).astype(np.float32),  # canonical -> ARKit face-anchor frame
            "R_t": arkit_R_t_from_pose(record.R_cam_face, record.t_cam_face),
            "K": record.K.astype(np.float64),
        }
        if record.ipd_mm is not None:
            arrays["ipd_mm"] = np.float64(record.ipd_mm)
        if record.dist is not None:
            arrays["dist"] = record.dist.astype(np.float64)
        _write_bytes_atomic(img_path, jpg)
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(npz_path) as tmp, open(tmp, "wb") as f:  # file object: numpy adds no suffix
            np.savez(f, **arrays)
        self._keys.add(key)
        self._rows.append({**dict(zip(INDEX_COLUMNS, key)), **extra})

    def close(self) -> None:
        """Write ``index.csv`` (index columns, then the extra columns in first-seen order) and ``topology.npz``."""
        if self._closed:
            return
        self._closed = True
        columns = list(INDEX_COLUMNS)
        for row in self._rows:
            columns += [c for c in row if c not in columns]
        df = pd.DataFrame(self._rows, columns=columns)
        with atomic_path(self.root / "index.csv") as tmp, open(tmp, "w", newline="") as f:
            df.to_csv(f, index=False)
        with atomic_path(self.root / "topology.npz") as tmp, open(tmp, "wb") as f:
            self.topology.save(f)


def encode_jpeg(image_rgb: np.ndarray, name: str | os.PathLike = "image") -> bytes:
    """``(H, W, 3)`` uint8 RGB -> the JPEG bytes :class:`ArkitLayoutWriter` stores (quality ``JPEG_QUALITY``)."""
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)  # IO edge: OpenCV encodes BGR
    ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"{name}: JPEG encoding failed")
    return jpg.tobytes()


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
