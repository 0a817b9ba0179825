import numpy as np
import pytest

from perspnet.conventions import (euler_deg_from_matrix, matrix_from_euler_deg, matrix_from_quat_wxyz,
                                  project_points, quat_wxyz_from_matrix, rotation_angle_deg, transform_points)
from tests.conftest import random_rotation


class TestQuaternion:
    def test_round_trip_and_w_positive(self):
        rng = np.random.default_rng(0)
        R = np.stack([random_rotation(rng) for _ in range(50)])
        q = quat_wxyz_from_matrix(R)
        assert q.shape == (50, 4)
        assert np.all(q[:, 0] >= 0)
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(matrix_from_quat_wxyz(q), R, atol=1e-12)

    def test_order_is_wxyz(self):
        # 90 degrees about z: q = (cos45, 0, 0, sin45)
        R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
        np.testing.assert_allclose(quat_wxyz_from_matrix(R), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-12)


class TestEuler:
    def test_round_trip(self):
        for ypr in [(10, -20, 30), (-80, 50, -40), (0, 0, 0)]:
            np.testing.assert_allclose(euler_deg_from_matrix(matrix_from_euler_deg(*ypr)), ypr, atol=1e-9)

    def test_documented_directions(self):
        forward = np.array([0.0, 0.0, -1.0])  # the face looks at the camera along -z
        # positive yaw: face turns towards image left (-x)
        assert (matrix_from_euler_deg(30, 0, 0) @ forward)[0] < 0
        # positive pitch: face looks down (+y)
        assert (matrix_from_euler_deg(0, 30, 0) @ forward)[1] > 0
        # positive roll: the face's +x axis goes down in the image (clockwise)
        assert (matrix_from_euler_deg(0, 0, 30) @ np.array([1.0, 0, 0]))[1] > 0


def test_projection_and_transform():
    rng = np.random.default_rng(1)
    R, t = random_rotation(rng), np.array([0.05, -0.02, 0.6])
    X = rng.normal(scale=0.05, size=(20, 3))
    Xc = transform_points(R, t, X)
    np.testing.assert_allclose(Xc, (R @ X.T).T + t)
    K = np.array([[1000.0, 0, 640], [0, 990, 360], [0, 0, 1]])
    uv = project_points(K, Xc)
    np.testing.assert_allclose(uv[:, 0], 1000 * Xc[:, 0] / Xc[:, 2] + 640)
    np.testing.assert_allclose(uv[:, 1], 990 * Xc[:, 1] / Xc[:, 2] + 360)


def test_rotation_angle():
    assert rotation_angle_deg(matrix_from_euler_deg(0, 0, 0), matrix_from_euler_deg(25, 0, 0)) == pytest.approx(25)
