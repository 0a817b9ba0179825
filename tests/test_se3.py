"""SO(3)/SE(3) group tests in float64: round trips, inverses, adjoint, Jacobians vs finite differences,
small-angle and near-pi cases. References are independent (scipy's rotvec and matrix exponential)."""
import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm
from scipy.spatial.transform import Rotation

from tracker import se3
from tracker.se3 import (adjoint, between, compose, hat, inverse, se3_exp, se3_left_jacobian,
                         se3_left_jacobian_inv, se3_log, se3_right_jacobian, se3_right_jacobian_inv, so3_exp,
                         so3_hat, so3_left_jacobian, so3_left_jacobian_inv, so3_log, so3_right_jacobian,
                         so3_right_jacobian_inv, so3_vee)

SETTINGS = settings(max_examples=60, deadline=None)
ANGLES_ACROSS_SERIES = [0.0, 1e-12, 1e-8, 1e-5, 0.049, 0.05, 0.051, 0.3, 1.0, 2.5, 3.0]


def _axis(v):
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 1e-3 else np.array([0.0, 0.0, 1.0])


def _rotvec(direction, angle):
    return _axis(direction) * angle


finite = st.floats(-1.0, 1.0, allow_nan=False)
direction = st.tuples(finite, finite, finite)
# non-identity rotations away from pi, where log(exp(phi)) = phi is unique
rotvecs = st.builds(_rotvec, direction, st.floats(1e-3, np.pi - 1e-3))
rhos = st.builds(lambda v: 0.5 * np.asarray(v), direction)
twists = st.builds(lambda r, p: np.concatenate([r, p]), rhos, rotvecs)


def _matrix4(R, t):
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R, t
    return out


def _numeric_jacobian(f, x, h=1e-6):
    """Central differences of ``f`` ``(n,) -> (m,)`` at ``x``: ``(m, n)``."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=1)


class TestSO3:
    @SETTINGS
    @given(rotvecs)
    def test_exp_matches_scipy(self, phi):
        np.testing.assert_allclose(so3_exp(phi), Rotation.from_rotvec(phi).as_matrix(), atol=1e-14)

    @SETTINGS
    @given(rotvecs)
    def test_log_exp_round_trip(self, phi):
        np.testing.assert_allclose(so3_log(so3_exp(phi)), phi, atol=1e-12)

    @SETTINGS
    @given(st.integers(0, 2**32 - 1))
    def test_exp_log_round_trip(self, seed):
        R = Rotation.random(random_state=seed).as_matrix()
        np.testing.assert_allclose(so3_exp(so3_log(R)), R, atol=1e-13)

    def test_hat_vee(self):
        a, b = np.array([0.3, -1.2, 2.0]), np.array([-0.7, 0.1, 0.4])
        np.testing.assert_allclose(so3_hat(a) @ b, np.cross(a, b), atol=1e-15)
        np.testing.assert_allclose(so3_vee(so3_hat(a)), a, atol=1e-15)

    @pytest.mark.parametrize("angle", ANGLES_ACROSS_SERIES)
    def test_small_and_mid_angles_match_scipy(self, angle):
        phi = _axis([0.2, -0.5, 0.8]) * angle
        np.testing.assert_allclose(so3_exp(phi), Rotation.from_rotvec(phi).as_matrix(), atol=1e-15)
        np.testing.assert_allclose(so3_log(so3_exp(phi)), phi, atol=1e-15, rtol=1e-12)

    @pytest.mark.parametrize("eps", [0.0, 1e-12, 1e-9, 1e-6])
    @pytest.mark.parametrize("axis", [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.3, -0.8, 0.5]])
    def test_near_pi(self, eps, axis):
        phi = _axis(axis) * (np.pi - eps)
        R = so3_exp(phi)
        log_R = so3_log(R)
        np.testing.assert_allclose(so3_exp(log_R), R, atol=1e-14)
        assert np.linalg.norm(log_R) == pytest.approx(np.pi - eps, abs=1e-12)
        if eps > 0:  # below pi the vector is unique; at pi either sign is valid
            np.testing.assert_allclose(log_R, phi, atol=1e-9)
        else:
            assert min(np.abs(log_R - phi).max(), np.abs(log_R + phi).max()) < 1e-9

    @SETTINGS
    @given(rotvecs)
    def test_left_jacobian_vs_numeric(self, phi):
        R = so3_exp(phi)
        numeric = _numeric_jacobian(lambda p: so3_log(so3_exp(p) @ R.T), phi)
        np.testing.assert_allclose(so3_left_jacobian(phi), numeric, atol=1e-8)

    @SETTINGS
    @given(rotvecs)
    def test_right_jacobian_vs_numeric(self, phi):
        R = so3_exp(phi)
        numeric = _numeric_jacobian(lambda p: so3_log(R.T @ so3_exp(p)), phi)
        np.testing.assert_allclose(so3_right_jacobian(phi), numeric, atol=1e-8)

    @pytest.mark.parametrize("angle", ANGLES_ACROSS_SERIES + [np.pi - 1e-6, np.pi])
    def test_jacobian_inverses(self, angle):
        phi = _axis([-0.4, 0.9, 0.1]) * angle
        np.testing.assert_allclose(so3_left_jacobian(phi) @ so3_left_jacobian_inv(phi), np.eye(3), atol=1e-13)
        np.testing.assert_allclose(so3_right_jacobian(phi) @ so3_right_jacobian_inv(phi), np.eye(3), atol=1e-13)

    @pytest.mark.parametrize("angle", [1e-9, 0.049, 0.051])
    def test_left_jacobian_numeric_small_angles(self, angle):
        phi = _axis([0.6, 0.2, -0.7]) * angle
        R = so3_exp(phi)
        numeric = _numeric_jacobian(lambda p: so3_log(so3_exp(p) @ R.T), phi, h=1e-7)
        np.testing.assert_allclose(so3_left_jacobian(phi), numeric, atol=1e-8)


class TestSE3:
    @SETTINGS
    @given(twists)
    def test_exp_matches_matrix_exponential(self, xi):
        R, t = se3_exp(xi)
        np.testing.assert_allclose(_matrix4(R, t), expm(hat(xi)), atol=1e-12)

    @SETTINGS
    @given(twists)
    def test_log_exp_round_trip(self, xi):
        np.testing.assert_allclose(se3_log(*se3_exp(xi)), xi, atol=1e-11)

    @SETTINGS
    @given(st.integers(0, 2**32 - 1), rhos)
    def test_exp_log_round_trip(self, seed, t):
        R = Rotation.random(random_state=seed).as_matrix()
        R2, t2 = se3_exp(se3_log(R, t))
        np.testing.assert_allclose(R2, R, atol=1e-13)
        np.testing.assert_allclose(t2, t, atol=1e-12)

    def test_tangent_order_is_translation_first(self):
        R, t = se3_exp(np.array([0.1, -0.2, 0.3, 0.0, 0.0, 0.0]))
        np.testing.assert_allclose(R, np.eye(3), atol=0)
        np.testing.assert_allclose(t, [0.1, -0.2, 0.3], atol=1e-15)

    @pytest.mark.parametrize("angle", ANGLES_ACROSS_SERIES + [np.pi - 1e-7])
    def test_round_trip_across_series_threshold_and_near_pi(self, angle):
        xi = np.concatenate([[0.2, -0.1, 0.4], _axis([0.5, 0.5, -0.7]) * angle])
        R, t = se3_exp(xi)
        np.testing.assert_allclose(_matrix4(R, t), expm(hat(xi)), atol=1e-12)
        np.testing.assert_allclose(se3_log(R, t), xi, atol=1e-8)

    @SETTINGS
    @given(twists)
    def test_inverse(self, xi):
        R, t = se3_exp(xi)
        for Rc, tc in (compose(R, t, *inverse(R, t)), compose(*inverse(R, t), R, t)):
            np.testing.assert_allclose(Rc, np.eye(3), atol=1e-14)
            np.testing.assert_allclose(tc, np.zeros(3), atol=1e-14)

    @SETTINGS
    @given(twists, twists)
    def test_compose_matches_matrix_product(self, xi_ab, xi_bc):
        A, B = se3_exp(xi_ab), se3_exp(xi_bc)  # distinct non-identity poses: a swapped operand fails
        R, t = compose(*A, *B)
        np.testing.assert_allclose(_matrix4(R, t), _matrix4(*A) @ _matrix4(*B), atol=1e-14)

    @SETTINGS
    @given(twists, twists)
    def test_adjoint_identity(self, xi_x, xi):
        R, t = se3_exp(xi_x)
        lhs = compose(*compose(R, t, *se3_exp(xi)), *inverse(R, t))
        rhs = se3_exp(adjoint(R, t) @ xi)
        np.testing.assert_allclose(lhs[0], rhs[0], atol=1e-12)
        np.testing.assert_allclose(lhs[1], rhs[1], atol=1e-12)

    @SETTINGS
    @given(twists, twists)
    def test_adjoint_is_homomorphism(self, xi_a, xi_b):
        A, B = se3_exp(xi_a), se3_exp(xi_b)
        np.testing.assert_allclose(adjoint(*compose(*A, *B)), adjoint(*A) @ adjoint(*B), atol=1e-12)
        np.testing.assert_allclose(adjoint(*inverse(*A)), np.linalg.inv(adjoint(*A)), atol=1e-12)

    @SETTINGS
    @given(twists, twists)
    def test_between(self, xi_a, xi_b):
        A, B = se3_exp(xi_a), se3_exp(xi_b)
        R, t = compose(*A, *se3_exp(between(*A, *B)))
        np.testing.assert_allclose(R, B[0], atol=1e-12)
        np.testing.assert_allclose(t, B[1], atol=1e-12)

    @SETTINGS
    @given(twists)
    def test_left_jacobian_vs_numeric(self, xi):
        R, t = inverse(*se3_exp(xi))
        numeric = _numeric_jacobian(lambda x: se3_log(*compose(*se3_exp(x), R, t)), xi)
        np.testing.assert_allclose(se3_left_jacobian(xi), numeric, atol=1e-7)

    @SETTINGS
    @given(twists)
    def test_right_jacobian_vs_numeric(self, xi):
        R, t = inverse(*se3_exp(xi))
        numeric = _numeric_jacobian(lambda x: se3_log(*compose(R, t, *se3_exp(x))), xi)
        np.testing.assert_allclose(se3_right_jacobian(xi), numeric, atol=1e-7)

    @pytest.mark.parametrize("angle", ANGLES_ACROSS_SERIES)
    def test_left_jacobian_numeric_across_series_threshold(self, angle):
        xi = np.concatenate([[0.3, 0.1, -0.2], _axis([0.1, -0.9, 0.4]) * angle])
        R, t = inverse(*se3_exp(xi))
        numeric = _numeric_jacobian(lambda x: se3_log(*compose(*se3_exp(x), R, t)), xi)
        np.testing.assert_allclose(se3_left_jacobian(xi), numeric, atol=1e-7)

    @pytest.mark.parametrize("angle", ANGLES_ACROSS_SERIES + [np.pi - 1e-6])
    def test_jacobian_inverses(self, angle):
        xi = np.concatenate([[-0.2, 0.5, 0.1], _axis([0.7, 0.1, 0.3]) * angle])
        np.testing.assert_allclose(se3_left_jacobian(xi) @ se3_left_jacobian_inv(xi), np.eye(6), atol=1e-12)
        np.testing.assert_allclose(se3_right_jacobian(xi) @ se3_right_jacobian_inv(xi), np.eye(6), atol=1e-12)

    def test_bad_shapes_raise(self):
        with pytest.raises(ValueError, match=r"\(6,\)"):
            se3_exp(np.zeros(3))
        with pytest.raises(ValueError, match="hat"):
            hat(np.zeros(4))


def test_docstring_examples_run():
    assert doctest.testmod(se3).failed == 0
