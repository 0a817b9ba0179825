"""Fold each eval-mode batch normalisation into the convolution that feeds it, for inference.

In eval mode ``BatchNorm2d`` is the per-channel affine map ``y = (x - mean) / sqrt(var + eps) * gamma + beta``
with fixed statistics; applied right after a convolution it can be absorbed into that convolution's weights
and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``), which saves one pass over every feature map. The
outputs agree with the unfolded network to float32 rounding.

Which convolution feeds which normalisation is read from the data flow of one forward pass (every torch
call is watched: the normalisation is the only reader of the convolution's output tensor), not from the
order the modules were registered in; a convolution whose output also goes elsewhere is left alone.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

__all__ = ["fold_batchnorm"]


class _ReadTracker(TorchFunctionMode):
    """Records, for each tracked tensor, who reads it: the leaf module being run, or ``"<function>"`` for
    code outside any leaf module (a functional residual sum, say)."""

    def __init__(self, produced: dict[int, str], readers: dict[int, list[str]], current: list[str]) -> None:
        super().__init__()
        self.produced, self.readers, self.current = produced, readers, current

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reader = self.current[-1] if self.current else "<function>"
        for x in tree_flatten((args, kwargs))[0]:
            if isinstance(x, torch.Tensor) and id(x) in self.produced and self.produced[id(x)] != reader:
                self.readers[id(x)].append(reader)
        return func(*args, **kwargs)


def _conv_bn_pairs(model: nn.Module, run: Callable[[], object]) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` where the BN's input is the conv's output, nothing else reads it, and each
    of the two runs once in the pass."""
    produced: dict[int, str] = {}  # id of a conv output tensor -> conv name
    readers: dict[int, list[str]] = {}  # id of a conv output tensor -> the readers (module names)
    calls: dict[str, int] = {}  # leaf module name -> times called in the pass
    current: list[str] = []  # the leaf module running now
    kept: list[torch.Tensor] = []  # conv outputs kept alive so that ids are not reused during the pass
    named = dict(model.named_modules())

    def before(name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            calls[name] = calls.get(name, 0) + 1
            current.append(name)
        return hook

    def after(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            current.pop()
            if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
                produced[id(output)] = name
                readers[id(output)] = []
                kept.append(output)
        return hook

    hooks = []
    for name, module in named.items():
        if name and not list(module.children()):  # leaf modules only
            hooks += [module.register_forward_pre_hook(before(name)), module.register_forward_hook(after(name))]
    try:
        with torch.no_grad(), _ReadTracker(produced, readers, current):
            run()
    finally:
        for h in hooks:
            h.remove()
    pairs = []
    for tensor_id, conv in produced.items():
        reads = set(readers[tensor_id])
        if len(reads) == 1:
            bn = reads.pop()
            if isinstance(named.get(bn), nn.BatchNorm2d) and calls[conv] == 1 and calls[bn] == 1:
                pairs.append((conv, bn))
    return pairs


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def fold_batchnorm(model: nn.Module, run: Callable[[], object]) -> int:
    """Fold, in place, every ``BatchNorm2d`` whose only input is a ``Conv2d``'s output into that conv; the
    normalisation becomes ``nn.Identity``. ``model`` must be in eval mode and stay there (training would
    need the statistics back). ``run()`` makes one forward pass of ``model`` (any input of a valid shape)
    to read the data flow. Returns the number of normalisations folded.

    A convolution run more than once per pass, or whose output is also read by anything else (another
    module, a functional residual sum), keeps its normalisation.
    """
    if model.training:
        raise ValueError("fold_batchnorm: the model must be in eval mode")
    pairs = _conv_bn_pairs(model, run)
    for conv, bn in pairs:
        _set(model, conv, fuse_conv_bn_eval(model.get_submodule(conv), model.get_submodule(bn)))
        _set(model, bn, nn.Identity())
    return len(pairs)
