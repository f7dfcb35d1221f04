"""The NetCut planner: which network, cut where, meets the deadline on which device.

Every (network, cut) candidate is priced from ONE trace per network: the whole
network is scheduled once per device, and a trimmed network (TRN) is that
schedule's prefix up to the cut plus its own small head (global pool + linear),
stepped through on its own (``timeline.continue_schedule``). So a new deadline
only re-compares numbers, and a new device costs one pricing per network.

A candidate is *feasible* when its latency is within the deadline; with a
``confidence`` and a calibrated profile, its upper prediction bound must be. The
*proposal set* (NetCut's TRNs to retrain) is, per network and device, the deepest
feasible cut (most pretrained features kept) plus a few runners-up just shallower.
Depth kept (the share of the network's matrix FLOPs before the cut) stands in for
accuracy until retraining has measured it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import torch.nn as nn

from ..dtypes import normalize_dtype
from ..errors import InvalidInputError, NetcutError
from ..estimate import estimate_table
from ..estimate.roofline import RowCosts, price_rows
from ..estimate.timeline import continue_schedule
from ..hardware import load_hardware
from ..models import default_input_shape, torchvision_classifiers
from ..opclasses import OP_CLASS_INDEX
from ..tracing import LayerTable, parse_input_shape, trace
from ..tracing.cache import trace_cached
from .cuts import CutPoint, cut_points

__all__ = ["Candidate", "Plan", "plan", "price_network"]


@dataclass(frozen=True)
class Candidate:
    """One trimmed network on one device. ``whole``: the cut at the feature end, i.e.
    the off-the-shelf network with a new head."""

    network: str
    hardware: str
    cut: str
    cut_index: int  # position among the network's cuts, 0 = shallowest
    depth_fraction: float
    channels: int
    params_kept: int
    flops_kept: float  # per sample
    latency_ms: float
    upper_ms: float  # the bound at the plan's confidence (= latency_ms when none)
    whole: bool


@dataclass
class Plan:
    """Candidates and what the deadline makes of them. Cheap to re-ask:
    :meth:`with_deadline` re-marks feasibility without pricing anything again."""

    deadline_ms: float
    batch: int
    dtype: str
    mode: str | None
    confidence: float | None
    num_classes: int
    hardware: list[str]
    networks: list[str]
    candidates: list[Candidate]
    skipped: dict[str, str] = field(default_factory=dict)  # network -> why
    calibrated: dict[str, bool] = field(default_factory=dict)  # hardware -> has interval
    unsupported: dict[str, dict[str, int]] = field(default_factory=dict)
    runners_up: int = 2
    #: (network, hardware) -> the whole network's Estimate; (network) -> cut rows
    estimates: dict = field(default_factory=dict, repr=False, compare=False)
    cut_rows: dict = field(default_factory=dict, repr=False, compare=False)

    # ----- what the deadline decides ---------------------------------------------
    def is_feasible(self, c: Candidate) -> bool:
        return c.upper_ms <= self.deadline_ms

    def feasible(self) -> list[Candidate]:
        return [c for c in self.candidates if self.is_feasible(c)]

    def off_the_shelf(self) -> list[Candidate]:
        """Whole networks (all features kept, new head) that meet the deadline."""
        return [c for c in self.candidates if c.whole and self.is_feasible(c)]

    def proposals(self) -> list[Candidate]:
        """NetCut's set: per (network, device), the deepest feasible cut and up to
        ``runners_up`` feasible cuts just shallower than it."""
        out = []
        for group in self._groups().values():
            ok = [c for c in group if self.is_feasible(c)]
            out.extend(sorted(ok, key=lambda c: -c.cut_index)[: 1 + self.runners_up])
        return out

    def pareto(self, hardware: str | None = None) -> list[Candidate]:
        """Feasible candidates no other beats on both latency and depth kept,
        fastest first (per device: latencies on two devices do not compare)."""
        name = hardware or self.hardware[0]
        pool = sorted((c for c in self.feasible() if c.hardware == name),
                      key=lambda c: (c.latency_ms, -c.depth_fraction))
        front, best = [], -1.0
        for c in pool:
            if c.depth_fraction > best:
                front.append(c)
                best = c.depth_fraction
        return front

    def fastest(self, hardware: str | None = None) -> Candidate | None:
        pool = [c for c in self.candidates if hardware in (None, c.hardware)]
        return min(pool, key=lambda c: c.upper_ms) if pool else None

    def matrix(self) -> dict[str, dict[str, dict]]:
        """network -> device -> deepest feasible cut and its slack (deadline - bound)."""
        out: dict[str, dict[str, dict]] = {}
        for (network, hw), group in self._groups().items():
            ok = [c for c in group if self.is_feasible(c)]
            best = max(ok, key=lambda c: c.cut_index) if ok else None
            out.setdefault(network, {})[hw] = (
                {"cut": best.cut, "depth_fraction": best.depth_fraction, "whole": best.whole,
                 "latency_ms": best.latency_ms, "slack_ms": self.deadline_ms - best.upper_ms}
                if best else {"cut": None, "fastest_ms": min(c.upper_ms for c in group)})
        return out

    def breakdown(self, c: Candidate, top: int = 5) -> dict:
        """What bounds a candidate's kept rows (share of their time by compute /
        memory / overhead) and its slowest blocks, from the network's schedule."""
        est = self.estimates[(c.network, c.hardware)]
        stop = self.cut_rows[c.network][c.cut_index] + 1
        row_ms = est.row_ms[:stop]
        bound = np.array(est.bound[:stop])
        total = float(row_ms.sum()) or 1.0
        shares = {b: float(row_ms[bound == b].sum() / total) for b in ("compute", "memory", "overhead")}
        blocks: dict[str, float] = {}
        for name, ms in zip(est.table.blocks[:stop], row_ms):
            blocks[name] = blocks.get(name, 0.0) + float(ms)
        slowest = sorted(blocks.items(), key=lambda kv: -kv[1])[:top]
        return {"bound_share": shares, "slowest_blocks": slowest}

    def with_deadline(self, deadline_ms: float) -> "Plan":
        return replace(self, deadline_ms=check_deadline(deadline_ms))

    def _groups(self) -> dict[tuple[str, str], list[Candidate]]:
        groups: dict[tuple[str, str], list[Candidate]] = {}
        for c in self.candidates:
            groups.setdefault((c.network, c.hardware), []).append(c)
        return groups

    # ----- output ------------------------------------------------------------------
    def summary(self) -> dict:
        """Everything as plain data (the JSON output and the reports read this)."""
        def rec(c: Candidate) -> dict:
            return {**c.__dict__, "feasible": self.is_feasible(c)}

        fastest = {hw: rec(self.fastest(hw)) for hw in self.hardware if self.fastest(hw)}
        return {
            "deadline_ms": self.deadline_ms, "batch": self.batch, "dtype": self.dtype,
            "mode": self.mode, "confidence": self.confidence, "num_classes": self.num_classes,
            "hardware": self.hardware, "networks": self.networks,
            "calibrated": self.calibrated,
            "counts": {"candidates": len(self.candidates), "feasible": len(self.feasible()),
                       "off_the_shelf": len(self.off_the_shelf()),
                       "proposals": len(self.proposals())},
            "off_the_shelf": [rec(c) for c in self.off_the_shelf()],
            "proposals": [rec(c) for c in self.proposals()],
            "pareto": {hw: [rec(c) for c in self.pareto(hw)] for hw in self.hardware},
            "matrix": self.matrix(),
            "fastest": fastest,
            "skipped": self.skipped,
            "unsupported_ops": self.unsupported,
            "candidates": [rec(c) for c in self.candidates],
        }


def check_deadline(deadline_ms) -> float:
    """A deadline in ms, or a string like ``20ms``, ``0.5s``, ``800us``."""
    value = parse_time_ms(deadline_ms) if isinstance(deadline_ms, str) else deadline_ms
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"deadline {deadline_ms!r} is not a time (try 20ms)")
    if value <= 0:
        raise InvalidInputError(f"deadline must be positive, got {deadline_ms!r}")
    return float(value)


_UNITS = {"ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}


def parse_time_ms(text: str) -> float:
    """``"20ms"`` / ``"0.5s"`` / ``"800us"`` / ``"20"`` (ms) -> milliseconds."""
    raw = text.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)].strip(), _UNITS[unit]
            break
    else:
        number, scale = raw, 1.0
    try:
        return float(number) * scale
    except ValueError:
        raise InvalidInputError(f"deadline {text!r} is not a time (try 20ms, 0.5s or 800us)") from None


# ----- pricing ------------------------------------------------------------------------

def head_table(cuts: Sequence[CutPoint], num_classes: int) -> tuple[LayerTable, list[slice]]:
    """The new heads of every cut, as ONE table (priced in one go), and each cut's rows.

    A head is what ``trim`` builds: :class:`GlobalPool` (a free view, then a mean over
    the spatial axes; a class-token readout is a free view) and ``Linear(C, classes)``.
    Its rows are written out here instead of traced, because tracing a thousand
    small heads would dominate a zoo-wide plan; ``tests/test_plan.py`` checks they
    equal the traced head row for row.
    """
    rows: list[tuple] = []
    spans = []
    for cut in cuts:
        start = len(rows)
        c, k = cut.channels, num_classes
        per_sample = int(np.prod(cut.shape[1:]))
        if cut.layout == "NLC":
            rows.append(("pool.getitem", "view", "view", 0, 0, 0, (c,), 0))
        else:
            rows.append(("pool.flatten", "view", "view", 0, 0, 0, cut.shape[1:], 0))
            rows.append(("pool.mean", "mean", "reduction", per_sample, per_sample, c, (c,), 1))
        rows.append(("head", "linear", "matmul", 2 * c * k, c, k, (k,), 1))
        spans.append(slice(start, len(rows)))
    n = len(rows)
    weights = np.array([(c.channels * num_classes + num_classes) if r[1] == "linear" else 0
                        for c, span in zip(cuts, spans) for r in rows[span]], dtype=float)
    table = LayerTable(
        model_name="heads", input_shape=cuts[0].shape[1:] if cuts else (),
        names=[r[0] for r in rows], ops=[r[1] for r in rows], blocks=["head"] * n,
        in_shapes=[((1,),)] * n, out_shapes=[(1, *r[6]) for r in rows],
        op_class_idx=np.array([OP_CLASS_INDEX[r[2]] for r in rows], dtype=int),
        flops1=np.array([r[3] for r in rows], dtype=float),
        act_read1=np.array([r[4] for r in rows], dtype=float),
        weight_read=weights,
        act_write1=np.array([r[5] for r in rows], dtype=float),
        params=weights.astype(np.int64),
        kernels=np.array([r[7] for r in rows], dtype=int),
        cut_legal=np.zeros(n, dtype=bool), batch_scaled=np.ones(n, dtype=bool),
        supported=np.ones(n, dtype=bool))
    return table, spans


def _slice_costs(costs: RowCosts, span: slice) -> RowCosts:
    return RowCosts(costs.compute_s[span], costs.memory_s[span], costs.kernel_s[span],
                    costs.device_s[span], costs.host_s[span], costs.launch_s)


def price_network(table: LayerTable, cuts: Sequence[CutPoint], profile, batch: int, dtype: str,
                  mode: str | None, num_classes: int, heads=None):
    """Latency (ms) of every cut's TRN on ``profile``, from one schedule of ``table``
    and one pricing of all the heads (``heads``: a cached ``head_table`` result)."""
    est = estimate_table(table.at(batch=batch, dtype=dtype), profile, mode)
    asynchronous = profile.kind == "gpu"
    heads_table, spans = heads if heads is not None else head_table(cuts, num_classes)
    head_costs = price_rows(heads_table.at(batch=batch, dtype=dtype), profile, est.mode)
    latencies = np.array([
        continue_schedule(est.sched, cut.row_index + 1, _slice_costs(head_costs, span), asynchronous)
        for cut, span in zip(cuts, spans)]) * 1e3
    return est, latencies


def _interval_factor(profile, confidence: float | None) -> float | None:
    """Multiplier from a prediction to its one-sided upper bound at ``confidence``,
    from the calibrated profile's log-residual spread; None when not calibrated."""
    if confidence is None:
        return 1.0
    calibration = profile.calibration or {}
    sd = calibration.get("log_residual_sd")
    if sd is None:
        return None
    from scipy.stats import norm

    return float(math.exp(norm.ppf(confidence) * float(sd)))


def plan(models: Iterable[str | nn.Module] | str | None, hardware, deadline_ms,
         batch: int = 1, dtype: str = "float32", confidence: float | None = None,
         mode: str | None = None, num_classes: int = 10, input_shape=None,
         granularity: str = "block", runners_up: int = 2,
         progress: Callable[[int, int, str], None] | None = None,
         strict: bool = False) -> Plan:
    """Price every (network, cut) on every device and judge it against the deadline.

    ``models``: specs or modules; None = every torchvision classifier. ``hardware``:
    a profile name/path/object or a list of them. ``confidence`` (e.g. 0.9): judge
    the upper bound of a calibrated profile's prediction interval. ``strict``: a
    network that cannot be traced is an error instead of a skipped entry.
    """
    deadline = check_deadline(deadline_ms)
    dtype = normalize_dtype(dtype)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise InvalidInputError(f"batch must be a positive integer, got {batch!r}")
    if confidence is not None and not 0.5 <= confidence < 1:
        raise InvalidInputError(f"confidence must be in [0.5, 1), got {confidence!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidInputError(f"num_classes must be a positive integer, got {num_classes!r}")
    specs = list(torchvision_classifiers()) if models is None else (
        [models] if isinstance(models, (str, nn.Module)) else list(models))
    if not specs:
        raise InvalidInputError("no models to plan for")
    hw_list = hardware if isinstance(hardware, (list, tuple)) else [hardware]
    profiles = [h if hasattr(h, "overhead") else load_hardware(h) for h in hw_list]
    factors = {p.name: _interval_factor(p, confidence) for p in profiles}
    uncalibrated = [n for n, f in factors.items() if f is None]
    if uncalibrated:
        warnings.warn(f"{', '.join(uncalibrated)}: not calibrated, so no prediction interval; "
                      f"confidence {confidence} ignored there (point predictions judged)",
                      stacklevel=2)

    result = Plan(deadline_ms=deadline, batch=batch, dtype=dtype, mode=mode,
                  confidence=confidence, num_classes=num_classes,
                  hardware=[p.name for p in profiles], networks=[], candidates=[],
                  calibrated={n: f not in (None, 1.0) for n, f in factors.items()},
                  runners_up=runners_up)
    for k, spec in enumerate(specs):
        label = spec if isinstance(spec, str) else type(spec).__name__
        if progress:
            progress(k, len(specs), label)
        try:
            shape = parse_input_shape(input_shape, spec) if input_shape is not None else (
                default_input_shape(spec) if isinstance(spec, str) else (3, 224, 224))
            table = trace_cached(spec, shape) if isinstance(spec, str) else trace(spec, shape)
            cuts = cut_points(table, granularity=granularity)
        except NetcutError as exc:
            if strict:
                raise
            result.skipped[label] = str(exc)
            continue
        name = table.model_name
        result.networks.append(name)
        result.cut_rows[name] = [c.row_index for c in cuts]
        if table.unsupported():
            result.unsupported[name] = table.unsupported()
        heads = head_table(cuts, num_classes)
        for profile in profiles:
            est, latency = price_network(table, cuts, profile, batch, dtype, mode, num_classes,
                                         heads)
            result.estimates[(name, profile.name)] = est
            factor = factors[profile.name] or 1.0
            for i, (cut, ms) in enumerate(zip(cuts, latency)):
                result.candidates.append(Candidate(
                    network=name, hardware=profile.name, cut=cut.name, cut_index=i,
                    depth_fraction=cut.depth_fraction, channels=cut.channels,
                    params_kept=cut.params_kept, flops_kept=cut.flops_kept,
                    latency_ms=float(ms), upper_ms=float(ms * factor),
                    whole=i == len(cuts) - 1))
    if progress:
        progress(len(specs), len(specs), "done")
    if not result.networks:
        raise InvalidInputError("no network could be planned: " + "; ".join(
            f"{k}: {v}" for k, v in result.skipped.items()))
    return result
