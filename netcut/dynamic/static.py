"""One sub-network as a plain, static network (plain ``nn`` layers of its own sizes).

Used three ways:

- ``device="meta"``: a shape-only twin, free to build, that ``netcut.trace``
  prices like any other network (how width sub-nets get their latency);
- ``share=True``: layers whose weights are *views* of the dynamic network's
  (no copy; what the TorchScript export traces, so the saved file stores each
  weight once);
- ``share=False``: an independent copy with contiguous weights (deploy one
  sub-net alone, or fine-tune it apart).
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.fx as fx
import torch.nn as nn

from .slim import SlimBatchNorm2d, SlimConv2d

__all__ = ["StaticSubnet", "static_subnet"]


class StaticSubnet(nn.Module):
    """``head(stages[-1](...stages[0](x)))``: a sub-network with plain layers."""

    def __init__(self, stages: Sequence[fx.GraphModule], head: nn.Module):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def static_subnet(stages: Sequence[fx.GraphModule], head: nn.Module | None,
                  channels: tuple[int, ...], bn_index: int, *, device: str | None = None,
                  share: bool = True) -> StaticSubnet:
    """``stages`` then ``head`` (None: no head) at width ``channels`` with batch-norm
    statistics ``bn_index``, as plain layers (see the module docstring)."""
    convert = _Converter(channels, bn_index, device == "meta", share)
    plain = [convert.stage(s) for s in stages]
    return StaticSubnet(plain, convert.module(head) if head is not None else nn.Identity())


class _Converter:
    def __init__(self, channels: tuple[int, ...], bn_index: int, meta: bool, share: bool):
        self.channels = channels
        self.k = bn_index
        self.meta = meta
        self.share = share

    def stage(self, stage: fx.GraphModule) -> fx.GraphModule:
        root: dict = {}
        for node in stage.graph.nodes:
            if node.op == "call_module":
                root[node.target] = self.module(stage.get_submodule(node.target))
            elif node.op == "get_attr":
                root[node.target] = self.tensor(_fetch(stage, node.target))
        graph = fx.Graph()
        graph.output(graph.graph_copy(stage.graph, {}))
        return fx.GraphModule(root, graph, class_name=type(stage).__name__)

    def module(self, m: nn.Module) -> nn.Module:
        if isinstance(m, SlimConv2d):
            return self.conv(m)
        if isinstance(m, SlimBatchNorm2d):
            return self.norm(m)
        if self.meta:
            return _meta_clone(m)
        return m if self.share else copy.deepcopy(m)

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        if self.meta:
            return _meta_like(t)
        return t if self.share else copy.deepcopy(t)

    def _count(self, group: int, full: int) -> int:
        return self.channels[group] if group >= 0 else full

    def _take(self, t: torch.Tensor, *index) -> torch.Tensor:
        view = t.detach()[index]
        return view if self.share else view.clone(memory_format=torch.contiguous_format)

    def conv(self, m: SlimConv2d) -> nn.Conv2d:
        out_c = self._count(m.out_group, m.out_channels)
        in_c = out_c if m.depthwise else self._count(m.in_group, m.in_channels)
        conv = nn.Conv2d(in_c, out_c, m.kernel_size, m.stride, m.padding, m.dilation,
                         groups=out_c if m.depthwise else 1, bias=m.bias is not None,
                         padding_mode=m.padding_mode, device="meta", dtype=m.weight.dtype)
        if not self.meta:
            grad = not self.share and m.weight.requires_grad
            index = (slice(out_c),) if m.depthwise else (slice(out_c), slice(in_c))
            conv.weight = nn.Parameter(self._take(m.weight, *index), requires_grad=grad)
            if m.bias is not None:
                conv.bias = nn.Parameter(self._take(m.bias, slice(out_c)), requires_grad=grad)
        return conv.train(m.training)

    def norm(self, m: SlimBatchNorm2d) -> nn.BatchNorm2d:
        c = self._count(m.group, m.num_features)
        dtype = m.weight.dtype if m.weight is not None else m.running_mean.dtype
        bn = nn.BatchNorm2d(c, m.eps, m.momentum, m.affine, m.track_running_stats,
                            device="meta", dtype=dtype)
        if not self.meta:
            if m.affine:
                grad = not self.share and m.weight.requires_grad
                bn.weight = nn.Parameter(self._take(m.weight, slice(c)), requires_grad=grad)
                bn.bias = nn.Parameter(self._take(m.bias, slice(c)), requires_grad=grad)
            if m.track_running_stats:
                bn.running_mean = self._take(m.running_mean, self.k, slice(c))
                bn.running_var = self._take(m.running_var, self.k, slice(c))
                bn.num_batches_tracked = self._take(m.num_batches_tracked, self.k)
        return bn.train(m.training)


def _fetch(module: nn.Module, target: str):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _meta_like(t: torch.Tensor) -> torch.Tensor:
    if isinstance(t, nn.Parameter):
        return nn.Parameter(torch.empty_like(t, device="meta"), requires_grad=t.requires_grad)
    return torch.empty_like(t, device="meta")


def _meta_clone(m: nn.Module) -> nn.Module:
    """A deep copy of ``m`` with every parameter and buffer on ``meta`` (nothing copied)."""
    memo = {id(t): _meta_like(t) for t in list(m.parameters()) + list(m.buffers())}
    return copy.deepcopy(m, memo)
