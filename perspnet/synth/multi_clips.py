"""Synthetic clips with several faces and exact per-face ground truth, for multi-face tracking benchmarks.

Two held-out identities (distinct), each with its own texture and light, over one background; per frame
the farther face is rendered first and the nearer one over it, so a face passing in front hides the other.
Scenarios (:data:`SCENARIOS`):

* ``cross``: face 0 walks left to right at ``near_m``, face 1 right to left at ``far_m``; they cross at
  mid-clip, face 0 in front of face 1 (face 1 is hidden for a moment).
* ``leave``: face 0 stays on the left; face 1 walks out through the right edge of the image (from 15% of the
  clip), stays out, and comes back (from half the clip) to where it was.
* ``late``: no face for the first ``late_fraction`` of the clip, then the two faces side by side.

Ids: 0 is the nearer face (the one in front), 1 the farther, which is also the order in which a tracker
that numbers faces by first appearance, larger first, meets them. Outputs: ``video.mp4``, ``K.json``,
``gt.csv`` (``frame face_id timestamp_s qw qx qy qz tx ty tz``: one row per frame and face in view, that is
whose face centre projects inside the image), ``gt_<id>.csv`` (one face, the layout of a single-face
``gt.csv``), ``identity_<id>.json`` (and ``identity.json`` for face 0) as :func:`perspnet.synth.clips.write_clip`
writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from perspnet.conventions import matrix_from_euler_deg, project_points, quat_wxyz_from_matrix
from perspnet.intrinsics import Intrinsics, save_intrinsics
from perspnet.synth.clips import ClipConfig
from perspnet.synth.render import render_face
from perspnet.synth.sampler import SampleGenerator, camera_matrix
from baseio.atomic import atomic_path, write_json_atomic
from baseio.schema import GT_CSV, GT_FACES_CSV
from baseio.video_io import VideoWriter

__all__ = ["SCENARIOS", "MultiClipConfig", "multi_trajectories", "write_multi_clip"]

SCENARIOS = ("cross", "leave", "late")
FACE_CENTRE_M = np.array([0.0, 0.0, 0.0])  # the canonical origin: the point whose projection is "the face"


@dataclass(frozen=True)
class MultiClipConfig:
    """A multi-face clip. ``fx=None`` draws fx from the seed as :class:`perspnet.synth.clips.ClipConfig` does.

    Attributes:
        scenario: see the module docstring.
        near_m, far_m: depths of face 0 (in front) and face 1, metres; up to 4 m gives distant faces (about
            60 px high at fx 1000).
        frames, fps, width, height, fx: the video and the camera's focal length (pixels).
        late_fraction: ``late``: the part of the clip without a face.
        split: identities from this split of the bank.
    """

    scenario: str = "cross"
    near_m: float = 0.9
    far_m: float = 1.4
    frames: int = 90
    fps: int = 30
    width: int = 1280
    height: int = 720
    fx: float | None = None
    late_fraction: float = 0.6
    split: str = "test"

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if self.frames < 2 or self.fps < 1:
            raise ValueError(f"frames must be >= 2 and fps positive, got frames={self.frames} fps={self.fps}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"image size must be at least 16x16, got {self.width}x{self.height}")
        if not 0.2 <= self.near_m < self.far_m <= 10.0:
            raise ValueError(f"need 0.2 <= near_m < far_m <= 10 metres, got {self.near_m} and {self.far_m}")
        if not 0.0 < self.late_fraction < 1.0:
            raise ValueError(f"late_fraction must be in (0, 1), got {self.late_fraction!r}")


def _x_at(u_fraction: np.ndarray, z_m: np.ndarray, fx: float, width: int) -> np.ndarray:
    """Camera x (metres) at depth ``z_m`` whose projection is at ``u_fraction`` of the image width."""
    return (np.asarray(u_fraction) - 0.5) * width * np.asarray(z_m) / fx


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, and a smooth ramp between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def multi_trajectories(cfg: MultiClipConfig, fx: float, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face and frame ``R (2, F, 3, 3)``, ``t (2, F, 3)`` metres, and ``present (2, F)`` bool (the face
    is rendered on that frame)."""
    n = cfg.frames
    phase = np.linspace(0.0, 1.0, n)
    z = np.stack([np.full(n, cfg.near_m), np.full(n, cfg.far_m)])
    present = np.ones((2, n), bool)
    if cfg.scenario == "cross":
        u = np.stack([0.2 + 0.6 * phase, 0.8 - 0.6 * phase])
        yaw = np.stack([np.full(n, 15.0), np.full(n, -15.0)])  # each looks a little where it walks
    elif cfg.scenario == "leave":
        # in view until 0.15 of the clip, out by 0.3, back in from 0.5, in place again at 0.65
        out_and_back = _smoothstep((phase - 0.15) / 0.15) - _smoothstep((phase - 0.5) / 0.15)
        u = np.stack([np.full(n, 0.25), 0.7 + 0.7 * out_and_back])
        yaw = np.stack([np.zeros(n), np.where(np.gradient(out_and_back) >= 0, -20.0, 20.0)])
    else:  # late
        u = np.stack([np.full(n, 0.3), np.full(n, 0.7)])
        yaw = np.zeros((2, n))
        present[:, : int(round(cfg.late_fraction * n))] = False
    R = np.empty((2, n, 3, 3))
    t = np.empty((2, n, 3))
    for f in range(2):
        wobble = rng.uniform(0, 2 * np.pi, 3)
        angles = np.column_stack([yaw[f] + 5 * np.sin(2 * np.pi * phase + wobble[0]),
                                  4 * np.sin(2 * np.pi * 1.3 * phase + wobble[1]),
                                  3 * np.sin(2 * np.pi * 0.7 * phase + wobble[2])])
        R[f] = [matrix_from_euler_deg(*a) for a in angles]
        t[f] = np.column_stack([_x_at(u[f], z[f], fx, cfg.width), np.full(n, 0.02 * (f - 0.5)), z[f]])
    return R, t, present


def write_multi_clip(out_dir: Path, seed: int, cfg: MultiClipConfig, generator: SampleGenerator) -> Path:
    """Render a two-face clip into ``out_dir`` (module docstring). The same seed and config give the same
    files. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    if len({i.name for i in generator.identities}) < 2:
        raise ValueError(f"the bank's {generator.split} split has fewer than 2 identities")
    faces = [generator.draw_identity(rng)]
    while True:
        other = generator.draw_identity(rng)
        if other[0].name != faces[0][0].name:
            faces.append(other)
            break
    fx = cfg.fx if cfg.fx is not None else float(rng.uniform(*ClipConfig.fx_range))
    K = camera_matrix(fx, fx, cfg.width / 2, cfg.height / 2)
    textures = [generator.jitter_texture(rng, ident.texture) for ident, _, _ in faces]
    lights = [generator.draw_light(rng) for _ in faces]
    background = generator.backgrounds.draw(rng, cfg.height, cfg.width)
    R, t, present = multi_trajectories(cfg, fx, rng)
    centre_px = project_points(K, t.reshape(-1, 3) + FACE_CENTRE_M).reshape(2, cfg.frames, 2)
    in_view = present & (centre_px[..., 0] >= 0) & (centre_px[..., 0] < cfg.width) & (centre_px[..., 1] >= 0) & (
        centre_px[..., 1] < cfg.height)

    out_dir.mkdir(parents=True, exist_ok=True)
    timestamps = np.arange(cfg.frames) / cfg.fps
    tables = []
    for f in range(2):
        q = quat_wxyz_from_matrix(R[f])
        rows = in_view[f]
        table = pd.DataFrame({"frame": np.arange(cfg.frames)[rows], "face_id": f, "timestamp_s": timestamps[rows],
                              "qw": q[rows, 0], "qx": q[rows, 1], "qy": q[rows, 2], "qz": q[rows, 3],
                              "tx": t[f, rows, 0], "ty": t[f, rows, 1], "tz": t[f, rows, 2]})
        with atomic_path(out_dir / f"gt_{f}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.9f", columns=list(GT_CSV.names))
        tables.append(table)
    gt = pd.concat(tables).sort_values(["frame", "face_id"], kind="stable")
    with atomic_path(out_dir / "gt.csv") as tmp:
        gt.to_csv(tmp, index=False, float_format="%.9f", columns=list(GT_FACES_CSV.names))
    save_intrinsics(out_dir / "K.json", Intrinsics(fx=fx, fy=fx, cx=cfg.width / 2, cy=cfg.height / 2,
                                                   width=cfg.width, height=cfg.height, dist=None))
    for f, (ident, shape, ipd) in enumerate(faces):
        content = {"name": ident.name, "split": ident.split, "ipd_mm": round(ipd * 1000.0, 6),
                   "motion": f"faces-{cfg.scenario}", "seed": seed, "fps": cfg.fps, "frames": cfg.frames,
                   "note": "verts_face_m: neutral identity shape of face " f"{f}, canonical face frame (x right, y "
                           "down, z into the head), metres", "verts_face_m": np.round(shape, 7).tolist()}
        for name in [f"identity_{f}.json"] + (["identity.json"] if f == 0 else []):
            write_json_atomic(out_dir / name, content)
    frame_rng = np.random.default_rng(seed + 1)  # image noise: separate stream, ground truth stays put
    with VideoWriter(out_dir / "video.mp4", cfg.width, cfg.height, fps=Fraction(cfg.fps)) as writer:
        for k in tqdm(range(cfg.frames), desc=f"clip faces-{cfg.scenario}", unit="frame", leave=False):
            image = background
            for f in sorted(range(2), key=lambda f: -t[f, k, 2]):  # the farther face first
                if present[f, k]:
                    ident, shape, _ = faces[f]
                    image = render_face(generator.face_model, shape, R[f, k], t[f, k], K, cfg.height, cfg.width,
                                        textures[f], image, lights[f]).image
            writer.write(generator.finish(frame_rng, image))
    return out_dir
