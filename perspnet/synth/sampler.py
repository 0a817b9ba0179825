"""Random synthetic face samples with exact ground truth, from the face bank.

Each draw: identity (bank shape + a smooth random perturbation, scaled to a drawn adult IPD), expression
(offsets from the split's videos), texture (bank + colour jitter), light, background, camera
(image size, fx, principal point) and a 6DoF pose with the face in view at 0.3-0.9 m.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from perspnet.conventions import euler_deg_from_matrix, matrix_from_euler_deg, transform_points
from perspnet.face_model import FaceModel, load_face_model
from perspnet.synth.backgrounds import BackgroundSource
from perspnet.synth.bank import BankIdentity, FaceBank
from perspnet.synth.render import Light, render_face, uv_position_map

__all__ = ["SynthConfig", "SynthSample", "SampleGenerator", "draw_ipd_m", "camera_matrix"]


@dataclass(frozen=True)
class SynthConfig:
    """What the sample generator draws from. Angles in degrees, distances in metres, sizes in pixels."""

    image_sizes: tuple[tuple[int, int], ...] = ((1280, 720), (720, 1280), (1440, 1280), (800, 800))  # (W, H)
    fx_range: tuple[float, float] = (500.0, 1700.0)
    principal_jitter: float = 0.03  # fraction of the image size
    distance_range: tuple[float, float] = (0.3, 0.9)
    yaw_max: float = 90.0
    pitch_max: float = 60.0
    roll_max: float = 45.0
    frontal_sd: tuple[float, float, float] = (30.0, 15.0, 10.0)  # (yaw, pitch, roll) sd of the frontal mode
    wide_pose_prob: float = 0.3  # probability of drawing each angle uniformly over its whole range
    ipd_mean_mm: float = 63.0
    ipd_sd_mm: float = 3.5
    ipd_clip_mm: tuple[float, float] = (54.0, 74.0)
    shape_perturb_mm: float = 2.0  # amplitude of the smooth identity perturbation
    # Train split only: the neutral shape moves by a weight drawn from this range towards (> 0) or away from
    # (< 0) another train identity's shape, so the network sees a continuum of face shapes rather than
    # a few subjects' (the texture stays the drawn identity's). Test samples are the held-out subjects as
    # they are.
    identity_mix: tuple[float, float] = (-0.3, 0.6)
    expression_prob: float = 0.6
    uv_size: int = 192


@dataclass
class SynthSample:
    """One rendered sample. Frames and units as in :mod:`perspnet.conventions`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        K: ``(3, 3)`` camera matrix.
        R_cam_face, t_cam_face: pose ``X_cam = R @ X + t`` (metres).
        verts_face_m: ``(468, 3)`` canonical vertices (metres).
        mask, tri_id, bary: per-pixel face mask and (triangle id, barycentric) correspondence.
        uv_map: ``(U, U, 3)`` float32 UV position map, canonical xyz in metres.
        ipd_mm: the identity's inter-pupillary distance (eye centres).
        identity: bank name.
    """

    image: np.ndarray
    K: np.ndarray
    R_cam_face: np.ndarray
    t_cam_face: np.ndarray
    verts_face_m: np.ndarray
    mask: np.ndarray
    tri_id: np.ndarray
    bary: np.ndarray
    uv_map: np.ndarray
    ipd_mm: float
    identity: str
    meta: dict = field(default_factory=dict)

    @property
    def verts_cam_m(self) -> np.ndarray:
        """``(468, 3)`` camera-frame vertices (metres)."""
        return transform_points(self.R_cam_face, self.t_cam_face, self.verts_face_m)

    @property
    def yaw_pitch_roll_deg(self) -> np.ndarray:
        return euler_deg_from_matrix(self.R_cam_face)


def draw_ipd_m(rng: np.random.Generator, cfg: SynthConfig) -> float:
    """An adult IPD in metres: normal(mean, sd) clipped to the configured range."""
    ipd = np.clip(rng.normal(cfg.ipd_mean_mm, cfg.ipd_sd_mm), *cfg.ipd_clip_mm)
    return float(ipd) / 1000.0


def camera_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _smooth_perturbation(rng: np.random.Generator, verts: np.ndarray, amplitude_m: float) -> np.ndarray:
    """``(N, 3)`` low-frequency displacement: a few Gaussian bumps centred on random vertices."""
    out = np.zeros_like(verts)
    for c in verts[rng.choice(len(verts), 6, replace=False)]:
        w = np.exp(-((verts - c) ** 2).sum(1) / (2 * 0.03 ** 2))
        out += w[:, None] * rng.normal(0.0, amplitude_m, 3)
    return out


class SampleGenerator:
    """Draws :class:`SynthSample` from one split of a face bank.

    Args:
        bank: the face bank.
        split: ``"train"`` or ``"test"`` (identities and expressions are drawn from this split only).
        config: what to draw.
        face_model: canonical mesh (loaded when None).
    """

    def __init__(self, bank: FaceBank, split: str, config: SynthConfig = SynthConfig(),
                 face_model: FaceModel | None = None):
        self.cfg = config
        self.face_model = face_model or load_face_model()
        self.split = split
        self.identities = bank.split(split)
        self.expressions = bank.expression_pool(split)
        self.backgrounds = BackgroundSource()

    def draw_identity(self, rng: np.random.Generator) -> tuple[BankIdentity, np.ndarray, float]:
        """(bank identity, perturbed neutral shape ``(468, 3)`` at its drawn metric size, IPD in metres); on the
        train split the shape is first mixed with another identity's (``SynthConfig.identity_mix``)."""
        ident = self.identities[rng.integers(len(self.identities))]
        shape = ident.verts_face_m
        if self.split == "train" and len(self.identities) > 1:
            other = self.identities[rng.integers(len(self.identities))]
            shape = shape + rng.uniform(*self.cfg.identity_mix) * (other.verts_face_m - shape)
        shape = shape + _smooth_perturbation(rng, shape, self.cfg.shape_perturb_mm / 1000)
        ipd = draw_ipd_m(rng, self.cfg)
        return ident, shape * (ipd / self.face_model.ipd_m(shape)), ipd

    def draw_expression(self, rng: np.random.Generator, size_ratio: float) -> np.ndarray:
        """``(468, 3)`` expression offset (metres), zero with probability ``1 - expression_prob``."""
        if len(self.expressions) == 0 or rng.random() > self.cfg.expression_prob:
            return np.zeros((self.face_model.n_verts, 3))
        return self.expressions[rng.integers(len(self.expressions))] * size_ratio * rng.uniform(0.5, 1.2)

    def draw_camera(self, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        width, height = self.cfg.image_sizes[rng.integers(len(self.cfg.image_sizes))]
        fx = rng.uniform(*self.cfg.fx_range)
        j = self.cfg.principal_jitter
        K = camera_matrix(fx, fx * rng.uniform(0.99, 1.01), width / 2 + rng.uniform(-j, j) * width,
                          height / 2 + rng.uniform(-j, j) * height)
        return K, width, height

    def draw_rotation(self, rng: np.random.Generator) -> np.ndarray:
        limits = (self.cfg.yaw_max, self.cfg.pitch_max, self.cfg.roll_max)
        angles = []
        for lim, sd in zip(limits, self.cfg.frontal_sd):
            a = rng.uniform(-lim, lim) if rng.random() < self.cfg.wide_pose_prob else rng.normal(0.0, sd)
            angles.append(float(np.clip(a, -lim, lim)))
        return matrix_from_euler_deg(*angles)

    def draw_translation(self, rng: np.random.Generator, K: np.ndarray, width: int, height: int) -> np.ndarray:
        """A translation (metres) putting the face centre in view with its whole extent inside the image."""
        z = rng.uniform(*self.cfg.distance_range)
        radius_px = 0.11 * K[0, 0] / z  # about half a head's height
        lo_u, hi_u = radius_px, width - radius_px
        lo_v, hi_v = radius_px, height - radius_px
        u = rng.uniform(lo_u, hi_u) if hi_u > lo_u else width / 2
        v = rng.uniform(lo_v, hi_v) if hi_v > lo_v else height / 2
        return z * np.linalg.solve(K, np.array([u, v, 1.0]))

    def draw_light(self, rng: np.random.Generator) -> Light:
        d = np.array([rng.normal(0, 0.6), rng.normal(-0.3, 0.5), -1.0])
        return Light(tuple(d / np.linalg.norm(d)), ambient=rng.uniform(0.35, 0.7), diffuse=rng.uniform(0.25, 0.6))

    def render(self, rng: np.random.Generator, ident: BankIdentity, verts_face_m: np.ndarray, R: np.ndarray,
               t: np.ndarray, K: np.ndarray, width: int, height: int, ipd_m: float, texture: np.ndarray,
               light: Light, background: np.ndarray) -> SynthSample:
        """Render given everything; used by :meth:`sample` and by the clip generator."""
        out = render_face(self.face_model, verts_face_m, R, t, K, height, width, texture, background, light)
        image = self.finish(rng, out.image)
        return SynthSample(image=image, K=K, R_cam_face=R, t_cam_face=t, verts_face_m=verts_face_m, mask=out.mask,
                           tri_id=out.tri_id, bary=out.bary,
                           uv_map=uv_position_map(self.face_model, verts_face_m, self.cfg.uv_size),
                           ipd_mm=ipd_m * 1000.0, identity=ident.name)

    def finish(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """The camera's softness (a Gaussian blur, half the time) and sensor noise on a rendered
        ``(H, W, 3) uint8`` image; deterministic given ``rng``."""
        if rng.random() < 0.5:  # camera softness
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.9))
        noise = np.empty(image.shape, np.int16)  # sensor noise; cv2.randn is seeded from rng for determinism
        cv2.setRNGSeed(int(rng.integers(2 ** 31)))
        cv2.randn(noise, 0, float(rng.uniform(0, 3)))
        return cv2.add(image, noise, dtype=cv2.CV_8U)

    def jitter_texture(self, rng: np.random.Generator, texture: np.ndarray) -> np.ndarray:
        gain = rng.normal(1.0, 0.08, 3) * rng.uniform(0.8, 1.15)
        return np.clip(texture * gain, 0, 255).astype(np.uint8)

    def sample(self, rng: np.random.Generator) -> SynthSample:
        """Draw and render one sample."""
        ident, shape, ipd = self.draw_identity(rng)
        expression = self.draw_expression(rng, ipd / self.face_model.ipd_m(ident.verts_face_m))
        K, width, height = self.draw_camera(rng)
        R = self.draw_rotation(rng)
        t = self.draw_translation(rng, K, width, height)
        sample = self.render(rng, ident, shape + expression, R, t, K, width, height, ipd,
                             self.jitter_texture(rng, ident.texture), self.draw_light(rng),
                             self.backgrounds.draw(rng, height, width))
        sample.meta["expression"] = bool(np.any(expression))
        return sample
