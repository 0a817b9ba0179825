"""Rauch-Tung-Striebel smoothing on SE(3) and :func:`filter_track`, the tracker's one-call entry point.

The backward pass runs in the error state of :mod:`tracker.kalman`, from the forward pass's recorded
posteriors ``x_f[k]``, priors ``x_p[k+1]`` and transitions ``F[k+1]``:

    G_k    = P_f[k] F[k+1]^T P_p[k+1]^-1
    x_s[k] = x_f[k] (+) G_k (x_s[k+1] (-) x_p[k+1])
    P_s[k] = P_f[k] + G_k (P_s[k+1] - P_p[k+1]) G_k^T

where ``(+)`` applies a ``(12,)`` error ``d`` as ``(T exp(d[:6]), v + d[6:])`` and ``(-)`` is its inverse
``(log(T_p^-1 T_s), v_s - v_p)``. Each track segment (between losses and restarts) is smoothed on its own.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracker.kalman import MEAS_DIM, STATE_DIM, FilterConfig, PoseEstimate, SE3KalmanFilter, StepRecord
from tracker.se3 import between, compose, se3_exp

__all__ = ["MODES", "rts_smooth", "TrackDiagnostics", "filter_track"]

MODES = ("none", "forward", "smooth")


def _forward_pass(ts: np.ndarray, poses: Sequence[tuple[np.ndarray, np.ndarray] | None], conf: np.ndarray,
                  config: FilterConfig) -> tuple[StepRecord, ...]:
    """The forward filter's record per frame. Offline, a restart after a run of gated measurements (the
    face jumped) is moved back to the first measurement of the run, so no frame of the run keeps the
    old segment's pose. Each rewind goes to a later frame than the one before, so the pass ends."""
    kf = SE3KalmanFilter(config)
    records: list[StepRecord] = []
    run_start, before_run = 0, kf
    k = 0
    while k < len(ts):
        if poses[k] is not None and kf.gated_run == 0:
            run_start, before_run = k, copy.copy(kf)  # before a possible gated run (states are immutable)
        record = kf.step(float(ts[k]), poses[k], float(conf[k]) if poses[k] is not None else 1.0)
        if record.status == "restart" and run_start < k:
            kf, k = before_run, run_start
            kf.restart()
            del records[run_start:]
            continue
        records.append(record)
        k += 1
    return tuple(records)


def rts_smooth(records: Sequence[StepRecord]) -> list[PoseEstimate | None]:
    """Smoothed state per frame from a forward pass's records (None where the frame has no track)."""
    out: list[PoseEstimate | None] = [r.posterior for r in records]
    for k in range(len(records) - 2, -1, -1):
        f, nxt, s = records[k].posterior, records[k + 1], out[k + 1]
        if f is None or nxt.prior is None or nxt.segment != records[k].segment:
            continue  # last frame of a segment: smoothed = filtered
        p = nxt.prior
        G = np.linalg.solve(p.P, nxt.F @ f.P).T  # P_f F^T P_p^-1, P_p and P_f symmetric
        dx = G @ np.concatenate([between(p.R, p.t, s.R, s.t), s.v - p.v])
        P = f.P + G @ (s.P - p.P) @ G.T
        out[k] = PoseEstimate(*compose(f.R, f.t, *se3_exp(dx[:6])), f.v + dx[6:], 0.5 * (P + P.T))
    return out


@dataclass(frozen=True)
class TrackDiagnostics:
    """Per-frame diagnostics of :func:`filter_track` (N frames; nan / -1 where not applicable).

    Attributes:
        mode: the mode that produced the poses.
        status: ``(N,)`` str, :data:`tracker.kalman.STATUSES` ("measured"/"missing" in mode "none").
        segment: ``(N,)`` int track segment id, -1 without a track.
        gated: ``(N,)`` bool, measurement rejected by the gate.
        d2: ``(N,)`` Mahalanobis distance squared of the innovation.
        innovation: ``(N, 6)`` innovation ``y`` (rho [m], phi [rad]).
        S: ``(N, 6, 6)`` innovation covariance.
        velocity: ``(N, 6)`` body twist rate (m/s, rad/s) of the output state.
        cov: ``(N, 12, 12)`` error covariance of the output state (filtered or smoothed).
        noise_scale: ``(N, 2)`` factors on the translation and rotation process noise in the prediction
            to each frame (above 1 during a manoeuvre; nan without a prediction).
        records: the forward pass's :class:`tracker.kalman.StepRecord` per frame (empty in mode "none").
    """

    mode: str
    status: np.ndarray
    segment: np.ndarray
    gated: np.ndarray
    d2: np.ndarray
    innovation: np.ndarray
    S: np.ndarray
    velocity: np.ndarray
    cov: np.ndarray
    noise_scale: np.ndarray
    records: tuple[StepRecord, ...]


def _check_inputs(timestamps_s, poses, confidences) -> tuple[np.ndarray, np.ndarray]:
    ts = np.asarray(timestamps_s, dtype=np.float64)
    n = ts.shape[0] if ts.ndim == 1 else -1
    if ts.ndim != 1 or len(poses) != n:
        raise ValueError(f"timestamps_s must be (N,) with one pose entry each, got {ts.shape} and {len(poses)}")
    if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise ValueError("timestamps_s must be finite and strictly increasing (seconds)")
    conf = np.ones(n) if confidences is None else np.asarray(confidences, dtype=np.float64)
    if conf.shape != (n,):
        raise ValueError(f"confidences must have shape ({n},), got {conf.shape}")
    present = np.array([p is not None for p in poses], dtype=bool)
    bad = present & ~((conf > 0) & (conf <= 1))
    if np.any(bad):
        raise ValueError(f"confidences must be in (0, 1] where a pose is given; frame {int(np.argmax(bad))} "
                         f"has {conf[np.argmax(bad)]!r}")
    return ts, conf


def filter_track(timestamps_s: np.ndarray, poses: Sequence[tuple[np.ndarray, np.ndarray] | None],
                 confidences: np.ndarray | None, config: FilterConfig, mode: str = "smooth"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, TrackDiagnostics]:
    """Filter a sequence of measured face poses over time.

    Args:
        timestamps_s: ``(N,)`` frame times in seconds from the stream, strictly increasing (any rate).
        poses: N entries, each a measured ``(R_cam_face (3, 3), t_cam_face (3,) [m])`` or None (no face).
        confidences: ``(N,)`` in (0, 1] where a pose is given (ignored elsewhere); None means all 1.
            The measurement covariance is scaled by ``1 / confidence``.
        config: filter noise and track policy for the source of the poses:
            :data:`tracker.kalman.PERSPNET_FILTER` or :data:`tracker.kalman.LANDMARK_FILTER` (or a variant).
        mode: "none" (measurements passed through), "forward" (causal Kalman filter) or "smooth"
            (forward filter + RTS backward pass; not causal).

    Returns:
        ``R (N, 3, 3)``, ``t (N, 3) [m]`` (T_cam_face; nan where not valid), ``valid (N,)`` bool
        (a track exists at that frame: measured, or bridged by prediction up to ``lost_after_s``) and
        :class:`TrackDiagnostics`.

    Example (a still face, 30 fps, the last frame without a detection):

        >>> import numpy as np
        >>> from tracker.kalman import LANDMARK_FILTER
        >>> ts = np.arange(5) / 30.0  # seconds
        >>> poses = [(np.eye(3), np.array([0.0, 0.0, 0.5]))] * 4 + [None]
        >>> R, t, valid, diag = filter_track(ts, poses, None, LANDMARK_FILTER, mode="smooth")
        >>> valid.tolist(), diag.status.tolist()
        ([True, True, True, True, True], ['init', 'update', 'update', 'update', 'predict'])
        >>> bool(np.allclose(t, [0.0, 0.0, 0.5]))
        True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(config, FilterConfig):
        raise TypeError(f"config must be a FilterConfig (e.g. PERSPNET_FILTER), got {type(config).__name__}")
    ts, conf = _check_inputs(timestamps_s, poses, confidences)
    n = ts.shape[0]
    R_out, t_out = np.full((n, 3, 3), np.nan), np.full((n, 3), np.nan)
    seg, gated, d2 = np.full(n, -1), np.zeros(n, dtype=bool), np.full(n, np.nan)
    y, S = np.full((n, MEAS_DIM), np.nan), np.full((n, MEAS_DIM, MEAS_DIM), np.nan)
    vel, cov = np.full((n, 6), np.nan), np.full((n, STATE_DIM, STATE_DIM), np.nan)
    scale = np.full((n, 2), np.nan)
    if mode == "none":
        for k, p in enumerate(poses):
            if p is not None:
                R_out[k], t_out[k] = p
        valid = np.array([p is not None for p in poses], dtype=bool)
        status = np.where(valid, "measured", "missing")
        return R_out, t_out, valid, TrackDiagnostics(mode, status, seg, gated, d2, y, S, vel, cov, scale, ())

    records = _forward_pass(ts, poses, conf, config)
    states = rts_smooth(records) if mode == "smooth" else [r.posterior for r in records]
    for k, (rec, st) in enumerate(zip(records, states)):
        seg[k], scale[k] = rec.segment, rec.noise_scale
        inn = rec.innovation
        if inn is not None:
            gated[k], d2[k], y[k], S[k] = inn.gated, inn.d2, inn.y, inn.S
        if st is not None:
            R_out[k], t_out[k], vel[k], cov[k] = st.R, st.t, st.v, st.P
    valid = np.array([r.valid for r in records], dtype=bool)
    status = np.array([r.status for r in records])
    return R_out, t_out, valid, TrackDiagnostics(mode, status, seg, gated, d2, y, S, vel, cov, scale,
                                                records)
