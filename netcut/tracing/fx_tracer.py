"""Trace an nn.Module with torch.fx and shape propagation into a LayerTable.

The model runs on the ``meta`` device (or, for a model holding real weights, on
fake tensors), so tracing costs neither memory nor arithmetic: a 600M-parameter
ViT traces as fast as a ResNet. Leaf modules are the ``torch.nn`` layers; every
other module is traced through, so functional ops inside ``forward`` (the
residual ``+``, ``torch.cat``, ``flatten``) become rows too.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Iterator

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..opclasses import OP_CLASS_INDEX
from .costs import Cost, OpCall, TensorArg, cost_of, numel
from .ops_map import METHOD_KINDS, MODULE_KINDS, RESHAPE_KINDS, function_kind, target_name
from .table import LayerTable

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def trace_fx(model: nn.Module, input_shape: tuple[int, ...], model_name: str) -> LayerTable:
    """Symbolically trace ``model`` at batch 1; raises whatever fx raises."""
    with eval_mode(model):
        graph_module = fx.symbolic_trace(model)
        _propagate_shapes(graph_module, input_shape)
        return _build_table(graph_module, model, input_shape, model_name)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the duration; each submodule's ``training`` flag
    is put back afterwards, so tracing leaves the caller's module as it was."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@contextlib.contextmanager
def no_printed_traceback() -> Iterator[None]:
    """Hold back what is written to stderr meanwhile; on an exception, drop the
    traceback ShapeProp.run_node prints (``traceback.print_exc``) before it
    re-raises - the caller handles or reports the exception itself. Anything
    else written (a model's warnings) is passed on to stderr afterwards."""
    held = io.StringIO()
    failed = False
    try:
        with contextlib.redirect_stderr(held):
            yield
    except BaseException:
        failed = True
        raise
    finally:
        text = held.getvalue()
        start = text.find("Traceback (most recent call last)") if failed else -1
        if start >= 0:
            text = text[:start]
        if text:
            sys.stderr.write(text)


def _propagate_shapes(gm: fx.GraphModule, input_shape: tuple[int, ...]) -> None:
    """Run ShapeProp at batch 1 (meta or fake tensors); raises what the model raises."""
    on_meta = all(p.device.type == "meta" for p in gm.parameters())
    with torch.no_grad(), no_printed_traceback():
        if on_meta:
            ShapeProp(gm).propagate(torch.empty((1, *input_shape), device="meta"))
        else:  # real weights: propagate on fake tensors, allocating nothing
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode(allow_non_fake_inputs=True)
            with mode:
                sample = torch.empty((1, *input_shape))
            ShapeProp(gm, fake_mode=mode).propagate(sample)


def _tensor_metas(node: fx.Node) -> list[TensorMetadata]:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata):
        return [meta]
    if isinstance(meta, (tuple, list)):  # chunk/split, or (output, None) from attention
        return [m for m in meta if isinstance(m, TensorMetadata)]
    return []


def _is_contiguous(meta: TensorMetadata) -> bool:
    expected, stride = 1, []
    for size in reversed(meta.shape):
        stride.append(expected)
        expected *= size
    stride.reverse()
    return all(s == e or n == 1 for s, e, n in zip(meta.stride, stride, meta.shape))


def block_of(path: str, modules: dict[str, nn.Module]) -> str:
    """The block a module belongs to: the shallowest module held by a container
    (a ResNet ``layer1.0``, a MobileNet ``features.3``), else its top-level child."""
    parts = path.split(".") if path else []
    for k in range(1, len(parts) + 1):
        prefix = ".".join(parts[:k])
        parent = modules.get(".".join(parts[: k - 1]))
        child = modules.get(prefix)
        if type(parent) in _CONTAINERS and type(child) is not nn.Sequential:
            return prefix
    return parts[0] if parts else ""


def _node_kind(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, dict]:
    attrs: dict = {}
    if node.op == "call_module":
        module = modules[node.target]
        kind = MODULE_KINDS.get(type(module))
        if kind is None:
            for cls, k in MODULE_KINDS.items():  # subclasses of known layers
                if isinstance(module, cls):
                    kind = k
                    break
        if kind in ("max_pool", "avg_pool"):
            k = module.kernel_size
            attrs["kernel_size"] = tuple(k) if isinstance(k, (tuple, list)) else (k, k)
        if kind == "multihead_attention":
            attrs["batch_first"] = module.batch_first
        return kind or f"unknown:{type(module).__name__}", attrs
    if node.op == "call_function":
        kind = function_kind(node.target)
        if kind in ("max_pool", "avg_pool"):
            k = node.args[1] if len(node.args) > 1 else node.kwargs.get("kernel_size")
            attrs["kernel_size"] = tuple(k) if isinstance(k, (tuple, list)) else (k, k)
        elif kind == "einsum":
            attrs["equation"] = node.args[0]
        elif kind == "window_attention":
            ws = node.args[4] if len(node.args) > 4 else node.kwargs["window_size"]
            attrs["window_size"] = tuple(ws)
        return kind or f"unknown:{target_name(node.target)}", attrs
    kind = METHOD_KINDS.get(node.target)
    return kind or f"unknown:Tensor.{node.target}", attrs


def _build_table(gm: fx.GraphModule, model: nn.Module, input_shape, model_name: str) -> LayerTable:
    modules = dict(gm.named_modules())
    model_modules = dict(model.named_modules())  # fx flattens containers in gm
    nodes = list(gm.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    depends_on_input: dict[fx.Node, bool] = {}
    cols: dict[str, list] = {k: [] for k in (
        "names", "ops", "blocks", "in_shapes", "out_shapes", "cls", "flops", "act_read",
        "weight_read", "act_write", "params", "kernels", "bias", "scaled", "supported", "pos")}

    for node in nodes:
        if node.op == "placeholder":
            depends_on_input[node] = True
            continue
        if node.op in ("get_attr", "output"):
            depends_on_input[node] = False
            continue
        depends_on_input[node] = any(depends_on_input.get(a, False) for a in node.all_input_nodes)
        outputs = _tensor_metas(node)
        if not outputs:
            continue  # shape arithmetic, asserts: no tensor, no cost
        kind, attrs = _node_kind(node, modules)
        inputs: list[TensorArg] = []
        input_metas: list[TensorMetadata] = []
        for arg in node.all_input_nodes:
            for meta in _tensor_metas(arg):
                inputs.append(TensorArg(tuple(meta.shape), is_weight=not depends_on_input[arg]))
                input_metas.append(meta)
        n_params = 0
        if node.op == "call_module":
            for name, tensor in list(modules[node.target].named_parameters()) + list(
                modules[node.target].named_buffers()
            ):
                if name.endswith("num_batches_tracked"):
                    continue
                inputs.append(TensorArg(tuple(tensor.shape), is_weight=True))
                if isinstance(tensor, nn.Parameter):
                    n_params += tensor.numel()
        else:
            n_params = sum(numel(t.shape) for t in inputs if t.is_weight)
        if kind in RESHAPE_KINDS or kind == "contiguous":
            first = input_metas[0] if input_metas else None
            kind = "view" if first is None or _is_contiguous(first) else "copy"
        call = OpCall(kind, tuple(inputs), tuple(tuple(m.shape) for m in outputs), attrs)
        try:
            cost = cost_of(call)
            supported = True
        except KeyError:
            cost = Cost(0.0, "data_movement", sum(numel(t.shape) for t in call.activations),
                        sum(numel(t.shape) for t in call.weights), call.out_elems)
            supported = False
        if node.op == "call_module":
            path, name = node.target, node.target
        else:
            stack = node.meta.get("nn_module_stack") or {}
            path = next(reversed(stack.values()))[0] if stack else ""
            name = f"{path}.{node.name}" if path else node.name
        cols["names"].append(name)
        cols["ops"].append(kind)
        cols["blocks"].append(block_of(path, model_modules) or node.name)
        cols["in_shapes"].append(tuple(t.shape for t in call.activations))
        cols["out_shapes"].append(tuple(outputs[0].shape))
        cols["cls"].append(OP_CLASS_INDEX[cost.op_class])
        cols["flops"].append(cost.flops)
        cols["act_read"].append(cost.act_read)
        cols["weight_read"].append(cost.weight_read)
        cols["act_write"].append(cost.act_write)
        cols["params"].append(n_params)
        cols["kernels"].append(cost.kernels)
        cols["bias"].append(cost.bias_pass)
        cols["scaled"].append(depends_on_input[node])
        cols["supported"].append(supported)
        cols["pos"].append(position[node])

    cut_legal = _legal_cuts(nodes, position, depends_on_input, cols["pos"])
    return LayerTable(
        model_name=model_name,
        input_shape=tuple(input_shape),
        names=cols["names"],
        ops=cols["ops"],
        blocks=cols["blocks"],
        in_shapes=cols["in_shapes"],
        out_shapes=cols["out_shapes"],
        op_class_idx=np.asarray(cols["cls"], dtype=np.int16),
        flops1=np.asarray(cols["flops"], dtype=float),
        act_read1=np.asarray(cols["act_read"], dtype=float),
        weight_read=np.asarray(cols["weight_read"], dtype=float),
        act_write1=np.asarray(cols["act_write"], dtype=float),
        params=np.asarray(cols["params"], dtype=np.int64),
        kernels=np.asarray(cols["kernels"], dtype=np.int32),
        conv_bias=np.asarray(cols["bias"], dtype=bool),
        cut_legal=cut_legal,
        batch_scaled=np.asarray(cols["scaled"], dtype=bool),
        supported=np.asarray(cols["supported"], dtype=bool),
        tracer="fx",
    )


def _legal_cuts(nodes, position, depends_on_input, row_positions) -> np.ndarray:
    """A cut after node i is legal when exactly one activation tensor - node i's
    own single output - is computed at or before i and still needed after it."""
    n = len(nodes)
    live = np.zeros(n + 1, dtype=np.int32)
    last_use = {}
    for node in nodes:
        if not depends_on_input.get(node) or not _is_activation(node):
            continue
        users = [position[u] for u in node.users]
        if not users:
            continue
        last = max(users)
        last_use[node] = last
        live[position[node]] += 1
        live[last] -= 1
    live = np.cumsum(live)
    legal = np.zeros(len(row_positions), dtype=bool)
    for r, p in enumerate(row_positions):
        node = nodes[p]
        single = isinstance(node.meta.get("tensor_meta"), TensorMetadata)
        legal[r] = single and live[p] == 1 and last_use.get(node, -1) > p
    return legal


def _is_activation(node: fx.Node) -> bool:
    return node.op == "placeholder" or bool(_tensor_metas(node))
