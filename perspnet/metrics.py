"""Evaluation metrics of PerspNet's Table 2 (6DoF pose) and Table 4 (3D shape), plus IPD-sized variants.

Per sample (:func:`sample_metrics`), from a predicted pose and canonical mesh and the ground truth ones:

* ``yaw pitch roll``: absolute Euler-angle errors, degrees, each wrapped to [0, 180]
  (179 vs -179 is 2 degrees). Euler angles as in :mod:`perspnet.conventions` (``R = Ry Rx Rz``).
  ``mae_r`` = mean of the three.
* ``tx ty tz``: absolute errors of ``t_cam_face`` per camera axis, mm. ``mae_t`` = mean of the three.
* ``add``: mean over vertices of ``|| R_pred V_pred + t_pred - (R_gt V_gt + t_gt) ||``, mm: the predicted
  mesh in the camera against the true one, so it scores pose and shape together. The PerspNet authors'
  test code (github.com/cbsropenproject/6dof_face, ``models/perspnet_model.py``) instead moves the *true*
  mesh by both poses (a pose-only ADD); pass ``verts_pred_face=verts_gt_face`` to get that one.
* ``shape_mm``: mean over vertices of ``|| V_pred - V_gt ||`` in the canonical face frame, mm, with **no
  alignment**: PerspNet predicts the shape in the canonical frame, where the ground truth lives too, and
  the authors' test code ("3DRecon") compares the two directly. Table 4's "median" and "mean" are the
  median and the mean of this per-sample error over the test set (the authors' code keeps one mean
  vertex error per image and reports the mean, with the median in a comment beside it).
* ``mae_t_sized`` / ``add_sized``: ``mae_t`` and ``add`` after rescaling the prediction about the camera
  centre, ``X_cam = s (R_pred V_pred + t_pred)`` (shape and translation together, so the image does not
  change), with ``s = IPD(V_gt) / IPD(V_pred)``: a monocular method that gets the face size wrong gets
  its distance wrong by the same factor, and this removes that one error.

Aggregated (:func:`aggregate_metrics`): the mean over samples of each per-sample value, the median and
mean of ``shape_mm`` as ``shape_median_mm`` / ``shape_mean_mm``, and ``n``. A failed sample left as NaN
turns the means into NaN rather than being silently dropped; decide the failure policy before calling.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from baseio.schema import EVAL_JSON
from perspnet.conventions import MM_PER_M, euler_deg_from_matrix, transform_points
from perspnet.face_model import FaceModel, load_face_model

__all__ = [
    "SampleMetrics",
    "METRIC_KEYS",
    "wrap_deg",
    "euler_abs_error_deg",
    "ipd_scale",
    "sample_metrics",
    "aggregate_metrics",
    "format_table",
]

# Keys of the aggregated JSON object, in the order of the paper's Table 2, then Table 4, then ours.
# perspnet-eval's JSON, documented in docs/outputs.md; "failures" is counted by the caller
METRIC_KEYS = tuple(name.split(".", 1)[1] for name in EVAL_JSON.names[1:] if name != "<method>.failures")


@dataclass(frozen=True)
class SampleMetrics:
    """Errors of one sample; angles in degrees, lengths in millimetres (see the module doc)."""

    yaw: float
    pitch: float
    roll: float
    mae_r: float
    tx: float
    ty: float
    tz: float
    mae_t: float
    add: float
    shape_mm: float
    mae_t_sized: float
    add_sized: float


def wrap_deg(angle_deg: np.ndarray) -> np.ndarray:
    """Angles (any shape), degrees -> the same angles in [-180, 180)."""
    return (np.asarray(angle_deg, dtype=np.float64) + 180.0) % 360.0 - 180.0


def euler_abs_error_deg(R_pred: np.ndarray, R_gt: np.ndarray) -> np.ndarray:
    """Absolute wrapped (yaw, pitch, roll) errors ``(..., 3)`` in [0, 180] degrees of rotations ``(..., 3, 3)``."""
    return np.abs(wrap_deg(euler_deg_from_matrix(R_pred) - euler_deg_from_matrix(R_gt)))


def ipd_scale(verts_pred_face: np.ndarray, verts_gt_face: np.ndarray, face_model: FaceModel) -> float:
    """``s = IPD(verts_gt) / IPD(verts_pred)`` for ``(468, 3)`` canonical meshes (any common unit)."""
    return float(face_model.ipd_m(verts_gt_face) / face_model.ipd_m(verts_pred_face))


def sample_metrics(R_pred: np.ndarray, t_pred: np.ndarray, verts_pred_face: np.ndarray,
                   R_gt: np.ndarray, t_gt: np.ndarray, verts_gt_face: np.ndarray,
                   face_model: FaceModel | None = None) -> SampleMetrics:
    """Errors of one prediction against the ground truth.

    Args:
        R_pred, R_gt: ``(3, 3)`` rotations ``R_cam_face`` (canonical face -> OpenCV camera).
        t_pred, t_gt: ``(3,)`` translations ``t_cam_face``, camera frame, metres.
        verts_pred_face, verts_gt_face: ``(468, 3)`` canonical meshes (same vertex order), canonical face
            frame, metres.
        face_model: supplies the eye landmarks for the IPD; :func:`load_face_model` when None.

    Returns:
        :class:`SampleMetrics` (degrees, millimetres).
    """
    face_model = load_face_model() if face_model is None else face_model
    t_pred = np.asarray(t_pred, dtype=np.float64).reshape(3)
    t_gt = np.asarray(t_gt, dtype=np.float64).reshape(3)
    ypr = euler_abs_error_deg(R_pred, R_gt)
    t_err_mm = np.abs(t_pred - t_gt) * MM_PER_M
    verts_cam_pred = transform_points(R_pred, t_pred, verts_pred_face)
    verts_cam_gt = transform_points(R_gt, t_gt, verts_gt_face)
    s = ipd_scale(verts_pred_face, verts_gt_face, face_model)

    def mean_dist_mm(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b, axis=-1).mean() * MM_PER_M)

    return SampleMetrics(
        yaw=float(ypr[0]), pitch=float(ypr[1]), roll=float(ypr[2]), mae_r=float(ypr.mean()),
        tx=float(t_err_mm[0]), ty=float(t_err_mm[1]), tz=float(t_err_mm[2]), mae_t=float(t_err_mm.mean()),
        add=mean_dist_mm(verts_cam_pred, verts_cam_gt),
        shape_mm=mean_dist_mm(np.asarray(verts_pred_face), np.asarray(verts_gt_face)),
        mae_t_sized=float(np.abs(s * t_pred - t_gt).mean() * MM_PER_M),
        add_sized=mean_dist_mm(s * verts_cam_pred, verts_cam_gt),
    )


def aggregate_metrics(samples: Sequence[SampleMetrics]) -> dict[str, float | int]:
    """The JSON object of a test set: keys :data:`METRIC_KEYS`, degrees and millimetres, ``n`` samples.

    Every key is the mean over samples of the per-sample value, except ``shape_median_mm`` and
    ``shape_mean_mm`` (median and mean of ``shape_mm``) and ``n``. NaN (all values) when ``samples`` is empty.
    """
    n = len(samples)
    if n == 0:
        return {k: (0 if k == "n" else float("nan")) for k in METRIC_KEYS}
    table = {k: np.array([getattr(s, k) for s in samples], dtype=np.float64)
             for k in asdict(samples[0])}
    out: dict[str, float | int] = {}
    for k in METRIC_KEYS:
        if k == "n":
            out[k] = n
        elif k == "shape_median_mm":
            out[k] = float(np.median(table["shape_mm"]))
        elif k == "shape_mean_mm":
            out[k] = float(np.mean(table["shape_mm"]))
        else:
            out[k] = float(np.mean(table[k]))
    return out


# (key, header, format) of the table's columns: Table 2, Table 4, then the IPD-sized errors and the count.
_COLUMNS = (
    ("yaw", "Yaw", "{:.2f}"), ("pitch", "Pitch", "{:.2f}"), ("roll", "Roll", "{:.2f}"),
    ("mae_r", "MAE_r", "{:.2f}"), ("tx", "tx", "{:.2f}"), ("ty", "ty", "{:.2f}"), ("tz", "tz", "{:.2f}"),
    ("mae_t", "MAE_t", "{:.2f}"), ("add", "ADD", "{:.2f}"),
    ("shape_median_mm", "Median", "{:.2f}"), ("shape_mean_mm", "Mean", "{:.2f}"),
    ("mae_t_sized", "MAE_t*", "{:.2f}"), ("add_sized", "ADD*", "{:.2f}"), ("n", "n", "{:.0f}"),
)


def format_table(results: Mapping[str, Mapping[str, float | int]]) -> str:
    """A plain-text table, one row per method, of :func:`aggregate_metrics` objects.

    Columns: the paper's Table 2 (yaw, pitch, roll, MAE_r in degrees; tx, ty, tz, MAE_t, ADD in mm), then
    Table 4 (shape median, mean in mm), then MAE_t* and ADD* (IPD-sized, mm) and n. Missing keys print "-".
    """
    headers = ["Method"] + [h for _, h, _ in _COLUMNS]
    rows = [[name] + [fmt.format(res[k]) if k in res else "-" for k, _, fmt in _COLUMNS]
            for name, res in results.items()]
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    units = "angles: degrees; lengths: mm; Median/Mean: Table 4 shape error; *: prediction sized to the true IPD"

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows] + [units])
