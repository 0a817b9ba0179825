"""tracker.measure.measure_pose: the warm start from the track's prediction and its cold-start fallback, on
exact projections of the canonical mesh (real OpenCV PnP, nothing mocked)."""
import numpy as np
import pytest

from perspnet.conventions import matrix_from_euler_deg, project_points, rotation_angle_deg, transform_points
from perspnet.face_model import load_face_model
from perspnet.pnp import solve_pose
from tracker.measure import measure_pose

K = np.array([[900.0, 0.0, 640.0], [0.0, 900.0, 360.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def scene():
    X = load_face_model().verts_face_m
    R, t = matrix_from_euler_deg(20, -10, 5), np.array([0.02, -0.01, 0.6])
    px = project_points(K, transform_points(R, t, X)) + np.random.default_rng(3).normal(0, 0.3, (len(X), 2))
    return X, R, t, px


def test_failed_warm_start_falls_back_to_a_cold_start(scene):
    """A prediction mirrored behind the camera (a diverged track) makes the warm solve fail; the cold
    start then finds the face where it is."""
    X, R, t, px = scene
    prior = (R, -t)
    assert not solve_pose(px, X, K, prior=prior).success
    m = measure_pose(px, X, K, prior)
    assert m.cold_fallback and m.accepted
    assert rotation_angle_deg(m.pnp.R_cam_face, R) < 0.5 and np.linalg.norm(m.pnp.t_cam_face - t) < 0.002


def test_no_measurement_puts_the_face_behind_the_camera(scene):
    """Whatever the prior, an accepted measurement has every inlier in front of the camera."""
    X, R, t, px = scene
    for prior in ((R, -t), (R @ np.diag([-1.0, -1.0, 1.0]), -t), (R, np.array([0.5, 0.5, -3.0]))):
        m = measure_pose(px, X, K, prior)
        if m.accepted:
            depth = transform_points(m.pnp.R_cam_face, m.pnp.t_cam_face, X[m.pnp.inlier_mask])[:, 2]
            assert depth.min() > 0
        assert m.accepted and np.linalg.norm(m.pnp.t_cam_face - t) < 0.002
