"""tracker.identity (robust clip identity, bounded residual) and tracker.surface (mesh coordinates)."""
import numpy as np
import pytest

from perspnet.alignment import fit_similarity
from tracker.identity import IdentityConfig, IdentityEstimator, weighted_median
from tracker.surface import MeshIndex, closest_on_mesh, closest_on_triangles, points_on_shape

from conftest import random_rotation


def small_rotation(rng, max_deg):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_deg, max_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def observed(rng, true, noise_m=0.0015, scale_sd=0.03):
    """The true shape under a random similarity (rotation <= 5 deg, 5 mm, scale 1 +- scale_sd) plus noise."""
    s = 1.0 + rng.uniform(-1, 1) * scale_sd * np.sqrt(3)
    return s * true @ small_rotation(rng, 5).T + rng.uniform(-0.005, 0.005, 3) + rng.normal(0, noise_m, true.shape)


def similarity_error_mm(a, b):
    """Mean vertex distance (mm) after the best similarity alignment of a onto b (shape only)."""
    s, R, t = fit_similarity(a, b)
    return float(np.linalg.norm(s * a @ R.T + t - b, axis=1).mean() * 1000)


def rigid_error_mm(a, b):
    """Mean vertex distance (mm) after the best rigid alignment of a onto b (scale kept)."""
    s, R, t = fit_similarity(a, b)
    c_a, c_b = a.mean(0), b.mean(0)
    aligned = (a - c_a) @ R.T + c_b
    return float(np.linalg.norm(aligned - b, axis=1).mean() * 1000)


@pytest.fixture(scope="module")
def true_shape(face_model):
    rng = np.random.default_rng(3)
    return face_model.verts_face_m * 1.06 + rng.normal(0, 0.002, face_model.verts_face_m.shape)


class TestWeightedMedian:
    def test_matches_median_with_equal_weights(self):
        x = np.random.default_rng(0).normal(size=(7, 4, 3))
        np.testing.assert_array_equal(weighted_median(x, np.ones(7)), np.median(x, axis=0))

    def test_weights_move_it(self):
        x = np.array([1.0, 2.0, 3.0, 100.0])
        assert weighted_median(x, np.array([1, 1, 1, 1.0])) == 2.0  # the lower median
        assert weighted_median(x, np.array([1, 1, 1, 3.1])) == 100.0
        assert weighted_median(x, np.array([0, 0, 1, 0.0])) == 3.0

    def test_bad_weights(self):
        with pytest.raises(ValueError):
            weighted_median(np.ones(3), np.zeros(3))
        with pytest.raises(ValueError):
            weighted_median(np.ones(3), np.ones(2))


class TestIdentityEstimator:
    def test_converges_to_the_true_shape(self, true_shape, face_model):
        rng = np.random.default_rng(1)
        est = IdentityEstimator()
        errors = []
        for k in range(80):
            est.add(observed(rng, true_shape), weight=rng.uniform(0.4, 1.0))
            errors.append(rigid_error_mm(est.identity, true_shape))
        assert errors[-1] < 0.8 and errors[0] > 2.0  # one frame: 1.5 mm noise and up to 5% size error
        assert similarity_error_mm(est.identity, true_shape) < 0.4
        assert face_model.ipd_m(est.identity) == pytest.approx(face_model.ipd_m(true_shape), rel=0.015)
        assert est.n_accepted == 80

    def test_robust_to_outlier_frames(self, true_shape, face_model):
        rng = np.random.default_rng(2)
        est, mean_of_shapes = IdentityEstimator(), []
        for k in range(90):
            shape = observed(rng, true_shape)
            if k % 4 == 1:  # a quarter of the frames: badly wrong, and confident
                shape = shape * 1.4 + rng.normal(0, 0.015, shape.shape)
            est.add(shape, weight=1.0)
            mean_of_shapes.append(shape)
        assert similarity_error_mm(est.identity, true_shape) < 0.5
        assert face_model.ipd_m(est.identity) == pytest.approx(face_model.ipd_m(true_shape), rel=0.025)
        assert rigid_error_mm(np.mean(mean_of_shapes, axis=0), true_shape) > 4.0  # a mean would not do

    def test_orientation_and_placement_are_the_clips_not_the_first_frames(self, true_shape):
        rng = np.random.default_rng(9)
        est = IdentityEstimator()
        est.add(true_shape @ small_rotation(rng, 12).T + [0.01, 0.0, 0.0], weight=1.0)  # a tilted, shifted first frame
        for _ in range(30):
            est.add(true_shape + rng.normal(0, 0.001, true_shape.shape), weight=1.0)
        assert np.linalg.norm(est.identity - true_shape, axis=1).mean() < 0.4e-3  # no alignment needed

    def test_low_confidence_frames_are_ignored(self, true_shape):
        est = IdentityEstimator(IdentityConfig(min_confidence=0.5))
        assert est.identity is None
        assert not est.add(true_shape * 2.0, weight=0.3)
        assert est.identity is None and est.n_accepted == 0
        assert est.add(true_shape, weight=0.9)
        np.testing.assert_allclose(est.identity, true_shape, atol=1e-6)

    def test_memory_is_bounded_and_frames_stay_spread(self, true_shape):
        rng = np.random.default_rng(4)
        est = IdentityEstimator(IdentityConfig(max_samples=8))
        for _ in range(100):
            est.add(observed(rng, true_shape), weight=1.0)
        assert 4 <= est.n_samples <= 8 and est.stride >= 8 and est.n_accepted == 100
        assert rigid_error_mm(est.identity, true_shape) < 1.5

    def test_frame_shape_residual_is_bounded(self, true_shape):
        est = IdentityEstimator(IdentityConfig(max_residual_mm=5.0))
        est.add(true_shape, weight=1.0)
        expression = np.zeros_like(true_shape)
        expression[:60, 1] = 0.015  # 15 mm on 60 vertices (mouth open)
        frame = (true_shape + expression) * 0.9 @ random_rotation(np.random.default_rng(5)).T + [0.1, 0, 0.3]
        fs = est.frame_shape(frame)
        residual = np.linalg.norm(fs.verts_face_m - est.identity, axis=1)
        assert residual.max() <= 5.0e-3 + 1e-9
        assert residual[:60].min() > 4.0e-3  # clipped, not dropped: the expression still shows
        assert fs.dev_mm == pytest.approx(15.0 * 60 / len(true_shape), rel=0.15)
        same = est.frame_shape(true_shape * 1.2 @ random_rotation(np.random.default_rng(6)).T)
        assert same.dev_mm < 1e-4
        np.testing.assert_allclose(same.verts_face_m, est.identity, atol=1e-7)

    def test_frame_shape_before_identity_is_the_raw_shape(self, true_shape):
        fs = IdentityEstimator().frame_shape(true_shape)
        np.testing.assert_array_equal(fs.verts_face_m, true_shape)
        assert fs.dev_mm == 0.0

    def test_config_is_validated(self):
        with pytest.raises(ValueError, match="max_residual_mm"):
            IdentityConfig(max_residual_mm=-1.0)
        with pytest.raises(ValueError, match="min_confidence"):
            IdentityConfig(min_confidence=1.5)
        with pytest.raises(ValueError, match="max_samples"):
            IdentityConfig(max_samples=1)


class TestSurface:
    def test_closest_point_on_a_triangle(self):
        a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
        points = np.array([[0.2, 0.3, 0.5], [2.0, -1.0, 0.0], [-1.0, -1.0, 1.0], [0.8, 0.8, 0.0]])
        bary, dist = closest_on_triangles(points, a, b, c)
        np.testing.assert_allclose(bary, [[0.5, 0.2, 0.3], [0, 1, 0], [1, 0, 0], [0, 0.5, 0.5]], atol=1e-12)
        np.testing.assert_allclose(dist, [0.5, np.sqrt(2), np.sqrt(3), np.sqrt(0.18)], atol=1e-12)

    def test_mesh_lookup_matches_brute_force(self, face_model):
        rng = np.random.default_rng(7)
        verts, tris = face_model.verts_face_m, face_model.triangles
        mesh = MeshIndex(tris, face_model.n_verts)
        tri0 = rng.integers(0, len(tris), 300)
        points = points_on_shape(tri0, rng.dirichlet([1, 1, 1], 300), verts, mesh) + rng.normal(0, 0.001, (300, 3))
        tri, bary = closest_on_mesh(points, verts, mesh)
        corners = verts[tris]
        _, brute = closest_on_triangles(points[:, None], corners[None, :, 0], corners[None, :, 1], corners[None, :, 2])
        found = np.linalg.norm(points_on_shape(tri, bary, verts, mesh) - points, axis=1)
        np.testing.assert_allclose(found, brute.min(axis=1), atol=1e-12)
        assert np.all(bary >= -1e-12) and np.allclose(bary.sum(1), 1.0)

    def test_mesh_coordinates_follow_a_similarity(self, face_model):
        """Points found on one shape land on the same surface points of a transformed copy."""
        rng = np.random.default_rng(8)
        mesh = MeshIndex(face_model.triangles, face_model.n_verts)
        verts = face_model.verts_face_m
        points = points_on_shape(rng.integers(0, len(face_model.triangles), 50), rng.dirichlet([1, 1, 1], 50),
                                 verts, mesh)
        R, t = random_rotation(rng), np.array([0.1, -0.2, 0.5])
        tri, bary = closest_on_mesh(points * 0.8 @ R.T + t, verts * 0.8 @ R.T + t, mesh)
        np.testing.assert_allclose(points_on_shape(tri, bary, verts, mesh), points, atol=1e-12)
