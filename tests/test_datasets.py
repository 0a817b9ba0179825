"""Dataset loaders and writer, on fixtures written here in the official ARKitFace and BIWI layouts.

The fixtures are built from the layouts' own conventions, written out independently of the code under
test: ARKit-frame vertices, row-vector OpenGL ``R_t``, a 4x4 OpenGL projection matrix used through
ARKitFace's projection chain; BIWI's millimetre poses in the depth camera plus ``rgb.cal`` extrinsics.
"""
from __future__ import annotations

import re

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from perspnet.conventions import project_points, transform_points
from perspnet.datasets.arkit import (
    ArkitLayoutDataset,
    ArkitLayoutWriter,
    K_from_projection_matrix,
    arkit_R_t_from_pose,
    pose_from_arkit_R_t,
    project_arkit_official,
    projection_matrix_from_K,
)
from perspnet.datasets.biwi import T_BIWIHEAD_ARKITFACE_M, BiwiDataset
from perspnet.datasets.record import DatasetFormatError, FaceRecord, FaceTopology

# The projection matrix published with ARKitFace (npy/projection_matrix.txt), used with 800x800 crops.
ARKITFACE_PROJ = np.array([
    [1.57443701, 0.0, 0.0, 0.0],
    [0.0, 1.57443701, 0.0, 0.0],
    [0.0, 0.0, -0.99999976, -1.0],
    [0.0, 0.0, -0.001, 0.0],
])
# A typical ARKit front-camera projection for a 720x1280 portrait frame: f ~ 1047 px, principal point a few
# pixels off centre (P[2, 0], P[2, 1] != 0).
PHONE_PROJ = np.array([
    [2.9098, 0.0, 0.0, 0.0],
    [0.0, 1.6367, 0.0, 0.0],
    [0.0051, -0.0042, -0.99999976, -1.0],
    [0.0, 0.0, -0.001, 0.0],
])
W, H = 720, 1280
N_ARKIT = 1220
N_OFFICIAL_UV = 1279  # ARKitFace's uv/triangle npy files: 1220 mesh vertices + 59 derived ones
FLIP = np.array([1.0, -1.0, -1.0])


# ------------------------------------------------------------------------------------------ helpers

def official_chain(verts_arkit, R_t, M_proj, width, height):
    """ARKitFace's projection, written from its description: verts_h @ R_t @ M_proj @ M1, /w, y = h - y."""
    vh = np.hstack([verts_arkit, np.ones((len(verts_arkit), 1))])
    M1 = np.array([[width / 2, 0, 0, 0], [0, height / 2, 0, 0], [0, 0, 1, 0], [width / 2, height / 2, 0, 1]])
    p = vh @ R_t @ M_proj @ M1
    p = p / p[:, [3]]
    return np.stack([p[:, 0], height - p[:, 1]], axis=1)


def random_gl_R_t(rng, max_deg=50.0):
    """Row-vector OpenGL pose of a face in front of the camera (tz < 0), non-identity rotation."""
    R_gl = Rotation.from_rotvec(rng.normal(size=3) * np.radians(max_deg) / 2).as_matrix()
    R_t = np.eye(4)
    R_t[:3, :3] = R_gl.T
    R_t[3, :3] = [rng.uniform(-0.12, 0.12), rng.uniform(-0.15, 0.15), -rng.uniform(0.3, 0.9)]
    return R_t


def random_arkit_verts(rng, n=N_ARKIT):
    """Face-sized point cloud in ARKit's face-anchor frame (y up, z out of the face), metres."""
    return rng.uniform([-0.08, -0.11, -0.06], [0.08, 0.09, 0.07], size=(n, 3))


def smooth_image(rng, h=H, w=W):
    """Smooth colour image (upsampled noise), so JPEG error stays small and comparable."""
    small = rng.integers(0, 256, size=(h // 40, w // 40, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def official_topology_files(rng, n_tris=2500):
    """ARKitFace-style triangles over 1279 vertices and 1279 uvs; returns (tris, uvs)."""
    tris = rng.integers(0, N_ARKIT, size=(n_tris - 100, 3))
    extra = rng.integers(0, N_OFFICIAL_UV, size=(100, 3))
    extra[:, 0] = rng.integers(N_ARKIT, N_OFFICIAL_UV, size=100)  # uses a derived vertex
    return np.vstack([tris, extra]).astype(np.int64), rng.uniform(0, 1, size=(N_OFFICIAL_UV, 2))


def write_official_sample(root, subject, action, img_id, image_rgb, npz_arrays):
    (root / "image" / subject / action).mkdir(parents=True, exist_ok=True)
    (root / "info" / subject / action).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "image" / subject / action / f"{img_id}_ar.jpg"),
                cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    np.savez(root / "info" / subject / action / f"{img_id}_info.npz", **npz_arrays)


def make_official_root(root, rng, n=3, proj=PHONE_PROJ, csv_name="csv/test.csv", r_t_dtype=np.float64):
    """An ARKitFace-layout folder as the official release has it: no K in the npz, a projection matrix file,
    topology as npy files, the CSV elsewhere than index.csv. Returns (csv_path, list of npz dicts)."""
    (root / "npy").mkdir(parents=True)
    np.savetxt(root / "npy" / "projection_matrix.txt", proj)
    tris, uvs = official_topology_files(rng)
    np.save(root / "npy" / "tris_2500x3_202110.npy", tris)
    np.save(root / "npy" / "uv_coords_std_202109.npy", uvs)
    rows, infos = [], []
    for k in range(n):
        subject, action, img_id = "0007", "03", f"{k * 5:06d}"
        info = {"verts": random_arkit_verts(rng).astype(np.float32), "R_t": random_gl_R_t(rng).astype(r_t_dtype)}
        write_official_sample(root, subject, action, img_id, smooth_image(rng), info)
        rows.append({"subject_id": subject, "facial_action": action, "img_id": img_id, "split": "test"})
        infos.append(info)
    csv_path = root / csv_name
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    return csv_path, infos


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("arkitface")
    csv_path, infos = make_official_root(root, rng)
    return root, csv_path, infos


def small_topology(rng, n):
    return FaceTopology("test%d" % n, rng.integers(0, n, size=(2 * n, 3)), rng.uniform(0, 1, size=(n, 2)))


def random_record(rng, n_verts, subject="0042", action="07", img_id="000123", ipd_mm=63.25, dist=None):
    R = Rotation.from_rotvec(rng.normal(size=3) * 0.4).as_matrix()
    t = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.3, 0.9)])
    K = np.array([[1047.3125, 0.0, 361.78125], [0.0, 1049.0625, 637.40625], [0.0, 0.0, 1.0]])
    verts = rng.uniform([-0.08, -0.1, -0.07], [0.08, 0.11, 0.06], size=(n_verts, 3))
    return FaceRecord(image_rgb=smooth_image(rng), K=K, R_cam_face=R, t_cam_face=t, verts_face_m=verts,
                      subject=subject, action=action, img_id=img_id, ipd_mm=ipd_mm, dist=dist)


# ------------------------------------------------------------------------------------ camera model

class TestKFromProjection:
    @pytest.mark.parametrize("proj, width, height", [(PHONE_PROJ, W, H), (ARKITFACE_PROJ, 800, 800),
                                                     (ARKITFACE_PROJ, 1280, 720)])
    def test_matches_official_chain_random_poses(self, proj, width, height):
        rng = np.random.default_rng(1)
        K = K_from_projection_matrix(proj, width, height)
        for _ in range(20):
            verts_arkit, R_t = random_arkit_verts(rng, 200), random_gl_R_t(rng, max_deg=80)
            px_official = official_chain(verts_arkit, R_t, proj, width, height)
            R_cam_face, t_cam_face = pose_from_arkit_R_t(R_t)
            verts_cam = transform_points(R_cam_face, t_cam_face, verts_arkit * FLIP)
            assert (verts_cam[:, 2] > 0).all()
            np.testing.assert_allclose(project_points(K, verts_cam), px_official, rtol=0, atol=1e-6)
            np.testing.assert_allclose(project_arkit_official(verts_arkit, R_t, proj, width, height),
                                       px_official, rtol=0, atol=1e-9)

    def test_published_matrix_values(self):
        K = K_from_projection_matrix(ARKITFACE_PROJ, 800, 800)
        np.testing.assert_allclose(K, [[1.57443701 * 400, 0, 400], [0, 1.57443701 * 400, 400], [0, 0, 1]])

    @settings(max_examples=60, deadline=None)
    @given(fx=st.floats(200, 3000), fy=st.floats(200, 3000), w=st.integers(64, 4000), h=st.integers(64, 4000),
           ox=st.floats(-0.2, 0.2), oy=st.floats(-0.2, 0.2))
    def test_projection_from_K_round_trip(self, fx, fy, w, h, ox, oy):
        K = np.array([[fx, 0, w / 2 * (1 + ox)], [0, fy, h / 2 * (1 + oy)], [0, 0, 1.0]])
        P = projection_matrix_from_K(K, w, h)
        np.testing.assert_allclose(K_from_projection_matrix(P, w, h), K, rtol=1e-12, atol=1e-9)
        rng = np.random.default_rng(0)
        verts_arkit, R_t = random_arkit_verts(rng, 20), random_gl_R_t(rng)
        R, t = pose_from_arkit_R_t(R_t)
        np.testing.assert_allclose(project_points(K, transform_points(R, t, verts_arkit * FLIP)),
                                   official_chain(verts_arkit, R_t, P, w, h), rtol=0, atol=1e-6)

    def test_transposed_matrix_is_rejected(self):
        with pytest.raises(ValueError, match="transposed"):
            K_from_projection_matrix(PHONE_PROJ.T, W, H)


class TestPoseConversion:
    def test_round_trip_and_frames(self):
        rng = np.random.default_rng(3)
        R_t = random_gl_R_t(rng)
        R, t = pose_from_arkit_R_t(R_t)
        assert np.linalg.det(R) == pytest.approx(1.0) and t[2] > 0
        np.testing.assert_array_equal(arkit_R_t_from_pose(R, t), R_t)
        # ARKit's face is in front of the OpenGL camera looking at it: the face's +z (out of the face) points
        # back towards the camera; in our frames the canonical +z (into the head) points away from it.
        assert (R @ [0, 0, 1])[2] > 0


# ---------------------------------------------------------------------------------- ARKit loader

class TestOfficialLayout:
    def test_loads_in_our_frames(self, official):
        root, csv_path, infos = official
        ds = ArkitLayoutDataset(root, csv_path=csv_path)
        assert len(ds) == len(infos)
        assert ds.topology.n_verts == N_ARKIT and ds.topology.triangles.max() < N_ARKIT
        assert ds.index["img_id"].tolist() == ["000000", "000005", "000010"]  # leading zeros kept
        K = K_from_projection_matrix(PHONE_PROJ, W, H)
        for i, info in enumerate(infos):
            rec = ds[i]
            assert rec.image_rgb.shape == (H, W, 3) and rec.image_rgb.dtype == np.uint8
            assert (rec.subject, rec.action, rec.img_id) == ("0007", "03", f"{i * 5:06d}")
            R = rec.R_cam_face
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
            assert rec.t_cam_face[2] > 0
            assert rec.t_cam_face[2] == pytest.approx(-info["R_t"][3, 2])
            np.testing.assert_array_equal(rec.K, K)
            np.testing.assert_array_equal(rec.verts_face_m, info["verts"].astype(np.float64) * FLIP)
            px = official_chain(info["verts"].astype(np.float64), info["R_t"], PHONE_PROJ, W, H)
            np.testing.assert_allclose(project_points(rec.K, rec.verts_cam_m), px, rtol=0, atol=1e-6)
            assert rec.ipd_mm is None and rec.dist is None

    def test_float32_R_t(self, tmp_path):
        rng = np.random.default_rng(11)
        csv_path, _ = make_official_root(tmp_path, rng, n=1, r_t_dtype=np.float32)
        rec = ArkitLayoutDataset(tmp_path, csv_path=csv_path)[0]
        assert np.linalg.det(rec.R_cam_face) == pytest.approx(1.0, abs=1e-5) and rec.t_cam_face[2] > 0

    def test_explicit_projection_and_topology_arguments(self, official, tmp_path):
        root, csv_path, _ = official
        topo = FaceTopology.from_npy(root / "npy/tris_2500x3_202110.npy", root / "npy/uv_coords_std_202109.npy",
                                     name="arkitface1220", n_verts=N_ARKIT)
        ds = ArkitLayoutDataset(root, csv_path=csv_path, topology=topo, projection_matrix=ARKITFACE_PROJ)
        np.testing.assert_allclose(ds[0].K, K_from_projection_matrix(ARKITFACE_PROJ, W, H))
        ds2 = ArkitLayoutDataset(root, csv_path=csv_path, topology=(root / "npy/tris_2500x3_202110.npy",
                                                                     root / "npy/uv_coords_std_202109.npy"))
        np.testing.assert_array_equal(ds2.topology.triangles, topo.triangles)


# ---------------------------------------------------------------------------------------- writer

class TestWriter:
    def test_round_trip(self, tmp_path):
        rng = np.random.default_rng(5)
        topo = small_topology(rng, 60)
        records = [random_record(rng, 60, img_id=f"{k:06d}", dist=np.array([0.1, -0.02, 0.001, 0.0005, 0.01]))
                   for k in range(3)]
        records.append(random_record(rng, 60, subject="0043", action="01", img_id="000000", ipd_mm=None))
        with ArkitLayoutWriter(tmp_path / "out", topology=topo) as writer:
            for k, rec in enumerate(records):
                writer.write(rec, {"yaw_deg": 10.0 * k, "split": "train" if k < 3 else "val"})
        root = tmp_path / "out"
        assert not [p for p in root.rglob("*") if ".tmp-" in p.name]
        df = pd.read_csv(root / "index.csv", dtype=str)
        assert list(df.columns) == ["subject_id", "facial_action", "img_id", "yaw_deg", "split"]
        assert df["img_id"].tolist() == ["000000", "000001", "000002", "000000"]
        with np.load(root / "info/0042/07/000001_info.npz") as z:  # ARKitFace conventions on disk
            assert z["verts"].dtype == np.float32 and z["R_t"].shape == (4, 4) and z["R_t"][3, 2] < 0
            np.testing.assert_allclose(z["R_t"][:3, 3], 0)
        ds = ArkitLayoutDataset(root)
        assert ds.topology.name == topo.name
        np.testing.assert_array_equal(ds.topology.triangles, topo.triangles)
        np.testing.assert_array_equal(ds.topology.uvs, topo.uvs)
        assert ds.index["split"].tolist() == ["train", "train", "train", "val"]
        for rec, back in zip(records, ds):
            assert (back.subject, back.action, back.img_id) == (rec.subject, rec.action, rec.img_id)
            np.testing.assert_allclose(back.R_cam_face, rec.R_cam_face, rtol=0, atol=1e-9)
            np.testing.assert_allclose(back.t_cam_face, rec.t_cam_face, rtol=0, atol=1e-9)
            np.testing.assert_array_equal(back.K, rec.K)
            np.testing.assert_array_equal(back.verts_face_m, rec.verts_face_m.astype(np.float32))
            np.testing.assert_allclose(back.verts_face_m, rec.verts_face_m, rtol=0, atol=1e-8)
            assert back.ipd_mm == rec.ipd_mm
            if rec.dist is None:
                assert back.dist is None
            else:
                np.testing.assert_array_equal(back.dist, rec.dist)
            diff = np.abs(back.image_rgb.astype(int) - rec.image_rgb.astype(int))
            assert diff.mean() < 1.5 and diff.max() < 40

    def test_writer_and_official_fixture_load_identically(self, tmp_path):
        rng = np.random.default_rng(9)
        tris, uvs = official_topology_files(rng)
        keep = (tris < N_ARKIT).all(axis=1)
        topo = FaceTopology("arkitface1220", tris[keep], uvs[:N_ARKIT])
        K = K_from_projection_matrix(PHONE_PROJ, W, H)
        rec = random_record(rng, N_ARKIT, ipd_mm=None)
        rec.K = K
        with ArkitLayoutWriter(tmp_path / "ours", topology=topo) as writer:
            writer.write(rec)
        # The same sample by hand, in the official form: ARKit-frame verts, row-vector GL pose, no K.
        off = tmp_path / "official"
        R_gl = rec.R_cam_face * np.outer(FLIP, FLIP)
        R_t = np.eye(4)
        R_t[:3, :3], R_t[3, :3] = R_gl.T, rec.t_cam_face * FLIP
        write_official_sample(off, rec.subject, rec.action, rec.img_id, rec.image_rgb,
                              {"verts": (rec.verts_face_m * FLIP).astype(np.float32), "R_t": R_t})
        (off / "npy").mkdir()
        np.savetxt(off / "npy/projection_matrix.txt", PHONE_PROJ)
        np.save(off / "npy/tris_2500x3_202110.npy", tris)
        np.save(off / "npy/uv_coords_std_202109.npy", uvs)
        pd.DataFrame([{"subject_id": rec.subject, "facial_action": rec.action, "img_id": rec.img_id}]).to_csv(
            off / "index.csv", index=False)

        a, b = ArkitLayoutDataset(tmp_path / "ours"), ArkitLayoutDataset(off)
        np.testing.assert_array_equal(a.topology.triangles, b.topology.triangles)
        np.testing.assert_array_equal(a.topology.uvs, b.topology.uvs)
        ra, rb = a[0], b[0]
        assert (ra.subject, ra.action, ra.img_id) == (rb.subject, rb.action, rb.img_id)
        np.testing.assert_array_equal(ra.image_rgb, rb.image_rgb)
        np.testing.assert_allclose(ra.K, rb.K, rtol=1e-12, atol=0)
        np.testing.assert_allclose(ra.R_cam_face, rb.R_cam_face, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ra.t_cam_face, rb.t_cam_face, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ra.verts_face_m, rb.verts_face_m)
        assert ra.ipd_mm is rb.ipd_mm is None and ra.dist is rb.dist is None

    def test_default_topology_is_mediapipe(self, tmp_path):
        rng = np.random.default_rng(2)
        with ArkitLayoutWriter(tmp_path) as writer:
            assert writer.topology.n_verts == 468
            writer.write(random_record(rng, 468))
        ds = ArkitLayoutDataset(tmp_path)
        assert ds.topology.name == "mediapipe468" and ds[0].verts_face_m.shape == (468, 3)
        mp = FaceTopology.mediapipe()
        np.testing.assert_array_equal(ds.topology.triangles, mp.triangles)

    def test_rejects_bad_records(self, tmp_path):
        rng = np.random.default_rng(4)
        writer = ArkitLayoutWriter(tmp_path, topology=small_topology(rng, 30))
        writer.write(random_record(rng, 30))
        with pytest.raises(ValueError, match="duplicate"):
            writer.write(random_record(rng, 30))
        with pytest.raises(ValueError, match="vertices"):
            writer.write(random_record(rng, 31, img_id="2"))
        with pytest.raises(ValueError, match="path part"):
            writer.write(random_record(rng, 30, subject="../x"))
        with pytest.raises(ValueError, match="clash"):
            writer.write(random_record(rng, 30, img_id="3"), {"img_id": 1})
        writer.close()
        with pytest.raises(RuntimeError, match="closed"):
            writer.write(random_record(rng, 30, img_id="4"))


# ---------------------------------------------------------------------------------- ARKit errors

def _remove_image(root, csv):
    p = root / "image/0007/03/000000_ar.jpg"
    p.unlink()
    return p, FileNotFoundError


def _remove_npz(root, csv):
    p = root / "info/0007/03/000000_info.npz"
    p.unlink()
    return p, FileNotFoundError


def _corrupt_image(root, csv):
    p = root / "image/0007/03/000000_ar.jpg"
    p.write_bytes(b"not a jpeg")
    return p, DatasetFormatError


def _npz_without_R_t(root, csv):
    p = root / "info/0007/03/000000_info.npz"
    np.savez(p, verts=np.zeros((N_ARKIT, 3), np.float32))
    return p, DatasetFormatError


def _verts_bad_shape(root, csv):
    p = root / "info/0007/03/000000_info.npz"
    np.savez(p, verts=np.zeros((N_ARKIT, 2), np.float32), R_t=random_gl_R_t(np.random.default_rng(0)))
    return p, DatasetFormatError


def _verts_wrong_count(root, csv):
    p = root / "info/0007/03/000000_info.npz"
    np.savez(p, verts=np.zeros((468, 3), np.float32), R_t=random_gl_R_t(np.random.default_rng(0)))
    return p, DatasetFormatError


def _column_vector_R_t(root, csv):
    p = root / "info/0007/03/000000_info.npz"
    np.savez(p, verts=np.zeros((N_ARKIT, 3), np.float32), R_t=random_gl_R_t(np.random.default_rng(0)).T)
    return p, DatasetFormatError


def _bad_K_shape(root, csv):
    p = root / "info/0007/03/000000_info.npz"
    np.savez(p, verts=np.zeros((N_ARKIT, 3), np.float32), R_t=random_gl_R_t(np.random.default_rng(0)),
             K=np.eye(4))
    return p, DatasetFormatError


def _no_projection(root, csv):
    (root / "npy/projection_matrix.txt").unlink()
    return root / "info/0007/03/000000_info.npz", FileNotFoundError


def _bad_projection_file(root, csv):
    p = root / "npy/projection_matrix.txt"
    np.savetxt(p, np.eye(4)[:3])
    return p, DatasetFormatError


def _no_topology(root, csv):
    (root / "npy/uv_coords_std_202109.npy").unlink()
    return root / "topology.npz", FileNotFoundError


def _csv_missing_column(root, csv):
    pd.read_csv(csv, dtype=str).drop(columns="facial_action").to_csv(csv, index=False)
    return csv, DatasetFormatError


@pytest.mark.parametrize("breaker", [_remove_image, _remove_npz, _corrupt_image, _npz_without_R_t, _verts_bad_shape,
                                     _verts_wrong_count, _column_vector_R_t, _bad_K_shape, _no_projection,
                                     _bad_projection_file, _no_topology, _csv_missing_column])
def test_arkit_errors_name_the_file(tmp_path, breaker):
    csv_path, _ = make_official_root(tmp_path, np.random.default_rng(6), n=1)
    path, error = breaker(tmp_path, csv_path)
    with pytest.raises(error, match=re.escape(str(path))) as info:
        ArkitLayoutDataset(tmp_path, csv_path=csv_path)[0]
    assert "\n" not in str(info.value)


def test_missing_csv_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "index.csv"))):
        ArkitLayoutDataset(tmp_path)


# -------------------------------------------------------------------------------- record, topology

def test_topology_save_load(tmp_path):
    topo = FaceTopology.mediapipe()
    assert topo.n_verts == 468 and topo.triangles.dtype == np.int32
    topo.save(tmp_path / "topology.npz")
    back = FaceTopology.load(tmp_path / "topology.npz")
    assert back.name == topo.name
    np.testing.assert_array_equal(back.triangles, topo.triangles)
    np.testing.assert_array_equal(back.uvs, topo.uvs)
    np.savez(tmp_path / "bad.npz", triangles=topo.triangles)
    with pytest.raises(DatasetFormatError, match=re.escape(str(tmp_path / "bad.npz"))):
        FaceTopology.load(tmp_path / "bad.npz")


def test_record_validates_and_projects():
    rng = np.random.default_rng(8)
    rec = random_record(rng, 10)
    np.testing.assert_allclose(rec.verts_cam_m, rec.verts_face_m @ rec.R_cam_face.T + rec.t_cam_face)
    assert rec.image_size_wh == (W, H)
    with pytest.raises(ValueError, match="K"):
        FaceRecord(rec.image_rgb, np.eye(4), rec.R_cam_face, rec.t_cam_face, None, "a", "b", "c")
    with pytest.raises(ValueError, match="image_rgb"):
        FaceRecord(rec.image_rgb.astype(np.float32), rec.K, rec.R_cam_face, rec.t_cam_face, None, "a", "b", "c")


# ------------------------------------------------------------------------------------------ BIWI

BIWI_K = np.array([[517.679, 0.0, 320.0], [0.0, 517.679, 240.5], [0.0, 0.0, 1.0]])
BIWI_DIST = np.array([0.01, -0.002, 0.0003, 0.0001])
BIWI_R_CAL = Rotation.from_euler("xyz", [0.9, -0.5, 0.3], degrees=True).as_matrix()  # depth -> rgb
BIWI_T_CAL_MM = np.array([-24.0198, 5.8896, -13.2308])


def _rows(matrix):
    return "".join(" ".join(f"{x:.10g}" for x in row) + " \n" for row in np.atleast_2d(matrix))


def write_biwi_cal(path, K, dist, R, t_mm):
    # BIWI's own formatting: rows with a trailing space, blocks separated by blank lines.
    path.write_text(_rows(K) + "\n" + _rows(dist) + "\n" + _rows(R) + "\n" + _rows(t_mm) + "\n640 480\n")


def write_biwi_sequence(hpdb, subject, frames, rng):
    """frames: {frame_id: (R_cam_head, t_cam_head_m)} in the colour camera; written as BIWI stores them."""
    folder = hpdb / subject
    folder.mkdir(parents=True)
    write_biwi_cal(folder / "rgb.cal", BIWI_K, BIWI_DIST, BIWI_R_CAL, BIWI_T_CAL_MM)
    write_biwi_cal(folder / "depth.cal", np.array([[575.8, 0, 320], [0, 575.8, 240], [0, 0, 1]]),
                   np.zeros(4), np.eye(3), np.zeros(3))
    images = {}
    for frame, (R_cam_head, t_cam_head_m) in frames.items():
        # colour camera -> depth camera, millimetres: X_depth = R_cal^T (X_rgb - t_cal)
        R_depth_head = BIWI_R_CAL.T @ R_cam_head
        t_depth_mm = BIWI_R_CAL.T @ (t_cam_head_m * 1000.0 - BIWI_T_CAL_MM)
        (folder / f"frame_{frame}_pose.txt").write_text(_rows(R_depth_head) + "\n" + _rows(t_depth_mm))
        images[frame] = smooth_image(rng, 480, 640)
        cv2.imwrite(str(folder / f"frame_{frame}_rgb.png"), cv2.cvtColor(images[frame], cv2.COLOR_RGB2BGR))
    return images


@pytest.fixture()
def biwi(tmp_path):
    rng = np.random.default_rng(12)
    truth = {}
    for subject in ("01", "02"):
        frames = {f"{k:05d}": (Rotation.from_rotvec(rng.normal(size=3) * 0.3).as_matrix(),
                               np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.8, 1.1)]))
                  for k in (3, 4, 17)}
        images = write_biwi_sequence(tmp_path / "hpdb", subject, frames, rng)
        truth.update({(subject, f): (*frames[f], images[f]) for f in frames})
    return tmp_path, truth


class TestBiwi:
    def test_loads_pose_in_colour_camera(self, biwi):
        parent, truth = biwi
        ds = BiwiDataset(parent)  # the folder holding hpdb works as well as hpdb itself
        assert len(ds) == 6 and ds.frames[0] == ("01", "00003")
        for rec in ds:
            R_true, t_true, image = truth[(rec.subject, rec.img_id)]
            assert rec.verts_face_m is None and rec.verts_cam_m is None and rec.action == ""
            assert np.linalg.det(rec.R_cam_face) == pytest.approx(1.0, abs=1e-12)
            np.testing.assert_allclose(rec.R_cam_face, R_true, atol=1e-8)
            np.testing.assert_allclose(rec.t_cam_face, t_true, atol=1e-9)  # metres
            assert rec.t_cam_face[2] > 0
            np.testing.assert_array_equal(rec.K, BIWI_K)
            np.testing.assert_array_equal(rec.dist, BIWI_DIST)
            np.testing.assert_array_equal(rec.image_rgb, image)

    def test_subjects_and_origin_offset(self, biwi):
        parent, truth = biwi
        ds = BiwiDataset(parent / "hpdb", subjects=[2], t_head_face_m=T_BIWIHEAD_ARKITFACE_M)
        assert {s for s, _ in ds.frames} == {"02"}
        rec = ds[0]
        R_true, t_true, _ = truth[("02", rec.img_id)]
        np.testing.assert_allclose(rec.t_cam_face, R_true @ T_BIWIHEAD_ARKITFACE_M + t_true, atol=1e-9)

    def test_errors_name_the_file(self, biwi):
        parent, _ = biwi
        hpdb = parent / "hpdb"
        with pytest.raises(FileNotFoundError, match=re.escape(str(hpdb / "03" / "rgb.cal"))):
            BiwiDataset(hpdb, subjects=["03"])
        pose = hpdb / "01" / "frame_00003_pose.txt"
        pose.write_text("1 0 0 \n0 1 0 \n\n10 20 900 \n")
        with pytest.raises(DatasetFormatError, match=re.escape(str(pose))):
            BiwiDataset(hpdb)[0]
        pose.write_text("1 0 0 \n0 1 0 \n0 0 -1 \n\n10 20 900 \n")  # a reflection
        with pytest.raises(DatasetFormatError, match=re.escape(str(pose))):
            BiwiDataset(hpdb)[0]
        pose.unlink()
        with pytest.raises(FileNotFoundError, match=re.escape(str(pose))):
            BiwiDataset(hpdb)[0]
        cal = hpdb / "02" / "rgb.cal"
        cal.write_text("517 0 320\n0 517 240\n0 0 1\n")
        with pytest.raises(DatasetFormatError, match=re.escape(str(cal))):
            BiwiDataset(hpdb)
