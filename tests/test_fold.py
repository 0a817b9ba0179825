"""Batch-norm folding for inference (perspnet.network.fold): same outputs, fewer layers, and only where the
convolution's output feeds nothing but the normalisation."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from perspnet.checkpoint import load_checkpoint
from perspnet.network.fold import fold_batchnorm


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


class ResidualReadsConv(nn.Module):
    """conv1's output goes to bn1 and, functionally, to the sum: bn1 must stay. conv2 -> bn2 folds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        z = self.bn2(self.conv2(torch.relu(self.bn1(y))))
        return z + y


class SharedConv(nn.Module):
    """One conv run twice, one of its outputs into a BN: not folded (it would change the other call)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.conv(x)


@pytest.mark.parametrize("net, folded", [(ResidualReadsConv, 1), (SharedConv, 0)])
def test_folds_only_sole_readers(net, folded):
    torch.manual_seed(1)
    model = net().eval()
    _randomise_bn(model)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
    assert fold_batchnorm(model, lambda: model(x)) == folded
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    if net is ResidualReadsConv:
        assert isinstance(model.bn2, nn.Identity) and isinstance(model.bn1, nn.BatchNorm2d)


def test_shipped_network_same_outputs_without_batch_norm():
    model = load_checkpoint(None, torch.device("cpu"))[0]
    size = model.config.input_size
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    folded = copy.deepcopy(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(folded, lambda: folded.encode(x[:1])) == n_bn > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        ref, out = model.encode(x), folded.encode(x)
    for key in ("uv_map", "seg_logits", "verts_hat", "vert_feats", "image_feats"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-4, atol=1e-4)


def test_training_mode_refused():
    model = ResidualReadsConv().train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model, lambda: model(torch.zeros(1, 3, 4, 4)))
