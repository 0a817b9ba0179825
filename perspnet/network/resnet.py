"""ResNet-18 encoder returning the multi-scale features that the PerspNet decoders use as skips.

The layout follows torchvision's / timm's ResNet (7x7 stem, max-pool, four stages of two
:class:`BasicBlock` each) without the classifier: :meth:`ResNet.forward` returns the five feature maps
at strides 2, 4, 8, 16 and 32. For an input ``(B, 3, S, S)`` with ``S`` divisible by 32, the feature at
stride ``s`` is ``(B, C_s, S / s, S / s)``; ``C_s`` is listed in :attr:`ResNet.out_channels`.
Written here rather than imported, so the project does not depend on torchvision.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet", "resnet18", "FEATURE_STRIDES"]

FEATURE_STRIDES = (2, 4, 8, 16, 32)  # strides of the features returned by ResNet.forward


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut.

    Args:
        in_channels: channels of the input ``(B, in_channels, H, W)``.
        out_channels: channels of the output.
        stride: stride of the first conv; the output is ``(B, out_channels, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.downsample(x))


class ResNet(nn.Module):
    """ResNet of :class:`BasicBlock` stages, as a feature pyramid (no pooling head, no classifier).

    Args:
        layers: number of blocks in each of the four stages, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: channels of the stem and of the four stages, e.g. ``(64, 64, 128, 256, 512)``.
        in_channels: channels of the input image.
    """

    def __init__(self, layers: tuple[int, int, int, int], widths: tuple[int, int, int, int, int],
                 in_channels: int = 3) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 5:
            raise ValueError(f"need 4 stage depths and 5 widths, got {layers} and {widths}")
        stem = widths[0]
        self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        prev = stem
        for i, (depth, width) in enumerate(zip(layers, widths[1:])):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(prev, width, stride)] + [BasicBlock(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            prev = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels: tuple[int, ...] = tuple(widths)  # channels at FEATURE_STRIDES
        self._init_weights()

    def _init_weights(self) -> None:
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Image ``(B, C_in, S, S)`` -> five features ``(B, out_channels[i], S / s, S / s)``, s = 2 .. 32."""
        x2 = self.act(self.bn1(self.conv1(x)))
        x4 = self.layer1(self.maxpool(x2))
        x8 = self.layer2(x4)
        x16 = self.layer3(x8)
        x32 = self.layer4(x16)
        return [x2, x4, x8, x16, x32]


def resnet18(width_mult: float = 1.0, in_channels: int = 3) -> ResNet:
    """ResNet-18 feature pyramid.

    Args:
        width_mult: scales the standard widths 64/64/128/256/512 (stem, stages 1-4), rounded to a
            multiple of 8 and at least 8; 0.5 gives 32/32/64/128/256.
        in_channels: channels of the input image.
    """
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    widths = tuple(max(8, int(round(w * width_mult / 8)) * 8) for w in (64, 64, 128, 256, 512))
    return ResNet((2, 2, 2, 2), widths, in_channels)  # type: ignore[arg-type]
