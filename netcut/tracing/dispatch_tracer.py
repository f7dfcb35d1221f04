"""Fallback tracer for models torch.fx cannot trace (data-dependent Python control
flow, unsupported builtins): run the model once on ``meta`` tensors under a
``TorchDispatchMode`` and record every ATen op.

Rows are ATen ops rather than modules (``addmm`` where fx would show ``linear``),
attributed to the innermost module running at the time. Data flow is followed by
tensor identity, so cut legality uses the same one-live-tensor rule as the fx
tracer. Costs come from the same registry in ``costs.py``.

The caller's module is never changed: a model that needs real values (a meta
model whose ``forward`` branches on data) is run as a materialised copy.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..opclasses import OP_CLASS_INDEX
from .costs import Cost, OpCall, TensorArg, cost_of, numel
from .fx_tracer import block_of, eval_mode
from .table import LayerTable

_ATEN_KINDS = {
    "convolution": "conv", "addmm": "addmm", "mm": "matmul", "bmm": "matmul",
    "_scaled_dot_product_efficient_attention": "sdpa",
    "_scaled_dot_product_flash_attention": "sdpa",
    "_scaled_dot_product_flash_attention_for_cpu": "sdpa",
    "_scaled_dot_product_attention_math": "sdpa",
    "_native_batch_norm_legit_no_training": "batch_norm", "native_batch_norm": "batch_norm",
    "native_layer_norm": "layer_norm", "native_group_norm": "group_norm",
    "relu": "relu", "relu_": "relu", "hardtanh": "hardtanh", "hardtanh_": "hardtanh",
    "silu": "silu", "silu_": "silu", "gelu": "gelu", "hardswish": "hardswish",
    "hardswish_": "hardswish", "hardsigmoid": "hardsigmoid", "sigmoid": "sigmoid",
    "tanh": "tanh", "add": "add", "add_": "add", "mul": "mul", "mul_": "mul", "sub": "sub",
    "div": "div", "exp": "exp", "gt": "compare", "lt": "compare", "ge": "compare",
    "le": "compare", "eq": "compare", "ne": "compare", "where": "where", "clamp": "clamp", "_softmax": "softmax", "_safe_softmax": "softmax",
    "max_pool2d_with_indices": "max_pool", "avg_pool2d": "avg_pool",
    "_adaptive_avg_pool2d": "adaptive_avg_pool", "mean": "mean", "sum": "sum",
    "cat": "cat", "stack": "stack", "constant_pad_nd": "pad", "roll": "roll",
    "clone": "copy", "copy_": "copy", "_to_copy": "copy",
}
_ATEN_VIEWS = {
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "slice",
    "select", "unsqueeze", "squeeze", "alias", "detach", "split", "chunk", "unbind",
    "split_with_sizes", "as_strided", "flatten", "_reshape_alias", "lift_fresh",
}
_IGNORED = {"empty", "zeros", "ones", "full", "arange", "empty_like", "zeros_like", "sym_size",
            "_local_scalar_dense"}  # reading a scalar back to Python: no kernel to price


class _Recorder(TorchDispatchMode):
    def __init__(self, module_stack: list[str], x: torch.Tensor):
        super().__init__()
        self.stack = module_stack
        self.records: list[dict] = []
        self.producer: dict[int, int] = {id(x): -1}
        self.keep: list[torch.Tensor] = [x]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in _IGNORED:
            return out
        inputs = [a for a in tree_flatten((args, kwargs or {}))[0] if isinstance(a, torch.Tensor)]
        outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        index = len(self.records)
        self.records.append(
            {
                "aten": name,
                "args": args,
                "inputs": [(tuple(t.shape), self.producer.get(id(t))) for t in inputs],
                "outputs": [tuple(t.shape) for t in outputs],
                "path": self.stack[-1] if self.stack else "",
            }
        )
        for t in outputs:
            self.producer[id(t)] = index
            self.keep.append(t)  # ids stay unique while the tensors live
        return out


def trace_dispatch(model: nn.Module, input_shape: tuple[int, ...], model_name: str) -> LayerTable:
    """Record the ATen ops of one batch-1 forward pass of ``model`` (left unchanged)."""
    with eval_mode(model):
        try:
            records = _record(model, torch.empty((1, *input_shape), device="meta"))
        except (RuntimeError, NotImplementedError) as exc:
            if "meta" not in str(exc):
                raise
            # Data-dependent control flow needs values: run once on the CPU. Meta
            # tensors cannot be filled in place, so a meta model runs as a copy
            # (copying meta tensors costs nothing) materialised with empty storage.
            runnable = model
            tensors = itertools.chain(model.parameters(), model.buffers())
            if any(t.device.type == "meta" for t in tensors):
                runnable = copy.deepcopy(model).to_empty(device="cpu")
            records = _record(runnable, torch.randn((1, *input_shape)))
    return _table_from_records(records, dict(model.named_modules()), input_shape, model_name)


def _record(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Run ``model(x)`` under the recorder, attributing each op to the innermost
    module of ``model`` running at the time."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def enter(module, args):  # hooks must return None, or they replace values
        if module in names:
            stack.append(names[module])

    def leave(module, args, output):
        if module in names and stack:
            stack.pop()

    pre = nn.modules.module.register_module_forward_pre_hook(enter)
    post = nn.modules.module.register_module_forward_hook(leave)
    try:
        recorder = _Recorder(stack, x)
        with torch.no_grad(), recorder:
            model(x)
    finally:
        pre.remove()
        post.remove()
    return recorder.records


def _table_from_records(records, modules, input_shape, model_name) -> LayerTable:
    n = len(records)
    depends = np.zeros(n, dtype=bool)
    last_use = np.full(n, -1)
    cols: dict[str, list] = {k: [] for k in ("names", "ops", "blocks", "in", "out", "cost", "sup")}
    for i, rec in enumerate(records):
        ins = []
        for shape, producer in rec["inputs"]:
            from_input = producer == -1 or (producer is not None and depends[producer])
            ins.append(TensorArg(shape, is_weight=not from_input))
            if producer is not None and producer >= 0:
                last_use[producer] = max(last_use[producer], i)
        depends[i] = any(not t.is_weight for t in ins)
        aten = rec["aten"]
        kind = "view" if aten in _ATEN_VIEWS else _ATEN_KINDS.get(aten, f"unknown:aten.{aten}")
        attrs = {}
        if kind == "conv":
            ins = ins[:2] + ins[2:]
        if kind in ("max_pool", "avg_pool"):
            k = rec["args"][1]
            attrs["kernel_size"] = tuple(k) if len(k) == 2 else (k[0], k[0])
        call = OpCall(kind, tuple(ins), tuple(rec["outputs"]), attrs)
        try:
            cost, supported = cost_of(call), True
        except (KeyError, IndexError):
            cost = Cost(0.0, "data_movement", sum(numel(t.shape) for t in call.activations),
                        sum(numel(t.shape) for t in call.weights), call.out_elems)
            supported = False
        path = rec["path"]
        cols["names"].append(f"{path}.{aten}_{i}" if path else f"{aten}_{i}")
        cols["ops"].append(kind)
        cols["blocks"].append(block_of(path, modules) or aten)
        cols["in"].append(tuple(t.shape for t in call.activations))
        cols["out"].append(rec["outputs"][0] if rec["outputs"] else ())
        cols["cost"].append(cost)
        cols["sup"].append(supported)
    last_use[n - 1] = max(last_use[n - 1], n) if n else 0  # the model's output is used
    live = np.zeros(n + 2, dtype=np.int64)
    for i in range(n):
        if depends[i] and last_use[i] > i:
            live[i] += 1
            live[last_use[i]] -= 1
    live = np.cumsum(live)[:n]
    legal = depends & (live == 1) & (last_use > np.arange(n))
    legal &= np.array([len(r["outputs"]) == 1 for r in records], dtype=bool)
    costs = cols["cost"]
    return LayerTable(
        model_name=model_name,
        input_shape=tuple(input_shape),
        names=cols["names"],
        ops=cols["ops"],
        blocks=cols["blocks"],
        in_shapes=cols["in"],
        out_shapes=cols["out"],
        op_class_idx=np.asarray([OP_CLASS_INDEX[c.op_class] for c in costs], dtype=np.int16),
        flops1=np.asarray([c.flops for c in costs], dtype=float),
        act_read1=np.asarray([c.act_read for c in costs], dtype=float),
        weight_read=np.asarray([c.weight_read for c in costs], dtype=float),
        act_write1=np.asarray([c.act_write for c in costs], dtype=float),
        params=np.asarray([c.weight_read if c.op_class != "view" else 0 for c in costs], dtype=np.int64),
        kernels=np.asarray([c.kernels for c in costs], dtype=np.int32),
        conv_bias=np.asarray([c.bias_pass for c in costs], dtype=bool),
        cut_legal=legal,
        batch_scaled=depends,
        supported=np.asarray(cols["sup"], dtype=bool),
        tracer="dispatch",
    )
