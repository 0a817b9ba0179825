"""Training data targets, a tiny end-to-end training run, checkpoints, inference and evaluation."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from perspnet.checkpoint import CheckpointError, load_checkpoint
from perspnet.conventions import project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.evaluate import EvalConfig, evaluate
from perspnet.inference import PerspNetPredictor
from perspnet.metrics import METRIC_KEYS
from perspnet.network.config import COORD_SCALE
from perspnet.network.model import PerspNet
from perspnet.train import RecordDataset, TrainConfig, bf16_supported, train
from perspnet.crop import CropConfig, area_shrink_factor, crop_affine, turn_crop_affine, warp_crop
from perspnet.network.config import lite
from perspnet.training_data import TargetBuilder

from conftest import TINY


def test_crop_affine_maps_pixel_centres():
    A = crop_affine(np.array([100.0, 50.0, 40.0]), 64, 1.5)  # crop side 60 px -> 64 px
    img = np.zeros((120, 200, 3), np.uint8)
    img[50, 100] = 255  # box centre pixel
    crop = warp_crop(img, A, 64)
    c = A @ np.array([100.0, 50.0, 1.0])
    np.testing.assert_allclose(c, [31.5, 31.5], atol=1e-9)  # box centre -> crop centre
    i, j = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert abs(j - c[0]) <= 1 and abs(i - c[1]) <= 1


def test_a_turned_crop_turns_the_image_counter_clockwise_on_screen():
    """A bright pixel right of the box centre appears above the crop centre after a 90-degree turn, and
    the turned crop is the plain one rotated (cv2 and numpy agree on the picture)."""
    img = np.zeros((120, 200, 3), np.uint8)
    img[50, 110] = 255  # 10 px right of the box centre
    A = crop_affine(np.array([100.0, 50.0, 40.0]), 64, 1.5)
    turned = turn_crop_affine(A, 64, 90.0)
    np.testing.assert_allclose(turned @ [100.0, 50.0, 1.0], [31.5, 31.5], atol=1e-9)  # the centre stays
    x, y = turned @ [110.0, 50.0, 1.0]
    assert abs(x - 31.5) < 1e-9 and y < 31.5 - 10  # right of centre -> above it
    i, j = np.unravel_index(warp_crop(img, turned, 64)[..., 0].argmax(), (64, 64))
    assert abs(j - x) <= 1 and abs(i - y) <= 1
    np.testing.assert_array_equal(warp_crop(img * 0 + 7, turned, 64)[20:44, 20:44], 7)  # same scale, no holes


def test_a_reduced_decode_gives_the_same_example(tiny_data):
    """Training decodes each frame as small as leaves its crop unchanged: same targets, same crop to a grey level."""
    ds = ArkitLayoutDataset(tiny_data)
    builder = TargetBuilder(ds.topology, TINY)
    reductions = []
    for i in range(len(ds)):
        full = ds[i]
        k = builder.decode_reduction(full.K, full.verts_cam_m)
        small = ds.load(i, builder.decode_reduction)
        reductions.append(k)
        assert small.image_rgb.shape[:2] == (-(-full.image_rgb.shape[0] // k), -(-full.image_rgb.shape[1] // k))
        np.testing.assert_allclose(project_points(small.K, small.verts_cam_m),
                                   (project_points(full.K, full.verts_cam_m) + 0.5) / k - 0.5, atol=1e-9)
        a, b = builder(full, np.random.default_rng(i)), builder(small, np.random.default_rng(i))
        assert (a["seg"] != b["seg"]).mean() < 0.002
        np.testing.assert_allclose(a["uv_map"], b["uv_map"])
        assert np.abs(a["image"].astype(float) - b["image"]).mean() < 1.0  # of 255
    assert max(reductions) >= 4


def test_a_trimmed_record_gives_the_same_examples(tiny_data):
    """``TargetBuilder.trim`` keeps every pixel a training crop can read (every jitter included,
    area-averaged blocks aligned): the same random draws give the same crop and targets from a fraction of
    the pixels."""
    ds = ArkitLayoutDataset(tiny_data)
    builder = TargetBuilder(ds.topology, TINY)
    kept, blocks = [], []
    for i in range(len(ds)):
        full = ds.load(i, builder.decode_reduction)
        trimmed = builder.trim(full)
        kept.append(trimmed.image_rgb.size / full.image_rgb.size)
        for seed in range(6):
            a, b = builder(full, np.random.default_rng(seed)), builder(trimmed, np.random.default_rng(seed))
            blocks.append(area_shrink_factor(float(np.hypot(*a["affine"][:, 0]))))
            np.testing.assert_array_equal(a["image"], b["image"])
            for key in ("seg", "choose", "corr_vert_ids"):
                np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_allclose(a["points"], b["points"])
            np.testing.assert_allclose(a["box"][:2] - b["box"][:2], full.K[:2, 2] - trimmed.K[:2, 2])
    assert max(blocks) > 1  # the area-averaged warp was exercised
    assert np.mean(kept) < 0.75, kept


def test_record_cache_serves_later_epochs_within_its_budget(tiny_data):
    """``RecordDataset(cache_gb=...)`` keeps trimmed records up to its budget and serves them again: the
    examples of both epochs equal the uncached dataset's for the same seeds."""
    ds = ArkitLayoutDataset(tiny_data)
    builder = TargetBuilder(ds.topology, TINY)
    plain = RecordDataset(ds, builder)
    budget = 3 * builder.trim(ds.load(0, builder.decode_reduction)).image_rgb.nbytes
    cached = RecordDataset(ds, builder, cache_gb=budget / 1e9)
    for epoch in range(2):
        for i in range(len(ds)):
            torch.manual_seed(100 * epoch + i)
            a = plain[i]
            torch.manual_seed(100 * epoch + i)
            b = cached[i]
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_allclose(a["points"], b["points"])
        if epoch == 0:
            first = dict(cached.cache)
    assert 0 < len(cached.cache) < len(ds) and cached.cached_bytes <= budget
    assert all(cached.cache[i] is record for i, record in first.items())  # reused, not reloaded
    with pytest.raises(ValueError, match="cache_gb"):
        RecordDataset(ds, builder, cache_gb=-1)


def test_targets_are_exact(tiny_data):
    ds = ArkitLayoutDataset(tiny_data)
    builder = TargetBuilder(ds.topology, TINY)
    for k in range(3):
        rec = ds[k]
        ex = builder(rec, np.random.default_rng(k))
        assert ex["image"].shape == (64, 64, 3) and ex["choose"].shape == (64,)
        assert ex["seg"].reshape(-1)[ex["choose"]].all()  # chosen pixels lie in the face mask
        np.testing.assert_allclose(ex["corr_bary"].sum(1), 1.0, atol=1e-5)
        # the target 3D point of each chosen pixel projects (through K and the crop) onto that pixel
        X_cam = (ex["points"] / COORD_SCALE) @ rec.R_cam_face.T + rec.t_cam_face
        crop_px = project_points(rec.K, X_cam) @ ex["affine"][:, :2].T + ex["affine"][:, 2]
        rows, cols = np.divmod(ex["choose"], 64)
        np.testing.assert_allclose(crop_px, np.column_stack([cols, rows]), atol=2e-3)
        assert ex["uv_map"].shape == (3, 32, 32)
        assert np.abs(ex["uv_map"]).max() < 1.5  # network units: metres * 10


def test_tiny_training_run_loss_goes_down_and_resumes(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr("perspnet.network.config.lite", lambda: TINY)
    cfg = TrainConfig(data=tiny_data, out=tmp_path / "run", iterations=30, batch_size=4, lr=2e-3, warmup=5,
                      ckpt_every=20, log_every=5, workers=0, threads=2)
    final = train(cfg)
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert log["step"].tolist() == list(range(5, 35, 5))
    assert log["total"].iloc[-2:].mean() < 0.8 * log["total"].iloc[:2].mean()
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 1000
    # resume: a longer run continues from last.pt at step 30, under the log's own header even when that
    # log was begun before a column (here "rotation") was added
    log.drop(columns="rotation").to_csv(tmp_path / "run" / "train_log.csv", index=False)
    train(replace(cfg, iterations=35))
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert log["step"].iloc[-1] == 35 and log["step"].is_monotonic_increasing
    assert "rotation" not in log and np.isfinite(log["total"]).all()
    model, topo, crop, payload = load_checkpoint(final)
    assert model.config == TINY and topo.n_verts == 468
    assert all(not v.is_floating_point() or v.dtype == torch.float32 for v in model.state_dict().values())


def test_init_starts_from_a_checkpoints_weights(tiny_data, tiny_checkpoint, tmp_path, monkeypatch):
    """``--init`` starts the network from a checkpoint's weights with a fresh schedule: at a vanishing learning
    rate the run ends on exactly those weights (the same run without it does not); a checkpoint of another
    architecture or mesh is a one-line error naming the file."""
    monkeypatch.setattr("perspnet.network.config.lite", lambda: TINY)
    start = dict(load_checkpoint(tiny_checkpoint)[0].named_parameters())
    still = dict(lr=1e-12, iterations=2, batch_size=2, warmup=1, log_every=1, workers=0, threads=2)

    def params(final):
        return dict(load_checkpoint(final)[0].named_parameters())

    fine = params(train(TrainConfig(data=tiny_data, out=tmp_path / "init", init=tiny_checkpoint, **still)))
    fresh = params(train(TrainConfig(data=tiny_data, out=tmp_path / "fresh", **still)))
    assert all(torch.equal(fine[k], start[k]) for k in start)
    assert not all(torch.equal(fresh[k], start[k]) for k in start)

    payload = torch.load(tiny_checkpoint, weights_only=False)
    payload["topology_triangles"] = np.asarray(payload["topology_triangles"])[:, ::-1].copy()
    torch.save(payload, tmp_path / "other_mesh.pt")
    with pytest.raises(ValueError, match="other_mesh.pt: its mesh topology"):
        train(TrainConfig(data=tiny_data, out=tmp_path / "m", init=tmp_path / "other_mesh.pt", **still))
    monkeypatch.setattr("perspnet.network.config.lite", lambda: replace(TINY, width_mult=2 * TINY.width_mult))
    with pytest.raises(ValueError, match=f"--init {tiny_checkpoint}: its architecture does not match"):
        train(TrainConfig(data=tiny_data, out=tmp_path / "w", init=tiny_checkpoint, **still))
    assert not (tmp_path / "w" / "final.pt").exists()


def test_dropout_sets_the_decoders_channel_dropout(tiny_data, tmp_path, monkeypatch):
    """``--dropout 0`` trains without the decoders' channel dropout: in training mode two forward passes
    then agree, where the preset's dropout makes them differ; ``--uv-dropout`` sets the UV-map decoder's
    alone (its map varies between passes, the image decoder's segmentation does not); the checkpoint
    carries these settings."""
    monkeypatch.setattr("perspnet.network.config.lite", lambda: TINY)
    assert TINY.dropout > 0 and TINY.uv_dropout is None
    final = train(TrainConfig(data=tiny_data, out=tmp_path / "d0", iterations=2, batch_size=2, warmup=1,
                              log_every=1, workers=0, threads=2, dropout=0.0))
    model, _, _, _ = load_checkpoint(final)
    assert model.config == replace(TINY, dropout=0.0)
    final_uv = train(TrainConfig(data=tiny_data, out=tmp_path / "uv", iterations=1, batch_size=2, warmup=1,
                                 log_every=1, workers=0, threads=2, dropout=0.0, uv_dropout=0.3))
    assert load_checkpoint(final_uv)[0].config == replace(TINY, dropout=0.0, uv_dropout=0.3)
    torch.manual_seed(0)
    image = torch.randn(2, 3, TINY.input_size, TINY.input_size)
    choose = torch.randint(0, TINY.input_size ** 2, (2, TINY.n_points))

    def twice(config):
        net = PerspNet(config, model.vert_uvs).train()
        net.load_state_dict(model.state_dict())
        return net(image, choose), net(image, choose)

    with torch.no_grad():
        a, b = twice(model.config)
        torch.testing.assert_close(a["points_corr"], b["points_corr"])
        a, b = twice(TINY)
        assert not torch.allclose(a["points_corr"], b["points_corr"])
        a, b = twice(replace(TINY, dropout=0.0, uv_dropout=0.3))
        torch.testing.assert_close(a["seg_logits"], b["seg_logits"])
        assert not torch.allclose(a["uv_map"], b["uv_map"])
        a, b = twice(replace(TINY, uv_dropout=0.0))
        torch.testing.assert_close(a["uv_map"], b["uv_map"])
        assert not torch.allclose(a["seg_logits"], b["seg_logits"])


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="this CPU has no native bfloat16")
def test_bf16_training_follows_the_float32_run(tiny_data, tmp_path, monkeypatch):
    """bfloat16 autocast changes the arithmetic, not the optimisation: the loss curve stays within a few
    per cent of float32's and falls as much, and the checkpoint holds float32 weights."""
    monkeypatch.setattr("perspnet.network.config.lite", lambda: TINY)
    cfg = TrainConfig(data=tiny_data, out=tmp_path / "fp32", iterations=20, batch_size=4, lr=2e-3, warmup=5,
                      log_every=5, workers=0, threads=2)
    train(cfg)
    final = train(replace(cfg, out=tmp_path / "bf16", bf16=True))
    fp32 = pd.read_csv(tmp_path / "fp32" / "train_log.csv")["total"].to_numpy()
    bf16 = pd.read_csv(tmp_path / "bf16" / "train_log.csv")["total"].to_numpy()
    assert not np.array_equal(fp32, bf16)  # the forward pass did run in bfloat16
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)
    assert bf16[-1] < 0.8 * bf16[0]
    model, _, _, _ = load_checkpoint(final)
    assert all(not v.is_floating_point() or v.dtype == torch.float32 for v in model.state_dict().values())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a perspnet-tracker checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoints_of_removed_options_load_when_the_options_were_off(tiny_checkpoint, tmp_path):
    """A checkpoint written before training options were removed stores their settings: it loads, with the
    same weights and crop, when they were off, and is a one-line error naming the setting when one was on."""
    payload = torch.load(tiny_checkpoint, weights_only=False)
    old = dict(payload, crop={**payload["crop"], "off_centre_prob": 0.0, "off_centre_shift": [0.4, 0.9],
                              "min_face_frac": 0.03, "shading_gradient": 0.0, "turn_jitter_deg": 0.0},
               model_config={**payload["model_config"], "image_stride": 1,
                             "loss": {**payload["model_config"]["loss"], "rotation": 0.0}})
    torch.save(old, tmp_path / "old.pt")
    model, _, crop, _ = load_checkpoint(tmp_path / "old.pt")
    new_model, _, new_crop, _ = load_checkpoint(tiny_checkpoint)
    assert crop == new_crop == CropConfig() and model.config == new_model.config
    for k, v in new_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    for where, key, value in (("crop", "turn_jitter_deg", 30.0), ("model_config", "image_stride", 2)):
        torch.save(dict(old, **{where: {**old[where], key: value}}), tmp_path / "on.pt")
        with pytest.raises(CheckpointError, match=f"on.pt: .*{key} must be .*removed.*got {value}"):
            load_checkpoint(tmp_path / "on.pt")


@pytest.mark.parametrize("change, message", [
    ({"preset": "huge"}, "preset must be one of lite, paper, got 'huge'"),
    ({"iterations": 0}, "iterations must be an integer >= 1, got 0"),
    ({"lr": 0.0}, "lr must be > 0, got 0.0"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"cache_gb": -1.0}, "cache_gb must be >= 0, got -1.0"),
])
def test_train_config_rejects_bad_values_in_one_style(change, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        TrainConfig(data="d", out="o", **change)


@pytest.mark.parametrize("script", ["scripts/train_lite.sh", "scripts/gpu_session.sh"])
def test_shipped_training_recipes_parse(script):
    """Every ``perspnet-train`` call of a shipped script parses (shell variables given sample values), so a
    removed option cannot leave a recipe broken."""
    import shlex
    from pathlib import Path

    from pipelines.train_cli import build_parser

    text = (Path(__file__).resolve().parents[1] / script).read_text().replace("\\\n", " ")
    calls = [line.split("pipelines.train_cli", 1)[1].split(">")[0] for line in text.splitlines()
             if "pipelines.train_cli" in line]
    assert len(calls) == 2  # the PerspNet run and the direct baseline, or the lite and paper runs
    values = {'"$ITERATIONS"': "100", '"$LITE_ITERS"': "100", '"$PAPER_ITERS"': "100", '"$DEVICE"': "cpu",
              '"${BF16[@]}"': "--bf16"}
    for call in calls:
        for var, value in values.items():
            call = call.replace(var, value)
        args = build_parser().parse_args(shlex.split(call))
        cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k != "direct"})
        assert cfg.data == Path("data/synth_train") and cfg.lr > 0


def test_wrong_architecture_is_a_clear_error(tiny_checkpoint, tmp_path):
    payload = torch.load(tiny_checkpoint, weights_only=False)
    payload["model_config"]["width_mult"] = 1.0  # weights no longer fit
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not match its architecture"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_inference_and_evaluation_run(tiny_data, tiny_checkpoint):
    final = tiny_checkpoint
    predictor = PerspNetPredictor(final, "cpu")
    ds = ArkitLayoutDataset(tiny_data)
    rec = ds[0]
    box = np.array([*project_points(rec.K, rec.verts_cam_m).mean(0), 200.0])
    est = predictor.predict([rec.image_rgb], [box], [rec.K])[0]
    assert est.points_px.shape == (predictor.n_points, 2) and est.verts_face_m.shape == (468, 3)
    trained = PerspNetPredictor(final, "cpu", n_points=TINY.n_points)  # the sampling it was trained with
    assert trained.predict([rec.image_rgb], [box], [rec.K])[0].points_px.shape == (TINY.n_points, 2)
    net = predictor.network([rec.image_rgb], [box], keep_masks=True)
    assert net["mask"].shape == (1, 64, 64) and net["mask"].mean() == pytest.approx(est.mask_fraction)
    results = evaluate(EvalConfig(data=tiny_data, checkpoint=final, limit=4, batch_size=2, device="cpu"))
    assert set(METRIC_KEYS) <= set(results["perspnet"])
    assert results["perspnet"]["n"] + results["perspnet"]["failures"] == 4


def test_evaluation_on_biwi_layout_scores_pose_only(tmp_path, tiny_checkpoint, test_generator, face_model):
    """BIWI-layout frames with rendered faces (BIWI head frame = our face frame, origin 0): the same
    evaluation code finds the faces with MediaPipe and scores rotation and translation."""
    import cv2

    from perspnet.conventions import matrix_from_euler_deg
    from tests.test_datasets import BIWI_DIST, BIWI_K, BIWI_R_CAL, BIWI_T_CAL_MM, _rows, write_biwi_cal

    folder = tmp_path / "hpdb" / "01"
    folder.mkdir(parents=True)
    write_biwi_cal(folder / "rgb.cal", BIWI_K, np.zeros_like(BIWI_DIST), BIWI_R_CAL, BIWI_T_CAL_MM)
    write_biwi_cal(folder / "depth.cal", BIWI_K, np.zeros(4), np.eye(3), np.zeros(3))
    rng = np.random.default_rng(3)
    ident, shape, ipd = test_generator.draw_identity(rng)
    for k, yaw in enumerate((-20.0, 0.0, 25.0)):
        R, t = matrix_from_euler_deg(yaw, 5.0, 0.0), np.array([0.0, 0.0, 0.6])
        s = test_generator.render(rng, ident, shape, R, t, BIWI_K, 640, 480, ipd, ident.texture,
                                  test_generator.draw_light(rng), np.full((480, 640, 3), 90, np.uint8))
        R_depth, t_depth_mm = BIWI_R_CAL.T @ R, BIWI_R_CAL.T @ (t * 1000.0 - BIWI_T_CAL_MM)
        (folder / f"frame_{k:05d}_pose.txt").write_text(_rows(R_depth) + "\n" + _rows(t_depth_mm))
        cv2.imwrite(str(folder / f"frame_{k:05d}_rgb.png"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
    results = evaluate(EvalConfig(data=tmp_path, checkpoint=tiny_checkpoint, baselines=True, device="cpu"))
    mp = results["mediapipe_pnp"]
    assert mp["n"] == 3 and mp["mae_r"] < 8.0
    assert np.isnan(mp["add"]) and np.isnan(mp["shape_mean_mm"])
    assert results["perspnet"]["n"] + results["perspnet"]["failures"] == 3


def test_oracle_correspondences_recover_pose(tiny_data):
    """The geometry chain of inference without the network: ground-truth crop correspondences, mapped back
    to full-image pixels like PerspNetPredictor does, give the true pose through PnP with K."""
    from perspnet.pnp import solve_pose
    from perspnet.metrics import sample_metrics

    ds = ArkitLayoutDataset(tiny_data)
    builder = TargetBuilder(ds.topology, TINY)
    for k in range(4):
        rec = ds[k]
        ex = builder(rec, None)
        rows, cols = np.divmod(ex["choose"], 64)
        A_inv = np.linalg.inv(np.vstack([ex["affine"], [0, 0, 1]]))
        px = np.column_stack([cols, rows]) @ A_inv[:2, :2].T + A_inv[:2, 2]
        res = solve_pose(px, ex["points"] / COORD_SCALE, rec.K)
        m = sample_metrics(res.R_cam_face, res.t_cam_face, rec.verts_face_m, rec.R_cam_face, rec.t_cam_face,
                           rec.verts_face_m)
        assert res.success and m.mae_r < 0.05 and m.mae_t < 0.5, (m.mae_r, m.mae_t)


def test_weight_decay_flag_shrinks_the_weights(tiny_data, tmp_path, monkeypatch):
    """``perspnet-train --weight-decay WD`` reaches AdamW: after one step the run's weights differ from the
    same run's without decay by ``-lr * WD * w`` (decoupled decay, the same gradients), and the optimizer
    state a resumed run starts from holds WD."""
    from pipelines.train_cli import main as train_main

    monkeypatch.setattr("perspnet.network.config.lite", lambda: TINY)

    def run(name, wd):
        argv = ["--data", str(tiny_data), "--out", str(tmp_path / name), "--iterations", "1", "--batch-size", "2",
                "--lr", "1e-3", "--workers", "0", "--ckpt-every", "1", "--weight-decay", str(wd)]
        assert train_main(argv) == 0
        return load_checkpoint(tmp_path / name / "last.pt")

    plain, decayed = run("wd0", 0.0), run("wd5", 5.0)
    assert decayed[3]["optimizer"]["param_groups"][0]["weight_decay"] == 5.0
    lr = decayed[3]["optimizer"]["param_groups"][0]["lr"]
    w0, w5 = plain[0].state_dict(), decayed[0].state_dict()
    convs = [k for k, v in w0.items() if k.endswith("weight") and v.ndim == 4]
    diff = torch.cat([(w5[k] - w0[k]).flatten() for k in convs])
    w = torch.cat([w0[k].flatten() for k in convs])
    assert float(torch.nn.functional.cosine_similarity(diff, -w, dim=0)) > 0.99
    np.testing.assert_allclose(float(diff.norm() / w.norm()), lr * 5.0, rtol=0.05)
