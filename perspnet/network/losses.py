"""PerspNet's training loss ``L = w_S L_S + w_M L_M + w_corr L_corr + w_seg L_seg`` (weights in
:class:`perspnet.network.config.LossWeights`; the paper's are 0.5, 0.01, 1.0, 0.01), and one logged term.

* ``L_S``: L1 error of the UV position map, per texel the sum of ``|dx| + |dy| + |dz|``, averaged over
  texels with the weight map (1 on the face's UV region, 0 elsewhere).
* ``L_M = KL + entropy_weight * H``: per row of the correspondence matrix, ``KL(gt || M_row)`` to the
  barycentric ground-truth row, and the entropy ``H(M_row)``; both averaged over the ``m`` rows.
* ``L_corr``: L1 error of ``X_corr``, per chosen pixel ``|dx| + |dy| + |dz|``, averaged over pixels.
* ``L_seg``: cross-entropy of the 2-class face segmentation, averaged over pixels.
* ``rotation`` (logged, not in ``L``): the angle, radians, of the rigid rotation that best carries the
  ground-truth points of the chosen pixels onto ``X_corr`` (small-angle least squares,
  :func:`corr_rigid_rotation`), averaged over crops. PnP turns exactly that rigid part of the
  correspondences' error into rotation error of the pose, so the training log shows it beside ``L_corr``.

All coordinates are in network units (:data:`perspnet.network.config.COORD_SCALE` per metre). Log terms
are taken from ``log_softmax`` of the logits and zero ground-truth weights contribute exactly 0, so the
loss and its gradient stay finite when probabilities underflow.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import torch
import torch.nn.functional as F

from perspnet.network.config import LossWeights

__all__ = [
    "LossTargets",
    "LossTerms",
    "uv_map_l1",
    "corr_matrix_kl_entropy",
    "corr_points_l1",
    "corr_rigid_rotation",
    "segmentation_ce",
    "perspnet_loss",
]

_EPS = 1e-8


@dataclass
class LossTargets:
    """Ground truth for one batch of ``B`` crops (``S x S``), ``U x U`` UV maps, ``m`` chosen pixels.

    Attributes:
        uv_map: ``(B, 3, U, U)`` ground-truth UV position map, canonical frame, network units.
        uv_weight: ``(U, U)`` or ``(B, U, U)`` texel weights: 1 on the face's UV region (and the ring
            around it that the target extrapolates to, see perspnet.training_data), 0 elsewhere.
        seg: ``(B, S, S)`` bool or long, 1 / True on face pixels.
        corr_vert_ids: ``(B, m, 3)`` long vertex ids of the mesh triangle seen at each chosen pixel.
        corr_bary: ``(B, m, 3)`` barycentric weights of those vertices (>= 0, summing to 1).
        points: ``(B, m, 3)`` canonical points seen at the chosen pixels, network units
            (the barycentric combination of the ground-truth vertices).
    """

    uv_map: torch.Tensor
    uv_weight: torch.Tensor
    seg: torch.Tensor
    corr_vert_ids: torch.Tensor
    corr_bary: torch.Tensor
    points: torch.Tensor


@dataclass
class LossTerms:
    """Scalar loss tensors: the weighted ``total``, each unweighted term (``matrix = kl + w * entropy``) and
    the logged ``rotation`` (module doc)."""

    total: torch.Tensor
    shape: torch.Tensor
    matrix: torch.Tensor
    kl: torch.Tensor
    entropy: torch.Tensor
    corr: torch.Tensor
    seg: torch.Tensor
    rotation: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """Each term as a Python float, for logging."""
        return {f.name: float(getattr(self, f.name).detach()) for f in fields(self)}


def uv_map_l1(uv_pred: torch.Tensor, uv_gt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted L1 of UV position maps.

    Args:
        uv_pred: ``(B, 3, U, U)`` predicted UV map.
        uv_gt: ``(B, 3, U, U)`` ground-truth UV map.
        weight: ``(U, U)`` or ``(B, U, U)`` non-negative texel weights.

    Returns:
        Scalar ``sum(w * |pred - gt|_1) / sum(w)`` over texels (``|.|_1`` over xyz).
    """
    w = weight.to(uv_pred.dtype).expand(uv_pred.shape[0], *uv_pred.shape[2:])
    err = (uv_pred - uv_gt).abs().sum(dim=1)  # (B, U, U)
    return (w * err).sum() / w.sum().clamp_min(_EPS)


def corr_matrix_kl_entropy(corr_logits: torch.Tensor, vert_ids: torch.Tensor,
                           bary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``KL(gt || softmax(logits))`` and entropy of ``softmax(logits)``, averaged over rows.

    Args:
        corr_logits: ``(B, m, n)`` correspondence logits.
        vert_ids: ``(B, m, 3)`` long ground-truth vertex ids per row (repeated ids add their weights).
        bary: ``(B, m, 3)`` their weights; each row sums to 1.

    Returns:
        ``(kl, entropy)`` scalars, natural log.
    """
    log_prob = F.log_softmax(corr_logits, dim=2)
    gt = torch.zeros_like(log_prob).scatter_add_(2, vert_ids, bary.to(log_prob.dtype))
    cross = torch.where(gt > 0, gt * log_prob, torch.zeros_like(log_prob))
    kl = (torch.xlogy(gt, gt) - cross).sum(dim=2).mean()
    entropy = -(log_prob.exp() * log_prob).sum(dim=2).mean()
    return kl, entropy


def corr_points_l1(points_corr: torch.Tensor, points_gt: torch.Tensor) -> torch.Tensor:
    """Mean over the ``(B, m)`` chosen pixels of ``|X_corr - X_gt|_1`` (sum over xyz); inputs ``(B, m, 3)``."""
    return (points_corr - points_gt).abs().sum(dim=2).mean()


def corr_rigid_rotation(points_corr: torch.Tensor, points_gt: torch.Tensor) -> torch.Tensor:
    """Small-angle rotation vector ``(B, 3)``, radians, of the rigid motion that best explains
    ``X_corr - X_gt`` over each crop's ``m`` points (inputs ``(B, m, 3)``, canonical frame).

    With ``x_i`` the ground-truth points about their mean and ``e_i`` the errors about theirs, the
    rotation ``w`` minimising ``sum_i |e_i - w x x_i|^2`` solves ``A w = sum_i x_i x e_i`` with
    ``A = sum_i (|x_i|^2 I - x_i x_i^T)`` (the points' inertia tensor): exact to first order in the
    angle, for a rotation about any centre. Computed in float32.
    """
    x = points_gt.float() - points_gt.float().mean(dim=1, keepdim=True)
    err = points_corr.float() - points_gt.float()
    e = err - err.mean(dim=1, keepdim=True)
    eye = torch.eye(3, device=x.device, dtype=x.dtype)
    inertia = (x * x).sum(dim=(1, 2))[:, None, None] * eye - torch.einsum("bmi,bmj->bij", x, x)
    moment = torch.linalg.cross(x, e, dim=2).sum(dim=1)
    return torch.linalg.solve(inertia + 1e-9 * eye, moment.unsqueeze(2)).squeeze(2)


def segmentation_ce(seg_logits: torch.Tensor, seg_gt: torch.Tensor) -> torch.Tensor:
    """Pixel-averaged cross-entropy; ``seg_logits (B, 2, S, S)``, ``seg_gt (B, S, S)`` bool or long (1 = face)."""
    return F.cross_entropy(seg_logits, seg_gt.long())


def perspnet_loss(outputs: Mapping[str, torch.Tensor], targets: LossTargets,
                  weights: LossWeights = LossWeights()) -> LossTerms:
    """The PerspNet training loss (module doc).

    Args:
        outputs: :meth:`perspnet.network.model.PerspNet.forward`'s dict (``uv_map``, ``seg_logits``,
            ``corr_logits``, ``points_corr`` are used).
        targets: ground truth for the same crops and chosen pixels.
        weights: loss weights.
    """
    shape = uv_map_l1(outputs["uv_map"], targets.uv_map, targets.uv_weight)
    kl, entropy = corr_matrix_kl_entropy(outputs["corr_logits"], targets.corr_vert_ids, targets.corr_bary)
    matrix = kl + weights.entropy * entropy
    corr = corr_points_l1(outputs["points_corr"], targets.points)
    seg = segmentation_ce(outputs["seg_logits"], targets.seg)
    with torch.no_grad():
        omega = corr_rigid_rotation(outputs["points_corr"], targets.points)
        rotation = torch.sqrt((omega * omega).sum(dim=1) + 1e-12).mean()
    total = weights.shape * shape + weights.matrix * matrix + weights.corr * corr + weights.seg * seg
    return LossTerms(total=total, shape=shape, matrix=matrix, kl=kl, entropy=entropy, corr=corr, seg=seg,
                     rotation=rotation)
