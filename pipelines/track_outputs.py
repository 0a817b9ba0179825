"""Files of a tracked clip: ``poses.csv``, the identity mesh (OBJ), the stability plot, and a staged folder.

``poses.csv`` (:data:`TRACK_COLUMNS`), one row per decoded frame and tracked face (each face from its track's
first frame to its last; a frame on which no face is tracked has one row with an empty ``face_id`` and
``success`` 0), ordered by frame then face:

* ``frame`` (0-based stream index), ``face_id`` (the face's persistent id, :mod:`tracker.faces`),
  ``timestamp_s`` (stream timestamp, seconds), ``success`` (1: the frame
  has an accepted pose measurement, 0: none), ``confidence`` (PnP confidence in [0, 1], 0 without success),
  ``inliers``, ``reproj_err_px`` (PnP inlier count and RMS reprojection error, pixels);
* the filtered pose ``qw qx qy qz`` (unit quaternion (w, x, y, z) of ``R_cam_face``), ``tx ty tz``
  (``t_cam_face``, metres), ``yaw_deg pitch_deg roll_deg`` (reporting Euler angles of
  :mod:`perspnet.conventions`); the same columns prefixed ``raw_`` hold the per-frame PnP pose;
* ``box_x box_y box_w box_h``: the face box the network was run on (top-left corner, width, height,
  pixels; filled whenever the network ran, even without success);
* ``shape_dev_mm``: mean per-vertex distance between the frame's raw predicted shape (similarity-aligned)
  and the identity estimated so far, millimetres.

Rows with ``success`` 0 leave every pose cell (and ``inliers``, ``reproj_err_px``, ``shape_dev_mm``)
empty: no pose is invented for a frame without a measurement. The pose columns are those
:func:`tracker.jitter.load_pose_runs` reads (``analyze-jitter``).
"""
from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from perspnet.conventions import MM_PER_M, euler_deg_from_matrix, quat_wxyz_from_matrix
from baseio.atomic import OutputError, atomic_path, remove_stale_temporaries, write_error_message
from baseio.schema import POSES_CSV
from tracker.jitter import POSE_COLUMNS, RAW_PREFIX, SAVGOL_ORDER, SAVGOL_WINDOW, analyze, load_pose_runs

if TYPE_CHECKING:  # pandas, matplotlib and the jitter report load where used: not before a command's first frame
    import pandas as pd

__all__ = ["TRACK_COLUMNS", "PoseTrack", "write_poses_csv", "read_poses_csv", "jitter_summary", "write_obj",
           "plot_stability", "check_output_folder", "staged_folder"]

_POSE = POSE_COLUMNS[3:]  # qw qx qy qz tx ty tz yaw_deg pitch_deg roll_deg
TRACK_COLUMNS = POSES_CSV.names  # documented in docs/outputs.md


@dataclass(frozen=True)
class PoseTrack:
    """Per-frame results of one clip (N frames). nan marks an empty cell.

    Attributes:
        frame: ``(N,)`` int stream indices.
        timestamp_s: ``(N,)`` stream timestamps, seconds.
        success: ``(N,)`` bool, accepted measurement.
        confidence: ``(N,)`` PnP confidence in [0, 1] (0 without success).
        inliers: ``(N,)`` float PnP inlier counts.
        reproj_err_px: ``(N,)`` RMS reprojection error of the inliers, pixels.
        R, t: ``(N, 3, 3)``, ``(N, 3)`` filtered ``R_cam_face``, ``t_cam_face`` (metres).
        R_raw, t_raw: the same for the per-frame PnP pose.
        box: ``(N, 3)`` (cx, cy, side) of the face box, pixels.
        shape_dev_mm: ``(N,)`` see the module docstring.
        face_id: the face's id, written on every row; None for the rows of frames without a face.
    """

    frame: np.ndarray
    timestamp_s: np.ndarray
    success: np.ndarray
    confidence: np.ndarray
    inliers: np.ndarray
    reproj_err_px: np.ndarray
    R: np.ndarray
    t: np.ndarray
    R_raw: np.ndarray
    t_raw: np.ndarray
    box: np.ndarray
    shape_dev_mm: np.ndarray
    face_id: int | None = 0

    @classmethod
    def empty(cls, frame: np.ndarray | None = None, timestamp_s: np.ndarray | None = None) -> PoseTrack:
        """Rows for ``frame (N,)`` at ``timestamp_s (N,)`` (none by default) without a face: no pose, no box,
        ``face_id`` None."""
        frame = np.zeros(0, np.int64) if frame is None else np.asarray(frame, np.int64)
        n = len(frame)
        timestamp_s = np.zeros(0) if timestamp_s is None else np.asarray(timestamp_s, np.float64)
        nan1, nan3 = np.full(n, np.nan), np.full((n, 3), np.nan)
        return cls(frame, timestamp_s, np.zeros(n, bool), np.zeros(n), nan1, nan1, np.full((n, 3, 3), np.nan), nan3,
                   np.full((n, 3, 3), np.nan), nan3, nan3, nan1, None)

    def on_frames(self, frame: np.ndarray, timestamp_s: np.ndarray) -> PoseTrack:
        """This face's rows placed on every frame of ``frame (N,)`` (stream order, a superset of
        ``self.frame``); frames it has no row on get no pose and no box."""
        out = PoseTrack.empty(frame, timestamp_s)
        k = np.searchsorted(frame, self.frame)
        fields = {}
        for name in ("success", "confidence", "inliers", "reproj_err_px", "R", "t", "R_raw", "t_raw", "box",
                     "shape_dev_mm"):
            values = getattr(out, name).copy()
            values[k] = getattr(self, name)
            fields[name] = values
        return replace(out, face_id=self.face_id, **fields)

    def scaled(self, s: float) -> PoseTrack:
        """The track with every translation (filtered and raw) multiplied by ``s``."""
        return replace(self, t=self.t * s, t_raw=self.t_raw * s)

    def table(self) -> pd.DataFrame:
        """The :data:`TRACK_COLUMNS` table; cells of rows without success are emptied (nan)."""
        import pandas as pd

        ok = self.success
        cols: dict[str, np.ndarray] = {
            "frame": self.frame.astype(np.int64),
            "face_id": pd.array([self.face_id] * len(ok), dtype="Int64"), "timestamp_s": self.timestamp_s,
            "success": ok.astype(np.int64), "confidence": np.where(ok, self.confidence, 0.0),
            "inliers": pd.array(np.where(ok, self.inliers, np.nan), dtype="Int64"),
            "reproj_err_px": np.where(ok, self.reproj_err_px, np.nan)}
        for prefix, R, t in (("", self.R, self.t), (RAW_PREFIX, self.R_raw, self.t_raw)):
            values = np.full((len(ok), 10), np.nan)
            good = ok & np.isfinite(R).all(axis=(1, 2)) & np.isfinite(t).all(axis=1)
            if good.any():
                values[good] = np.column_stack([quat_wxyz_from_matrix(R[good]), t[good],
                                                euler_deg_from_matrix(R[good])])
            cols.update({prefix + c: values[:, k] for k, c in enumerate(_POSE)})
        half = self.box[:, 2] / 2
        cols.update({"box_x": self.box[:, 0] - half, "box_y": self.box[:, 1] - half,
                     "box_w": self.box[:, 2], "box_h": self.box[:, 2],
                     "shape_dev_mm": np.where(ok, self.shape_dev_mm, np.nan)})
        return pd.DataFrame(cols, columns=list(TRACK_COLUMNS))


def write_poses_csv(path: str | os.PathLike[str], tracks: PoseTrack | list[PoseTrack]) -> None:
    """Write the tables of ``tracks`` (one per face, and the frames without a face) as one CSV, atomically,
    rows ordered by frame then face id (empty cells for nan, 9 significant digits)."""
    import pandas as pd

    tracks = [tracks] if isinstance(tracks, PoseTrack) else tracks
    table = pd.concat([t.table() for t in tracks], ignore_index=True) if tracks else PoseTrack.empty().table()
    table = table.sort_values(["frame", "face_id"], kind="stable", na_position="first")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.9g", na_rep="")


def read_poses_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``poses.csv`` back: :data:`TRACK_COLUMNS` in order, empty cells as nan, ``inliers`` Int64."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"inliers": "Int64", "face_id": "Int64"})
    if tuple(df.columns) != TRACK_COLUMNS:
        raise ValueError(f"{path}: not a track poses.csv (columns {list(df.columns)[:6]}...)")
    return df


def jitter_summary(poses_csv: str | os.PathLike[str], label: str, source: str, filtered: bool) -> dict:
    """:mod:`tracker.jitter` metrics of a written ``poses.csv`` (runs "<label>:filtered" and "<label>:raw";
    only "<label>:raw" when not ``filtered``, i.e. ``--filter none``), as
    :func:`tracker.jitter_report.metrics_json` gives them (nan as null), each run's ``source`` set to
    ``source`` (the published path, when ``poses_csv`` is still in a staging folder)."""
    from tracker.jitter_report import metrics_json

    jitter = metrics_json(analyze(load_pose_runs(poses_csv, label, filtered)), SAVGOL_WINDOW, SAVGOL_ORDER)
    for run in jitter["runs"]:
        run["source"] = source
    return jitter


def write_obj(path: str | os.PathLike[str], verts: np.ndarray, triangles: np.ndarray, comment: str = "") -> None:
    """Wavefront OBJ of a mesh, atomically: ``verts (n, 3)`` as written (here metres), ``triangles (T, 3)``
    0-based (written 1-based), winding kept."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"v {x:.7f} {y:.7f} {z:.7f}" for x, y, z in np.asarray(verts, dtype=np.float64)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(triangles, dtype=np.int64)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot_stability(path: str | os.PathLike[str], tracks: PoseTrack | dict[int, PoseTrack], title: str = "") -> None:
    """``tx ty tz`` (mm) and yaw, pitch, roll (deg) over time: raw PnP as dots, filtered as lines; with
    several faces (``tracks``: face id -> track) one colour per face."""
    from matplotlib.figure import Figure

    tracks = {0: tracks} if isinstance(tracks, PoseTrack) else tracks
    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True)
    names = ("tx [mm]", "ty [mm]", "tz [mm]", "yaw [deg]", "pitch [deg]", "roll [deg]")
    several = len(tracks) > 1
    for face_id, track in sorted(tracks.items()):
        ok = track.success
        series = []
        for R, t in ((track.R_raw, track.t_raw), (track.R, track.t)):
            values = np.full((len(ok), 6), np.nan)
            if ok.any():
                values[ok] = np.column_stack([t[ok] * MM_PER_M, euler_deg_from_matrix(R[ok])])
            series.append(values)
        colour = f"C{face_id % 10}"
        for k, ax in enumerate(axes.ravel()):
            ax.plot(track.timestamp_s, series[0][:, k], ".", ms=3, color=colour if several else "0.6", alpha=0.5
                    if several else 1.0, label=f"face {face_id} raw" if several else "raw")
            ax.plot(track.timestamp_s, series[1][:, k], "-", lw=1.2, color=colour,
                    label=f"face {face_id} filtered" if several else "filtered")
    for ax, name in zip(axes.ravel(), names):
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("time [s]")
    if tracks:
        axes[0, 0].legend(fontsize=8)
    n_ok = sum(int(t.success.sum()) for t in tracks.values())
    if n_ok == 0:  # say so on the empty plots
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no pose", transform=ax.transAxes, ha="center", va="center", color="C3")
    fig.suptitle(title or f"{n_ok} face-frames with a pose")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def check_output_folder(final_dir: str | os.PathLike[str]) -> None:
    """Fail early, before any work, when ``final_dir`` cannot become an output folder.

    Raises:
        OutputError: ``final_dir`` or one of its parents is a file, or the nearest existing parent is
            not a writable folder (one line naming the path).
    """
    final = Path(final_dir)
    if final.exists() and not final.is_dir():
        raise OutputError(f"cannot write into {final}: it is a file, not a folder")
    existing = final.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot create {final}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {final}: folder {existing} is not writable")


@contextmanager
def staged_folder(final_dir: str | os.PathLike[str], owned: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a fresh hidden folder beside ``final_dir`` to write outputs into; publish it on success.

    On a clean exit its files replace those of ``final_dir`` one by one (each ``os.replace``, atomic),
    and files named in ``owned`` that this run did not write are removed from ``final_dir`` (outputs of
    an earlier run that would no longer match); when ``final_dir`` does not exist the folder is renamed
    to it. On an exception the staged folder is deleted, so a failed run leaves no half-written output
    folder (an existing ``final_dir`` keeps its files). Staged folders of ``final_dir`` left by runs that
    were killed (SIGKILL: no cleanup ran) are removed first (:func:`baseio.atomic.remove_stale_temporaries`).

    Raises:
        OutputError: the parent folder cannot be created or written, ``final_dir`` is a file, or the storage
            failed while writing (full disk, ...: :func:`baseio.atomic.write_error_message`).
    """
    final = Path(final_dir)
    check_output_folder(final)
    remove_stale_temporaries(final.parent, final.name)
    stage = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as err:
        raise OutputError(f"cannot create {final}: {err.strerror or err}") from err
    try:
        try:
            yield stage
        except OSError as err:
            message = write_error_message(getattr(err, "filename", None) or stage, err)
            if message is None:
                raise
            raise OutputError(message.replace(str(stage), str(final))) from err
        try:
            if not final.exists():
                os.replace(stage, final)
                return
            written = {item.name for item in stage.iterdir()}
            for item in stage.iterdir():
                os.replace(item, final / item.name)
            for name in set(owned) - written:
                (final / name).unlink(missing_ok=True)
        except OSError as err:
            raise OutputError(f"cannot write {final}: {err.strerror or err}") from err
    finally:
        shutil.rmtree(stage, ignore_errors=True)
