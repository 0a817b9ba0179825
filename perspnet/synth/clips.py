"""Synthetic video clips with exact per-frame ground truth, for tracking benchmarks.

One identity (held-out by default), texture, light and background per clip; the pose follows a motion
(``MOTIONS``; ``shake`` and ``replay`` have real head dynamics, :mod:`perspnet.synth.motions`) and, for
``talk``/``mixed``, the expression follows a real expression sequence from the bank's videos. Outputs: ``video.mp4`` (H.264), ``K.json``, ``gt.csv`` (``frame timestamp_s qw qx qy qz
tx ty tz``: quaternion (w, x, y, z) of R and t in metres, ``X_cam = R X + t``) and ``identity.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from perspnet.conventions import matrix_from_euler_deg, quat_wxyz_from_matrix
from perspnet.intrinsics import Intrinsics, save_intrinsics
from perspnet.synth.motions import load_motion, replay_pose, shake_angles
from perspnet.synth.sampler import SampleGenerator, camera_matrix
from perspnet.validate import check_choice, check_int
from baseio.atomic import atomic_path, write_json_atomic
from baseio.schema import GT_CSV
from baseio.video_io import VideoWriter

__all__ = ["MOTIONS", "ClipConfig", "ClipTrajectory", "clip_trajectory", "write_clip"]

MOTIONS = ("approach", "turn", "nod", "talk", "static", "mixed", "shake", "replay")
GT_COLUMNS = GT_CSV.names


@dataclass(frozen=True)
class ClipConfig:
    """A clip's camera and length. ``fx=None`` draws fx from the seed in ``fx_range``. ``motion_from``: the
    measured trajectory (``poses.csv`` or ``gt.csv``) that motion ``replay`` replays, and only it."""

    motion: str = "mixed"
    frames: int = 90
    fps: int = 30
    width: int = 1280
    height: int = 720
    fx: float | None = None
    fx_range: tuple[float, float] = (800.0, 1300.0)
    split: str = "test"
    motion_from: Path | None = None

    def __post_init__(self):
        check_choice("motion", self.motion, MOTIONS)
        if (self.motion == "replay") != (self.motion_from is not None):
            raise ValueError("motion 'replay' needs --motion-from (a poses.csv or gt.csv); other motions take none")
        check_int("frames", self.frames, 1)
        check_int("fps", self.fps, 1)
        check_int("width", self.width, 16)
        check_int("height", self.height, 16)


@dataclass
class ClipTrajectory:
    """Per-frame ground truth: ``R (F, 3, 3)``, ``t (F, 3)`` metres, ``expression (F,)`` float index into
    the expression sequence (-1: neutral)."""

    R: np.ndarray
    t: np.ndarray
    expression: np.ndarray


def _smooth_noise(rng: np.random.Generator, n: int, amplitude: float, periods_s=(3.1, 5.3), fps=30) -> np.ndarray:
    """A sum of two sinusoids with random phases: smooth, deterministic wobble ``(n,)``."""
    t = np.arange(n) / fps
    return sum(amplitude / len(periods_s) * np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi)) for p in periods_s)


def clip_trajectory(cfg: ClipConfig, rng: np.random.Generator, n_expressions: int) -> ClipTrajectory:
    """Pose (and expression) per frame for ``cfg.motion``; angles in degrees before conversion."""
    n = cfg.frames
    phase = np.linspace(0.0, 1.0, n)  # 0 -> 1 over the clip
    wob = lambda a: _smooth_noise(rng, n, a, fps=cfg.fps)  # noqa: E731
    yaw, pitch, roll = wob(3.0), wob(2.0), wob(1.5)
    z = np.full(n, 0.55) + wob(0.01)
    x, y = wob(0.01), wob(0.008)
    expression = np.full(n, -1.0)
    if cfg.motion == "approach":  # 0.9 m -> 0.3 m -> 0.9 m along the camera axis
        z = 0.6 + 0.3 * np.cos(2 * np.pi * phase)
    elif cfg.motion == "turn":
        yaw = 60.0 * np.sin(2 * np.pi * phase) + wob(2.0)
    elif cfg.motion == "nod":
        pitch = 25.0 * np.sin(4 * np.pi * phase) + wob(1.0)
    elif cfg.motion == "static":
        yaw, pitch, roll = np.full(n, rng.uniform(-10, 10)), np.full(n, rng.uniform(-5, 5)), np.zeros(n)
        z, x, y = np.full(n, rng.uniform(0.45, 0.7)), np.zeros(n), np.zeros(n)
    elif cfg.motion == "mixed":
        z = 0.55 + 0.2 * np.sin(2 * np.pi * phase + rng.uniform(0, 6.28)) + wob(0.02)
        yaw, pitch, roll = 35 * np.sin(2 * np.pi * phase * 1.3) + wob(5), wob(20), wob(12)
        x, y = wob(0.05), wob(0.03)
    elif cfg.motion == "shake":
        yaw, pitch, roll = shake_angles(np.arange(n) / cfg.fps, rng).T
    if cfg.motion in ("talk", "mixed") and n_expressions > 1:
        start = rng.uniform(0, n_expressions - 1)
        expression = (start + np.arange(n) * rng.uniform(0.3, 0.6)) % (n_expressions - 1)
    if cfg.motion == "replay":
        R, t = replay_pose(load_motion(cfg.motion_from), np.arange(n) / cfg.fps)
        return ClipTrajectory(R=R, t=t, expression=expression)
    R = np.stack([matrix_from_euler_deg(a, b, c) for a, b, c in zip(yaw, pitch, roll)])
    return ClipTrajectory(R=R, t=np.column_stack([x, y, z]), expression=expression)


def _expression_at(pool: np.ndarray, index: float) -> np.ndarray:
    if index < 0 or len(pool) == 0:
        return np.zeros(pool.shape[1:] if len(pool) else (468, 3))
    i = int(index)
    f = index - i
    return (1 - f) * pool[i] + f * pool[min(i + 1, len(pool) - 1)]


def write_clip(out_dir: Path, seed: int, cfg: ClipConfig, generator: SampleGenerator) -> Path:
    """Render a clip into ``out_dir`` (``video.mp4``, ``K.json``, ``gt.csv``, ``identity.json``).

    The same seed and config give the same ground truth, byte for byte. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    ident, shape, ipd = generator.draw_identity(rng)
    size_ratio = ipd / generator.face_model.ipd_m(ident.verts_face_m)
    fx = cfg.fx if cfg.fx is not None else float(rng.uniform(*cfg.fx_range))
    K = camera_matrix(fx, fx, cfg.width / 2, cfg.height / 2)
    texture = generator.jitter_texture(rng, ident.texture)
    light = generator.draw_light(rng)
    background = generator.backgrounds.draw(rng, cfg.height, cfg.width)
    pool = generator.expressions * size_ratio
    traj = clip_trajectory(cfg, rng, len(pool))

    timestamps = np.arange(cfg.frames) / cfg.fps
    q = quat_wxyz_from_matrix(traj.R)
    gt = pd.DataFrame({"frame": np.arange(cfg.frames), "timestamp_s": timestamps,
                       "qw": q[:, 0], "qx": q[:, 1], "qy": q[:, 2], "qz": q[:, 3],
                       "tx": traj.t[:, 0], "ty": traj.t[:, 1], "tz": traj.t[:, 2]})
    out_dir.mkdir(parents=True, exist_ok=True)  # after the trajectory, which may refuse its motion_from file
    with atomic_path(out_dir / "gt.csv") as tmp:
        gt.to_csv(tmp, index=False, float_format="%.9f", columns=list(GT_COLUMNS))
    save_intrinsics(out_dir / "K.json", Intrinsics(fx=fx, fy=fx, cx=cfg.width / 2, cy=cfg.height / 2,
                                                   width=cfg.width, height=cfg.height, dist=None))
    write_json_atomic(out_dir / "identity.json", {
        "name": ident.name, "split": ident.split, "ipd_mm": round(ipd * 1000.0, 6), "motion": cfg.motion,
        "seed": seed, "fps": cfg.fps, "frames": cfg.frames,
        "note": "verts_face_m: neutral identity shape, canonical face frame (x right, y down, z into the head), "
                "metres; frames with an expression add an offset to it",
        "verts_face_m": np.round(shape, 7).tolist()})
    frame_rng = np.random.default_rng(seed + 1)  # image noise: separate stream, ground truth stays put
    with VideoWriter(out_dir / "video.mp4", cfg.width, cfg.height, fps=Fraction(cfg.fps)) as writer:
        for k in tqdm(range(cfg.frames), desc=f"clip {cfg.motion}", unit="frame", leave=False):
            verts = shape + _expression_at(pool, traj.expression[k])
            sample = generator.render(frame_rng, ident, verts, traj.R[k], traj.t[k], K, cfg.width, cfg.height, ipd,
                                      texture, light, background)
            writer.write(sample.image)
    return out_dir
