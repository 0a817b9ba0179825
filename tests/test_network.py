"""Tests of the PerspNet network: ResNet encoder, config, UV sampling, choose sampling, model, training."""
from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pytest
import torch

from perspnet.checkpoint import default_checkpoint_path
from perspnet.face_model import load_face_model
from perspnet.network.config import COORD_SCALE, LossWeights, ModelConfig, lite, paper
from perspnet.network.losses import LossTargets, perspnet_loss
from perspnet.network.model import (PerspNet, position_encoding_2d, sample_pixel_features, sample_uv_map,
                                    spread_choose_from_mask)
from perspnet.network.resnet import FEATURE_STRIDES, resnet18


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One intra-op thread: these small models gain little from more, and on a shared machine
    spinning OpenMP threads slow the tests several-fold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def face():
    return load_face_model()


def tiny() -> ModelConfig:
    """The lite preset on 64 x 64 crops, 32 x 32 UV maps, 64 points: fast for training tests."""
    return dataclasses.replace(lite(), input_size=64, uv_size=32, n_points=64)


def random_choose(cfg: ModelConfig, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.input_size**2, (batch, cfg.n_points), generator=g)


class TestResNet:
    @pytest.mark.parametrize("width_mult, widths", [(1.0, (64, 64, 128, 256, 512)), (0.5, (32, 32, 64, 128, 256))])
    def test_feature_pyramid_shapes(self, width_mult, widths):
        net = resnet18(width_mult)
        feats = net(torch.randn(2, 3, 64, 96))
        assert net.out_channels == widths
        expected = [(2, c, 64 // s, 96 // s) for c, s in zip(widths, FEATURE_STRIDES)]
        assert [tuple(f.shape) for f in feats] == expected

    def test_resnet18_block_count(self):
        net = resnet18()
        assert [len(stage) for stage in (net.layer1, net.layer2, net.layer3, net.layer4)] == [2, 2, 2, 2]
        assert sum(p.numel() for p in net.parameters()) == 11_176_512  # torchvision resnet18 minus its fc

    def test_rejects_bad_width(self):
        with pytest.raises(ValueError, match="width_mult"):
            resnet18(0.0)


class TestConfig:
    @pytest.mark.parametrize("preset", [paper, lite])
    def test_round_trip_through_json(self, preset):
        cfg = preset()
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg

    def test_paper_preset(self):
        cfg = paper()
        assert (cfg.input_size, cfg.uv_size, cfg.n_points, cfg.width_mult) == (192, 192, 1024, 1.0)
        assert cfg.uv_upsamplings == 5
        assert cfg.loss == LossWeights(shape=0.5, matrix=0.01, corr=1.0, seg=0.01, entropy=0.1)

    def test_lite_preset_sizes(self):
        cfg = lite()
        assert (cfg.input_size, cfg.uv_size, cfg.n_points, cfg.uv_upsamplings) == (128, 64, 256, 4)

    def test_coord_scale(self):
        assert COORD_SCALE == 10.0

    def test_missing_keys_take_defaults(self):
        assert ModelConfig.from_dict({"n_points": 64}) == dataclasses.replace(paper(), n_points=64)

    @pytest.mark.parametrize("data, key", [({"n_point": 5}, "n_point"), ({"loss": {"shpe": 1.0}}, "shpe")])
    def test_rejects_unknown_keys(self, data, key):
        with pytest.raises(ValueError, match=f"unknown .*'{key}'"):
            ModelConfig.from_dict(data)

    @pytest.mark.parametrize("change", [
        {"uv_size": 100}, {"input_size": 100}, {"n_points": 0}, {"n_points": 2.5}, {"decoder_dims": (1, 2)},
        {"assign_hidden": ()}, {"image_std": (1.0, 0.0, 1.0)}, {"dropout": 1.0}, {"uv_dropout": -0.1}, {"uv_dropout": "0"},
        {"loss": {"seg": -1.0}},
        {"width_mult": "1"},
    ])
    def test_rejects_bad_values(self, change):
        with pytest.raises(ValueError, match=r"^\S+ must be .*, got "):  # one message style (perspnet.validate)
            ModelConfig.from_dict({**paper().to_dict(), **change})

    def test_settings_of_removed_options_load_only_when_off(self):
        """Older checkpoints store ``image_stride`` and ``loss.rotation``: dropped at the one value this code
        builds, an error naming the setting otherwise."""
        old = {**paper().to_dict(), "image_stride": 1, "loss": {**paper().to_dict()["loss"], "rotation": 0.0}}
        assert ModelConfig.from_dict(old) == paper()
        with pytest.raises(ValueError, match=r"^ModelConfig.image_stride must be 1 \(the option was removed"):
            ModelConfig.from_dict({**old, "image_stride": 2})
        with pytest.raises(ValueError, match=r"^ModelConfig.loss.rotation must be 0.0 .*, got 0.5$"):
            ModelConfig.from_dict({**old, "loss": {**old["loss"], "rotation": 0.5}})

    def test_normalize_images(self):
        cfg = paper()
        img = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
        img[0, 0, 1] = torch.tensor([255, 0, 51], dtype=torch.uint8)  # pixel row 0, col 1
        x = cfg.normalize_images(img)
        assert x.shape == (1, 3, 2, 2)
        expected = [(1.0 - cfg.image_mean[0]) / cfg.image_std[0], -cfg.image_mean[1] / cfg.image_std[1],
                    (0.2 - cfg.image_mean[2]) / cfg.image_std[2]]
        torch.testing.assert_close(x[0, :, 0, 1], torch.tensor(expected))
        torch.testing.assert_close(x[0, 0, 1, 1], torch.tensor(-cfg.image_mean[0] / cfg.image_std[0]))
        with pytest.raises(ValueError):
            cfg.normalize_images(img.float())


class TestSampleUVMap:
    def test_linear_map_is_reproduced_at_vertex_uvs(self, face):
        size = 32
        centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size  # texel centres
        v, u = torch.meshgrid(centres, centres, indexing="ij")  # rows: v, columns: u
        coef = torch.tensor([[0.7, -0.2, 0.1], [0.3, 1.1, -0.4], [-0.5, 0.2, 0.9]], dtype=torch.float64)
        uv_map = (coef[:, 0, None, None] * u + coef[:, 1, None, None] * v + coef[:, 2, None, None])[None]
        uvs = torch.tensor(face.uvs)
        sampled = sample_uv_map(uv_map, uvs)
        # Linear inside the texel centres' square, clamped to the border texels outside it.
        uc = uvs.clamp(0.5 / size, 1 - 0.5 / size)
        expected = uc[:, :1] * coef[:, 0] + uc[:, 1:] * coef[:, 1] + coef[:, 2]
        assert sampled.shape == (1, face.n_verts, 3)
        torch.testing.assert_close(sampled[0], expected, atol=1e-12, rtol=0)

    def test_texel_centres_give_texel_values(self):
        maps = torch.randn(2, 4, 8, 8, dtype=torch.float64)
        rows, cols = torch.tensor([0, 3, 7, 5]), torch.tensor([0, 6, 2, 7])
        uvs = torch.stack([(cols + 0.5) / 8, (rows + 0.5) / 8], dim=1)
        torch.testing.assert_close(sample_uv_map(maps, uvs), maps[:, :, rows, cols].transpose(1, 2))


class TestSamplePixelFeatures:
    def test_full_resolution_picks_the_pixels(self):
        feats = torch.randn(2, 5, 8, 8)
        choose = torch.tensor([[0, 9, 63], [7, 56, 27]])
        rows, cols = choose // 8, choose % 8
        expected = torch.stack([feats[b][:, rows[b], cols[b]] for b in range(2)])
        assert torch.equal(sample_pixel_features(feats, choose), expected)

class TestPositionEncoding:
    def test_values_at_known_pixel(self):
        size, num_freqs = 4, 3
        choose = torch.tensor([[0 * size + 3, 2 * size + 1]])  # (row 0, col 3), (row 2, col 1)
        pe = position_encoding_2d(choose, size, num_freqs)
        assert pe.shape == (1, 4 * num_freqs, 2)
        for j, (x, y) in enumerate([(0.75, -0.75), (-0.25, 0.25)]):
            w = [math.pi * 2**k for k in range(num_freqs)]
            expected = ([math.sin(f * x) for f in w] + [math.cos(f * x) for f in w]
                        + [math.sin(f * y) for f in w] + [math.cos(f * y) for f in w])
            torch.testing.assert_close(pe[0, :, j], torch.tensor(expected), atol=1e-6, rtol=0)


class TestSpreadChooseFromMask:
    def test_distinct_pixels_inside_the_mask_and_spread(self):
        mask = torch.zeros(2, 16, 16, dtype=torch.bool)
        mask[0, 2:10, 3:12] = True
        mask[1, 8:, :] = True
        choose = spread_choose_from_mask(mask, 40)
        assert choose.shape == (2, 40) and choose.dtype == torch.long
        for b, (first, last) in enumerate([(2, 9), (8, 15)]):
            assert mask[b].reshape(-1)[choose[b]].all()
            assert choose[b].unique().numel() == 40
            rows = choose[b] // 16
            assert rows.min() == first and rows.max() == last  # the mask's first and last rows both used
            assert torch.bincount(rows - first).min() >= 3  # every row of the mask gets its share
        assert torch.equal(choose, spread_choose_from_mask(mask, 40))  # deterministic

    def test_wraps_when_mask_is_small(self):
        mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        idx = torch.tensor([5, 17, 40])
        mask.view(1, -1)[0, idx] = True
        choose = spread_choose_from_mask(mask, 10)[0]
        assert set(choose.tolist()) == set(idx.tolist())
        counts = torch.bincount(choose, minlength=64)[idx]
        assert counts.sum() == 10 and counts.max() - counts.min() <= 1

    def test_empty_mask_falls_back_to_centre(self):
        choose = spread_choose_from_mask(torch.zeros(1, 16, 16, dtype=torch.bool), 20)[0]
        rows, cols = choose // 16, choose % 16
        assert ((rows >= 4) & (rows < 12) & (cols >= 4) & (cols < 12)).all()


class TestPerspNet:
    @pytest.mark.parametrize("preset, batch", [(lite, 2), (paper, 1)])
    def test_output_shapes_and_consistency(self, face, preset, batch):
        cfg = preset()
        torch.manual_seed(0)
        net = PerspNet(cfg, face.uvs).eval()
        s, u, m, n = cfg.input_size, cfg.uv_size, cfg.n_points, face.n_verts
        with torch.no_grad():
            out = net(torch.randn(batch, 3, s, s), random_choose(cfg, batch))
        shapes = {k: tuple(v.shape) for k, v in out.items()}
        assert shapes == {"uv_map": (batch, 3, u, u), "seg_logits": (batch, 2, s, s),
                          "corr_logits": (batch, m, n), "corr_prob": (batch, m, n),
                          "verts_hat": (batch, n, 3), "points_corr": (batch, m, 3)}
        torch.testing.assert_close(out["corr_prob"].sum(dim=2), torch.ones(batch, m))
        torch.testing.assert_close(out["corr_prob"], out["corr_logits"].softmax(dim=2))
        torch.testing.assert_close(out["verts_hat"], sample_uv_map(out["uv_map"], torch.tensor(face.uvs)))
        torch.testing.assert_close(out["points_corr"], out["corr_prob"] @ out["verts_hat"])

    def test_permuting_choose_permutes_rows(self, face):
        cfg = tiny()
        torch.manual_seed(0)
        net = PerspNet(cfg, face.uvs).eval()
        image, choose = torch.randn(1, 3, 64, 64), random_choose(cfg, 1)
        perm = torch.randperm(cfg.n_points)
        with torch.no_grad():
            a, b = net(image, choose), net(image, choose[:, perm])
        torch.testing.assert_close(b["corr_logits"], a["corr_logits"][:, perm], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(a["corr_logits"][0, 0], a["corr_logits"][0, 1])  # rows depend on the pixel

    def test_rejects_wrong_input(self, face):
        net = PerspNet(tiny(), face.uvs)
        with pytest.raises(ValueError, match="image"):
            net(torch.randn(1, 3, 32, 32), torch.zeros(1, 4, dtype=torch.long))
        with pytest.raises(ValueError, match="choose"):
            net(torch.randn(1, 3, 64, 64), torch.zeros(1, 4, dtype=torch.int32))

    def test_checkpoint_round_trip(self, face):
        cfg = tiny()
        net = PerspNet(cfg, face.uvs).eval()
        buf = io.BytesIO()
        torch.save({"config": cfg.to_dict(), "state_dict": net.state_dict()}, buf)
        ckpt = torch.load(io.BytesIO(buf.getvalue()))
        rebuilt = PerspNet(ModelConfig.from_dict(ckpt["config"]), torch.zeros(face.n_verts, 2)).eval()
        rebuilt.load_state_dict(ckpt["state_dict"])
        torch.testing.assert_close(rebuilt.vert_uvs, torch.tensor(face.uvs, dtype=torch.float32))
        image, choose = torch.randn(1, 3, 64, 64), random_choose(cfg, 1)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(image, choose)["points_corr"], net(image, choose)["points_corr"])


def synthetic_batch(cfg: ModelConfig, face, batch: int, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor, LossTargets]:
    """Random images with consistent synthetic targets: a smooth UV map, a disc mask, chosen pixels inside
    it, random mesh triangles with barycentric weights, and the matching canonical points."""
    g = torch.Generator().manual_seed(seed)
    s, u = cfg.input_size, cfg.uv_size
    images = torch.randn(batch, 3, s, s, generator=g)
    centres = (torch.arange(u) + 0.5) / u
    vv, uu = torch.meshgrid(centres, centres, indexing="ij")
    uv_map = torch.stack([(uu - 0.5) * 1.5, (vv - 0.5) * 1.8, 0.3 * torch.cos(3 * (uu - 0.5))])[None]
    uv_map = uv_map + 0.05 * torch.randn(batch, 1, 1, 1, generator=g)
    uv_weight = ((uu - 0.5) ** 2 + (vv - 0.5) ** 2 < 0.2).float()
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    seg = ((yy - s / 2) ** 2 + (xx - s / 2) ** 2 < (s / 3) ** 2).expand(batch, s, s)
    choose = spread_choose_from_mask(seg, cfg.n_points)
    tri = torch.randint(0, face.triangles.shape[0], (batch, cfg.n_points), generator=g)
    vert_ids = torch.tensor(face.triangles, dtype=torch.long)[tri]
    bary = torch.distributions.Dirichlet(torch.ones(3)).sample((batch, cfg.n_points))
    verts = sample_uv_map(uv_map.expand(batch, -1, -1, -1), torch.tensor(face.uvs))  # (B, n, 3)
    points = (torch.gather(verts, 1, vert_ids.reshape(batch, -1, 1).expand(-1, -1, 3))
              .reshape(batch, cfg.n_points, 3, 3) * bary[..., None]).sum(dim=2)
    targets = LossTargets(uv_map=uv_map.expand(batch, -1, -1, -1), uv_weight=uv_weight, seg=seg,
                          corr_vert_ids=vert_ids, corr_bary=bary, points=points)
    return images, choose, targets


class TestTraining:
    def test_gradients_reach_all_parameters(self, face):
        cfg = tiny()
        torch.manual_seed(0)
        net = PerspNet(cfg, face.uvs).train()
        images, choose, targets = synthetic_batch(cfg, face, 2)
        perspnet_loss(net(images, choose), targets, cfg.loss).total.backward()
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name

    def test_overfits_two_samples(self, face):
        cfg = dataclasses.replace(tiny(), dropout=0.0)
        torch.manual_seed(0)
        net = PerspNet(cfg, face.uvs).train()
        images, choose, targets = synthetic_batch(cfg, face, 2, seed=1)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = perspnet_loss(net(images, choose), targets, cfg.loss).total
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert np.all(np.isfinite(losses))
        assert np.mean(losses[-3:]) < 0.5 * losses[0], losses


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="needs the shipped checkpoint")
def test_tta_views_map_back_to_the_image(test_generator):
    """Each test-time view's correspondences, mapped back, pose the face on their own as the plain ones do
    (a wrong mirror of pixels or of canonical x would turn the yaw around, a turn the wrong way the roll)."""
    from perspnet.conventions import project_points, rotation_angle_deg
    from perspnet.inference import CropView, PerspNetPredictor
    from perspnet.pnp import solve_pose
    from perspnet.synth.dataset_writer import sample_rng
    from perspnet.crop import box_from_points

    k = 0
    while True:  # a clearly turned face
        s = test_generator.sample(sample_rng(31, k))
        k += 1
        if 25 < abs(s.yaw_pitch_roll_deg[0]) < 60:
            break
    box = box_from_points(project_points(s.K, s.verts_cam_m))
    plain = PerspNetPredictor(device="cpu").predict([s.image], [box], [s.K])[0]
    views = (CropView(), CropView(flip=True), CropView(turn_deg=20.0), CropView(flip=True, turn_deg=-20.0, box_scale=1.2))
    all_views = PerspNetPredictor(device="cpu", tta=views).predict([s.image], [box], [s.K])[0]
    m = len(plain.points_px)
    assert len(all_views.points_px) == len(views) * m
    np.testing.assert_allclose(all_views.points_px[:m], plain.points_px)
    err_plain = rotation_angle_deg(plain.pnp.R_cam_face, s.R_cam_face)
    assert err_plain < 15, err_plain
    for v, view in enumerate(views[1:], start=1):
        alone = solve_pose(all_views.points_px[v * m:(v + 1) * m], all_views.points_face_m[v * m:(v + 1) * m], s.K)
        assert alone.success, view
        assert rotation_angle_deg(alone.R_cam_face, s.R_cam_face) < 15, view
    assert rotation_angle_deg(all_views.pnp.R_cam_face, s.R_cam_face) < 15
