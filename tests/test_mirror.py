"""Left-right mirror images of labelled faces (flip augmentation)."""
from dataclasses import replace

import numpy as np
import pytest

from perspnet.conventions import project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.datasets.mirror import mirror_record, mirror_vertex_map
from perspnet.face_model import load_face_model
from perspnet.train import dataset_mirror_map
from perspnet.training_data import TargetBuilder

from conftest import TINY


def _nearest_twins(verts: np.ndarray) -> np.ndarray:
    reflected = verts * np.array([-1.0, 1.0, 1.0])
    return ((reflected[:, None] - verts[None]) ** 2).sum(-1).argmin(1)


def test_the_canonical_meshs_twins():
    """The canonical mesh is exactly symmetric: its twins are the nearest mirror images."""
    model = load_face_model()
    exact = _nearest_twins(model.verts_face_m)
    assert (exact != np.arange(len(exact))).sum() > 400  # few vertices lie on the midline
    np.testing.assert_array_equal(mirror_vertex_map(model.verts_face_m, model.triangles), exact)


def test_dataset_twins(tiny_data):
    """The dataset's faces are not symmetric, yet the mean of a few gives the canonical mesh's twins."""
    ds = ArkitLayoutDataset(tiny_data)
    exact = _nearest_twins(load_face_model().verts_face_m)
    np.testing.assert_array_equal(dataset_mirror_map(ds), exact)


def test_an_asymmetric_mesh_is_refused():
    model = load_face_model()
    verts = model.verts_face_m.copy()
    verts[verts[:, 0] > 0.01] *= np.array([1.5, 1.0, 1.0])  # one cheek 50% wider
    with pytest.raises(ValueError, match="not left-right symmetric"):
        mirror_vertex_map(verts, model.triangles)


def test_a_mirrored_record_is_the_mirror_image(tiny_data):
    ds = ArkitLayoutDataset(tiny_data)
    mirror = dataset_mirror_map(ds)
    size = TINY.input_size
    builder = TargetBuilder(ds.topology, replace(TINY, n_points=size * size))  # every masked pixel is chosen
    for i in range(3):
        rec = ds[i]
        flipped = mirror_record(rec, mirror)
        width = rec.image_size_wh[0]
        # each vertex projects where its twin did, mirrored about the image's centre column
        px, px_f = project_points(rec.K, rec.verts_cam_m), project_points(flipped.K, flipped.verts_cam_m)
        np.testing.assert_allclose(px_f[:, 0], width - 1 - px[mirror, 0], atol=1e-9)
        np.testing.assert_allclose(px_f[:, 1], px[mirror, 1], atol=1e-9)
        assert np.linalg.det(flipped.R_cam_face) == pytest.approx(1.0)
        # mirroring twice gives the record back
        back = mirror_record(flipped, mirror)
        np.testing.assert_array_equal(back.image_rgb, rec.image_rgb)
        np.testing.assert_allclose(back.verts_cam_m, rec.verts_cam_m, atol=1e-12)
        np.testing.assert_allclose(back.K, rec.K, atol=1e-12)
        # the training example of the mirror image is the mirrored example: crop, mask, surface points
        a, b = builder(rec, None), builder(flipped, None)
        assert np.abs(a["image"][:, ::-1].astype(float) - b["image"]).mean() < 1.0
        assert (a["seg"][:, ::-1] != b["seg"]).mean() < 0.002
        rows, cols = np.divmod(b["choose"], size)
        same = a["seg"][rows, size - 1 - cols]
        # surface point of a pixel in b = mirrored surface point of the mirrored pixel in a (to a pixel's size)
        points_a = {int(c): p for c, p in zip(a["choose"], a["points"])}
        flipped_ids = rows * size + (size - 1 - cols)
        pairs = [(points_a[int(f)], p) for f, p, s in zip(flipped_ids, b["points"], same) if s and int(f) in points_a]
        assert len(pairs) > 0.95 * b["seg"].sum()
        pa, pb = np.array(pairs).transpose(1, 0, 2)
        np.testing.assert_allclose(pb, pa * np.array([-1.0, 1.0, 1.0]), atol=1e-3)


def test_training_examples_are_mirrored_at_the_flip_probability(tiny_data):
    import torch

    from perspnet.train import RecordDataset

    ds = ArkitLayoutDataset(tiny_data)
    mirror = dataset_mirror_map(ds)
    builder = TargetBuilder(ds.topology, TINY)
    with pytest.raises(ValueError, match="vertex twins"):
        RecordDataset(ds, builder, flip_prob=0.5)
    flipping = RecordDataset(ds, builder, flip_prob=1.0, mirror=mirror)
    for i in range(2):
        torch.manual_seed(i)
        got = flipping[i]
        torch.manual_seed(i)
        rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,))))
        rng.random()  # the flip draw
        want = builder(mirror_record(ds.load(i, builder.decode_reduction), mirror), rng)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["corr_vert_ids"], want["corr_vert_ids"])
        np.testing.assert_allclose(got["R"], want["R"])
