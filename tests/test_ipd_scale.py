"""tracker.ipd_scale: the scene scale for a known IPD, on exact synthetic correspondences."""
import numpy as np
import pytest

from perspnet.conventions import matrix_from_euler_deg, project_points, transform_points
from perspnet.face_model import EYE_REGION_RADIUS_M
from perspnet.pnp import solve_pose
from tracker.ipd_scale import ipd_scene_scale, translation_for_rotation
from tracker.measure import Measurement
from tracker.surface import MeshIndex, points_on_shape

K = np.array([[900.0, 0.0, 640.0], [0.0, 900.0, 360.0], [0.0, 0.0, 1.0]])


def test_translation_for_rotation_is_exact_on_exact_projections(face_model):
    R, t = matrix_from_euler_deg(30, -12, 8), np.array([0.05, -0.02, 0.45])
    X = face_model.verts_face_m
    px = project_points(K, transform_points(R, t, X))
    np.testing.assert_allclose(translation_for_rotation(R, X, px, K), t, atol=1e-12)


def _frames(face_model, true_shape, identity, rng, n_frames=6, m=600):
    """Records and whole-face PnP measurements (solved on ``identity``) of ``true_shape`` seen at several poses."""
    mesh = MeshIndex(face_model.triangles, face_model.n_verts)
    dtype = np.dtype([("points_px", "<f4", (m, 2)), ("tri", "<i4", (m,)), ("bary", "<f4", (m, 3))])
    records = np.zeros(n_frames, dtype)
    measurements, tz_true = [], []
    for k in range(n_frames):
        R = matrix_from_euler_deg(rng.uniform(-25, 25), rng.uniform(-15, 15), rng.uniform(-10, 10))
        t = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.03, 0.03), rng.uniform(0.35, 0.8)])
        tri = rng.integers(len(face_model.triangles), size=m)
        bary = rng.dirichlet(np.ones(3), size=m).astype(np.float32)
        px = project_points(K, transform_points(R, t, points_on_shape(tri, bary.astype(float), true_shape, mesh)))
        records[k] = (px.astype(np.float32), tri, bary)
        res = solve_pose(records[k]["points_px"].astype(float),
                         points_on_shape(tri, bary.astype(float), identity, mesh), K)
        assert res.success
        measurements.append(Measurement(res, True, False))
        tz_true.append(t[2])
    return records, measurements, mesh, np.array(tz_true)


def test_exact_identity_gives_the_size_factor_only(face_model):
    ipd_true = 0.066
    true_shape = face_model.verts_face_m * ipd_true / face_model.ipd_m()
    identity = true_shape * 0.93  # right proportions, wrong size: the eye depth agrees with the whole face
    records, meas, mesh, tz_true = _frames(face_model, true_shape, identity, np.random.default_rng(0))
    s = ipd_scene_scale(ipd_true, identity, records, meas, mesh, K, face_model)
    assert s.eye_frames == 6 and s.eye_depth_ratio == pytest.approx(1.0, abs=1e-6)
    assert s.size_factor == pytest.approx(1 / 0.93, rel=1e-9)
    tz = np.array([m.pnp.t_cam_face[2] for m in meas])
    np.testing.assert_allclose(s.scale * tz, tz_true, rtol=1e-5)


def test_eye_region_of_wrong_proportions_is_put_at_the_right_depth(face_model):
    """The identity's eye region is 6% too large for the rest of its face: whole-face poses put the face at
    a depth the eye region does not agree with; the eye-depth factor moves it back."""
    ipd_true = 0.062
    true_shape = face_model.verts_face_m * ipd_true / face_model.ipd_m()
    right, left = face_model.eye_centres(true_shape)
    identity = true_shape.copy()
    for centre in (right, left):
        near = np.linalg.norm(true_shape - centre, axis=1) < 1.6 * EYE_REGION_RADIUS_M
        identity[near] = centre + 1.06 * (true_shape[near] - centre)
    records, meas, mesh, tz_true = _frames(face_model, true_shape, identity, np.random.default_rng(1))
    s = ipd_scene_scale(ipd_true, identity, records, meas, mesh, K, face_model)
    tz = np.array([m.pnp.t_cam_face[2] for m in meas])
    err_size_only = np.abs(s.size_factor * tz / tz_true - 1).mean()
    err = np.abs(s.scale * tz / tz_true - 1).mean()
    assert s.eye_depth_ratio != pytest.approx(1.0, abs=0.005)
    assert err < 0.5 * err_size_only


def test_frames_without_both_eyes_are_not_used(face_model):
    identity = face_model.verts_face_m
    records, meas, mesh, _ = _frames(face_model, identity, identity, np.random.default_rng(2), n_frames=4)
    right, _ = face_model.eye_centres(identity)
    centroids = identity[face_model.triangles].mean(axis=1)
    far_tri = int(np.argmax(np.linalg.norm(centroids - right, axis=1)))
    for rec in records:  # move every correspondence near the right eye far from it: only one eye is seen
        X = points_on_shape(rec["tri"], rec["bary"].astype(float), identity, mesh)
        rec["tri"][np.linalg.norm(X - right, axis=1) < 2 * EYE_REGION_RADIUS_M] = far_tri
    s = ipd_scene_scale(0.063, identity, records, meas, mesh, K, face_model)
    assert s.eye_frames == 0 and s.eye_depth_ratio == 1.0
    meas[0] = None
    assert ipd_scene_scale(0.063, identity, records, meas, mesh, K, face_model).eye_frames == 0
