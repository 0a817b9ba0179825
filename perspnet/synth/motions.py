"""Head motions with real dynamics for synthetic clips: quick shakes, and replays of measured trajectories.

* :func:`shake_angles`: quick turns, nods and rolls (yaw, pitch, roll in turn): each a swing from
  ``-amplitude`` to ``+amplitude`` and back, every swing a half-cosine in time (zero angular speed at both
  ends, peak speed ``pi/2 * 2 amplitude / duration``), with pauses between them. The first swing of each
  axis is the full ``SHAKE_AMPLITUDE_DEG`` at :data:`SHAKE_PEAK_DEG_S`, i.e. -25 to +25 degrees within
  :data:`SHAKE_SWING_S`; later swings draw smaller amplitudes and speeds.
* :func:`load_motion` / :func:`replay_pose`: a head trajectory measured on a real clip (a ``poses.csv`` of
  ``track-video`` or ``mediapipe-track``, or a ``gt.csv``), resampled at the clip's frame times by the
  measured timestamps (rotation by spherical interpolation, translation linearly; frames without a pose
  are bridged the same way). The replay keeps the measured rotation and depth and every movement; the
  mean position across the image is moved onto the optical axis, so the face stays in view under another
  camera.

Angles in degrees (yaw, pitch, roll as in :mod:`perspnet.conventions`), translations in metres, camera frame.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation, Slerp

from perspnet.conventions import matrix_from_quat_wxyz

__all__ = ["SHAKE_AMPLITUDE_DEG", "SHAKE_PEAK_DEG_S", "SHAKE_SWING_S", "MotionTrack", "shake_angles",
           "load_motion", "replay_pose"]

SHAKE_AMPLITUDE_DEG = 25.0  # each swing goes from -amplitude to +amplitude
SHAKE_PEAK_DEG_S = 300.0  # fastest angular speed of a swing
# A half-cosine swing over 2 * amplitude reaches its peak speed pi/2 * 2 * amplitude / duration.
SHAKE_SWING_S = math.pi * SHAKE_AMPLITUDE_DEG / SHAKE_PEAK_DEG_S
_PAUSE_S = (0.15, 0.45)  # rest between two movements
_MIN_PEAK_DEG_S = 120.0  # slowest peak speed drawn for the later swings


def _half_cosine(fraction: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Angle at ``fraction`` in [0, 1] of a half-cosine move from ``start`` to ``stop``."""
    return start + (stop - start) * 0.5 * (1.0 - np.cos(np.pi * np.clip(fraction, 0.0, 1.0)))


def shake_angles(times_s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Yaw, pitch, roll ``(N, 3)`` [deg] at ``times_s (N,)`` [s] of quick shakes; see the module docstring.

    Each movement: from rest at 0 to ``-a`` (a quarter of the way at half the speed), a swing to ``+a`` and
    back to ``-a``, and back to 0; ``a`` and the swing time are drawn so the peak speed stays within
    :data:`SHAKE_PEAK_DEG_S`. The axes take turns: yaw, pitch, roll, yaw, ...
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    angles = np.zeros((times_s.size, 3))
    t0, k = float(rng.uniform(*_PAUSE_S)), 0
    end = float(times_s.max()) if times_s.size else 0.0
    while t0 < end:
        axis = k % 3
        if k < 3:
            a, swing = SHAKE_AMPLITUDE_DEG, SHAKE_SWING_S
        else:
            a = float(rng.uniform(10.0, SHAKE_AMPLITUDE_DEG))
            swing = math.pi * a / float(rng.uniform(_MIN_PEAK_DEG_S, SHAKE_PEAK_DEG_S))
        # (duration, start angle, end angle): out to -a, two swings, back to rest
        moves = ((swing, 0.0, -a), (swing, -a, a), (swing, a, -a), (swing, -a, 0.0))
        for duration, start, stop in moves:
            inside = (times_s >= t0) & (times_s < t0 + duration)
            angles[inside, axis] = _half_cosine((times_s[inside] - t0) / duration, start, stop)
            t0 += duration
        t0 += float(rng.uniform(*_PAUSE_S))
        k += 1
    return angles


@dataclass(frozen=True)
class MotionTrack:
    """A measured head trajectory: ``time_s (M,)`` increasing, seconds from its first pose;
    ``R (M, 3, 3)`` R_cam_face and ``t (M, 3)`` t_cam_face in metres; ``source`` the file."""

    time_s: np.ndarray
    R: np.ndarray
    t: np.ndarray
    source: str

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0]) if self.time_s.size else 0.0


def load_motion(path: str | os.PathLike[str]) -> MotionTrack:
    """Read the poses of a ``poses.csv`` (rows with ``success`` 1; its main columns, i.e. the filtered
    poses unless it was written with ``--filter none``) or a ``gt.csv`` (every row). Raises ValueError with a
    one-line message naming the file when it cannot be used."""
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{p}: cannot read a pose CSV ({reason})") from err
    columns = ("timestamp_s", "qw", "qx", "qy", "qz", "tx", "ty", "tz")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {', '.join(missing)} (expected a poses.csv or gt.csv)")
    if "success" in df.columns:
        df = df[pd.to_numeric(df["success"], errors="coerce").fillna(0).astype(bool)]
    values = df[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.all(np.isfinite(values), axis=1)]
    if len(values) < 2:
        raise ValueError(f"{p}: fewer than two poses to replay")
    if np.any(np.diff(values[:, 0]) <= 0):
        raise ValueError(f"{p}: timestamp_s must increase from row to row")
    q = values[:, 1:5]
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    if np.any(norms < 1e-6):
        raise ValueError(f"{p}: a quaternion has zero length")
    return MotionTrack(values[:, 0] - values[0, 0], matrix_from_quat_wxyz(q / norms), values[:, 5:8], str(p))


def replay_pose(track: MotionTrack, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``R (N, 3, 3)``, ``t (N, 3)`` [m] of ``track`` at ``times_s (N,)`` [s from its start], resampled and
    centred on the optical axis (see the module docstring). Raises ValueError when the times run past the
    trajectory's end."""
    times_s = np.asarray(times_s, dtype=np.float64)
    if times_s.size and (times_s.min() < 0 or times_s.max() > track.duration_s + 1e-9):
        raise ValueError(f"{track.source}: the trajectory lasts {track.duration_s:.2f} s, the clip needs "
                         f"{times_s.max():.2f} s (use fewer --frames)")
    R = Slerp(track.time_s, Rotation.from_matrix(track.R))(times_s).as_matrix()
    t = np.column_stack([np.interp(times_s, track.time_s, track.t[:, i]) for i in range(3)])
    t[:, :2] -= track.t[:, :2].mean(axis=0)
    return R, t
