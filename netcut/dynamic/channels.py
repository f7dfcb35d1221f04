"""Which channels can be sliced, found from the torch.fx graph, and ranked.

A *channel group* is a set of tensors whose channels correspond one to one: a
conv's output, the BatchNorm, activation, depthwise conv and pooling after it, a
squeeze-excitation branch gating it (``scale * x`` joins the gate's channels to
the group), up to the convs that read it. Keeping the first ``c`` channels of a
group means: its *producers* (``groups=1`` convs writing it) keep their first
``c`` filters, its depthwise convs and norms their first ``c`` channels, its
*consumers* (``groups=1`` convs reading it) their first ``c`` input channels.
Nothing else sees the group, so the sub-network is well formed.

The analysis is a union-find over the graph's tensors. A group is **pinned**
(never sliced) when any of its tensors

- meets another tensor in an ``add`` (a residual connection: the block input's
  channels would have to be sliced too), or goes into ``cat``, a reshape, a
  ``Linear``, a grouped conv, a norm other than BatchNorm2d, an op not known to
  act per channel, or the network's output;
- is an exit's activation (an exit's head reads all its channels);
- has no producer conv (the input image) or its convs disagree on the count.

So a ResNet BasicBlock's ``conv1 -> bn1 -> relu -> conv2`` channels, a Bottleneck's
two inner widths and a MobileNetV2/V3 inverted residual's expanded channels (with
its squeeze-excitation) are groups; every channel on a residual stream is pinned.

Ranking: a channel's importance is the L1 norm of its filter in each producer,
divided by that producer's mean filter norm (so producers of different scale count
alike), summed over the producers. :func:`permute_groups` reorders every group
once, most important first, in producers, norms, depthwise convs and consumers
together: the full-width function is unchanged and every narrower width is a
prefix.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import TensorMetadata

from .slim import is_depthwise

__all__ = ["ChannelGroup", "GroupAnalysis", "find_groups", "permute_groups"]

#: modules that act on each channel alone (shape-preserving on the channel axis)
_PER_CHANNEL_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.GELU,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)
_PER_CHANNEL_FUNCTIONS = {
    F.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu, F.leaky_relu, F.elu,
    F.hardtanh, F.mish, F.dropout, F.dropout2d, F.max_pool2d, F.avg_pool2d,
    F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.relu, torch.sigmoid, torch.tanh,
    F.sigmoid, F.tanh,
}
_PER_CHANNEL_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clone",
                        "contiguous", "clamp", "clamp_", "hardtanh_", "mul", "mul_"}
#: elementwise products: two tensors with the same channels join one group (a gate)
_GATES = {operator.mul, operator.imul, torch.mul}
#: reading a tensor's size or type neither uses nor fixes its channels
_HARMLESS_METHODS = {"size", "dim", "type", "to"}


def _stochastic_depth() -> tuple[type, ...]:
    try:
        from torchvision.ops import StochasticDepth
    except ImportError:
        return ()
    return (StochasticDepth,)


@dataclass(frozen=True)
class ChannelGroup:
    """One sliceable set of channels, named after its first producer conv."""

    index: int
    name: str
    channels: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    depthwise: tuple[str, ...]
    norms: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "channels": self.channels, "producers": list(self.producers),
                "consumers": list(self.consumers), "depthwise": list(self.depthwise),
                "norms": list(self.norms)}


@dataclass
class GroupAnalysis:
    """The sliceable groups, and why each other conv's output is not sliceable."""

    groups: list[ChannelGroup]
    pinned: dict[str, str] = field(default_factory=dict)  # producer conv -> reason
    convs: int = 0  # Conv2d layers in the graph

    def why_none(self, label: str) -> str:
        if self.convs == 0:
            return (f"{label} has no Conv2d layer: width slicing needs a conv whose output "
                    "reaches other convs only through BatchNorm, activations, depthwise convs "
                    "or squeeze-excitation")
        shown = "; ".join(f"{conv}: {why}" for conv, why in list(self.pinned.items())[:3])
        more = f" (and {len(self.pinned) - 3} more)" if len(self.pinned) > 3 else ""
        return (f"{label} has no sliceable channels: every conv output crosses a residual "
                f"add, a concat, an exit or the output - {shown}{more}")


class _Space:
    """A set of channel-coupled tensors (a union-find node)."""

    __slots__ = ("parent", "pinned", "producers", "consumers", "depthwise", "norms")

    def __init__(self, pinned: str | None = None, producer: str | None = None):
        self.parent: _Space | None = None
        self.pinned = pinned
        self.producers = [producer] if producer else []
        self.consumers: list[str] = []
        self.depthwise: list[str] = []
        self.norms: list[str] = []

    def root(self) -> "_Space":
        space = self
        while space.parent is not None:
            space = space.parent
        return space


def _union(a: _Space, b: _Space) -> _Space:
    a, b = a.root(), b.root()
    if a is b:
        return a
    b.parent = a
    a.pinned = a.pinned or b.pinned
    for name in ("producers", "consumers", "depthwise", "norms"):
        getattr(a, name).extend(getattr(b, name))
    return a


def _pin(space: _Space, why: str) -> None:
    root = space.root()
    if root.pinned is None:
        root.pinned = why


def _is_tensor(node: fx.Node) -> bool:
    return isinstance(node.meta.get("tensor_meta"), TensorMetadata)


def _channels(node: fx.Node) -> int | None:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata) and len(meta.shape) >= 2:
        return int(meta.shape[1])
    return None


def find_groups(gm: fx.GraphModule, pinned_nodes: dict[fx.Node, str] | None = None) -> GroupAnalysis:
    """The channel groups of a shape-propagated graph (``tensor_meta`` on its nodes).

    ``pinned_nodes``: nodes whose output must keep all channels (exits), with why.
    """
    modules = dict(gm.named_modules())
    space: dict[fx.Node, _Space] = {}
    depth_kinds = _stochastic_depth()
    convs = 0
    for node in gm.graph.nodes:
        inputs = [a for a in node.all_input_nodes if a in space]
        if node.op == "placeholder":
            space[node] = _Space(pinned="the network's input")
            continue
        if node.op == "output":
            for a in inputs:
                _pin(space[a], "it reaches the output")
            continue
        if not _is_tensor(node):
            harmless = node.op == "call_method" and node.target in _HARMLESS_METHODS or (
                node.op == "call_function" and node.target in (getattr, operator.getitem)
                and len(node.args) > 1 and node.args[1] in ("shape", "dtype", "device"))
            if not harmless:
                for a in inputs:
                    _pin(space[a], f"{node.name} reads it")
            continue
        if node.op == "get_attr":
            space[node] = _Space(pinned=f"parameter {node.target}")
            continue
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, nn.Conv2d):
                convs += 1
                src = space[inputs[0]] if inputs else _Space(pinned="no input")
                if is_depthwise(module):
                    src.root().depthwise.append(node.target)
                    space[node] = src
                elif module.groups == 1:
                    src.root().consumers.append(node.target)
                    space[node] = _Space(producer=node.target)
                else:
                    _pin(src, f"grouped conv {node.target} reads it")
                    space[node] = _Space(pinned=f"grouped conv {node.target} writes it",
                                         producer=node.target)
                continue
            if type(module) is nn.BatchNorm2d and inputs:
                space[inputs[0]].root().norms.append(node.target)
                space[node] = space[inputs[0]]
                continue
            if isinstance(module, _PER_CHANNEL_MODULES + depth_kinds) and len(inputs) == 1:
                space[node] = space[inputs[0]]
                continue
            why = f"{node.target} ({type(module).__name__}) reads it"
        elif node.op == "call_function" and node.target in _GATES and len(inputs) == 2:
            a, b = inputs
            ca, cb = _channels(a), _channels(b)
            if ca == cb:
                space[node] = _union(space[a], space[b])
                continue
            if cb == 1 or ca == 1:  # a per-position gate broadcast over the channels
                wide, narrow = (a, b) if cb == 1 else (b, a)
                _pin(space[narrow], f"{node.name} broadcasts it")
                space[node] = space[wide]
                continue
            why = f"{node.name} mixes two channel counts"
        elif len(inputs) == 1 and (
                (node.op == "call_function" and (node.target in _PER_CHANNEL_FUNCTIONS
                                                 or node.target in _GATES
                                                 or node.target in (operator.add, operator.iadd,
                                                                    operator.truediv, operator.sub)))
                or (node.op == "call_method" and node.target in _PER_CHANNEL_METHODS | {
                    "add", "add_", "div", "div_", "sub", "sub_"})):
            # a unary op, or arithmetic with a scalar (x + 3 in a hand-written hardswish)
            if _channels(node) == _channels(inputs[0]):
                space[node] = space[inputs[0]]
                continue
            why = f"{node.name} changes its shape"
        else:
            what = node.target if node.op == "call_method" else getattr(
                node.target, "__name__", str(node.target))
            why = (f"the residual {node.name} adds it to another tensor" if what in (
                "add", "iadd", "add_") else f"{node.name} ({what}) reads it")
        for a in inputs:
            _pin(space[a], why)
        space[node] = _Space(pinned=f"{node.name} writes it")
    for node, why in (pinned_nodes or {}).items():
        if node in space:
            _pin(space[node], why)
    order = {n.target: i for i, n in enumerate(gm.graph.nodes) if n.op == "call_module"}
    return _collect(space, modules, convs, order)


def _collect(space: dict[fx.Node, _Space], modules: dict[str, nn.Module], convs: int,
             order: dict[str, int]) -> GroupAnalysis:
    roots: list[_Space] = []
    seen: set[int] = set()
    for s in space.values():
        r = s.root()
        if id(r) not in seen:
            seen.add(id(r))
            roots.append(r)
    groups: list[ChannelGroup] = []
    pinned: dict[str, str] = {}
    for r in roots:
        def in_order(names: list[str]) -> tuple[str, ...]:
            return tuple(sorted(dict.fromkeys(names), key=order.__getitem__))

        producers = in_order(r.producers)
        if not producers:
            continue
        why = r.pinned
        counts = {modules[p].out_channels for p in producers}
        counts |= {modules[c].in_channels for c in r.consumers}
        counts |= {modules[d].out_channels for d in r.depthwise}
        counts |= {modules[n].num_features for n in r.norms}
        if why is None and len(counts) != 1:
            why = f"its layers disagree on the channel count ({sorted(counts)})"
        if why is None and not r.consumers:
            why = "no conv reads it"
        if why is not None:
            for p in producers:
                pinned[p] = why
            continue
        groups.append(ChannelGroup(
            index=len(groups), name=producers[0], channels=counts.pop(),
            producers=producers, consumers=in_order(r.consumers),
            depthwise=in_order(r.depthwise), norms=in_order(r.norms)))
    groups.sort(key=lambda g: order[g.name])
    groups = [replace(g, index=i) for i, g in enumerate(groups)]
    return GroupAnalysis(groups, pinned, convs)


def importance(modules: dict[str, nn.Module], group: ChannelGroup) -> torch.Tensor:
    """Per channel: the L1 norm of its filter in each producer over that producer's
    mean filter norm, summed over the producers (float64)."""
    score = torch.zeros(group.channels, dtype=torch.float64)
    for name in group.producers:
        weight = modules[name].weight.detach().to("cpu", torch.float64)
        l1 = weight.abs().flatten(1).sum(1)
        score += l1 / l1.mean().clamp_min(1e-12)
    return score


@torch.no_grad()
def permute_groups(gm: fx.GraphModule, groups: list[ChannelGroup]) -> list[torch.Tensor]:
    """Reorder each group's channels, most important first, in place (same Parameter
    objects); returns each group's order (``order[i]``: the old index of new channel i)."""
    modules = dict(gm.named_modules())
    orders = []
    for group in groups:
        order = torch.argsort(importance(modules, group), descending=True, stable=True)
        for name in group.producers + group.depthwise:
            conv = modules[name]
            _reorder(conv.weight, order, 0)
            if conv.bias is not None:
                _reorder(conv.bias, order, 0)
        for name in group.norms:
            bn = modules[name]
            for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                if tensor is not None:
                    _reorder(tensor, order, 0)
        for name in group.consumers:
            _reorder(modules[name].weight, order, 1)
        orders.append(order)
    return orders


def _reorder(tensor: torch.Tensor, order: torch.Tensor, dim: int) -> None:
    data = tensor.data
    data.copy_(data.index_select(dim, order.to(data.device)))
