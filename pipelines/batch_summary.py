"""The batch's report: ``summary.csv`` (one row per clip), ``summary.png`` (bar charts) and ``errors.log``.

Every file is written atomically (:mod:`baseio.atomic`). Rows are :class:`ClipOutcome`; the columns of
``summary.csv`` are :data:`SUMMARY_COLUMNS`, with empty cells where a value does not exist (a failed clip
has no frame count; a clip without three consecutive poses has no jitter).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from baseio.atomic import atomic_path, write_text_atomic
from baseio.schema import BATCH_SUMMARY_CSV
from perspnet.validate import check_choice

__all__ = ["STATUSES", "SUMMARY_COLUMNS", "ClipOutcome", "write_summary_csv", "read_summary_csv", "plot_summary",
           "write_errors_log"]

STATUSES = ("ok", "no_face", "no_pose", "failed", "skipped")  # no_face, no_pose: track-video's summary status
SUMMARY_COLUMNS = BATCH_SUMMARY_CSV.names  # documented in docs/outputs.md


@dataclass(frozen=True)
class ClipOutcome:
    """One clip's row of ``summary.csv``; nan where a value does not exist.

    Attributes:
        clip: the clip's path relative to the clips folder, POSIX style.
        status: "ok"; "no_face" (track-video found no face in the clip) or "no_pose" (it found one but kept no
            pose: :data:`pipelines.track_video.STATUSES`); "failed"; or "skipped" (complete from an earlier run;
            its values are that run's).
        frames: decoded frames.
        detection_rate: fraction of the frames with a pose, in [0, 1].
        fps: processing speed of the clip's track-video run [frames/s of wall time].
        d2_rms_tz_mm, d2_rms_yaw_deg: jitter of the filtered track, RMS of the per-frame second difference
            (:func:`tracker.jitter.second_diff_rms`) of tz [mm] and of yaw [deg]; ``raw_*`` the same for the
            unfiltered per-frame (PnP) poses.
        intrinsics: where K came from: "sidecar" (``<clip>.K.json``), "batch" (``--intrinsics``) or
            "default" (track-video's default field of view).
        output: the clip's output folder relative to the batch's output folder.
        message: failed: the one-line reason; otherwise track-video's notes and warnings (no face found, decode
            errors, several faces, K scaled), joined with " | ".
        detail: the traceback of an unexpected exception (goes to ``errors.log``), else "". Not in the CSV.
    """

    clip: str
    status: str
    frames: float = math.nan
    detection_rate: float = math.nan
    fps: float = math.nan
    d2_rms_tz_mm: float = math.nan
    d2_rms_yaw_deg: float = math.nan
    raw_d2_rms_tz_mm: float = math.nan
    raw_d2_rms_yaw_deg: float = math.nan
    intrinsics: str = ""
    output: str = ""
    message: str = ""
    detail: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        check_choice("status", self.status, STATUSES)


def write_summary_csv(path: str | Path, outcomes: list[ClipOutcome]) -> None:
    """Write ``summary.csv`` (:data:`SUMMARY_COLUMNS`, 6 significant digits, empty cells for nan) atomically."""
    table = pd.DataFrame([{c: getattr(o, c) for c in SUMMARY_COLUMNS} for o in outcomes],
                         columns=list(SUMMARY_COLUMNS))
    table["frames"] = pd.array([None if math.isnan(v) else int(v) for v in table["frames"]], dtype="Int64")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g", na_rep="")


def read_summary_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``summary.csv`` back: :data:`SUMMARY_COLUMNS`, text cells as str ("" when empty), numbers as float
    (nan when empty) and ``frames`` as Int64."""
    table = pd.read_csv(path, dtype={c: str for c in ("clip", "status", "intrinsics", "output", "message")},
                        keep_default_na=False, na_values={c: [""] for c in SUMMARY_COLUMNS[2:9]})
    if tuple(table.columns) != SUMMARY_COLUMNS:
        raise ValueError(f"{path}: not a batch summary.csv (columns {list(table.columns)[:4]}...)")
    table["frames"] = table["frames"].astype("Int64")
    return table


def plot_summary(path: str | Path, outcomes: list[ClipOutcome]) -> None:
    """``summary.png``, one row per clip: detection rate [%], jitter of tz [mm] and of yaw [deg] (filtered
    bars in front of the raw ones in grey); failed clips are labelled "failed" in red, clips without a face or
    a pose "no face" / "no pose" in orange. Written atomically."""
    names = [o.clip for o in outcomes]
    marks = {k: (o.status.replace("_", " "), "C3" if o.status == "failed" else "C1") for k, o in enumerate(outcomes)
             if o.status in ("failed", "no_face", "no_pose")}
    rows = list(range(len(outcomes)))
    fig = Figure(figsize=(13, 1.6 + 0.28 * max(len(outcomes), 1)), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    panels = (("detection rate [%]", [100 * o.detection_rate for o in outcomes], None),
              ("jitter tz: RMS 2nd difference [mm]", [o.d2_rms_tz_mm for o in outcomes],
               [o.raw_d2_rms_tz_mm for o in outcomes]),
              ("jitter yaw: RMS 2nd difference [deg]", [o.d2_rms_yaw_deg for o in outcomes],
               [o.raw_d2_rms_yaw_deg for o in outcomes]))
    for ax, (title, values, raw) in zip(axes, panels):
        if raw is not None:
            ax.barh(rows, [0.0 if math.isnan(v) else v for v in raw], height=0.8, color="0.8", label="raw")
        ax.barh(rows, [0.0 if math.isnan(v) else v for v in values], height=0.5, color="C0",
                label=None if raw is None else "filtered")
        for k, (text, colour) in marks.items():
            ax.text(0, k, f" {text}", va="center", ha="left", color=colour, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if raw is not None:
            ax.legend(fontsize=8, loc="lower right")
    axes[0].set_yticks(rows, names, fontsize=8)
    axes[0].invert_yaxis()
    for k, label in enumerate(axes[0].get_yticklabels()):
        if k in marks:
            label.set_color(marks[k][1])
    counts = Counter(o.status for o in outcomes)
    fig.suptitle(f"{len(outcomes)} clips: " + ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in STATUSES
                                                         if counts[s]))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def write_errors_log(path: str | Path, outcomes: list[ClipOutcome]) -> Path | None:
    """Write the tracebacks of unexpected failures to ``path`` and return it; with none, remove an old
    ``path`` and return None."""
    path = Path(path)
    details = [f"== {o.clip}: {o.message}\n{o.detail}" for o in outcomes if o.detail]
    if not details:
        path.unlink(missing_ok=True)
        return None
    write_text_atomic(path, "\n".join(details))
    return path
