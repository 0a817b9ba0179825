"""SO(3) and SE(3) on numpy float64: exponential and logarithm maps, Jacobians, adjoint, group operations.

Groups, storage and identity
----------------------------
* SO(3): 3-dim rotation group, stored as a ``(3, 3)`` float64 matrix ``R``; identity ``np.eye(3)``.
  Tangent vector ``phi`` ``(3,)``: a rotation vector (axis * angle) in radians.
* SE(3): 6-dim rigid-motion group, stored as the pair ``(R (3, 3), t (3,))`` meaning
  ``X_a = R @ X_b + t`` (``T_a_b``, see :mod:`perspnet.conventions`; metres); identity
  ``(np.eye(3), np.zeros(3))``. The 4x4 form ``[[R, t], [0, 1]]`` appears only in :func:`hat`.

Tangent order (fixed once, used everywhere in ``tracker``)
----------------------------------------------------------
``xi = (rho, phi)`` ``(6,)``: **translation first** (``rho``, metres), **rotation second**
(``phi``, radians) -- the order of Sophus, lietorch and Barfoot's *State Estimation for Robotics*.
``se3_exp(xi) = (so3_exp(phi), J_l(phi) @ rho)``: ``rho`` is *not* the translation unless ``phi = 0``.

Perturbations and Jacobians
---------------------------
Left Jacobian ``J_l(x)``: ``exp(x + d) ~= exp(J_l(x) d) exp(x)``;
right Jacobian ``J_r(x) = J_l(-x)``: ``exp(x + d) ~= exp(x) exp(J_r(x) d)`` (first order in ``d``).
Adjoint ``Ad_X``: ``X exp(xi) X^-1 = exp(Ad_X xi)``.

Example (a 0.3 rad turn about y with a translation; the round trip is exact to rounding):

    >>> import numpy as np
    >>> xi = np.array([0.1, 0.0, 0.2, 0.0, 0.3, 0.0])  # (rho [m], phi [rad])
    >>> R, t = se3_exp(xi)
    >>> bool(np.allclose(R @ [0.0, 0.0, 1.0], [np.sin(0.3), 0.0, np.cos(0.3)]))
    True
    >>> bool(np.allclose(se3_log(R, t), xi, atol=1e-15))
    True

Numerics: every function is smooth through angle 0 (Taylor series below ``_SMALL`` = 0.05 rad); :func:`so3_log`
goes through a quaternion (Shepperd's method) so it stays accurate up to and at angle pi, where it
returns one of the two equivalent vectors of norm pi. Jacobian inverses are singular at angle 2 pi,
which :func:`so3_log` never returns.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "so3_hat",
    "so3_vee",
    "so3_exp",
    "so3_log",
    "so3_left_jacobian",
    "so3_left_jacobian_inv",
    "so3_right_jacobian",
    "so3_right_jacobian_inv",
    "hat",
    "se3_exp",
    "se3_log",
    "se3_left_jacobian",
    "se3_left_jacobian_inv",
    "se3_right_jacobian",
    "se3_right_jacobian_inv",
    "adjoint",
    "compose",
    "inverse",
    "between",
]

_SMALL = 0.05  # rad: below it the closed forms lose digits to cancellation; 5-term series truncate at < 1e-20

# Taylor coefficients in powers of t^2 (t = angle), from sympy series to O(t^10).
_SIN_T = (1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880)                        # sin t / t
_ONE_MINUS_COS = (1 / 2, -1 / 24, 1 / 720, -1 / 40320, 1 / 3628800)            # (1 - cos t) / t^2
_T_MINUS_SIN = (1 / 6, -1 / 120, 1 / 5040, -1 / 362880, 1 / 39916800)          # (t - sin t) / t^3
_JINV = (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160)                # (1 - (t/2) cot(t/2)) / t^2
_Q_B = (1 / 24, -1 / 720, 1 / 40320, -1 / 3628800, 1 / 479001600)             # (t^2 + 2 cos t - 2) / (2 t^4)
_Q_C = (1 / 120, -1 / 2520, 1 / 120960, -1 / 9979200, 1 / 1245404160)         # (2t - 3 sin t + t cos t) / (2 t^5)


def _series(t2: float, coeffs: tuple[float, ...]) -> float:
    """Evaluate ``sum_k coeffs[k] * t2**k`` (Horner)."""
    out = 0.0
    for c in reversed(coeffs):
        out = out * t2 + c
    return out


def _vec(x: np.ndarray, n: int, name: str) -> np.ndarray:
    """``x`` as a float64 ``(n,)`` array, or ValueError naming ``name``."""
    v = np.asarray(x, dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {v.shape}")
    return v


def so3_hat(phi: np.ndarray) -> np.ndarray:
    """Skew matrix ``(3, 3)`` of ``phi`` ``(3,)``: ``so3_hat(a) @ b == np.cross(a, b)``."""
    x, y, z = _vec(phi, 3, "phi")
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def so3_vee(Phi: np.ndarray) -> np.ndarray:
    """Inverse of :func:`so3_hat`: ``(3, 3)`` skew(-symmetric part) -> ``(3,)``."""
    Phi = np.asarray(Phi, dtype=np.float64)
    return 0.5 * np.array([Phi[2, 1] - Phi[1, 2], Phi[0, 2] - Phi[2, 0], Phi[1, 0] - Phi[0, 1]])


def _so3_coeffs(theta: float) -> tuple[float, float, float]:
    """``(sin t / t, (1 - cos t) / t^2, (t - sin t) / t^3)`` for angle ``t = theta`` >= 0."""
    if theta < _SMALL:
        t2 = theta * theta
        return _series(t2, _SIN_T), _series(t2, _ONE_MINUS_COS), _series(t2, _T_MINUS_SIN)
    s, c = np.sin(theta), np.cos(theta)
    return s / theta, (1.0 - c) / theta**2, (theta - s) / theta**3


def so3_exp(phi: np.ndarray) -> np.ndarray:
    """Rotation vector ``phi`` ``(3,)`` [rad] -> rotation matrix ``(3, 3)`` (Rodrigues)."""
    phi = _vec(phi, 3, "phi")
    a, b, _ = _so3_coeffs(float(np.linalg.norm(phi)))
    W = so3_hat(phi)
    return np.eye(3) + a * W + b * (W @ W)


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` -> rotation vector ``(3,)`` [rad] with norm in [0, pi].

    Via the unit quaternion (Shepperd's method: the largest of w, x, y, z is taken from the diagonal),
    then ``phi = 2 atan2(|v|, w) v / |v|`` with ``w >= 0``; accurate near 0 and near pi.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise ValueError(f"R must have shape (3, 3), got {R.shape}")
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    i = int(np.argmax([tr, R[0, 0], R[1, 1], R[2, 2]]))
    if i == 0:
        s = 2.0 * np.sqrt(max(1.0 + tr, 0.0))
        q = np.array([s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s])
    elif i == 1:
        s = 2.0 * np.sqrt(max(1.0 + R[0, 0] - R[1, 1] - R[2, 2], 0.0))
        q = np.array([(R[2, 1] - R[1, 2]) / s, s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s])
    elif i == 2:
        s = 2.0 * np.sqrt(max(1.0 - R[0, 0] + R[1, 1] - R[2, 2], 0.0))
        q = np.array([(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(max(1.0 - R[0, 0] - R[1, 1] + R[2, 2], 0.0))
        q = np.array([(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4])
    q /= np.linalg.norm(q)
    if q[0] < 0.0:
        q = -q
    w, v = q[0], q[1:]
    n = float(np.linalg.norm(v))
    if n < 1e-12:  # angle < 2e-12 rad: atan2(n, w) / n = 1/w to double precision
        return 2.0 * v / w
    return 2.0 * np.arctan2(n, w) / n * v


def so3_left_jacobian(phi: np.ndarray) -> np.ndarray:
    """Left Jacobian ``J_l(phi)`` ``(3, 3)`` of SO(3): ``exp(phi + d) ~= exp(J_l d) exp(phi)``."""
    phi = _vec(phi, 3, "phi")
    _, b, c = _so3_coeffs(float(np.linalg.norm(phi)))
    W = so3_hat(phi)
    return np.eye(3) + b * W + c * (W @ W)


def so3_left_jacobian_inv(phi: np.ndarray) -> np.ndarray:
    """Inverse of :func:`so3_left_jacobian` ``(3, 3)``; finite for angles below 2 pi."""
    phi = _vec(phi, 3, "phi")
    theta = float(np.linalg.norm(phi))
    if theta < _SMALL:
        d = _series(theta * theta, _JINV)
    else:  # (1 - (t/2) cot(t/2)) / t^2, written so that t = pi is exact
        half = 0.5 * theta
        d = (1.0 - half * np.cos(half) / np.sin(half)) / theta**2
    W = so3_hat(phi)
    return np.eye(3) - 0.5 * W + d * (W @ W)


def so3_right_jacobian(phi: np.ndarray) -> np.ndarray:
    """Right Jacobian ``J_r(phi) = J_l(-phi)`` ``(3, 3)``: ``exp(phi + d) ~= exp(phi) exp(J_r d)``."""
    return so3_left_jacobian(-_vec(phi, 3, "phi"))


def so3_right_jacobian_inv(phi: np.ndarray) -> np.ndarray:
    """Inverse of :func:`so3_right_jacobian` ``(3, 3)``."""
    return so3_left_jacobian_inv(-_vec(phi, 3, "phi"))


def hat(v: np.ndarray) -> np.ndarray:
    """Lie-algebra matrix: ``(3,)`` phi -> ``(3, 3)`` skew; ``(6,)`` (rho, phi) -> ``(4, 4)`` twist.

    The twist is ``[[hat(phi), rho], [0, 0]]``, so ``expm(hat(xi))`` is the 4x4 form of ``se3_exp(xi)``.
    """
    v = np.asarray(v, dtype=np.float64)
    if v.shape == (3,):
        return so3_hat(v)
    if v.shape == (6,):
        out = np.zeros((4, 4))
        out[:3, :3] = so3_hat(v[3:])
        out[:3, 3] = v[:3]
        return out
    raise ValueError(f"hat takes a (3,) or (6,) vector, got shape {v.shape}")


def se3_exp(xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twist ``xi = (rho [m], phi [rad])`` ``(6,)`` -> pose ``(R (3, 3), t (3,) [m])``, ``t = J_l(phi) rho``."""
    xi = _vec(xi, 6, "xi")
    return so3_exp(xi[3:]), so3_left_jacobian(xi[3:]) @ xi[:3]


def se3_log(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pose ``(R (3, 3), t (3,) [m])`` -> twist ``(rho, phi)`` ``(6,)``, ``rho = J_l(phi)^-1 t``."""
    phi = so3_log(R)
    return np.concatenate([so3_left_jacobian_inv(phi) @ _vec(t, 3, "t"), phi])


def _se3_q(rho: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Barfoot's ``Q(rho, phi)`` ``(3, 3)``: the upper-right block of the SE(3) left Jacobian."""
    theta = float(np.linalg.norm(phi))
    P, Rh = so3_hat(phi), so3_hat(rho)
    PR, RP = P @ Rh, Rh @ P
    PRP = PR @ P
    if theta < _SMALL:
        t2 = theta * theta
        a, b, c = _series(t2, _T_MINUS_SIN), _series(t2, _Q_B), _series(t2, _Q_C)
    else:
        s, co = np.sin(theta), np.cos(theta)
        a = (theta - s) / theta**3
        b = (theta * theta + 2.0 * co - 2.0) / (2.0 * theta**4)
        c = (2.0 * theta - 3.0 * s + theta * co) / (2.0 * theta**5)
    return (0.5 * Rh + a * (PR + RP + PRP) + b * (P @ PR + RP @ P - 3.0 * PRP)
            + c * (PRP @ P + P @ PRP))


def se3_left_jacobian(xi: np.ndarray) -> np.ndarray:
    """Left Jacobian ``(6, 6)`` of SE(3) in (rho, phi) order: ``[[J_l(phi), Q], [0, J_l(phi)]]``."""
    xi = _vec(xi, 6, "xi")
    J = so3_left_jacobian(xi[3:])
    out = np.zeros((6, 6))
    out[:3, :3] = out[3:, 3:] = J
    out[:3, 3:] = _se3_q(xi[:3], xi[3:])
    return out


def se3_left_jacobian_inv(xi: np.ndarray) -> np.ndarray:
    """Inverse ``(6, 6)`` of :func:`se3_left_jacobian`: ``[[Ji, -Ji Q Ji], [0, Ji]]``, ``Ji = J_l(phi)^-1``."""
    xi = _vec(xi, 6, "xi")
    Ji = so3_left_jacobian_inv(xi[3:])
    out = np.zeros((6, 6))
    out[:3, :3] = out[3:, 3:] = Ji
    out[:3, 3:] = -Ji @ _se3_q(xi[:3], xi[3:]) @ Ji
    return out


def se3_right_jacobian(xi: np.ndarray) -> np.ndarray:
    """Right Jacobian ``(6, 6)`` of SE(3): ``J_r(xi) = J_l(-xi)``."""
    return se3_left_jacobian(-_vec(xi, 6, "xi"))


def se3_right_jacobian_inv(xi: np.ndarray) -> np.ndarray:
    """Inverse ``(6, 6)`` of :func:`se3_right_jacobian`."""
    return se3_left_jacobian_inv(-_vec(xi, 6, "xi"))


def adjoint(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Adjoint ``(6, 6)`` of pose ``(R, t)`` in (rho, phi) order: ``[[R, hat(t) R], [0, R]]``."""
    R = np.asarray(R, dtype=np.float64)
    out = np.zeros((6, 6))
    out[:3, :3] = out[3:, 3:] = R
    out[:3, 3:] = so3_hat(t) @ R
    return out


def compose(R_ab: np.ndarray, t_ab: np.ndarray, R_bc: np.ndarray, t_bc: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """``T_a_c = T_a_b T_b_c``: ``(R_ab @ R_bc, R_ab @ t_bc + t_ab)``; R ``(3, 3)``, t ``(3,)`` [m]."""
    R_ab = np.asarray(R_ab, dtype=np.float64)
    return R_ab @ np.asarray(R_bc, dtype=np.float64), R_ab @ _vec(t_bc, 3, "t_bc") + _vec(t_ab, 3, "t_ab")


def inverse(R_ab: np.ndarray, t_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``T_b_a = T_a_b^-1``: ``(R^T, -R^T t)``; R ``(3, 3)``, t ``(3,)`` [m]."""
    R_ba = np.asarray(R_ab, dtype=np.float64).T
    return R_ba, -R_ba @ _vec(t_ab, 3, "t_ab")


def between(R_a: np.ndarray, t_a: np.ndarray, R_b: np.ndarray, t_b: np.ndarray) -> np.ndarray:
    """Body-frame difference ``log(T_a^-1 T_b)`` ``(6,)`` (rho, phi), so ``T_b = T_a exp(result)``.

    Poses ``(R (3, 3), t (3,) [m])``; unchanged when both are left-multiplied by the same pose.
    """
    R_ia, t_ia = inverse(R_a, t_a)
    return se3_log(*compose(R_ia, t_ia, R_b, t_b))
