"""tracker.ipd_scale: the scene scale for a known IPD, from eye-corner pixels of synthetic faces."""
import numpy as np
import pytest

from perspnet.conventions import matrix_from_euler_deg, project_points, transform_points
from perspnet.landmark_ids import EYE_CORNERS
from perspnet.pnp import solve_pose
from tracker.ipd_scale import MAX_EYE_YAW_DEG, eye_anchor_depth, ipd_scene_scale
from tracker.measure import Measurement

K = np.array([[900.0, 0.0, 640.0], [0.0, 900.0, 360.0], [0.0, 0.0, 1.0]])


def _pose(rng, max_yaw=25.0):
    R = matrix_from_euler_deg(rng.uniform(-max_yaw, max_yaw), rng.uniform(-15, 15), rng.uniform(-10, 10))
    return R, np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.03, 0.03), rng.uniform(0.35, 0.8)])


def _frames(face_model, true_shape, identity, rng, n_frames=6, max_yaw=25.0):
    """Per frame: the true shape's eye-corner pixels at a random pose, the whole-face PnP of the true
    shape's projections solved on ``identity``, and the true tz."""
    corners, measurements, tz_true = [], [], []
    for _ in range(n_frames):
        R, t = _pose(rng, max_yaw)
        px = project_points(K, transform_points(R, t, true_shape))
        corners.append(px[list(EYE_CORNERS)])
        res = solve_pose(px, identity, K)
        assert res.success
        measurements.append(Measurement(res, True, False))
        tz_true.append(t[2])
    return np.array(corners), measurements, np.array(tz_true)


def test_eye_anchor_depth_is_exact_for_the_true_ipd(face_model):
    right, left = face_model.eye_centres()
    ipd = float(face_model.ipd_m())
    for R, t in (_pose(np.random.default_rng(k)) for k in range(5)):
        px = project_points(K, transform_points(R, t, face_model.verts_face_m))[list(EYE_CORNERS)]
        truth = transform_points(R, t, np.stack([right, left]))[:, 2].mean()
        # the corners' pixel midpoint is not exactly the eye centre's pixel (the corners lie at different
        # depths): within 0.3% at 0.35-0.8 m
        depth = eye_anchor_depth(px, R @ (left - right), ipd, K)
        assert depth == pytest.approx(truth, rel=3e-3)
        # the depth is proportional to the IPD given
        assert eye_anchor_depth(px, R @ (left - right), 1.1 * ipd, K) == pytest.approx(1.1 * depth, rel=1e-9)


def test_a_wrongly_sized_identity_is_brought_to_the_true_depth(face_model):
    ipd_true = 0.066
    true_shape = face_model.verts_face_m * ipd_true / face_model.ipd_m()
    identity = true_shape * 0.9  # right proportions, wrong size: every pose 10% too near
    corners, meas, tz_true = _frames(face_model, true_shape, identity, np.random.default_rng(0))
    s = ipd_scene_scale(ipd_true, identity, corners, meas, K, face_model)
    assert s.method == "eyes" and s.eye_frames == 6
    assert s.size_factor == pytest.approx(1 / 0.9, rel=1e-9)
    tz = np.array([m.pnp.t_cam_face[2] for m in meas])
    np.testing.assert_allclose(s.scale * tz, tz_true, rtol=3e-3)  # see the test above


def test_eyes_set_the_depth_when_the_shape_proportions_are_off(face_model):
    """The identity's eyes are 8% too far apart for its face: scaling its eye region to the IPD would put the
    face several % too near; the eye corners in the image put it near the right depth (the x-stretched
    shape also tilts each pose a little)."""
    ipd_true = 0.062
    true_shape = face_model.verts_face_m * ipd_true / face_model.ipd_m()
    identity = true_shape.copy()
    identity[:, 0] *= 1.08
    corners, meas, tz_true = _frames(face_model, true_shape, identity, np.random.default_rng(1), n_frames=9)
    s = ipd_scene_scale(ipd_true, identity, corners, meas, K, face_model)
    tz = np.array([m.pnp.t_cam_face[2] for m in meas])
    err_size = np.abs(s.size_factor * tz / tz_true - 1).mean()
    err = np.abs(s.scale * tz / tz_true - 1).mean()
    assert s.method == "eyes" and err_size > 0.03 and err < 0.3 * err_size


def test_frames_turned_away_unsampled_or_without_a_pose_are_not_used(face_model):
    identity = face_model.verts_face_m
    ipd = float(face_model.ipd_m())
    rng = np.random.default_rng(2)
    corners, meas, _ = _frames(face_model, identity, identity, rng, n_frames=5)
    corners[0] = np.nan  # not sampled
    meas[1] = None  # no measurement
    meas[2] = Measurement(meas[2].pnp, False, False)  # rejected
    s = ipd_scene_scale(ipd, identity, corners, meas, K, face_model)
    assert s.method == "size" and s.eye_frames == 2 and s.scale == s.size_factor
    turned = matrix_from_euler_deg(MAX_EYE_YAW_DEG + 10.0, 0.0, 0.0)
    px = project_points(K, transform_points(turned, np.array([0.0, 0.0, 0.5]), identity))
    meas = [Measurement(solve_pose(px, identity, K), True, False)] * 4
    side = np.repeat(px[None, list(EYE_CORNERS)], 4, axis=0)
    assert ipd_scene_scale(ipd, identity, side, meas, K, face_model).eye_frames == 0
