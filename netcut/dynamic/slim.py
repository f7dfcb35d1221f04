"""Slimmable layers: a conv or batch norm whose active channels are a prefix of its own.

Every slim layer of one :class:`~netcut.dynamic.DynamicNet` holds a reference to
the same :class:`WidthState`, a plain Python object with the active channel count
of each channel group and the index of the active batch-norm statistics. Switching
width is two attribute assignments on that object: no layer is visited, no tensor
is made or copied. In ``forward`` each layer slices its full weight to the active
counts, ``weight[:out, :in]`` - a view of the same storage (the kernel may still
repack it, as it repacks any weight).

Layers are *adopted*: the slim layer takes over the Parameter objects of the layer
it replaces, so a parameter's identity and ``data_ptr`` never change.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

__all__ = ["SlimBatchNorm2d", "SlimConv2d", "WidthState", "is_depthwise"]


class WidthState:
    """The active width shared by the slim layers of one network.

    ``channels[g]``: the active channel count of channel group ``g``;
    ``bn_index``: which set of batch-norm statistics is in use (one per width
    configuration). Deep copies and pickles keep the sharing (one object, many
    references), so a copied network switches as one.
    """

    def __init__(self, channels: tuple[int, ...], bn_index: int = 0):
        self.channels = tuple(channels)
        self.bn_index = bn_index

    def __repr__(self) -> str:
        return f"WidthState(channels={self.channels}, bn_index={self.bn_index})"


def is_depthwise(conv: nn.Conv2d) -> bool:
    """One filter per channel (``groups == in == out``, more than one channel)."""
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def _adopt(cls, layer: nn.Module) -> nn.Module:
    """``layer`` re-classed as ``cls`` without copying a tensor: same Parameter and
    buffer objects, its own (shallow-copied) registries."""
    slim = copy.copy(layer)
    slim.__class__ = cls
    for registry in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
        if registry in layer.__dict__:
            slim.__dict__[registry] = copy.copy(layer.__dict__[registry])
    return slim


class SlimConv2d(nn.Conv2d):
    """A ``Conv2d`` computing with the first ``channels[out_group]`` filters over the
    first ``channels[in_group]`` input channels (a group of ``-1``: all of them).

    A depthwise conv has one group for both sides and runs with ``groups`` equal to
    the active count. Grouped convs (``1 < groups < channels``) are never slimmed.
    """

    state: WidthState
    out_group: int
    in_group: int
    depthwise: bool

    @classmethod
    def adopt(cls, conv: nn.Conv2d, state: WidthState, out_group: int = -1,
              in_group: int = -1) -> "SlimConv2d":
        if conv.groups != 1 and not is_depthwise(conv):
            raise ValueError(f"a grouped conv ({conv.groups} groups) cannot be slimmed")
        slim = _adopt(cls, conv)
        slim.state = state
        slim.depthwise = is_depthwise(conv)
        slim.out_group = out_group
        slim.in_group = out_group if slim.depthwise else in_group
        return slim

    def active_channels(self) -> tuple[int, int]:
        """``(out, in)`` channels at the active width."""
        channels = self.state.channels
        out_c = channels[self.out_group] if self.out_group >= 0 else self.out_channels
        if self.depthwise:
            return out_c, out_c
        in_c = channels[self.in_group] if self.in_group >= 0 else self.in_channels
        return out_c, in_c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_c, in_c = self.active_channels()
        weight, bias, groups = self.weight, self.bias, self.groups
        if self.depthwise:
            if out_c != self.out_channels:
                weight, groups = weight[:out_c], out_c
        elif out_c != self.out_channels or in_c != self.in_channels:
            weight = weight[:out_c, :in_c]
        if bias is not None and out_c != self.out_channels:
            bias = bias[:out_c]
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, bias, self.stride, _pair(0), self.dilation, groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, out_group={self.out_group}, in_group={self.in_group}"


class SlimBatchNorm2d(nn.BatchNorm2d):
    """Switchable batch norm: the affine weight and bias are shared and sliced to the
    active channels; the running statistics are kept per width configuration, as
    ``running_mean[k]`` / ``running_var[k]`` / ``num_batches_tracked[k]`` for
    configuration ``k`` (the state's ``bn_index``), each row sliced to the active
    channels. A narrower network feeds every later layer different activations, so
    every batch norm keeps its own statistics per width, not only the sliced ones.
    """

    state: WidthState
    group: int

    @classmethod
    def adopt(cls, bn: nn.BatchNorm2d, state: WidthState, group: int = -1,
              n_widths: int = 1) -> "SlimBatchNorm2d":
        slim = _adopt(cls, bn)
        slim.state = state
        slim.group = group
        if bn.track_running_stats:
            with torch.no_grad():
                slim.running_mean = bn.running_mean.detach().repeat(n_widths, 1)
                slim.running_var = bn.running_var.detach().repeat(n_widths, 1)
                slim.num_batches_tracked = bn.num_batches_tracked.detach().repeat(n_widths)
        return slim

    @property
    def n_widths(self) -> int:
        return self.running_mean.shape[0] if self.running_mean is not None else 1

    def reset_width_stats(self, k: int) -> None:
        """Statistics of width configuration ``k`` back to mean 0, variance 1."""
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean[k].zero_()
                self.running_var[k].fill_(1.0)
                self.num_batches_tracked[k].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.state
        k = state.bn_index
        c = state.channels[self.group] if self.group >= 0 else self.num_features
        full = c == self.num_features
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked[k].add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked[k])
        use_batch = self.training or self.running_mean is None
        if self.running_mean is not None and (not self.training or self.track_running_stats):
            mean = self.running_mean[k] if full else self.running_mean[k, :c]
            var = self.running_var[k] if full else self.running_var[k, :c]
        else:
            mean = var = None
        weight, bias = self.weight, self.bias
        if not full and weight is not None:
            weight, bias = weight[:c], bias[:c]
        return F.batch_norm(x, mean, var, weight, bias, use_batch, momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group={self.group}, widths={self.n_widths}"
