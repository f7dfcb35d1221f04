"""``build``: a DynamicNet from a pretrained backbone, exits and widths.

Steps (each in its own module):

1. copy the backbone once (the dynamic network owns its weights; the backbone is
   never changed) and trace it with torch.fx (:mod:`.graph`);
2. resolve the candidate exits to cut points (:func:`netcut.planner.cut_points`);
3. find the sliceable channel groups, pinning exits (:mod:`.channels`), rank each
   group's channels by filter L1 norm and permute them once, most important first;
4. swap in slim layers that adopt the same Parameter objects (:mod:`.slim`) and
   cut the graph into stages between exits;
5. price every (exit, width) candidate on the device (:mod:`.pricing`) and keep a
   few spread over the budget range; without a device, keep them all.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch.fx as fx
import torch.nn as nn

from ..errors import InvalidInputError, TraceError
from ..hardware import load_hardware
from ..planner.cuts import CutPoint, cut_points, resolve_cut
from ..planner.trim import build_model
from ..tracing import parse_input_shape, trace
from .channels import ChannelGroup, find_groups, permute_groups
from .graph import exit_nodes, split_stages, trace_graph
from .net import DynamicNet, ExitHead, SubNet
from .selector import check_confidence, check_margin
from .pricing import Candidate, check_budgets, pareto, price_candidates, spread
from .slim import SlimBatchNorm2d, SlimConv2d, WidthState
from .static import _meta_clone
from .widths import parse_widths, requested

__all__ = ["build"]


def build(backbone: nn.Module | str, input_shape=None, *,
          exits: Sequence[str | CutPoint] | str | None = None, widths=None, num_classes: int,
          hardware=None, budgets_ms=None, max_subnets: int = 6,
          batch: int = 1, dtype: str = "float32", mode: str | None = None, divisor: int = 1,
          granularity: str = "block", alpha: float = 0.3, shared_correction: bool = True,
          margin: float = 0.0, confidence: float | None = None) -> DynamicNet:
    """A :class:`DynamicNet` of ``backbone``'s sub-networks.

    ``backbone``: a module (its weights are copied once, never changed) or a spec
    (``"resnet18"``, built with random weights). ``input_shape``: per sample.
    ``exits``: cut names (or CutPoints) of :func:`netcut.planner.cut_points`; None:
    every cut at ``granularity``. ``widths``: ratios in (0, 1] (uniform) and/or
    ``{layer pattern: ratio}`` mappings (non-uniform; see :mod:`.widths`); None:
    full width only. ``num_classes``: classes of every exit's new head.

    ``hardware``: a profile (name, YAML file or object) to price the sub-nets on
    at ``batch``/``dtype``/``mode``; then only the Pareto set (faster and not less
    capable) is kept, at most ``max_subnets``, spread over ``budgets_ms`` (a
    ``(low, high)`` range in ms, or the list of budgets expected). Without
    ``hardware`` every (exit, width) pair is a sub-net, and budgets cannot be
    judged until :meth:`DynamicNet.price` or :meth:`DynamicNet.measure_latency`.

    ``alpha``/``shared_correction``: the online correction (see
    :mod:`.correction`); ``margin``: share of each budget kept free when choosing;
    ``confidence`` (e.g. 0.9): choose so that about that share of runs fits, from
    the scatter of the measured latencies (None: by the expected latency).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise InvalidInputError(f"num_classes must be a positive integer, got {num_classes!r}")
    narrower = requested(widths)  # bad ratios fail before any tracing
    budgets = check_budgets(budgets_ms)
    if budgets is not None and hardware is None:
        raise InvalidInputError("budgets_ms needs hardware=...: the sub-nets are spread over the "
                                "budgets by their predicted latency on that device")
    if isinstance(max_subnets, bool) or not isinstance(max_subnets, int) or max_subnets < 1:
        raise InvalidInputError(f"max_subnets must be a positive integer, got {max_subnets!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidInputError(f"batch must be a positive integer, got {batch!r}")
    check_margin(margin)
    check_confidence(confidence)
    profile = None
    if hardware is not None:
        profile = hardware if hasattr(hardware, "overhead") else load_hardware(hardware)

    source, label = build_model(backbone)
    shape = parse_input_shape(input_shape, backbone)
    if any(t.device.type == "meta" for t in list(source.parameters()) + list(source.buffers())):
        raise InvalidInputError(f"{label} holds weights on the meta device; a dynamic network "
                                "needs real weights (build the model on the CPU)")
    model = copy.deepcopy(source)  # the one copy: every sub-net shares it
    gm = trace_graph(model, shape, label)
    if narrower and not find_groups(gm).groups:  # before exits: the reason is the backbone
        raise InvalidInputError(_no_groups(find_groups(gm), label))

    try:  # traced on a float32 twin on meta: free, and the same rows as the model
        table = trace(_meta_clone(model).float(), shape, tracer="fx")
    except TraceError as exc:
        raise TraceError(f"cannot build a dynamic network from {label}: {exc}") from None
    cuts = _resolve_exits(table, exits, granularity, label)
    nodes = exit_nodes(gm, table, cuts, label)
    analysis = find_groups(gm, {n: f"exit {c.name!r} reads it" for n, c in zip(nodes, cuts)})
    if narrower and not analysis.groups:
        raise InvalidInputError(_no_groups(analysis, label))
    groups = analysis.groups if narrower else []
    configs = parse_widths(widths, groups, divisor)

    permute_groups(gm, groups)
    state = WidthState(configs[0].channels, 0)
    if groups:
        _install_slim(gm, groups, state, len(configs))
    stages = split_stages(gm, nodes, [c.name for c in cuts])

    pairs = [(e, w) for e in range(len(cuts)) for w in range(len(configs))]
    candidates = price_candidates(stages, cuts, configs, shape, num_classes, pairs, profile,
                                  batch, dtype, mode, label)
    if profile is not None:
        candidates = spread(pareto(candidates), budgets, max_subnets)

    kept_exits = sorted({c.exit_index for c in candidates})
    kept_widths = sorted({c.width_index for c in candidates})
    if kept_exits != list(range(len(cuts))):
        nodes = [nodes[i] for i in kept_exits]
        cuts = [cuts[i] for i in kept_exits]
        stages = split_stages(gm, nodes, [c.name for c in cuts])
    if kept_widths != list(range(len(configs))):
        configs = [configs[i] for i in kept_widths]
        _keep_norm_rows(stages, kept_widths)
    exit_at = {old: new for new, old in enumerate(kept_exits)}
    width_at = {old: new for new, old in enumerate(kept_widths)}
    state.channels = configs[0].channels

    param = next(model.parameters(), None)
    factory = {"device": param.device, "dtype": param.dtype} if param is not None else {}
    heads = [ExitHead(c.layout, c.channels, num_classes, **factory) for c in cuts]
    subnets = _subnets(candidates, cuts, configs, exit_at, width_at)
    net = DynamicNet(stages, heads, cuts, groups, configs, subnets, state, source=label,
                     input_shape=shape, num_classes=num_classes,
                     hardware=profile.name if profile is not None else None, batch=batch,
                     dtype=dtype, alpha=alpha, shared_correction=shared_correction, margin=margin,
                     confidence=confidence)
    net.train(source.training)
    return net


def _resolve_exits(table, exits, granularity: str, label: str) -> list[CutPoint]:
    if exits is None:
        cuts = cut_points(table, granularity=granularity)
    else:
        items = [exits] if isinstance(exits, (str, CutPoint)) else list(exits)
        if not items:
            raise InvalidInputError("exits is empty: name at least one cut point (or pass None)")
        cuts = [resolve_cut(table, e) for e in items]
    cuts = sorted(cuts, key=lambda c: c.row_index)
    for a, b in zip(cuts, cuts[1:]):
        if a.row_index == b.row_index:
            raise InvalidInputError(f"{label}: exits {a.name!r} and {b.name!r} are the same cut")
    return cuts


def _no_groups(analysis, label: str) -> str:
    return f"cannot slice widths: {analysis.why_none(label)}"


def _install_slim(gm: fx.GraphModule, groups: Sequence[ChannelGroup], state: WidthState,
                  n_widths: int) -> None:
    """Replace, in ``gm``, each conv of a group by a SlimConv2d and every BatchNorm2d by
    a SlimBatchNorm2d with ``n_widths`` sets of statistics (same Parameter objects)."""
    out_group: dict[str, int] = {}
    in_group: dict[str, int] = {}
    norm_group: dict[str, int] = {}
    for g in groups:
        for name in g.producers + g.depthwise:
            out_group[name] = g.index
        for name in g.consumers:
            in_group[name] = g.index
        for name in g.norms:
            norm_group[name] = g.index
    for name, module in list(gm.named_modules()):
        if isinstance(module, nn.Conv2d) and (name in out_group or name in in_group):
            slim = SlimConv2d.adopt(module, state, out_group.get(name, -1), in_group.get(name, -1))
        elif type(module) is nn.BatchNorm2d:
            slim = SlimBatchNorm2d.adopt(module, state, norm_group.get(name, -1), n_widths)
        else:
            continue
        parent, _, field = name.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, field, slim)


def _keep_norm_rows(stages: Sequence[fx.GraphModule], rows: list[int]) -> None:
    seen: set[int] = set()
    for stage in stages:
        for module in stage.modules():
            if isinstance(module, SlimBatchNorm2d) and id(module) not in seen:
                seen.add(id(module))
                if not module.track_running_stats:
                    continue
                module.running_mean = module.running_mean[rows].clone()
                module.running_var = module.running_var[rows].clone()
                module.num_batches_tracked = module.num_batches_tracked[rows].clone()


def _subnets(candidates: Sequence[Candidate], cuts, configs, exit_at, width_at) -> list[SubNet]:
    ranked = sorted(candidates, key=lambda c: (c.latency_ms if c.latency_ms is not None else 0.0,
                                               c.flops))
    out = []
    for i, c in enumerate(ranked):
        e, w = exit_at[c.exit_index], width_at[c.width_index]
        out.append(SubNet(id=i, name=f"{cuts[e].name}@{configs[w].label}", exit=cuts[e].name,
                          exit_index=e, width=configs[w].label, width_index=w,
                          predicted_ms=c.latency_ms, flops=c.flops, params=c.params))
    return out
