"""Tests of PerspNet's training loss: perfect predictions, hand-computed values, numerical safety."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perspnet.network.config import LossWeights
from perspnet.network.losses import (
    LossTargets,
    corr_matrix_kl_entropy,
    corr_points_l1,
    corr_rigid_rotation,
    perspnet_loss,
    segmentation_ce,
    uv_map_l1,
)

LN2 = math.log(2.0)


def dense_target(vert_ids: torch.Tensor, bary: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(*vert_ids.shape[:-1], n, dtype=bary.dtype).scatter_add_(-1, vert_ids, bary)


def random_rows(batch: int, m: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth rows: 3 distinct vertex ids and Dirichlet barycentric weights per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(n, generator=g)[:3] for _ in range(batch * m)]).view(batch, m, 3)
    bary = torch.distributions.Dirichlet(torch.ones(3, dtype=torch.float64)).sample((batch, m))
    return ids, bary


class TestUVMapL1:
    def test_perfect_prediction_is_zero_and_outside_weights_ignored(self):
        gt = torch.randn(2, 3, 8, 8)
        weight = torch.zeros(8, 8)
        weight[2:6, 1:7] = 1.0
        pred = gt + 5.0 * (weight == 0)  # wrong only where the weight is 0
        assert uv_map_l1(pred, gt, weight).item() == 0.0

    def test_hand_made_value(self):
        pred = torch.zeros(1, 3, 2, 2)
        pred[0, :, 0, 0] = torch.tensor([1.0, -2.0, 3.0])  # |.|_1 = 6 at texel (0, 0)
        pred[0, :, 1, 1] = 100.0  # weight 0 there
        weight = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
        assert uv_map_l1(pred, torch.zeros_like(pred), weight).item() == pytest.approx(3.0)  # (6 + 0) / 2

    def test_per_sample_weights_match_shared_weights(self):
        pred, gt = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
        weight = (torch.rand(4, 4) > 0.5).float()
        torch.testing.assert_close(uv_map_l1(pred, gt, weight), uv_map_l1(pred, gt, weight.expand(3, 4, 4)))

    def test_all_zero_weights_is_finite(self):
        pred = torch.randn(1, 3, 4, 4, requires_grad=True)
        loss = uv_map_l1(pred, torch.zeros(1, 3, 4, 4), torch.zeros(4, 4))
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


class TestCorrMatrix:
    def test_hand_made_values(self):
        logits = torch.log(torch.tensor([[[0.5, 0.25, 0.125, 0.125]]]))
        ids = torch.tensor([[[0, 1, 2]]])
        bary = torch.tensor([[[0.5, 0.5, 0.0]]])
        kl, entropy = corr_matrix_kl_entropy(logits, ids, bary)
        assert kl.item() == pytest.approx(0.5 * LN2)  # 0.5 ln(0.5/0.5) + 0.5 ln(0.5/0.25)
        assert entropy.item() == pytest.approx(1.75 * LN2)  # 0.5*1 + 0.25*2 + 2*0.125*3 bits

    def test_one_hot_perfect_prediction(self):
        n = 468
        ids = torch.tensor([[[7, 8, 9], [100, 3, 4]]])
        bary = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
        logits = 100.0 * dense_target(ids, bary, n)
        kl, entropy = corr_matrix_kl_entropy(logits, ids, bary)
        assert abs(kl.item()) < 1e-6 and abs(entropy.item()) < 1e-6

    def test_barycentric_perfect_prediction(self):
        ids, bary = random_rows(2, 5, 468)
        target = dense_target(ids, bary, 468)
        kl, entropy = corr_matrix_kl_entropy(torch.log(target.clamp_min(1e-30)), ids, bary)
        assert abs(kl.item()) < 1e-10
        expected_entropy = -(torch.xlogy(bary, bary)).sum(-1).mean()  # prediction = gt row
        torch.testing.assert_close(entropy, expected_entropy)

    def test_matches_dense_kl_div(self):
        ids, bary = random_rows(2, 6, 20, seed=3)
        logits = torch.randn(2, 6, 20, dtype=torch.float64)
        kl, entropy = corr_matrix_kl_entropy(logits, ids, bary)
        log_p = F.log_softmax(logits, dim=2)
        ref = F.kl_div(log_p, dense_target(ids, bary, 20), reduction="sum") / 12
        torch.testing.assert_close(kl, ref)
        torch.testing.assert_close(entropy, -(log_p.exp() * log_p).sum(2).mean())

    def test_underflowing_probabilities_stay_finite(self):
        logits = torch.tensor([[[0.0, -1e4, -1e4, 20.0]]], requires_grad=True)
        ids = torch.tensor([[[0, 1, 2]]])  # vertex 1 has prob exp(-1e4) = 0 in float, weight 0
        bary = torch.tensor([[[1.0, 0.0, 0.0]]])
        kl, entropy = corr_matrix_kl_entropy(logits, ids, bary)
        (kl + entropy).backward()
        assert torch.isfinite(kl) and torch.isfinite(entropy) and torch.isfinite(logits.grad).all()
        assert kl.item() == pytest.approx(20.0, abs=1e-6)  # -log softmax(0 vs 20)

    def test_kl_gradient_pulls_towards_target(self):
        ids, bary = random_rows(1, 4, 10, seed=5)
        logits = torch.zeros(1, 4, 10, requires_grad=True)
        corr_matrix_kl_entropy(logits, ids, bary)[0].backward()
        # d KL / d logits = (softmax - gt) / rows
        torch.testing.assert_close(logits.grad, (0.1 - dense_target(ids, bary, 10).float()) / 4)


class TestPointsAndSeg:
    def test_corr_l1_hand_made(self):
        pred = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]])
        gt = torch.tensor([[[0.0, 0.0, -2.0], [0.5, 0.5, 0.5]]])
        assert corr_points_l1(pred, gt).item() == pytest.approx(1.5)  # (3 + 0) / 2
        assert corr_points_l1(gt, gt).item() == 0.0

    def test_segmentation_hand_made(self):
        logits = torch.zeros(1, 2, 1, 2)
        logits[0, 1, 0, :] = math.log(3.0)  # p(face) = 3/4 at both pixels
        gt = torch.tensor([[[True, False]]])
        expected = 0.5 * (-math.log(0.75) - math.log(0.25))
        assert segmentation_ce(logits, gt).item() == pytest.approx(expected)


def rotation_matrix(rotvec: np.ndarray) -> torch.Tensor:
    """Rodrigues' formula, float32."""
    theta = np.linalg.norm(rotvec)
    k = rotvec / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return torch.tensor(np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * Kx @ Kx, dtype=torch.float32)


class TestRigidRotation:
    def face_like_points(self, batch: int = 2, m: int = 256) -> torch.Tensor:
        g = torch.Generator().manual_seed(3)
        return torch.randn(batch, m, 3, generator=g) * torch.tensor([0.7, 0.9, 0.3]) + torch.tensor([0.1, -0.2, 0.4])

    def test_recovers_a_small_rotation_about_any_centre(self):
        x = self.face_like_points()
        rotvec = np.array([0.03, -0.02, 0.04])  # 2.9 degrees
        centre, shift = torch.tensor([0.5, 0.3, -0.2]), torch.tensor([0.05, -0.1, 0.2])
        moved = (x - centre) @ rotation_matrix(rotvec).T + centre + shift
        w = corr_rigid_rotation(moved, x)
        np.testing.assert_allclose(w.numpy(), np.tile(rotvec, (2, 1)), atol=2e-3)  # second order in the angle

    def test_zero_for_exact_or_shifted_points_and_for_errors_without_rotation(self):
        x = self.face_like_points()
        assert corr_rigid_rotation(x, x).abs().max().item() == 0.0
        assert corr_rigid_rotation(x + torch.tensor([0.3, -0.1, 0.2]), x).abs().max().item() < 1e-6
        # a stretch along the points' principal axes is not a rotation
        centred = x - x.mean(dim=1, keepdim=True)
        axes = torch.linalg.eigh(centred.transpose(1, 2) @ centred).eigenvectors  # (B, 3, 3)
        strain = axes @ torch.diag(torch.tensor([1.0, -1.0, 2.0])) @ axes.transpose(1, 2)
        stretched = x + 0.05 * centred @ strain
        assert corr_rigid_rotation(stretched, x).abs().max().item() < 1e-5

    def test_logged_beside_the_loss_not_in_it(self):
        """``rotation`` is logged (about the error's 0.05 rad) and carries no gradient: the total's gradient
        is that of the weighted terms alone."""
        x = self.face_like_points(batch=1)
        rotvec = np.array([0.0, 0.05, 0.0])
        pred = (x @ rotation_matrix(rotvec).T).requires_grad_(True)
        outputs = {"uv_map": torch.zeros(1, 3, 2, 2), "seg_logits": torch.zeros(1, 2, 1, 1),
                   "corr_logits": torch.zeros(1, 256, 4), "points_corr": pred}
        targets = LossTargets(uv_map=torch.zeros(1, 3, 2, 2), uv_weight=torch.ones(2, 2), seg=torch.ones(1, 1, 1),
                              corr_vert_ids=torch.zeros(1, 256, 3, dtype=torch.long),
                              corr_bary=torch.tensor([1.0, 0.0, 0.0]).expand(1, 256, 3), points=x)
        terms = perspnet_loss(outputs, targets, LossWeights())
        assert terms.rotation.item() == pytest.approx(0.05, rel=0.02)
        assert not terms.rotation.requires_grad
        terms.total.backward()
        grad = pred.grad.clone()
        pred.grad = None
        corr_points_l1(pred, x).backward()
        torch.testing.assert_close(grad, LossWeights().corr * pred.grad)


class TestPerspNetLoss:
    def hand_made_case(self) -> tuple[dict[str, torch.Tensor], LossTargets]:
        uv_map = torch.zeros(1, 3, 2, 2)
        uv_map[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0])
        seg_logits = torch.zeros(1, 2, 1, 2)
        seg_logits[0, 1] = math.log(3.0)
        outputs = {
            "uv_map": uv_map,
            "seg_logits": seg_logits,
            "corr_logits": torch.log(torch.tensor([[[0.5, 0.25, 0.125, 0.125]]])),
            "points_corr": torch.tensor([[[1.0, 0.0, 0.0]]]),
        }
        targets = LossTargets(
            uv_map=torch.zeros(1, 3, 2, 2),
            uv_weight=torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
            seg=torch.tensor([[[1, 1]]]),
            corr_vert_ids=torch.tensor([[[0, 1, 2]]]),
            corr_bary=torch.tensor([[[0.5, 0.5, 0.0]]]),
            points=torch.tensor([[[0.0, 0.0, -2.0]]]),
        )
        return outputs, targets

    def test_hand_made_total_with_paper_weights(self):
        outputs, targets = self.hand_made_case()
        terms = perspnet_loss(outputs, targets)
        values = terms.as_floats()
        expected = {"shape": 6.0, "kl": 0.5 * LN2, "entropy": 1.75 * LN2, "corr": 3.0, "seg": -math.log(0.75),
                    "rotation": 0.0}  # one point: no rotation to fit
        expected["matrix"] = expected["kl"] + 0.1 * expected["entropy"]
        expected["total"] = (0.5 * expected["shape"] + 0.01 * expected["matrix"] + 1.0 * expected["corr"]
                             + 0.01 * expected["seg"])
        assert values == pytest.approx(expected, abs=1e-5)

    def test_weights_scale_terms(self):
        outputs, targets = self.hand_made_case()
        weights = LossWeights(shape=1.0, matrix=0.0, corr=0.0, seg=2.0, entropy=0.0)
        terms = perspnet_loss(outputs, targets, weights)
        assert terms.matrix.item() == pytest.approx(0.5 * LN2)
        assert terms.total.item() == pytest.approx(6.0 + 2.0 * -math.log(0.75))

    def test_perfect_prediction(self):
        ids = torch.tensor([[[4, 5, 6], [1, 2, 3]]])
        bary = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        uv = torch.randn(1, 3, 4, 4)
        points = torch.randn(1, 2, 3)
        seg = torch.tensor([[[True, False], [False, True]]])
        outputs = {
            "uv_map": uv.clone(),
            "seg_logits": 50.0 * torch.stack([~seg, seg], dim=1).float(),
            "corr_logits": 50.0 * dense_target(ids, bary, 10),
            "points_corr": points.clone(),
        }
        targets = LossTargets(uv_map=uv, uv_weight=torch.ones(4, 4), seg=seg, corr_vert_ids=ids,
                              corr_bary=bary, points=points)
        terms = perspnet_loss(outputs, targets)
        assert terms.shape.item() == 0.0 and terms.corr.item() == 0.0
        assert terms.total.item() == pytest.approx(0.0, abs=1e-12)
