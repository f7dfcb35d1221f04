"""The backbone as one torch.fx graph, cut into stages between exits.

Stage ``j`` maps the activation of exit ``j - 1`` (the network's input for
``j = 0``) to the activation of exit ``j``. Every stage is an fx GraphModule built
from the same traced graph, so all stages hold references to the same layer
objects: one set of weights, however many exits. Exits lie at legal cuts (one
live activation crosses them), so a stage is a function of one tensor.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import TraceError
from ..planner.bind import bind_submodules
from ..planner.cuts import CutPoint
from ..planner.trim import keeps_effects, node_of_row, TrimTracer
from ..tracing import LayerTable
from ..tracing.fx_tracer import no_printed_traceback, eval_mode
from .slim import SlimBatchNorm2d, SlimConv2d

__all__ = ["exit_nodes", "split_stages", "trace_graph"]


class _SlimTracer(TrimTracer):
    """trim's tracer (StochasticDepth stays a module) with slim layers as leaves."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (SlimConv2d, SlimBatchNorm2d)) or super().is_leaf_module(
            m, module_qualified_name)


def trace_graph(module: nn.Module, input_shape: tuple[int, ...], label: str) -> fx.GraphModule:
    """``module``'s fx graph in eval mode, shapes propagated at batch 1 (``tensor_meta``
    on every node). Its leaf layers are ``module``'s own objects, not copies."""
    try:
        with eval_mode(module):
            graph = _SlimTracer().trace(module)
    except Exception as exc:  # fx raises many types for untraceable code
        raise TraceError(f"cannot build a dynamic network from {label}: torch.fx cannot "
                         f"trace it ({type(exc).__name__}: {_first_line(exc)})") from None
    gm = fx.GraphModule(module, graph, class_name=type(module).__name__)
    try:
        with eval_mode(gm):
            _propagate_shapes(gm, tuple(input_shape))
    except Exception as exc:
        size = "x".join(map(str, input_shape))
        raise TraceError(f"{label} fails at input {size}: {_first_line(exc)}") from None
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise TraceError(f"{label} takes {len(placeholders)} inputs; a dynamic network "
                         "needs a backbone of one input tensor")
    return gm


def _propagate_shapes(gm: fx.GraphModule, input_shape: tuple[int, ...]) -> None:
    """ShapeProp at batch 1 on fake tensors (nothing computed), the input in the
    dtype of the weights (a float64 backbone gets a float64 sample)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    param = next(gm.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with torch.no_grad(), no_printed_traceback():
        with mode:
            sample = torch.empty((1, *input_shape), dtype=dtype, device=device)
        ShapeProp(gm, fake_mode=mode).propagate(sample)


def exit_nodes(gm: fx.GraphModule, table: LayerTable, cuts: list[CutPoint], label: str) -> list[fx.Node]:
    """The graph node of each cut (``table`` traced from the same model)."""
    nodes = []
    for cut in cuts:
        node = node_of_row(gm.graph, table, cut.row_index)
        if node is None:
            raise TraceError(f"{label}: no fx node matches exit {cut.name!r} "
                             f"(table row {cut.row_index}, {cut.node!r})")
        nodes.append(node)
    return nodes


def split_stages(gm: fx.GraphModule, exits: list[fx.Node], names: list[str]) -> list[fx.GraphModule]:
    """One GraphModule per exit: from the previous exit (or the input) to this one.
    ``exits`` must be in graph order; ``names`` label them in errors."""
    nodes = list(gm.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    start = next(n for n in nodes if n.op == "placeholder")
    stages = []
    for j, (end, name) in enumerate(zip(exits, names)):
        if position[end] <= position[start]:
            raise TraceError(f"exit {name!r} does not come after the previous exit")
        graph = fx.Graph()
        env = {start: graph.placeholder("x")}
        missing: dict[fx.Node, fx.Node] = {}  # node -> the earlier node it needed

        def arg(a: fx.Node, _env=env, _graph=graph, _missing=missing) -> fx.Node:
            if a in _env:
                return _env[a]
            if a.op == "get_attr":  # a parameter read by the graph: read it here too
                _env[a] = _graph.node_copy(a)
                return _env[a]
            raise _Missing(_missing.get(a, a))

        for node in nodes[position[start] + 1: position[end] + 1]:
            try:
                env[node] = graph.node_copy(node, arg)
            except _Missing as gone:
                missing[node] = gone.node
        if end in missing:
            raise TraceError(
                f"exit {name!r}: {missing[end].name}, computed before the previous exit "
                f"({start.name}), is still used after it; choose other exits")
        graph.output(env[end])
        stage = fx.GraphModule(gm, graph, class_name=f"Stage{j}")
        stage.graph.eliminate_dead_code(is_impure_node=keeps_effects)
        stage.graph.lint()
        stage.delete_all_unused_submodules()
        stage.recompile()
        stages.append(bind_submodules(stage))  # its layers reached at dict speed at run time
        start = end
    return stages


class _Missing(Exception):
    def __init__(self, node: fx.Node):
        super().__init__(node.name)
        self.node = node


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
