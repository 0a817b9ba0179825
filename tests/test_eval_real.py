"""The measures of scripts/eval_real.py (the real-footage yardstick): mirror pose, mirrored camera, NME, openings."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from perspnet.assets import pyfeat_file
from perspnet.conventions import matrix_from_euler_deg, project_points
from perspnet.landmark_ids import LEFT_EYE_OUTER, LOWER_LIP, RIGHT_EYE_OUTER
from perspnet.landmarker import FaceLandmarker
from tests.conftest import random_rotation

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "eval_real.py"


@pytest.fixture(scope="module")
def er():
    spec = importlib.util.spec_from_file_location("eval_real", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestMirrorPose:
    def test_involution(self, er):
        rng = np.random.default_rng(0)
        for _ in range(5):
            R, t = random_rotation(rng), rng.normal(size=3)
            R2, t2 = er.mirror_pose(*er.mirror_pose(R, t))
            np.testing.assert_allclose(R2, R, atol=1e-12)
            np.testing.assert_allclose(t2, t, atol=1e-12)

    def test_symmetric_pose_is_its_own_mirror(self, er):
        R, t = matrix_from_euler_deg(0.0, 20.0, 0.0), np.array([0.0, 0.05, 0.6])  # pitch only, on the axis
        R_m, t_m = er.mirror_pose(R, t)
        np.testing.assert_allclose(R_m, R, atol=1e-12)
        np.testing.assert_allclose(t_m, t, atol=1e-12)

    def test_yaw_and_roll_flip_sign(self, er):
        R_m, _ = er.mirror_pose(matrix_from_euler_deg(15.0, 0.0, 0.0), np.array([0.0, 0.0, 0.6]))
        np.testing.assert_allclose(R_m, matrix_from_euler_deg(-15.0, 0.0, 0.0), atol=1e-12)
        R_m, _ = er.mirror_pose(matrix_from_euler_deg(0.0, 0.0, 10.0), np.array([0.0, 0.0, 0.6]))
        np.testing.assert_allclose(R_m, matrix_from_euler_deg(0.0, 0.0, -10.0), atol=1e-12)

    def test_bias_is_recovered_from_a_pose_and_its_mirror(self, er):
        yaw, roll, bias_yaw, bias_roll = 25.0, -8.0, 3.0, -1.5
        t = np.array([0.05, 0.0, 0.6])
        R_image = matrix_from_euler_deg(yaw + bias_yaw, 5.0, roll + bias_roll)
        R_of_mirror = matrix_from_euler_deg(-yaw + bias_yaw, 5.0, -roll + bias_roll)  # the mirror's own pose
        R_back, _ = er.mirror_pose(R_of_mirror, t)
        assert er.mirror_bias_deg(R_image, R_back) == pytest.approx((bias_yaw, bias_roll, 0.0), abs=1e-6)
        R_of_mirror = matrix_from_euler_deg(-yaw, 9.0, -roll)  # pitch read 4 degrees higher on the mirror
        assert er.mirror_bias_deg(R_image, er.mirror_pose(R_of_mirror, t)[0])[2] == pytest.approx(-4.0, abs=1e-6)

    def test_mirrored_camera_sees_mirrored_points_at_flipped_columns(self, er):
        width, height = 640, 360
        K = er.camera_K(width, height)
        points_cam = np.random.default_rng(1).uniform([-0.2, -0.1, 0.4], [0.2, 0.1, 0.9], size=(20, 3))
        uv = project_points(K, points_cam)
        uv_m = project_points(er.mirrored_K(K, width), points_cam @ er.S_MIRROR)
        np.testing.assert_allclose(uv_m[:, 0], width - 1 - uv[:, 0], atol=1e-9)
        np.testing.assert_allclose(uv_m[:, 1], uv[:, 1], atol=1e-9)


class TestNME:
    def test_self_is_zero_and_shift_is_its_length(self, er, face_model):
        points_px = face_model.verts_face_m[:, :2] * 2000.0 + 300.0
        size = er.face_size_px(points_px)
        assert er.nme_pct(points_px, points_px, size) == 0.0
        assert er.nme_pct(points_px + [3.0, 4.0], points_px, size) == pytest.approx(500.0 / size)


class TestOpenings:
    def test_lowered_lip_opens_the_mouth_by_its_share_of_the_eye_span(self, er, face_model):
        verts = face_model.verts_face_m.copy()
        span = np.linalg.norm(verts[RIGHT_EYE_OUTER] - verts[LEFT_EYE_OUTER])
        closed = er.mouth_opening(verts)
        verts[LOWER_LIP, 1] += 0.2 * span  # y points down in the canonical face frame: the lip drops
        assert er.mouth_opening(verts) == pytest.approx(closed + 0.2, abs=0.02)

    def test_laughing_photo_opens_wider_than_a_closed_mouth(self, er):
        openings = {}
        with FaceLandmarker("image") as landmarker:
            for name in ("Image_with_alpha.png", "45-m7-di-ph.jpg"):  # laughing, mouth open; closed mouth
                rgb = cv2.cvtColor(cv2.imread(str(pyfeat_file(name))), cv2.COLOR_BGR2RGB)
                openings[name] = er.mouth_opening(landmarker.detect(rgb)[0].points_3d_px)
        assert openings["Image_with_alpha.png"] > 0.15 > 0.05 > openings["45-m7-di-ph.jpg"]
