"""Trimmed networks (TRNs): a pretrained prefix, global pooling and a new head.

The prefix is cut out of the model's own torch.fx graph: the graph is traced
once, its output is moved to the node at the cut, and everything only the
removed tail needed is dropped. That works for any fx-traceable model (every
torchvision classifier, and users' models) without knowing its ``forward``.

Assumptions, written down as timm's ``FeatureDictNet`` does:

- The graph is traced in eval mode, so Python branches on ``self.training`` are
  fixed to their eval side (GoogLeNet/Inception drop their auxiliary heads).
  Layers stay layers: BatchNorm, Dropout and torchvision's ``StochasticDepth``
  are kept as modules, so ``trn.train()`` still switches them.
- The TRN owns a copy of the kept weights (values identical to the source's):
  fine-tuning one TRN never changes the source model or another TRN.
- Pooling: channels-first maps (NCHW) are averaged over space; Swin's
  channels-last maps (NHWC) likewise over their middle axes; a token sequence
  (ViT, ``[B, N, C]``) is read at its class token, as the network's own head does
  (``token_pool="mean"`` averages the tokens instead).
- Saving: ``torch.save(trn.state_dict())`` loads into a freshly built
  ``trim(...)`` of the same model, cut and head. The whole module pickles too
  (``torch.save(trn)``; load with ``torch.load(path, weights_only=False)``),
  as fx GraphModules regenerate their code when unpickled.
"""

from __future__ import annotations

import copy
import importlib
import operator
import warnings

import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import InvalidInputError, TraceError
from ..models import resolve_model, torchvision_classifiers
from ..tracing import LayerTable, parse_input_shape, trace
from ..tracing.fx_tracer import eval_mode
from .bind import bind_submodules
from .cuts import CutPoint, resolve_cut

__all__ = ["GlobalPool", "TrimmedNet", "trim", "HEADS"]

HEADS = ("linear", "mlp")
TOKEN_POOLS = ("cls", "mean")
_CHECK_BATCH = 2  # the construction check runs a batch of 2: batch-1 bugs hide

_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv,
                      operator.ifloordiv, operator.imod, operator.ipow, operator.iand,
                      operator.ior, operator.ixor, operator.ilshift, operator.irshift,
                      operator.imatmul, operator.setitem}


class GlobalPool(nn.Module):
    """``[B, C, *spatial]``, ``[B, *spatial, C]`` or ``[B, N, C]`` tokens -> ``[B, C]``.

    The pool and the flatten of a TRN in one parameter-free module, so the
    features' layout is stated once (in ``layout``) and shows in ``repr``.
    """

    def __init__(self, layout: str, token_pool: str = "cls"):
        super().__init__()
        if token_pool not in TOKEN_POOLS:
            raise InvalidInputError(
                f"token_pool {token_pool!r}: allowed {', '.join(TOKEN_POOLS)}")
        self.layout = layout
        self.token_pool = token_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "NLC":
            return x[:, 0] if self.token_pool == "cls" else x.mean(dim=1)
        if self.layout.endswith("C"):  # channels last (Swin)
            return x.flatten(1, -2).mean(dim=1)
        return x.flatten(2).mean(dim=-1)

    def extra_repr(self) -> str:
        extra = f", token_pool={self.token_pool!r}" if self.layout == "NLC" else ""
        return f"layout={self.layout!r}{extra}"


class TrimmedNet(nn.Module):
    """A TRN: ``head(pool(features(x)))``.

    ``features`` is the kept prefix (an fx GraphModule holding the source's
    module paths, so ``features.layer1.0.conv1`` is the source's
    ``layer1.0.conv1``); ``cut`` is the :class:`CutPoint` it was cut at.
    """

    def __init__(self, features: fx.GraphModule, pool: nn.Module, head: nn.Module,
                 cut: CutPoint, source: str = ""):
        super().__init__()
        self.features = features
        self.pool = pool
        self.head = head
        self.cut = cut
        self.source = source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))

    def extra_repr(self) -> str:
        return f"source={self.source!r}, cut={self.cut.name!r}"


def trim(model: nn.Module | str, cut: str | CutPoint, num_classes: int,
         head: str | nn.Module = "linear", input_shape=None, *, hidden: int = 512,
         dropout: float = 0.2, token_pool: str = "cls",
         table: LayerTable | None = None) -> TrimmedNet:
    """The TRN of ``model`` cut after ``cut``, with a new ``num_classes`` head.

    ``model``: a module (its weights are kept - pass the pretrained one; a model
    on ``meta`` gives a meta TRN, for checking shapes for free) or a spec string
    (built here with ``weights=None``). ``cut``: a block or layer cut name from
    :func:`cut_points`, or a CutPoint. ``head``: ``"linear"``, ``"mlp"``
    (Linear-ReLU-Dropout-Linear with ``hidden`` units) or a module mapping
    ``[B, C]`` to ``[B, num_classes]`` (used as given). ``table``: this model's
    LayerTable (traced at ``input_shape``, or giving it), when the caller has one,
    to skip tracing it again; one traced from a meta twin of the model will do.

    The TRN comes back in the source module's train/eval mode; its output shape
    is checked at construction (on meta or fake tensors, computing nothing).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise InvalidInputError(f"num_classes must be a positive integer, got {num_classes!r}")
    _make_head(head, 1, 1, hidden, dropout, {"device": "meta"})  # bad arguments fail first
    GlobalPool("NLC", token_pool)
    module, label = build_model(model)
    if table is not None and input_shape is None:
        shape = tuple(table.input_shape)
    else:
        shape = parse_input_shape(input_shape, model)
    if table is None:
        try:  # a spec is traced as cut_points traces it (built on meta): same rows
            table = trace(model, shape, tracer="fx")
        except TraceError as exc:
            raise TraceError(f"cannot trim {label} (a TRN is cut from the model's torch.fx "
                             f"graph): {exc}") from None
    elif tuple(table.input_shape) != shape:
        raise InvalidInputError(f"the table was traced at input {table.input_shape}, "
                                f"not {shape}; trace it again or pass input_shape")
    point = resolve_cut(table, cut)
    features = _prefix(module, table, point, label)
    pool = GlobalPool(point.layout, token_pool)
    param = next(features.parameters(), None)
    factory = {"device": param.device, "dtype": param.dtype} if param is not None else {}
    new_head = _make_head(head, point.channels, num_classes, hidden, dropout, factory)
    trn = TrimmedNet(features, pool, new_head, point, source=label)
    _check_output(trn, shape, num_classes)
    trn.train(module.training)
    return trn


# ----- building the prefix ---------------------------------------------------------------

class TrimTracer(fx.Tracer):
    """fx's tracer, keeping torchvision's StochasticDepth a module: traced through,
    its ``training`` flag would be frozen to the eval value."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _training_leaves()) or super().is_leaf_module(m, module_qualified_name)


def _training_leaves() -> tuple[type, ...]:
    try:
        from torchvision.ops import StochasticDepth
    except ImportError:  # torchvision is a dependency, but a user model may not need it
        return ()
    return (StochasticDepth,)


def _prefix(module: nn.Module, table: LayerTable, point: CutPoint, label: str) -> fx.GraphModule:
    """The graph of ``module`` up to the node of ``point``, owning a copy of its weights."""
    try:
        with eval_mode(module):
            graph = TrimTracer().trace(module)
    except Exception as exc:  # fx raises many types for untraceable code
        raise TraceError(f"cannot trim {label}: torch.fx cannot trace it "
                         f"({type(exc).__name__}: {_first_line(exc)})") from None
    whole = fx.GraphModule(module, graph, class_name=type(module).__name__)
    target = node_of_row(whole.graph, table, point.row_index)
    if target is None:
        raise TraceError(f"cannot trim {label}: no fx node matches cut {point.name!r} "
                         f"(table row {point.row_index}, {point.node!r}); was the table "
                         "traced from this model with the fx tracer?")
    graph = whole.graph
    nodes = list(graph.nodes)
    output = nodes[-1]
    output.args = (target,)
    output.kwargs = {}
    for node in reversed(nodes[nodes.index(target) + 1: -1]):
        graph.erase_node(node)
    graph.eliminate_dead_code(is_impure_node=keeps_effects)
    graph.lint()
    prefix = fx.GraphModule(whole, graph, class_name=f"{type(module).__name__}Prefix")
    # the TRN's own weights, never the source's tensors; layers reached at dict speed
    return bind_submodules(copy.deepcopy(prefix))


def _row_name(node: fx.Node) -> str | None:
    """The LayerTable row name fx_tracer gives ``node`` (None: never a row)."""
    if node.op == "call_module":
        return node.target
    if node.op in ("call_function", "call_method"):
        stack = node.meta.get("nn_module_stack") or {}
        path = next(reversed(stack.values()))[0] if stack else ""
        return f"{path}.{node.name}" if path else node.name
    return None


def node_of_row(graph: fx.Graph, table: LayerTable, row: int) -> fx.Node | None:
    """Row ``row``'s node: rows are named as their nodes, and a module run k times
    (ResNet's ``relu``) gives k rows of one name in graph order."""
    name = table.names[row]
    occurrence = table.names[:row].count(name)
    matches = [n for n in graph.nodes if _row_name(n) == name]
    return matches[occurrence] if occurrence < len(matches) else None


def keeps_effects(node: fx.Node) -> bool:
    """fx's purity test, plus in-place ops: a dropped ``x.relu_()`` would change
    what ``x`` holds for the nodes after it."""
    if node.is_impure():
        return True
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.startswith("__")
    if node.op == "call_function":
        if node.target in _INPLACE_OPERATORS or node.kwargs.get("inplace") is True:
            return True
        name = getattr(node.target, "__name__", "")
        return name.endswith("_") and not name.startswith("_")
    if node.op == "call_module":
        module = node.graph.owning_module.get_submodule(node.target)
        return getattr(module, "inplace", False) is True
    return False


# ----- heads, checks, model building ------------------------------------------------------

def _make_head(head, channels: int, num_classes: int, hidden: int, dropout: float,
               factory: dict) -> nn.Module:
    if isinstance(head, nn.Module):
        return head
    if head == "linear":
        return nn.Linear(channels, num_classes, **factory)
    if head == "mlp":
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden <= 0:
            raise InvalidInputError(f"hidden must be a positive integer, got {hidden!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise InvalidInputError(f"dropout must be in [0, 1), got {dropout!r}")
        return nn.Sequential(nn.Linear(channels, hidden, **factory), nn.ReLU(inplace=True),
                             nn.Dropout(dropout), nn.Linear(hidden, num_classes, **factory))
    import difflib

    close = difflib.get_close_matches(str(head), HEADS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InvalidInputError(f"head {head!r}: allowed {', '.join(HEADS)} or an nn.Module{hint}")


def _check_output(trn: TrimmedNet, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Run the TRN once at batch 2 without computing anything and insist on
    ``[2, num_classes]``: on meta stand-ins for its weights (fast), else on fake
    tensors (for models holding tensors that are not parameters or buffers)."""
    cut = trn.cut
    want_features = (_CHECK_BATCH, *cut.shape[1:])
    with eval_mode(trn), torch.no_grad():
        try:
            features, out = _shapes_on_meta(trn, input_shape)
        except Exception:
            features, out = _shapes_on_fake(trn, input_shape)
    if features != want_features:
        raise TraceError(f"the prefix of {trn.source} cut at {cut.name!r} gives "
                         f"{features}, the table says {want_features}")
    if out != (_CHECK_BATCH, num_classes):
        raise InvalidInputError(f"the TRN gives {out} for a batch of {_CHECK_BATCH}, not "
                                f"[{_CHECK_BATCH}, {num_classes}]: the head must map "
                                f"[B, {cut.channels}] to [B, {num_classes}]")


def _shapes_on_meta(trn: TrimmedNet, input_shape) -> tuple[tuple, tuple]:
    from torch.func import functional_call

    tensors = {**dict(trn.named_parameters()), **dict(trn.named_buffers())}
    stand_ins = {n: t if t.device.type == "meta" else torch.empty_like(t, device="meta")
                 for n, t in tensors.items()}
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    x = torch.empty((_CHECK_BATCH, *input_shape), dtype=dtype, device="meta")
    features = functional_call(trn.features, _strip(stand_ins, "features."), (x,))
    out = functional_call(trn.head, _strip(stand_ins, "head."), (trn.pool(features),))
    return tuple(features.shape), tuple(out.shape)


def _shapes_on_fake(trn: TrimmedNet, input_shape) -> tuple[tuple, tuple]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    tensors = list(trn.parameters()) + list(trn.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    cut = trn.cut
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty((_CHECK_BATCH, *input_shape), dtype=dtype, device=device)
        try:
            features = trn.features(x)
        except Exception as exc:
            raise TraceError(f"the prefix of {trn.source} cut at {cut.name!r} fails at input "
                             f"{'x'.join(map(str, input_shape))}: {_first_line(exc)}") from None
        try:
            out = trn.head(trn.pool(features))
        except Exception as exc:
            raise InvalidInputError(
                f"the head does not take the pooled features "
                f"[{_CHECK_BATCH}, {cut.channels}]: {_first_line(exc)}") from None
    return tuple(features.shape), tuple(out.shape)


def _strip(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def build_model(model: nn.Module | str) -> tuple[nn.Module, str]:
    """The module to cut: a given module as is, a spec built on the CPU with
    random weights (``weights=None``), since a TRN needs real tensors."""
    if isinstance(model, nn.Module):
        return model, type(model).__name__
    if not isinstance(model, str):
        raise InvalidInputError(f"model must be an nn.Module or a spec string, got {model!r}")
    source, _, name = model.strip().rpartition(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # init-scheme FutureWarnings of old models
        if source in ("", "torchvision", "tv") and name in torchvision_classifiers():
            import torchvision.models as tvm

            return tvm.get_model(name, weights=None), name
        _, label = resolve_model(model)  # the spec's errors, with suggestions
        return getattr(importlib.import_module(source), name)(), label


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
