"""Tables, JSON/CSV files and plots of :mod:`tracker.jitter` metrics; every file is written atomically.

Outputs of :func:`write_report` in the output folder: ``jitter.json`` (metrics + the fit settings + units),
``jitter.csv`` (one row per run, :func:`metrics_table`), ``jitter_timeseries.png`` (each axis over time,
runs overlaid, ground truth dashed) and ``jitter_spectrum.png`` (Welch amplitude spectral density per axis,
log scale, of each run's longest run of consecutive valid frames, linear trend removed); with a reference
track also ``jitter_oversmoothing.png`` (per axis, what the filter removed against the reference's deviation
from the filtered track, both high-passed, with their correlation).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.signal import welch

from baseio.atomic import atomic_path, write_json_atomic
from baseio.schema import JITTER_CSV
from tracker.jitter import (AXES, AXIS_UNITS, OVERSMOOTH_ORDER, OVERSMOOTH_WINDOW, Oversmoothing, PoseSeries,
                            RunMetrics, contiguous_runs)

__all__ = ["metrics_table", "format_tables", "metrics_json", "plot_timeseries", "plot_spectrum",
           "plot_oversmoothing", "write_report"]

_MIN_SPECTRUM_FRAMES = 16


def _col(kind: str, axis: str) -> str:
    return f"{kind}_{axis}_{AXIS_UNITS[axis]}"


def metrics_table(metrics: list[RunMetrics]) -> pd.DataFrame:
    """One row per run (index ``run``): counts, ``d2_rms_*`` (second difference), ``sg_rms_*``
    (Savitzky-Golay residual), and with ground truth ``n_matched``, ``mae_*``, ``mae_t_mm``, ``mae_r_deg``."""
    rows = []
    for m in metrics:
        row = {"run": m.label, "n_frames": m.n_frames, "n_valid": m.n_valid}
        row.update({_col("d2_rms", a): m.second_diff_rms[a] for a in AXES})
        row.update({_col("sg_rms", a): m.savgol_residual_rms[a] for a in AXES})
        if m.gt is not None:
            row["n_matched"] = m.gt.n_matched
            row.update({_col("mae", a): m.gt.mae[a] for a in AXES})
            row.update({"mae_t_mm": m.gt.mae_t_mm, "mae_r_deg": m.gt.mae_r_deg})
        rows.append(row)
    present = {k for row in rows for k in row}
    return pd.DataFrame(rows, columns=[c for c in JITTER_CSV.names if c in present]).set_index("run")


def format_tables(metrics: list[RunMetrics], window: int, order: int,
                  oversmooth: list[Oversmoothing] | None = None) -> str:
    """Plain-text tables for the terminal, rows = runs: second difference, Savitzky-Golay residual and,
    when any run has ground truth, the errors (MAE per axis, MAE_t, MAE_r); with ``oversmooth``, the
    over-smoothing correlations (:func:`tracker.jitter.oversmoothing`)."""
    def block(title: str, data: dict[str, dict[str, float]]) -> str:
        table = pd.DataFrame.from_dict(data, orient="index")
        table.index.name = "run"
        return f"{title}\n{table.to_string(float_format=lambda v: f'{v:.3f}')}"

    blocks = [block("second difference RMS per frame [mm, deg]", {m.label: m.second_diff_rms for m in metrics}),
              block(f"Savitzky-Golay residual RMS (window {window} frames, order {order}) [mm, deg]",
                    {m.label: m.savgol_residual_rms for m in metrics})]
    with_gt = {m.label: {"frames": m.gt.n_matched, **m.gt.mae, "MAE_t": m.gt.mae_t_mm, "MAE_r": m.gt.mae_r_deg}
               for m in metrics if m.gt is not None}
    if with_gt:
        blocks.append(block("mean absolute error vs ground truth [mm, deg]", with_gt))
    if oversmooth:
        blocks.append(block(f"over-smoothing: correlation of (raw - filtered) with (reference - filtered), "
                            f"high-passed (reference {oversmooth[0].reference})",
                            {o.label: {"frames": o.n_frames, **o.corr} for o in oversmooth}))
    return "\n\n".join(blocks)


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def metrics_json(metrics: list[RunMetrics], window: int, order: int, oversmooth: list[Oversmoothing] | None = None,
                 reference: str | None = None) -> dict:
    """JSON-ready dict: settings, units and per-run metrics (nan as null); with ``oversmooth`` (measured
    against the track in file ``reference``) an ``oversmoothing`` object."""
    runs = []
    for m in metrics:
        run = {"label": m.label, "source": m.source, "n_frames": m.n_frames, "n_valid": m.n_valid,
               "second_diff_rms": {a: _num(v) for a, v in m.second_diff_rms.items()},
               "savgol_residual_rms": {a: _num(v) for a, v in m.savgol_residual_rms.items()}, "gt_error": None}
        if m.gt is not None:
            run["gt_error"] = {"n_matched": m.gt.n_matched, "mae": {a: _num(v) for a, v in m.gt.mae.items()},
                               "mae_t_mm": _num(m.gt.mae_t_mm), "mae_r_deg": _num(m.gt.mae_r_deg)}
        runs.append(run)
    out = {"units": dict(AXIS_UNITS), "second_diff": "per frame, consecutive valid frames",
           "savgol": {"window_frames": window, "polyorder": order}, "runs": runs}
    if oversmooth is not None:
        out["oversmoothing"] = {
            "reference": reference, "highpass": {"window_frames": OVERSMOOTH_WINDOW, "polyorder": OVERSMOOTH_ORDER},
            "runs": [{"label": o.label, "reference_label": o.reference, "n_frames": o.n_frames,
                      "corr": {a: _num(v) for a, v in o.corr.items()}} for o in oversmooth]}
    return out


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)


def plot_timeseries(runs: list[PoseSeries], gt: PoseSeries | None, path: str | os.PathLike[str]) -> None:
    """Each axis over time (seconds), runs overlaid, ground truth dashed; written atomically to ``path``."""
    fig = Figure(figsize=(11, 13), layout="constrained")
    axes = fig.subplots(len(AXES), 1, sharex=True)
    for i, (ax, name) in enumerate(zip(axes, AXES)):
        for run in runs:
            ax.plot(run.time_s, run.values[:, i], lw=0.9, label=run.label)
        if gt is not None:
            ax.plot(gt.time_s, gt.values[:, i], "k--", lw=1.0, label=gt.label)
        ax.set_ylabel(f"{name} [{AXIS_UNITS[name]}]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time [s]")
    _save(fig, Path(path))


def _longest_run(series: PoseSeries) -> slice:
    """Rows of the longest stretch of valid frames with consecutive frame numbers."""
    best = (0, 0)
    for rows in np.split(np.arange(series.frame.size), np.flatnonzero(np.diff(series.frame) != 1) + 1):
        for start, stop in contiguous_runs(series.valid[rows]):
            if stop - start > best[1] - best[0]:
                best = (int(rows[0] + start), int(rows[0] + stop))
    return slice(*best)


def plot_spectrum(runs: list[PoseSeries], gt: PoseSeries | None, path: str | os.PathLike[str]) -> None:
    """Welch amplitude spectral density per axis (unit/sqrt(Hz), log scale) of each run's longest valid
    stretch, sampled at the median frame interval; ground truth dashed; written atomically to ``path``."""
    fig = Figure(figsize=(12, 9), layout="constrained")
    axes = fig.subplots(3, 2).T.ravel()  # translation in the left column, rotation in the right
    series = [(r, {"lw": 0.9}) for r in runs] + ([(gt, {"ls": "--", "color": "k", "lw": 1.0})] if gt else [])
    for run, style in series:
        rows = _longest_run(run)
        n = rows.stop - rows.start
        if n < _MIN_SPECTRUM_FRAMES:
            continue
        fs = 1.0 / float(np.median(np.diff(run.time_s[rows])))
        for i, ax in enumerate(axes):
            x = run.values[rows, i]
            if AXES[i] in ("yaw", "pitch", "roll"):
                x = np.unwrap(x, period=360.0)
            f, psd = welch(x, fs=fs, nperseg=min(128, n), detrend="linear")
            ax.semilogy(f[1:], np.sqrt(psd[1:]), label=run.label, **style)
    for i, ax in enumerate(axes):
        ax.set_title(AXES[i], fontsize=10)
        ax.set_ylabel(f"[{AXIS_UNITS[AXES[i]]}/sqrt(Hz)]")
        ax.set_xlabel("frequency [Hz]")
        ax.grid(alpha=0.3, which="both")
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    _save(fig, Path(path))


def plot_oversmoothing(oversmooth: list[Oversmoothing], path: str | os.PathLike[str]) -> None:
    """Per axis and run: the high-passed ``raw - filtered`` (x) against ``reference - filtered`` (y), one dot
    per frame, with the correlation in the legend; written atomically to ``path``."""
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for i, (ax, name) in enumerate(zip(axes, AXES)):
        for o in oversmooth:
            ax.scatter(o.removed[:, i], o.deviation[:, i], s=4, alpha=0.5,
                       label=f"{o.label}: r = {o.corr[name]:.2f}")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"raw - filtered [{AXIS_UNITS[name]}]")
        ax.set_ylabel(f"reference - filtered [{AXIS_UNITS[name]}]")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    if oversmooth:
        fig.suptitle(f"over-smoothing, high-passed ({OVERSMOOTH_WINDOW}-frame fit), reference "
                     f"{oversmooth[0].reference}: near 0 the filter removed noise, near 1 motion", fontsize=10)
    _save(fig, Path(path))


def write_report(out_dir: str | os.PathLike[str], metrics: list[RunMetrics], runs: list[PoseSeries],
                 gt: PoseSeries | None, window: int, order: int, oversmooth: list[Oversmoothing] | None = None,
                 reference: str | None = None) -> dict[str, Path]:
    """Write ``jitter.json``, ``jitter.csv`` and the two plots into ``out_dir`` (created if missing), and
    ``jitter_oversmoothing.png`` with ``oversmooth`` (measured against the file ``reference``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = ("jitter.json", "jitter.csv", "jitter_timeseries.png", "jitter_spectrum.png")
    paths = {name: out / name for name in names + (("jitter_oversmoothing.png",) if oversmooth is not None else ())}
    write_json_atomic(paths["jitter.json"], metrics_json(metrics, window, order, oversmooth, reference))
    with atomic_path(paths["jitter.csv"]) as tmp:
        metrics_table(metrics).to_csv(tmp, float_format="%.6g")
    plot_timeseries(runs, gt, paths["jitter_timeseries.png"])
    plot_spectrum(runs, gt, paths["jitter_spectrum.png"])
    if oversmooth is not None:
        plot_oversmoothing(oversmooth, paths["jitter_oversmoothing.png"])
    return paths
