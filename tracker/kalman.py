"""Error-state Kalman filter on SE(3) for the face pose ``T_cam_face`` with a constant-velocity model.

State
-----
Nominal state: pose ``(R_cam_face (3, 3), t_cam_face (3,) [m])`` (``X_cam = R @ X_face + t``, see
:mod:`perspnet.conventions`) and its body-frame velocity ``v = (v_rho [m/s], v_phi [rad/s])`` ``(6,)``,
the twist per second expressed in the face frame: over ``dt`` seconds the pose moves by
``T <- T exp(v dt)``. Tangent order (rho, phi) as fixed in :mod:`tracker.se3`.

Error state ``(12,)``, laid out as :data:`STATE_LAYOUT`: the true state is
``T = T_hat exp(d[0:6])`` (right, i.e. face-frame, perturbation) and ``v = v_hat + d[6:12]``.
``P`` ``(12, 12)`` is the covariance of ``d``; the error mean is reset to zero after every update.

Models (all times in seconds, from the stream's timestamps; the frame rate may vary)
-----------------------------------------------------------------------------------
* Prediction: ``T' = T exp(v dt)``, ``v' = v``; error transition
  ``F = [[Ad(exp(-v dt)), J_r(v dt) dt], [0, I]]``; process noise from white acceleration with
  spectral density ``q`` per axis: blocks ``q dt^3/3, q dt^2/2, q dt`` (:func:`process_noise`).
* Measurement: a pose ``T_meas``; innovation ``y = log(T_pred^-1 T_meas)`` ``(6,)``, ``H = [I_6 0]``,
  ``R_k = blockdiag(R_pred^T diag(sx^2, sy^2, sz^2) R_pred, s_rot^2 I) / confidence``: the translation
  noise is given along the camera axes (z, the depth, is the noisiest for a monocular camera) and
  rotated into the face frame of the innovation.
* Manoeuvres (innovation-adaptive process noise): a head that turns or moves faster than the
  white-acceleration model expects leaves innovations that the nominal ``S`` cannot explain. Before each
  update the translation and the rotation block of ``Q`` are each scaled by the smallest factor of
  ``1, 4, 16, ...`` up to ``max_noise_scale`` for which that block's innovation ``y_b^T S_bb^-1 y_b``
  (3 dof) is within the chi-square quantile at ``manoeuvre_probability``: during a quick turn the prior
  widens and the track follows the measurements; at rest ``Q`` stays nominal and the noise is smoothed.
  The factors used are recorded (:attr:`StepRecord.noise_scale`), so the RTS pass sees the same ``Q``.
  A measurement that the gate rejects even with the widened prior is an outlier, not a manoeuvre: that
  frame is predicted with the nominal ``Q``.
* Gating: ``d2 = y^T S^-1 y`` (with the scaled ``Q``) against the chi-square quantile (6 dof) at
  ``gate_probability``; a gated measurement is skipped (prediction only) and reported. The largest
  factor bounds how far the prior widens, so a pose far off every motion the model allows is still gated.
* Track life: the first measurement initialises the track; frames without a measurement are predicted;
  when more than ``lost_after_s`` has passed since the last accepted measurement the track is lost and
  the next measurement starts a new segment. ``restart_after_gated`` gated measurements in a row (with
  no accepted one between them) also start a new segment at the last of them: the face jumped (a cut,
  a re-detection elsewhere, motion far beyond the model) and the measurements agree on where it went.

The linear algebra of predict/update is filterpy's (``filterpy.kalman.predict`` / ``update``, Joseph
form) on the zero-mean error state; ``S`` and ``d2`` are computed here before the update because the
gate must decide before a posterior is committed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from filterpy.kalman import predict as kf_predict
from filterpy.kalman import update as kf_update
from scipy.stats import chi2

from perspnet.validate import check_int, check_range
from tracker.se3 import adjoint, between, compose, se3_exp, se3_right_jacobian

__all__ = [
    "STATE_LAYOUT",
    "STATE_SLICES",
    "STATE_DIM",
    "MEAS_DIM",
    "STATUSES",
    "FilterConfig",
    "LANDMARK_FILTER",
    "PERSPNET_FILTER",
    "PoseEstimate",
    "Innovation",
    "StepRecord",
    "SE3KalmanFilter",
    "propagate",
    "transition_jacobian",
    "process_noise",
    "measurement_covariance",
    "manoeuvre_scales",
]

STATE_LAYOUT = ("rho", "phi", "v_rho", "v_phi")  # error state: pose (translation, rotation), velocity
STATE_SLICES = {name: slice(3 * i, 3 * i + 3) for i, name in enumerate(STATE_LAYOUT)}
STATE_DIM = 12
MEAS_DIM = 6
H = np.hstack([np.eye(MEAS_DIM), np.zeros((MEAS_DIM, STATE_DIM - MEAS_DIM))])  # y ~= d[0:6] + noise

# Per-frame status: "idle" no track; "lost" the track was declared lost at this frame (no measurement
# to restart it); "init" a track (re)started from this frame's measurement; "restart" a new segment
# started from this frame's measurement after ``restart_after_gated`` gated ones in a row; "update"
# measurement accepted; "gated" measurement rejected by the gate; "predict" no measurement.
STATUSES = ("idle", "lost", "init", "restart", "update", "gated", "predict")
NOISE_SCALE_STEP = 4  # ratio between the process-noise factors tried during a manoeuvre


@dataclass(frozen=True)
class FilterConfig:
    """Noise model and track policy of :class:`SE3KalmanFilter`. Validated on construction.

    The noise fields have no default: the right values depend on what measures the poses. Use a named
    preset, :data:`PERSPNET_FILTER` (PerspNet poses, ``track-video``) or :data:`LANDMARK_FILTER`
    (landmark + PnP poses, ``mediapipe-track``), and ``dataclasses.replace`` it for variants.

    Attributes:
        accel_noise_trans: square root of the translational acceleration spectral density,
            (m/s^2)/sqrt(Hz) (the density itself is its square, m^2/s^3), per face-frame axis.
        accel_noise_rot: same for rotation, (rad/s^2)/sqrt(Hz).
        meas_sd_xy_m: measured translation sd along camera x and y at confidence 1, metres.
        meas_sd_z_m: measured translation sd along camera z (depth) at confidence 1, metres.
        meas_sd_rot_rad: measured rotation sd per axis at confidence 1, radians.
        gate_probability: chi-square (6 dof) probability of the gate; larger gates fewer measurements.
        lost_after_s: seconds without an accepted measurement after which the track is lost.
        restart_after_gated: gated measurements in a row after which the track restarts at the latest
            one (a new segment); 0 never restarts this way.
        init_vel_sd_trans: sd of the initial translational velocity, m/s.
        init_vel_sd_rot: sd of the initial angular velocity, rad/s.
        max_noise_scale: largest factor on a block of ``Q`` during a manoeuvre (a power of
            :data:`NOISE_SCALE_STEP`); 1 turns the adaptation off (a plain constant-velocity filter).
        manoeuvre_probability: chi-square (3 dof) probability above which a block's innovation counts
            as a manoeuvre and its ``Q`` is scaled up.
    """

    accel_noise_trans: float
    accel_noise_rot: float
    meas_sd_xy_m: float
    meas_sd_z_m: float
    meas_sd_rot_rad: float
    gate_probability: float = 0.99999
    lost_after_s: float = 0.5
    restart_after_gated: int = 3
    init_vel_sd_trans: float = 0.3
    init_vel_sd_rot: float = 2.0
    max_noise_scale: float = NOISE_SCALE_STEP**5
    manoeuvre_probability: float = 0.99

    def __post_init__(self) -> None:
        for name in ("accel_noise_trans", "accel_noise_rot", "meas_sd_xy_m", "meas_sd_z_m",
                     "meas_sd_rot_rad", "lost_after_s", "init_vel_sd_trans", "init_vel_sd_rot"):
            check_range(f"FilterConfig.{name}", getattr(self, name), 0.0, lo_open=True)
        check_int("FilterConfig.restart_after_gated", self.restart_after_gated, 0)
        for name in ("gate_probability", "manoeuvre_probability"):
            check_range(f"FilterConfig.{name}", getattr(self, name), 0.0, 1.0, lo_open=True, hi_open=True)
        steps = math.log(self.max_noise_scale, NOISE_SCALE_STEP) if self.max_noise_scale >= 1 else -1.0
        if not (steps >= 0 and abs(steps - round(steps)) < 1e-9):
            raise ValueError(f"FilterConfig.max_noise_scale must be a power of {NOISE_SCALE_STEP} (1 = off), "
                             f"got {self.max_noise_scale!r}")

    @property
    def gate_threshold(self) -> float:
        """Largest accepted Mahalanobis distance squared ``d2`` (chi-square quantile, 6 dof)."""
        return float(chi2.ppf(self.gate_probability, MEAS_DIM))

    @property
    def noise_scales(self) -> tuple[float, ...]:
        """The factors tried on a block of ``Q``: ``1, 4, 16, ...`` up to ``max_noise_scale``."""
        steps = round(math.log(self.max_noise_scale, NOISE_SCALE_STEP))
        return tuple(float(NOISE_SCALE_STEP**k) for k in range(steps + 1))

    @property
    def manoeuvre_threshold(self) -> float:
        """Largest block innovation distance squared (3 dof) that needs no larger ``Q``."""
        return float(chi2.ppf(self.manoeuvre_probability, 3))


# Poses from dense landmarks (MediaPipe's 468) + PnP with K: a few pixels of landmark noise spread over
# the whole face give about a millimetre across the image, a few along the depth and a degree per axis.
LANDMARK_FILTER = FilterConfig(accel_noise_trans=0.1, accel_noise_rot=0.5, meas_sd_xy_m=0.0015,
                               meas_sd_z_m=0.006, meas_sd_rot_rad=math.radians(1.0))
# Poses from PerspNet + PnP: the measurement noise is the raw PerspNet track's frame-to-frame noise on
# synthetic clips (docs/experiments.md). With the landmark values the filter trusts each pose too much,
# runs away on the noise between gated measurements, and the boxes it predicts pull the network off the
# face. The translational process noise is larger than the landmark preset's so the smoothed track
# follows a face that turns back towards the camera instead of cutting the corner. The rotational process
# noise is that of real head motion (trajectories measured on real clips, replayed and shaken in renders;
# docs/benchmarks.md "Real motion"): with the landmark preset's value, tuned on slow synthetic motion, the
# smoother flattened quick nods and rolls that an independent tracker still saw.
PERSPNET_FILTER = FilterConfig(accel_noise_trans=0.3, accel_noise_rot=6.0, meas_sd_xy_m=0.005,
                               meas_sd_z_m=0.02, meas_sd_rot_rad=math.radians(4.0))


@dataclass(frozen=True)
class PoseEstimate:
    """A Gaussian on the filter state: ``R (3, 3)``, ``t (3,) [m]`` (T_cam_face), ``v (6,)`` body twist
    rate ``(m/s, rad/s)``, ``P (12, 12)`` error covariance in :data:`STATE_LAYOUT` order."""

    R: np.ndarray
    t: np.ndarray
    v: np.ndarray
    P: np.ndarray


@dataclass(frozen=True)
class Innovation:
    """One measurement's innovation ``y (6,)`` (rho [m], phi [rad]), its covariance ``S (6, 6)``,
    the measurement covariance ``R_k (6, 6)`` used, ``d2 = y^T S^-1 y`` and whether it was gated."""

    y: np.ndarray
    S: np.ndarray
    R_k: np.ndarray
    d2: float
    gated: bool


@dataclass(frozen=True)
class StepRecord:
    """What :meth:`SE3KalmanFilter.step` did at one frame.

    Attributes:
        time_s: frame timestamp, seconds.
        dt_s: seconds since the previous frame the filter saw (nan when there was no track).
        status: one of :data:`STATUSES`.
        segment: track segment id (0, 1, ... in order of initialisation), -1 without a track.
        prior: the predicted state (None for "init" and frames without a track).
        posterior: the state after this frame (None without a track); equals ``prior`` unless "update".
        F: ``(12, 12)`` error transition from the previous posterior to ``prior`` (None with ``prior``).
        innovation: the measurement's :class:`Innovation` ("update" and "gated" frames), else None.
        noise_scale: ``(2,)`` factors on the translation and rotation blocks of ``Q`` in the prediction
            to this frame (1 without a manoeuvre; nan without a prediction).
    """

    time_s: float
    dt_s: float
    status: str
    segment: int
    prior: PoseEstimate | None = None
    posterior: PoseEstimate | None = None
    F: np.ndarray | None = field(default=None, repr=False)
    innovation: Innovation | None = None
    noise_scale: tuple[float, float] = (math.nan, math.nan)

    @property
    def valid(self) -> bool:
        """True where the track has a pose at this frame."""
        return self.posterior is not None


def propagate(R: np.ndarray, t: np.ndarray, v: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity motion: ``T exp(v dt)``. ``R (3, 3)``, ``t (3,) [m]``, ``v (6,)`` body twist rate."""
    return compose(R, t, *se3_exp(np.asarray(v, dtype=np.float64) * dt_s))


def transition_jacobian(v: np.ndarray, dt_s: float) -> np.ndarray:
    """Error-state transition ``F (12, 12)`` of :func:`propagate` at velocity ``v (6,)`` over ``dt_s``."""
    step = np.asarray(v, dtype=np.float64) * dt_s
    F = np.eye(STATE_DIM)
    F[:6, :6] = adjoint(*se3_exp(-step))
    F[:6, 6:] = se3_right_jacobian(step) * dt_s
    return F


def process_noise(config: FilterConfig, dt_s: float, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """``Q (12, 12)`` of white acceleration over ``dt_s`` seconds (pose/velocity cross terms included);
    ``scale`` multiplies the translation and the rotation spectral density."""
    q = np.repeat([scale[0] * config.accel_noise_trans**2, scale[1] * config.accel_noise_rot**2], 3)
    Q = np.zeros((STATE_DIM, STATE_DIM))
    Q[:6, :6] = np.diag(q * dt_s**3 / 3.0)
    Q[:6, 6:] = Q[6:, :6] = np.diag(q * dt_s**2 / 2.0)
    Q[6:, 6:] = np.diag(q * dt_s)
    return Q


def measurement_covariance(config: FilterConfig, R_cam_face: np.ndarray, confidence: float) -> np.ndarray:
    """``R_k (6, 6)`` of the innovation (face-frame tangent, (rho, phi)) for a measurement of the given
    ``confidence`` in (0, 1]; ``R_cam_face (3, 3)`` rotates the camera-axis translation noise."""
    cov_cam = np.diag([config.meas_sd_xy_m**2, config.meas_sd_xy_m**2, config.meas_sd_z_m**2])
    R_k = np.zeros((MEAS_DIM, MEAS_DIM))
    R_k[:3, :3] = R_cam_face.T @ cov_cam @ R_cam_face
    R_k[3:, 3:] = np.eye(3) * config.meas_sd_rot_rad**2
    return R_k / confidence


def manoeuvre_scales(config: FilterConfig, P_pred: np.ndarray, Q: np.ndarray, R_k: np.ndarray, y: np.ndarray
                     ) -> tuple[float, float]:
    """Factors on the translation and rotation blocks of ``Q`` for an innovation ``y (6,)``: per block the
    smallest of :attr:`FilterConfig.noise_scales` whose 3-dof distance ``y_b^T S_bb^-1 y_b`` is within
    :attr:`FilterConfig.manoeuvre_threshold` (the largest when none is). ``P_pred (12, 12)`` is the
    prior covariance without process noise (``F P F^T``), ``Q (12, 12)`` the nominal process noise and
    ``R_k (6, 6)`` the measurement covariance. The pose blocks of ``S`` depend only on their own factor,
    as ``Q`` has no translation-rotation cross terms."""
    out = []
    for block in (slice(0, 3), slice(3, 6)):
        base = P_pred[block, block] + R_k[block, block]
        yb = y[block]
        for scale in config.noise_scales:
            if yb @ np.linalg.solve(base + scale * Q[block, block], yb) <= config.manoeuvre_threshold:
                break
        out.append(scale)
    return out[0], out[1]


def _check_measurement(R: np.ndarray, t: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if R.shape != (3, 3) or t.shape != (3,) or not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
        raise ValueError(f"measurement must be finite R (3, 3) and t (3,), got {R.shape} and {t.shape}")
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], got {confidence!r}")
    return R, t


class SE3KalmanFilter:
    """Constant-velocity error-state Kalman filter on SE(3); see the module docstring for the models.

    Use :meth:`step` once per frame, in time order: it keeps the time, the track's life and segments.
    :meth:`initialise`, :meth:`predict`, :meth:`innovation` and :meth:`update` are its parts; ``predict``
    and ``update`` work on the current :attr:`state` without looking at time.
    """

    def __init__(self, config: FilterConfig) -> None:
        """``config``: the noise model and track policy, e.g. :data:`PERSPNET_FILTER` or
        :data:`LANDMARK_FILTER`."""
        if not isinstance(config, FilterConfig):
            raise TypeError(f"config must be a FilterConfig (e.g. PERSPNET_FILTER), got {type(config).__name__}")
        self.config = config
        self._gate = self.config.gate_threshold
        self.state: PoseEstimate | None = None  # current estimate; None without a track
        self.segment = -1
        self._time_s = math.nan  # time of the last step
        self._accept_s = math.nan  # time of the last accepted (or initialising) measurement
        self.gated_run = 0  # gated measurements since the last accepted one

    def initialise(self, time_s: float, R_meas: np.ndarray, t_meas: np.ndarray, confidence: float = 1.0
                   ) -> PoseEstimate:
        """Start a new track segment at ``time_s`` [s] from a measured pose, with zero velocity; the pose
        covariance is the measurement's, the velocity's from the config."""
        R, t = _check_measurement(R_meas, t_meas, confidence)
        self._time_s = self._accept_s = time_s
        cfg = self.config
        P = np.zeros((STATE_DIM, STATE_DIM))
        P[:6, :6] = measurement_covariance(cfg, R, confidence)
        P[6:, 6:] = np.diag(np.repeat([cfg.init_vel_sd_trans**2, cfg.init_vel_sd_rot**2], 3))
        self.state = PoseEstimate(R, t, np.zeros(6), P)
        self.segment += 1
        self.gated_run = 0
        return self.state

    def restart(self) -> None:
        """End the current track: the next measurement starts a new segment."""
        self.state = None
        self.gated_run = 0

    def predict(self, dt_s: float, noise_scale: tuple[float, float] = (1.0, 1.0)
                ) -> tuple[PoseEstimate, np.ndarray]:
        """Advance the track by ``dt_s`` > 0 seconds with the translation and rotation process noise
        scaled by ``noise_scale``; returns the prior and the transition ``F (12, 12)``."""
        s = self._require_state()
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s!r}")
        F = transition_jacobian(s.v, dt_s)
        _, P = kf_predict(np.zeros(STATE_DIM), s.P, F, process_noise(self.config, dt_s, noise_scale))
        self.state = PoseEstimate(*propagate(s.R, s.t, s.v, dt_s), s.v, P)
        return self.state, F

    def manoeuvre_scales(self, dt_s: float, R_meas: np.ndarray, t_meas: np.ndarray, confidence: float = 1.0
                         ) -> tuple[float, float]:
        """:func:`manoeuvre_scales` for a measurement ``dt_s`` seconds after the current state; no change."""
        s = self._require_state()
        R, t = _check_measurement(R_meas, t_meas, confidence)
        F = transition_jacobian(s.v, dt_s)
        R_pred, t_pred = propagate(s.R, s.t, s.v, dt_s)
        return manoeuvre_scales(self.config, F @ s.P @ F.T, process_noise(self.config, dt_s),
                                measurement_covariance(self.config, R_pred, confidence),
                                between(R_pred, t_pred, R, t))

    def innovation(self, R_meas: np.ndarray, t_meas: np.ndarray, confidence: float = 1.0) -> Innovation:
        """Innovation of a measured pose against the current state, with the gate decision; no change."""
        s = self._require_state()
        R, t = _check_measurement(R_meas, t_meas, confidence)
        y = between(s.R, s.t, R, t)
        R_k = measurement_covariance(self.config, s.R, confidence)
        S = H @ s.P @ H.T + R_k
        d2 = float(y @ np.linalg.solve(S, y))
        return Innovation(y, S, R_k, d2, gated=d2 > self._gate)

    def update(self, R_meas: np.ndarray, t_meas: np.ndarray, confidence: float = 1.0) -> Innovation:
        """Fuse a measured pose unless the gate rejects it; returns the :class:`Innovation` either way."""
        inn = self.innovation(R_meas, t_meas, confidence)
        if inn.gated:
            return inn
        s = self.state
        dx, P = kf_update(np.zeros(STATE_DIM), s.P, inn.y, inn.R_k, H)
        # Reset the error mean to zero: the error relative to the corrected pose is J_r(dx) e.
        J = np.eye(STATE_DIM)
        J[:6, :6] = se3_right_jacobian(dx[:6])
        P = J @ P @ J.T
        self.state = PoseEstimate(*compose(s.R, s.t, *se3_exp(dx[:6])), s.v + dx[6:], 0.5 * (P + P.T))
        return inn

    def step(self, time_s: float, measurement: tuple[np.ndarray, np.ndarray] | None = None,
             confidence: float = 1.0) -> StepRecord:
        """Process one frame at ``time_s`` seconds (increasing) with an optional measured ``(R, t)``."""
        dt = time_s - self._time_s
        if not math.isfinite(time_s) or dt <= 0:
            raise ValueError(f"timestamps must increase: {time_s!r} after {self._time_s!r}")
        self._time_s = time_s
        lost = self.state is not None and time_s - self._accept_s > self.config.lost_after_s
        if lost:
            self.restart()
        if self.state is None:
            if measurement is None:
                return StepRecord(time_s, math.nan, "lost" if lost else "idle", -1)
            post = self.initialise(time_s, *measurement, confidence)
            return StepRecord(time_s, math.nan, "init", self.segment, prior=None, posterior=post)
        scale = (1.0, 1.0) if measurement is None else self.manoeuvre_scales(dt, *measurement, confidence)
        before = self.state
        prior, F = self.predict(dt, scale)
        if measurement is None:
            return StepRecord(time_s, dt, "predict", self.segment, prior, prior, F, noise_scale=scale)
        if scale != (1.0, 1.0) and self.innovation(*measurement, confidence).gated:
            # an outlier is no manoeuvre: it must not widen the prior that the next measurements meet
            self.state, scale = before, (1.0, 1.0)
            prior, F = self.predict(dt, scale)
        inn = self.update(*measurement, confidence)
        if not inn.gated:
            self._accept_s = time_s
            self.gated_run = 0
        else:
            self.gated_run += 1
            if self.config.restart_after_gated and self.gated_run >= self.config.restart_after_gated:
                post = self.initialise(time_s, *measurement, confidence)
                return StepRecord(time_s, math.nan, "restart", self.segment, prior=None, posterior=post)
        return StepRecord(time_s, dt, "gated" if inn.gated else "update", self.segment, prior, self.state,
                          F, inn, scale)

    def _require_state(self) -> PoseEstimate:
        if self.state is None:
            raise RuntimeError("the filter has no track: call initialise() or step() with a measurement")
        return self.state
