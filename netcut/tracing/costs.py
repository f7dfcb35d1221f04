"""Per-op cost formulas: FLOPs and memory traffic from shapes alone.

Each formula is a small pure function registered for one or more op *kinds*
(``conv``, ``linear``, ``relu`` ...). Both tracers (torch.fx and the dispatch
fallback) translate what they see into an :class:`OpCall` and look its kind up
here, so every op's cost formula lives in exactly one place.

Conventions (``docs/conventions.md`` repeats them for users):

* a multiply-add is **2 FLOPs**; bias additions inside conv/linear are not counted
  (as in ``torch.utils.flop_counter``; fvcore counts 1 per multiply-add);
* elementwise ops count the arithmetic a straightforward kernel does per output
  element (``relu`` 1, ``batch_norm`` in eval 2, ``layer_norm`` 5, ...);
* memory traffic is counted in *elements* here; the LayerTable multiplies by the
  dtype's size. Reads are every tensor input once, writes the output once; views
  move nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

Shape = tuple[int, ...]


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape is not None else 0


@dataclass(frozen=True)
class TensorArg:
    """A tensor operand: its shape and whether it is a weight (not batch-scaled)."""

    shape: Shape
    is_weight: bool = False


@dataclass(frozen=True)
class OpCall:
    """One traced operation, described by shapes and a few attributes."""

    kind: str
    inputs: tuple[TensorArg, ...]
    outputs: tuple[Shape, ...]
    attrs: dict = field(default_factory=dict)

    @property
    def out_elems(self) -> int:
        return sum(numel(s) for s in self.outputs)

    @property
    def activations(self) -> tuple[TensorArg, ...]:
        return tuple(t for t in self.inputs if not t.is_weight)

    @property
    def weights(self) -> tuple[TensorArg, ...]:
        return tuple(t for t in self.inputs if t.is_weight)


@dataclass(frozen=True)
class Cost:
    """What one op costs, per forward pass at the traced batch size."""

    flops: float
    op_class: str
    act_read: float  # activation elements read (scale with batch)
    weight_read: float  # weight/constant elements read (do not scale)
    act_write: float  # elements written
    kernels: int = 1  # device kernels launched (0 for views)
    #: a conv with a bias: PyTorch's cuDNN path adds the bias in a kernel of its own,
    #: one more pass over the output (CPU libraries fuse it; see estimate/roofline.py)
    bias_pass: bool = False


Formula = Callable[[OpCall], Cost]
_REGISTRY: dict[str, Formula] = {}


def register_cost(*kinds: str) -> Callable[[Formula], Formula]:
    """Register ``fn`` as the cost formula of ``kinds``; a kind is registered once."""

    def decorate(fn: Formula) -> Formula:
        for kind in kinds:
            if kind in _REGISTRY:
                raise ValueError(f"a cost formula for {kind!r} is already registered")
            _REGISTRY[kind] = fn
        return fn

    return decorate


def cost_of(call: OpCall) -> Cost:
    """Price ``call``; raises ``KeyError`` for a kind with no formula."""
    return _REGISTRY[call.kind](call)


def known_kinds() -> list[str]:
    return sorted(_REGISTRY)


def _traffic(call: OpCall, flops: float, op_class: str, kernels: int = 1) -> Cost:
    """Reads every input once, writes every output once."""
    return Cost(
        flops=float(flops),
        op_class=op_class,
        act_read=float(sum(numel(t.shape) for t in call.activations)),
        weight_read=float(sum(numel(t.shape) for t in call.weights)),
        act_write=float(call.out_elems),
        kernels=kernels,
    )


# --- matrix ops -------------------------------------------------------------


@register_cost("conv")
def _conv(call: OpCall) -> Cost:
    # inputs: x (N, Cin, *spatial), w (Cout, Cin/groups, *kernel)[, bias]
    # each output element is a dot product of Cin/groups * prod(kernel) terms
    x, w = call.inputs[0], call.inputs[1]
    macs_per_out = w.shape[1] * numel(w.shape[2:])
    flops = 2 * numel(call.outputs[0]) * macs_per_out
    c_in = x.shape[1]
    groups = c_in // w.shape[1] if w.shape[1] else 1
    if groups == 1:
        op_class = "conv"
    elif w.shape[1] == 1:
        op_class = "conv_depthwise"
    else:
        op_class = "conv_grouped"
    cost = _traffic(call, flops, op_class)
    has_bias = any(len(t.shape) == 1 for t in call.weights)  # bias (Cout,), weight is 4-D
    return replace(cost, bias_pass=has_bias and op_class != "conv_depthwise")


@register_cost("linear")
def _linear(call: OpCall) -> Cost:
    # inputs: x (..., in), w (out, in)[, bias]: each output is in_features MACs
    w = call.inputs[1]
    return _traffic(call, 2 * numel(call.outputs[0]) * w.shape[1], "matmul")


@register_cost("matmul")
def _matmul(call: OpCall) -> Cost:
    # a (..., M, K) @ b (..., K, N) -> (..., M, N): K MACs per output element
    a = call.inputs[0]
    k = a.shape[-1]
    return _traffic(call, 2 * numel(call.outputs[0]) * k, "matmul")


@register_cost("addmm")
def _addmm(call: OpCall) -> Cost:
    # bias + a (M, K) @ b (K, N): K MACs per output element
    a = call.inputs[1]
    return _traffic(call, 2 * numel(call.outputs[0]) * a.shape[-1], "matmul")


@register_cost("einsum")
def _einsum(call: OpCall) -> Cost:
    # Two-operand contraction: every combination of distinct index letters is one MAC.
    lhs = call.attrs["equation"].replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for operand, arg in zip(lhs.split(","), call.inputs):
        letters = [c for c in operand if c.isalpha()]
        for letter, size in zip(letters, arg.shape[-len(letters):] if letters else ()):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return _traffic(call, 2 * math.prod(sizes.values()), "matmul")


@register_cost("sdpa")
def _sdpa(call: OpCall) -> Cost:
    # q (..., L, E), k (..., S, E), v (..., S, Ev): QK^T is L*S*E MACs, AV is L*S*Ev
    q, k, v = (t.shape for t in call.inputs[:3])
    rows = numel(q[:-1])
    flops = 2 * rows * k[-2] * q[-1] + 2 * rows * k[-2] * v[-1]
    return _traffic(call, flops, "attention")


@register_cost("multihead_attention")
def _mha(call: OpCall) -> Cost:
    # self-attention module, x (N, L, E) with batch_first or (L, N, E):
    #   in-projection 3*E*E MACs per token, QK^T and AV L*E each, out-projection E*E
    x = call.inputs[0].shape
    n_tokens = numel(x[:-1])
    seq = x[1] if call.attrs.get("batch_first") else x[0]
    e = x[-1]
    flops = 2 * n_tokens * (3 * e * e) + 2 * 2 * n_tokens * seq * e + 2 * n_tokens * e * e
    # in_proj, QK^T, softmax, AV, out_proj plus two head reshapes
    return _traffic(call, flops, "attention", kernels=7)


@register_cost("window_attention")
def _window_attention(call: OpCall) -> Cost:
    # Swin: x (N, H, W, C) split into windows of T = wh*ww tokens after padding.
    #   qkv 3*C*C MACs per token, QK^T and AV T*C each, projection C*C.
    n, h, w, c = call.inputs[0].shape
    wh, ww = call.attrs["window_size"]
    tokens = n * (math.ceil(h / wh) * wh) * (math.ceil(w / ww) * ww)
    t = wh * ww
    flops = 2 * tokens * 3 * c * c + 2 * 2 * tokens * t * c + 2 * tokens * c * c
    # pad, roll, partition, qkv, QK^T, bias add, mask, softmax, AV, proj, merge, roll
    return _traffic(call, flops, "attention", kernels=12)


# --- normalisation, activations, arithmetic --------------------------------

_PER_ELEMENT = {
    "batch_norm": (2, "norm"),  # eval: x * scale + shift
    "layer_norm": (5, "norm"),  # mean, variance, subtract, divide, affine
    "group_norm": (5, "norm"),
    "relu": (1, "elementwise"),
    "relu6": (2, "elementwise"),  # clamp at both ends
    "hardtanh": (2, "elementwise"),
    "leaky_relu": (2, "elementwise"),
    "sigmoid": (4, "elementwise"),
    "tanh": (4, "elementwise"),
    "silu": (5, "elementwise"),  # x * sigmoid(x)
    "gelu": (8, "elementwise"),  # erf form
    "hardswish": (4, "elementwise"),
    "hardsigmoid": (3, "elementwise"),
    "mish": (8, "elementwise"),
    "add": (1, "elementwise"),
    "sub": (1, "elementwise"),
    "mul": (1, "elementwise"),
    "div": (1, "elementwise"),
    "neg": (1, "elementwise"),
    "pow": (1, "elementwise"),
    "exp": (1, "elementwise"),
    "sqrt": (1, "elementwise"),
    "clamp": (2, "elementwise"),
    "compare": (1, "elementwise"),
    "where": (1, "elementwise"),
    "softmax": (5, "softmax"),  # max, subtract, exp, sum, divide
    "log_softmax": (5, "softmax"),
    "normalize": (3, "norm"),  # square, sum, divide (Swin v2 cosine attention)
}


def _per_element(call: OpCall) -> Cost:
    flops_per_elem, op_class = _PER_ELEMENT[call.kind]
    return _traffic(call, flops_per_elem * call.out_elems, op_class)


for _kind in _PER_ELEMENT:
    register_cost(_kind)(_per_element)


# --- pooling and reductions --------------------------------------------------


@register_cost("max_pool", "avg_pool")
def _pool(call: OpCall) -> Cost:
    # one comparison or addition per window element per output; max-pooling is its
    # own class: on a Zen 4 PyTorch's NCHW 3x3/2 max-pool ran at 0.57 G window
    # elements/s, a 2x2 average pool at 0.91 (calibration/data/cpu-epyc-genoa-2c-micro-keepmem.json)
    window = numel(call.attrs.get("kernel_size", (1,)))
    return _traffic(call, call.out_elems * window, "pool_max" if call.kind == "max_pool" else "pool")


@register_cost("adaptive_avg_pool", "adaptive_max_pool")
def _adaptive_pool(call: OpCall) -> Cost:
    # every input element is added (or compared) once. An average pool down to one
    # value per channel is a mean over the spatial axes and runs as one: 5.9 G
    # elements/s on that Zen 4 (2048x7x7), 6.5x the windowed average pool
    global_mean = call.kind == "adaptive_avg_pool" and all(d == 1 for d in call.outputs[0][2:])
    return _traffic(call, numel(call.inputs[0].shape), "reduction" if global_mean else "pool")


@register_cost("mean", "sum", "amax")
def _reduction(call: OpCall) -> Cost:
    return _traffic(call, numel(call.inputs[0].shape), "reduction")


# --- data movement and views -------------------------------------------------


@register_cost("cat", "stack", "pad", "roll", "copy", "patch_merging_pad", "gather")
def _copy(call: OpCall) -> Cost:
    # a pure copy: no arithmetic, reads its inputs and writes its output
    return _traffic(call, 0, "data_movement")


@register_cost("relative_position_bias")
def _relative_position_bias(call: OpCall) -> Cost:
    # gathers a (heads, T, T) bias from a small table: writes T*T*heads, reads as much
    return Cost(0.0, "data_movement", 0.0, float(call.out_elems), float(call.out_elems))


@register_cost("view", "identity")
def _view(call: OpCall) -> Cost:
    # metadata only (reshape of a contiguous tensor, permute, slicing, eval dropout)
    return Cost(0.0, "view", 0.0, 0.0, 0.0, kernels=0)
