"""Pricing (exit, width) candidates with the latency estimator, and keeping a few.

Each width is priced from ONE trace: the deepest candidate sub-net at that width
is built as a static twin on ``meta`` (free), traced like any network, scheduled
once on the device, and every exit at that width is that schedule's prefix plus
its own head (``netcut.planner.plan.price_network``, as the planner prices cuts).

Keeping: candidates are compared by predicted latency and FLOPs (the stand-in for
accuracy until it is measured): the Pareto set keeps a candidate only if every
faster one has fewer FLOPs. From it, :func:`spread` keeps at most ``max_subnets``
spread over the budget range: for each budget level the most capable candidate
predicted to fit, plus the fastest (what runs when nothing fits), then - while
room is left - the candidate farthest (in log latency) from those kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch.fx as fx

from ..errors import InvalidInputError, TraceError
from ..planner.cuts import CutPoint
from ..planner.plan import head_table, price_network
from ..tracing import trace
from .static import static_subnet
from .widths import WidthConfig

__all__ = ["Candidate", "check_budgets", "pareto", "price_candidates", "spread"]


@dataclass(frozen=True)
class Candidate:
    """One (exit, width) pair with its predicted latency (None: no device given),
    FLOPs and parameters at batch 1 (the head included)."""

    exit_index: int
    width_index: int
    latency_ms: float | None
    flops: float
    params: int


def price_candidates(stages: Sequence[fx.GraphModule], cuts: Sequence[CutPoint],
                     widths: Sequence[WidthConfig], input_shape: tuple[int, ...],
                     num_classes: int, pairs: Sequence[tuple[int, int]], profile=None,
                     batch: int = 1, dtype: str = "float32", mode: str | None = None,
                     label: str = "network") -> list[Candidate]:
    """FLOPs, parameters and (with a hardware ``profile``) latency of each
    ``(exit_index, width_index)`` pair in ``pairs``."""
    out: dict[tuple[int, int], Candidate] = {}
    for w in sorted({w for _, w in pairs}):
        exits = sorted(e for e, ww in pairs if ww == w)
        deepest = exits[-1]
        twin = static_subnet(stages[: deepest + 1], None, widths[w].channels, 0,
                             device="meta").float()  # traced in float32; priced at `dtype`
        try:
            table = trace(twin, input_shape, tracer="fx")
        except Exception as exc:
            raise TraceError(f"{label} at width {widths[w].label}: cannot trace the "
                             f"sub-network ({exc})") from None
        ends = _stage_ends(table.names, deepest + 1)
        priced = [replace(cuts[j], row_index=ends[j]) for j in range(deepest + 1)]
        heads, spans = head_table(priced, num_classes)
        latencies = None
        if profile is not None:
            _, latencies = price_network(table, priced, profile, batch, dtype, mode, num_classes,
                                         (heads, spans))
        flops = np.cumsum(table.flops1)
        stage_params = [sum(p.numel() for p in s.parameters()) for s in twin.stages]
        for j in exits:
            head_flops = float(heads.flops1[spans[j]].sum())
            head_params = cuts[j].channels * num_classes + num_classes
            out[(j, w)] = Candidate(
                exit_index=j, width_index=w,
                latency_ms=None if latencies is None else float(latencies[j]),
                flops=float(flops[ends[j]]) + head_flops,
                params=int(sum(stage_params[: j + 1]) + head_params))
    return [out[p] for p in pairs]


def _stage_ends(names: Sequence[str], n_stages: int) -> list[int]:
    """Row index of the last op of each stage (rows are named ``stages.<j>.<...>``)."""
    ends = [-1] * n_stages
    for i, name in enumerate(names):
        parts = name.split(".", 2)
        if len(parts) >= 2 and parts[0] == "stages" and parts[1].isdigit():
            j = int(parts[1])
            if j < n_stages:
                ends[j] = i
    if any(e < 0 for e in ends):
        raise TraceError("a stage of the dynamic network traced to no rows")
    return ends


def check_budgets(budgets_ms) -> list[float] | None:
    """The budgets as a sorted list of positive ms (a ``(low, high)`` range or several
    budgets; strings like ``"5ms"`` work); None stays None."""
    if budgets_ms is None:
        return None
    from ..planner.plan import check_deadline

    items = [budgets_ms] if isinstance(budgets_ms, (int, float, str)) else budgets_ms
    try:
        values = sorted(check_deadline(b) for b in items)
    except TypeError:
        raise InvalidInputError(f"budgets_ms must be a (low, high) pair or a list of budgets "
                                f"in ms, got {budgets_ms!r}") from None
    if not values:
        raise InvalidInputError("budgets_ms is empty: give a (low, high) pair in ms")
    return values


def pareto(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Fastest first; a candidate stays if it has more FLOPs than every faster one."""
    ranked = sorted(candidates, key=lambda c: (c.latency_ms, -c.flops))
    front: list[Candidate] = []
    for c in ranked:
        if not front or c.flops > front[-1].flops:
            front.append(c)
    return front


def spread(front: Sequence[Candidate], budgets_ms: Sequence[float] | None,
           max_subnets: int) -> list[Candidate]:
    """At most ``max_subnets`` of a Pareto front (fastest first) covering the budgets
    (more when more than ``max_subnets`` budgets are listed); see the module docstring."""
    if not front:
        return []
    if budgets_ms is None:
        lo, hi = front[0].latency_ms, front[-1].latency_ms
    else:
        lo, hi = budgets_ms[0], budgets_ms[-1]
    if max_subnets == 1:  # one network for every budget: the best that fits the lowest
        fits = [i for i, c in enumerate(front) if c.latency_ms <= lo]
        return [front[fits[-1] if fits else 0]]
    if budgets_ms is not None and len(budgets_ms) > 2:
        targets = list(budgets_ms)
    elif max_subnets == 2 or hi <= lo:
        targets = [hi]
    else:  # the fastest takes one place
        targets = list(np.geomspace(lo, hi, max_subnets - 1))
    chosen = {0}  # the fastest: what runs when no budget is met
    for t in targets:
        fits = [i for i, c in enumerate(front) if c.latency_ms <= t]
        if fits:
            chosen.add(fits[-1])
    in_range = [i for i, c in enumerate(front) if c.latency_ms <= hi]
    while len(chosen) < max_subnets:
        rest = [i for i in in_range if i not in chosen]
        if not rest:
            break
        logs = [math.log(front[i].latency_ms) for i in chosen]
        chosen.add(max(rest, key=lambda i: min(abs(math.log(front[i].latency_ms) - x)
                                                 for x in logs)))
    return [front[i] for i in sorted(chosen)]
