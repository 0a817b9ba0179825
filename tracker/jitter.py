"""Jitter and accuracy metrics of per-frame pose tracks read from ``poses.csv`` files.

Input files
-----------
* A pose track (``poses.csv``): columns ``frame timestamp_s success qw qx qy qz tx ty tz yaw_deg pitch_deg
  roll_deg`` (:data:`POSE_COLUMNS`): quaternion (w, x, y, z) of ``R_cam_face``, ``t_cam_face`` in metres,
  Euler angles in degrees as in :mod:`perspnet.conventions`. Rows with ``success`` false (0/1 or
  true/false) are missing frames and may leave the other cells empty. When the file also has the same
  columns prefixed ``raw_`` (the unfiltered measurements; ``raw_success`` optional), it holds two runs,
  "filtered" and "raw" -- unless its main columns are not filtered: ``track-video`` and ``mediapipe-track``
  with ``--filter none`` copy the raw poses into them and say so in the ``summary.json`` beside the file
  (``"filter": "none"``); such a file is one run, "raw".
* Ground truth (``gt.csv``): ``frame timestamp_s qw qx qy qz tx ty tz`` (:data:`GT_COLUMNS`), every cell
  filled; its Euler angles are computed from the quaternions.

Metrics per axis (:data:`AXES`: tx ty tz in mm, yaw pitch roll in degrees)
----------------------------------------------------------------------------
* ``second_diff_rms``: RMS of ``x[f+1] - 2 x[f] + x[f-1]`` over frame numbers ``f`` where all three frames
  are valid (per frame, not per second^2). For white noise of sd ``s`` it is ``s * sqrt(6)``.
* ``savgol_residual_rms``: RMS of ``x - savgol(x)`` on each contiguous valid run of at least
  ``window`` frames: Savitzky-Golay fit, default window :data:`SAVGOL_WINDOW` = 15 frames (0.5 s at
  30 fps), polynomial order :data:`SAVGOL_ORDER` = 3 -- slow head motion passes, frame-to-frame noise
  stays in the residual. For white noise of sd ``s`` it is ``s * sqrt(1 - c0)`` (``c0`` the centre
  coefficient of the fit, 0.33 for 15/3) away from run ends.
* Against ground truth (joined on ``frame``, valid frames only): mean absolute error per axis, ``mae_t_mm``
  (mean Euclidean translation error) and ``mae_r_deg`` (mean geodesic angle between the rotations).
Angle differences are wrapped to [-180, 180) degrees, and angle runs unwrapped before the fit.

Over-smoothing, without ground truth (:func:`oversmoothing`)
------------------------------------------------------------
Given a track's raw and filtered poses and an independent track of the same clip (another tracker's raw
poses, e.g. ``mediapipe-track``'s), per axis the Pearson correlation between what the filter removed,
``raw - filtered``, and how the independent track deviates from the filtered one, ``reference - filtered``,
both high-passed (minus a Savitzky-Golay fit of :data:`OVERSMOOTH_WINDOW` frames, order
:data:`OVERSMOOTH_ORDER`, on each stretch of consecutive frames valid in all three). A filter that removes
only its own measurement noise leaves a residual the other tracker does not share: about 0. One that also
removes true motion removes what the other tracker still sees: towards 1. The high-pass takes out the slow
offset between two trackers whose face models differ.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas and scipy.signal load where used: track-video imports this module for its constants
    import pandas as pd

from baseio.schema import AXIS_UNITS, GT_CSV
from perspnet.conventions import MM_PER_M, euler_deg_from_matrix, matrix_from_quat_wxyz, rotation_angle_deg

__all__ = [
    "AXES",
    "AXIS_UNITS",
    "POSE_COLUMNS",
    "GT_COLUMNS",
    "RAW_PREFIX",
    "SAVGOL_WINDOW",
    "SAVGOL_ORDER",
    "JitterInputError",
    "PoseSeries",
    "GtError",
    "RunMetrics",
    "load_pose_runs",
    "contiguous_runs",
    "load_gt",
    "second_diff_rms",
    "savgol_residual_rms",
    "gt_error",
    "analyze",
    "OVERSMOOTH_WINDOW",
    "OVERSMOOTH_ORDER",
    "Oversmoothing",
    "oversmoothing",
]

AXES = ("tx", "ty", "tz", "yaw", "pitch", "roll")
POSE_COLUMNS = ("frame", "timestamp_s", "success", "qw", "qx", "qy", "qz", "tx", "ty", "tz",
                "yaw_deg", "pitch_deg", "roll_deg")
GT_COLUMNS = GT_CSV.names
RAW_PREFIX = "raw_"
SAVGOL_WINDOW = 15  # frames
SAVGOL_ORDER = 3
# High-pass of the over-smoothing measure: a fit over about a second at 30 fps follows the slow drift between
# two trackers but not a quick turn or nod, which is what an over-smoothing filter flattens.
OVERSMOOTH_WINDOW = 31  # frames
OVERSMOOTH_ORDER = 2
_ANGLE = np.array([False, False, False, True, True, True])  # which of AXES are angles


class JitterInputError(ValueError):
    """A pose or ground-truth file cannot be used; the one-line message names the file."""


@dataclass(frozen=True)
class PoseSeries:
    """One run's poses over frames (N rows, sorted by frame; invalid rows hold nan).

    Attributes:
        label: run name for tables and plots.
        source: the file it came from.
        frame: ``(N,)`` int frame numbers, strictly increasing.
        time_s: ``(N,)`` timestamps, seconds.
        valid: ``(N,)`` bool, the tracker had a pose at this frame.
        R: ``(N, 3, 3)`` R_cam_face.
        t_m: ``(N, 3)`` t_cam_face, metres.
        values: ``(N, 6)`` the metric axes :data:`AXES`: tx ty tz [mm], yaw pitch roll [deg].
    """

    label: str
    source: str
    frame: np.ndarray
    time_s: np.ndarray
    valid: np.ndarray
    R: np.ndarray
    t_m: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class GtError:
    """Errors against ground truth over ``n_matched`` frames: ``mae`` per axis (mm / deg), ``mae_t_mm``,
    ``mae_r_deg`` (mean geodesic angle); nan when no frame matched."""

    n_matched: int
    mae: dict[str, float]
    mae_t_mm: float
    mae_r_deg: float


@dataclass(frozen=True)
class RunMetrics:
    """All metrics of one run (see the module docstring); ``gt`` is None without ground truth."""

    label: str
    source: str
    n_frames: int
    n_valid: int
    second_diff_rms: dict[str, float]
    savgol_residual_rms: dict[str, float]
    gt: GtError | None


def _read_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise JitterInputError(f"{p}: no such file")
    try:
        return pd.read_csv(p, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise JitterInputError(f"{p}: not a readable CSV ({reason})") from err


def _numeric(df: pd.DataFrame, column: str, path: Path, allow_empty: np.ndarray | None) -> np.ndarray:
    """Column as float64; non-numbers are an error, empty cells only where ``allow_empty``."""
    import pandas as pd

    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & raw.notna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise JitterInputError(f"{path}: column {column!r} row {i + 2} is not a number: {raw.iloc[i]!r}")
    empty = np.isnan(values) if allow_empty is None else np.isnan(values) & ~allow_empty
    if empty.any():
        raise JitterInputError(f"{path}: column {column!r} row {int(np.argmax(empty)) + 2} is empty")
    return values


def _success(df: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    words = {"1": True, "0": False, "true": True, "false": False, "1.0": True, "0.0": False}
    text = df[column].astype(str).str.strip().str.lower()
    ok = text.isin(list(words))
    if not ok.all():
        i = int(np.argmax(~ok.to_numpy()))
        raise JitterInputError(f"{path}: column {column!r} row {i + 2} is not 0/1/true/false: "
                               f"{df[column].iloc[i]!r}")
    return text.map(words).to_numpy(dtype=bool)


def _series(df: pd.DataFrame, path: Path, label: str, prefix: str, success: np.ndarray | None,
            euler_columns: bool) -> PoseSeries:
    """Build a :class:`PoseSeries` from the ``prefix``-ed columns; ``success`` None means all valid."""
    allow = None if success is None else ~success
    frame = _numeric(df, "frame", path, None)
    if np.any(frame != np.round(frame)) or np.any(np.diff(frame) <= 0):
        raise JitterInputError(f"{path}: column 'frame' must hold strictly increasing integers")
    time_s = _numeric(df, "timestamp_s", path, None)
    q = np.column_stack([_numeric(df, prefix + c, path, allow) for c in ("qw", "qx", "qy", "qz")])
    t_m = np.column_stack([_numeric(df, prefix + c, path, allow) for c in ("tx", "ty", "tz")])
    valid = np.ones(len(df), dtype=bool) if success is None else success
    norms = np.linalg.norm(q[valid], axis=1)
    if np.any(norms < 1e-6):
        raise JitterInputError(f"{path}: a {prefix}q quaternion has zero length")
    R = np.full((len(df), 3, 3), np.nan)
    R[valid] = matrix_from_quat_wxyz(q[valid])
    if euler_columns:
        euler = np.column_stack([_numeric(df, f"{prefix}{c}_deg", path, allow) for c in ("yaw", "pitch", "roll")])
    else:
        euler = np.full((len(df), 3), np.nan)
        euler[valid] = euler_deg_from_matrix(R[valid])
    values = np.column_stack([t_m * MM_PER_M, euler])
    values[~valid] = np.nan
    t_m = np.where(valid[:, None], t_m, np.nan)
    return PoseSeries(label, str(path), frame.astype(np.int64), time_s, valid, R, t_m, values)


def _require(df: pd.DataFrame, columns, path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise JitterInputError(f"{path}: missing column(s) {', '.join(missing)}")


def _filter_of(poses_csv: Path) -> str | None:
    """The ``filter`` mode recorded in the ``summary.json`` beside ``poses_csv``, None without one."""
    summary = poses_csv.parent / "summary.json"
    try:
        mode = json.loads(summary.read_text(encoding="utf-8")).get("filter")
    except (OSError, ValueError, AttributeError):
        return None
    return mode if isinstance(mode, str) else None


def load_pose_runs(path: str | os.PathLike[str], label: str, filtered: bool | None = None) -> list[PoseSeries]:
    """Read a ``poses.csv``: ``[label:filtered, label:raw]`` when it has ``raw_`` columns and filtered main
    columns, ``[label:raw]`` when they are unfiltered, else ``[label]``.

    ``filtered``: whether the main columns hold filtered poses; None reads it from the ``summary.json``
    beside the file (``"filter": "none"`` means not) and counts a file without one as filtered.

    With a ``face_id`` column (track-video) and several faces, the runs of each face in turn, labelled
    ``"<label> face <id>"``; rows without a face (empty ``face_id``) hold no pose and are left out.
    """
    p = Path(path)
    df = _read_csv(p)
    _require(df, POSE_COLUMNS, p)
    if "face_id" in df.columns:
        import pandas as pd

        ids = pd.to_numeric(df["face_id"], errors="coerce")
        faces = sorted(int(k) for k in ids.dropna().unique())
        if len(faces) > 1:
            return [run for k in faces for run in _pose_runs(df[ids == k].reset_index(drop=True), p,
                                                              f"{label} face {k}", filtered)]
        if faces:
            df = df[ids == faces[0]].reset_index(drop=True)
    return _pose_runs(df, p, label, filtered)


def _pose_runs(df: pd.DataFrame, p: Path, label: str, filtered: bool | None) -> list[PoseSeries]:
    """:func:`load_pose_runs` for the rows of one face."""
    success = _success(df, "success", p)
    raw_columns = [RAW_PREFIX + c for c in POSE_COLUMNS[3:]]
    if not any(c in df.columns for c in raw_columns):
        return [_series(df, p, label, "", success, True)]
    _require(df, raw_columns, p)
    raw_success = _success(df, RAW_PREFIX + "success", p) if RAW_PREFIX + "success" in df.columns else success
    raw = _series(df, p, f"{label}:raw", RAW_PREFIX, raw_success, True)
    if filtered is None:
        filtered = _filter_of(p) != "none"
    return [_series(df, p, f"{label}:filtered", "", success, True), raw] if filtered else [raw]


def load_gt(path: str | os.PathLike[str], label: str = "ground truth") -> PoseSeries:
    """Read a ``gt.csv`` (every row valid; Euler angles from the quaternions)."""
    p = Path(path)
    df = _read_csv(p)
    _require(df, GT_COLUMNS, p)
    return _series(df, p, label, "", None, False)


def _on_frame_grid(series: PoseSeries) -> np.ndarray:
    """``values`` ``(F, 6)`` on every frame number from the first to the last, nan where absent."""
    grid = np.full((series.frame[-1] - series.frame[0] + 1, len(AXES)), np.nan)
    grid[series.frame - series.frame[0]] = series.values
    return grid


def _wrap_deg(x: np.ndarray) -> np.ndarray:
    return (x + 180.0) % 360.0 - 180.0


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x**2))) if x.size else math.nan


def second_diff_rms(series: PoseSeries) -> dict[str, float]:
    """RMS per axis of the per-frame second difference over consecutive valid frames (mm / deg)."""
    if series.frame.size < 3:
        return {a: math.nan for a in AXES}
    d1 = np.diff(_on_frame_grid(series), axis=0)
    d1[:, _ANGLE] = _wrap_deg(d1[:, _ANGLE])
    d2 = np.diff(d1, axis=0)
    return {a: _rms(d2[:, i]) for i, a in enumerate(AXES)}


def contiguous_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in the ``(N,)`` bool ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def savgol_residual_rms(series: PoseSeries, window: int = SAVGOL_WINDOW, order: int = SAVGOL_ORDER
                        ) -> dict[str, float]:
    """RMS per axis of the residual against a Savitzky-Golay fit (``window`` frames, odd; ``order``)."""
    if window % 2 == 0 or not 0 <= order < window:
        raise ValueError(f"Savitzky-Golay window must be odd and > order, got window={window}, order={order}")
    if series.frame.size == 0:
        return {a: math.nan for a in AXES}
    from scipy.signal import savgol_filter

    grid = _on_frame_grid(series)
    residuals = []
    for start, stop in contiguous_runs(np.all(np.isfinite(grid), axis=1)):
        if stop - start < window:
            continue
        x = grid[start:stop].copy()
        x[:, _ANGLE] = np.unwrap(x[:, _ANGLE], period=360.0, axis=0)
        residuals.append(x - savgol_filter(x, window, order, axis=0, mode="interp"))
    if not residuals:
        return {a: math.nan for a in AXES}
    res = np.concatenate(residuals)
    return {a: _rms(res[:, i]) for i, a in enumerate(AXES)}


def gt_error(series: PoseSeries, gt: PoseSeries) -> GtError:
    """Errors of ``series`` against ``gt`` on the frames valid in both (joined on frame number)."""
    common, i, j = np.intersect1d(series.frame[series.valid], gt.frame[gt.valid], return_indices=True)
    if common.size == 0:
        return GtError(0, {a: math.nan for a in AXES}, math.nan, math.nan)
    a_idx, g_idx = np.flatnonzero(series.valid)[i], np.flatnonzero(gt.valid)[j]
    diff = series.values[a_idx] - gt.values[g_idx]
    diff[:, _ANGLE] = _wrap_deg(diff[:, _ANGLE])
    mae = {a: float(np.mean(np.abs(diff[:, k]))) for k, a in enumerate(AXES)}
    mae_t = float(np.mean(np.linalg.norm(series.t_m[a_idx] - gt.t_m[g_idx], axis=1)) * MM_PER_M)
    mae_r = float(np.mean(rotation_angle_deg(series.R[a_idx], gt.R[g_idx])))
    return GtError(int(common.size), mae, mae_t, mae_r)


def analyze(runs: list[PoseSeries], gt: PoseSeries | None = None, window: int = SAVGOL_WINDOW,
            order: int = SAVGOL_ORDER) -> list[RunMetrics]:
    """Metrics of each run (and of nothing else: ground truth is a reference, not a run)."""
    return [RunMetrics(r.label, r.source, int(r.frame.size), int(r.valid.sum()), second_diff_rms(r),
                       savgol_residual_rms(r, window, order), gt_error(r, gt) if gt is not None else None)
            for r in runs]


@dataclass(frozen=True)
class Oversmoothing:
    """:func:`oversmoothing` of one run against a reference track.

    Attributes:
        label: the run (its filtered and raw series' common label prefix).
        reference: the reference series' label.
        n_frames: frames valid in all three series and inside a stretch of at least the window.
        corr: per axis (:data:`AXES`), Pearson correlation of the two high-passed residuals (nan when
            fewer than 3 frames or one residual is constant).
        time_s: ``(n_frames,)`` timestamps of those frames, seconds.
        removed: ``(n_frames, 6)`` high-passed ``raw - filtered``, mm / deg.
        deviation: ``(n_frames, 6)`` high-passed ``reference - filtered``, mm / deg.
    """

    label: str
    reference: str
    n_frames: int
    corr: dict[str, float]
    time_s: np.ndarray
    removed: np.ndarray
    deviation: np.ndarray


def _highpass(x: np.ndarray, window: int, order: int) -> np.ndarray:
    """``x (F, 6) - savgol(x)`` along frames (differences between tracks: small, no angle wraps)."""
    from scipy.signal import savgol_filter

    return x - savgol_filter(x, window, order, axis=0, mode="interp")


def oversmoothing(filtered: PoseSeries, raw: PoseSeries, reference: PoseSeries, label: str = "",
                  window: int = OVERSMOOTH_WINDOW, order: int = OVERSMOOTH_ORDER) -> Oversmoothing:
    """Correlation per axis between what the filter removed and the reference's deviation from the filtered
    track (see the module docstring). The three series are joined on frame number."""
    if window % 2 == 0 or not 0 <= order < window:
        raise ValueError(f"Savitzky-Golay window must be odd and > order, got window={window}, order={order}")
    first = min(s.frame[0] for s in (filtered, raw, reference) if s.frame.size)
    last = max(s.frame[-1] for s in (filtered, raw, reference) if s.frame.size)
    grids, times = [], np.full(last - first + 1, np.nan)
    for s in (filtered, raw, reference):
        grid = np.full((last - first + 1, len(AXES)), np.nan)
        grid[s.frame - first] = s.values
        grids.append(grid)
    times[filtered.frame - first] = filtered.time_s
    f, r, ref = grids
    both = np.all(np.isfinite(f) & np.isfinite(r) & np.isfinite(ref), axis=1)
    removed, deviation, t = [], [], []
    for start, stop in contiguous_runs(both):
        if stop - start < window:
            continue
        d_removed, d_dev = r[start:stop] - f[start:stop], ref[start:stop] - f[start:stop]
        d_removed[:, _ANGLE], d_dev[:, _ANGLE] = _wrap_deg(d_removed[:, _ANGLE]), _wrap_deg(d_dev[:, _ANGLE])
        removed.append(_highpass(d_removed, window, order))
        deviation.append(_highpass(d_dev, window, order))
        t.append(times[start:stop])
    removed = np.concatenate(removed) if removed else np.zeros((0, len(AXES)))
    deviation = np.concatenate(deviation) if deviation else np.zeros((0, len(AXES)))
    corr = {}
    for i, axis in enumerate(AXES):
        a, b = removed[:, i], deviation[:, i]
        ok = len(a) >= 3 and np.std(a) > 0 and np.std(b) > 0
        corr[axis] = float(np.corrcoef(a, b)[0, 1]) if ok else math.nan
    return Oversmoothing(label or filtered.label, reference.label, len(removed), corr,
                         np.concatenate(t) if t else np.zeros(0), removed, deviation)
