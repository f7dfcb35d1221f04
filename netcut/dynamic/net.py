"""DynamicNet: several sub-networks sharing one set of weights, switched at run time.

A sub-net is an (exit, width) pair: run the stages up to the exit at that width,
then the exit's head. ``activate(id)`` makes one the active sub-net: it sets the
shared :class:`~netcut.dynamic.slim.WidthState` (two attribute assignments) and
which head to stop at - no tensor is made, copied or moved. Then:

- ``net(x)``: the active sub-net (training: ``net.activate(id)`` per step, then
  ``net(x)``);
- ``net(x, subnet=id)``: that sub-net;
- ``net(x, budget_ms=b)``: the most capable sub-net expected to fit ``b``, timed,
  and the time fed back to the online correction; ``net.last_decision`` says
  what ran and whether the budget was missed (``net.run(x, b)`` returns it).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from typing import Mapping, Sequence

import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import InvalidInputError
from ..planner.cuts import CutPoint
from ..planner.trim import GlobalPool
from .channels import ChannelGroup
from .correction import LatencyCorrector
from .selector import Choice, Decision, Selector, check_confidence, check_margin
from .slim import SlimBatchNorm2d, WidthState
from .static import StaticSubnet, static_subnet
from .widths import WidthConfig

__all__ = ["DynamicNet", "ExitHead", "SubNet"]


class ExitHead(nn.Module):
    """An exit's head: global pooling of the exit's activation, then ``Linear``."""

    def __init__(self, layout: str, channels: int, num_classes: int, **factory):
        super().__init__()
        self.pool = GlobalPool(layout)
        self.fc = nn.Linear(channels, num_classes, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x))


@dataclass(frozen=True)
class SubNet:
    """One sub-network: exit ``exit`` at width ``width``. ``predicted_ms``: the
    estimator's latency on the build's device and batch (None: not priced);
    ``accuracy``: filled after training/evaluation (None: unknown)."""

    id: int
    name: str
    exit: str
    exit_index: int
    width: str
    width_index: int
    predicted_ms: float | None
    flops: float
    params: int
    accuracy: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class _Cursor:
    """The mutable run-time state of a DynamicNet (a plain object: cheap to set)."""

    def __init__(self):
        self.subnet = -1
        self.stop = -1
        self.last: Decision | None = None


class DynamicNet(nn.Module):
    """Sub-networks of one backbone sharing its weights (see the module docstring).

    Built by :func:`netcut.dynamic.build`; ``stages[j]`` runs from exit ``j - 1`` to
    exit ``j``, ``heads[j]`` is exit ``j``'s head. ``subnets`` are ordered fastest
    (or smallest) first; ids and names (``"layer3.1@0.5"``) both select one.
    """

    def __init__(self, stages: Sequence[fx.GraphModule], heads: Sequence[ExitHead],
                 exits: Sequence[CutPoint], groups: Sequence[ChannelGroup],
                 widths: Sequence[WidthConfig], subnets: Sequence[SubNet], state: WidthState, *,
                 source: str, input_shape: tuple[int, ...], num_classes: int,
                 hardware: str | None = None, batch: int = 1, dtype: str = "float32",
                 alpha: float = 0.3, shared_correction: bool = True, margin: float = 0.0,
                 confidence: float | None = None):
        super().__init__()
        if not subnets:
            raise InvalidInputError("a dynamic network needs at least one sub-net")
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)
        self.exits = tuple(exits)
        self.groups = tuple(groups)
        self.widths = tuple(widths)
        self.source = source
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.hardware = hardware
        self.batch = batch
        self.dtype = dtype
        self.auto_observe = True
        self._state = state
        self._cursor = _Cursor()
        self._subnets = tuple(subnets)
        self._by_name = {s.name: s.id for s in subnets}
        self._plan = tuple((s.exit_index, widths[s.width_index].channels, s.width_index)
                           for s in subnets)
        self.corrector = LatencyCorrector(len(subnets), alpha, shared_correction)
        self._margin = check_margin(margin)
        self._confidence = check_confidence(confidence)
        self._refresh()
        self.activate(len(subnets) - 1)

    # ----- sub-nets ---------------------------------------------------------------
    @property
    def subnets(self) -> tuple[SubNet, ...]:
        return self._subnets

    @property
    def active(self) -> SubNet:
        return self._subnets[self._cursor.subnet]

    @property
    def last_decision(self) -> Decision | None:
        """The last budgeted run (``net(x, budget_ms=...)``): what ran, expected and
        measured ms, whether it was expected to fit and whether it missed."""
        return self._cursor.last

    @property
    def margin(self) -> float:
        return self._margin

    @margin.setter
    def margin(self, value: float) -> None:
        self._margin = check_margin(value)
        self._selector.margin = self._margin

    @property
    def confidence(self) -> float | None:
        """None: choose by the expected (mean) latency; 0.9: leave room for the
        scatter seen so far, so that about 90% of runs fit (see :mod:`.selector`)."""
        return self._confidence

    @confidence.setter
    def confidence(self, value: float | None) -> None:
        self._confidence = check_confidence(value)
        self._selector.confidence = self._confidence

    def subnet(self, key: int | str) -> SubNet:
        """The sub-net with id or name ``key``; a clear error for an unknown one."""
        return self._subnets[self._index(key)]

    def _index(self, key) -> int:
        if type(key) is int and 0 <= key < len(self._subnets):
            return key
        if isinstance(key, str) and key in self._by_name:
            return self._by_name[key]
        if isinstance(key, SubNet) and key in self._subnets:
            return key.id
        if hasattr(key, "__index__") and not isinstance(key, bool):
            i = key.__index__()
            if 0 <= i < len(self._subnets):
                return i
        known = ", ".join(f"{s.id}={s.name}" for s in self._subnets)
        raise InvalidInputError(f"unknown sub-net {key!r}: ids 0..{len(self._subnets) - 1} "
                                f"or names ({known})")

    def activate(self, subnet: int | str) -> SubNet:
        """Make ``subnet`` the one ``net(x)`` runs. Allocates and copies nothing."""
        i = self._index(subnet)
        cursor = self._cursor
        if cursor.subnet != i:
            stop, channels, k = self._plan[i]
            state = self._state
            state.channels = channels
            state.bn_index = k
            cursor.subnet = i
            cursor.stop = stop
        return self._subnets[i]

    # ----- running ----------------------------------------------------------------
    def forward(self, x: torch.Tensor, budget_ms: float | None = None,
                subnet: int | str | None = None) -> torch.Tensor:
        if budget_ms is not None:
            if subnet is not None:
                raise InvalidInputError("give a budget or a sub-net, not both")
            return self.run(x, budget_ms)[0]
        if subnet is not None:
            self.activate(subnet)
        return self._run_active(x)

    def _run_active(self, x: torch.Tensor) -> torch.Tensor:
        stop = self._cursor.stop
        for _, stage in zip(range(stop + 1), self.stages):
            x = stage(x)
        return self.heads[stop](x)

    def run(self, x: torch.Tensor, budget_ms: float) -> tuple[torch.Tensor, Decision]:
        """Run the sub-net chosen for ``budget_ms`` and return ``(output, decision)``.
        The run is timed (on CUDA with a synchronize before and after) and, with
        ``auto_observe`` (the default), the time corrects later choices."""
        sync = (lambda: torch.cuda.synchronize(x.device)) if x.is_cuda else None

        def run_subnet(i: int) -> torch.Tensor:
            self.activate(i)
            return self._run_active(x)

        out, decision = self._selector.timed(run_subnet, budget_ms, self.auto_observe, sync)
        self._cursor.last = decision
        return out, decision

    def forward_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit at the active width, in one pass (each head runs
        before the next stage, so in-place ops downstream cannot touch its input):
        what multi-exit training needs."""
        outs = []
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            outs.append(head(x))
        return outs

    # ----- choosing ----------------------------------------------------------------
    def select(self, budget_ms: float, margin: float | None = None) -> Choice:
        """The sub-net for ``budget_ms``: the most capable whose expected latency
        (prediction x online correction) is within ``budget * (1 - margin)``; the
        fastest with ``fits=False`` when none is."""
        return self._selector.select(budget_ms, margin)

    def observe(self, subnet: int | str, measured_ms: float) -> None:
        """Feed a measured latency of ``subnet`` (ms) to the online correction."""
        self._selector.observe(self._index(subnet), measured_ms)

    def expected_ms(self, subnet: int | str) -> float | None:
        """Predicted latency x the current correction factor."""
        return self._selector.expected_ms(self._index(subnet))

    def measure_latency(self, x: torch.Tensor, repeats: int = 5, warmup: int = 1,
                        observe: bool = True,
                        subnets: Sequence[int | str] | None = None) -> dict[str, float]:
        """Median ms of each sub-net on ``x`` (inference mode); with ``observe``, each
        timed run is fed to the correction (a quick on-device calibration)."""
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise InvalidInputError(f"repeats must be a positive integer, got {repeats!r}")
        ids = [self._index(s) for s in (subnets if subnets is not None else range(len(self._subnets)))]
        previous = self._cursor.subnet
        sync = (lambda: torch.cuda.synchronize(x.device)) if x.is_cuda else (lambda: None)
        out: dict[str, float] = {}
        with torch.inference_mode():
            for i in ids:
                self.activate(i)
                for _ in range(warmup):
                    self._run_active(x)
                samples = []
                for _ in range(repeats):
                    sync()
                    start = time.perf_counter()
                    self._run_active(x)
                    sync()
                    samples.append((time.perf_counter() - start) * 1e3)
                    if observe:
                        self._selector.observe(i, samples[-1])
                out[self._subnets[i].name] = statistics.median(samples)
        self.activate(previous)
        return out

    # ----- metadata ----------------------------------------------------------------
    def set_accuracy(self, subnet: int | str, accuracy: float | None) -> None:
        """Record a sub-net's measured accuracy (any scale where larger is better).
        Once every sub-net has one, choices rank by accuracy instead of FLOPs."""
        self.set_accuracies({subnet: accuracy})

    def set_accuracies(self, accuracies: Mapping[int | str, float | None]) -> None:
        subnets = list(self._subnets)
        for key, value in accuracies.items():
            i = self._index(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidInputError(f"accuracy of {subnets[i].name!r} must be a number, got {value!r}")
            subnets[i] = replace(subnets[i], accuracy=None if value is None else float(value))
        self._subnets = tuple(subnets)
        self._refresh(keep_predictions=True)

    def set_predictions(self, predicted_ms: Mapping[int | str, float], hardware: str | None = None) -> None:
        """Replace predicted latencies (another device, batch or calibration): the
        online correction starts over."""
        subnets = list(self._subnets)
        for key, value in predicted_ms.items():
            i = self._index(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise InvalidInputError(f"predicted latency of {subnets[i].name!r} must be a "
                                        f"positive number of ms, got {value!r}")
            subnets[i] = replace(subnets[i], predicted_ms=float(value))
        self._subnets = tuple(subnets)
        if hardware is not None:
            self.hardware = hardware
        self.corrector.reset()
        self._refresh()

    def price(self, hardware, batch: int = 1, dtype: str = "float32",
              mode: str | None = None) -> dict[str, float]:
        """Predict every sub-net's latency on ``hardware`` (a profile name, file or
        object) and use those predictions from now on; returns name -> ms."""
        from ..hardware import load_hardware
        from .pricing import price_candidates

        profile = hardware if hasattr(hardware, "overhead") else load_hardware(hardware)
        pairs = [(s.exit_index, s.width_index) for s in self._subnets]
        priced = price_candidates(list(self.stages), self.exits, self.widths, self.input_shape,
                                  self.num_classes, pairs, profile, batch, dtype, mode, self.source)
        self.batch, self.dtype = batch, dtype
        self.set_predictions({s.id: c.latency_ms for s, c in zip(self._subnets, priced)},
                             hardware=profile.name)
        return {s.name: s.predicted_ms for s in self._subnets}

    def _refresh(self, keep_predictions: bool = False) -> None:
        subnets = self._subnets
        accuracies = [s.accuracy for s in subnets]
        scores = accuracies if all(a is not None for a in accuracies) else [s.flops for s in subnets]
        predicted = [s.predicted_ms for s in subnets]
        if keep_predictions and hasattr(self, "_selector"):
            predicted = self._selector.predicted_ms  # measured stand-ins included
        self._selector = Selector(predicted, scores, self.corrector, self._margin,
                                  [s.name for s in subnets], self._confidence)

    # ----- views of one sub-net ------------------------------------------------------
    def static(self, subnet: int | str, *, device: str | None = None, share: bool = True) -> StaticSubnet:
        """``subnet`` as a plain static network: on ``meta`` (``device="meta"``, for
        tracing and pricing), with weights that are views of this network's
        (``share=True``) or with its own contiguous copies (``share=False``)."""
        s = self.subnet(subnet)
        return static_subnet(list(self.stages)[: s.exit_index + 1], self.heads[s.exit_index],
                             self.widths[s.width_index].channels, s.width_index,
                             device=device, share=share)

    def num_parameters(self, subnet: int | str | None = None) -> int:
        """Parameters the sub-net (default: the active one) computes with."""
        key = self._cursor.subnet if subnet is None else subnet
        return sum(p.numel() for p in self.static(key, device="meta").parameters())

    def slim_norms(self) -> list[SlimBatchNorm2d]:
        return [m for m in self.modules() if isinstance(m, SlimBatchNorm2d)]

    def summary(self) -> dict:
        """A JSON-ready description: exits, channel groups, widths, sub-nets with
        their predicted and currently expected latency, the correction state."""
        return {
            "source": self.source,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "hardware": self.hardware,
            "batch": self.batch,
            "dtype": self.dtype,
            "exits": [{"name": c.name, "channels": c.channels, "depth_fraction": c.depth_fraction}
                      for c in self.exits],
            "groups": [g.to_dict() for g in self.groups],
            "widths": [w.to_dict() for w in self.widths],
            # predicted_ms: the estimator's, or the first measurement where there was none
            "subnets": [{**s.to_dict(), "predicted_ms": self._selector.predicted_ms[s.id],
                         "expected_ms": self.expected_ms(s.id)} for s in self._subnets],
            "active": self._cursor.subnet,
            "margin": self._margin,
            "confidence": self._confidence,
            "correction": self.corrector.state_dict(),
            "parameters": sum(p.numel() for p in self.parameters()),
        }

    # ----- persistence: sub-net metadata travels with the state_dict ---------------------
    def get_extra_state(self) -> dict:
        return {"subnets": [s.name for s in self._subnets],
                "predicted_ms": list(self._selector.predicted_ms),
                "accuracy": [s.accuracy for s in self._subnets],
                "hardware": self.hardware, "margin": self._margin,
                "confidence": self._confidence,
                "correction": self.corrector.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        names = [s.name for s in self._subnets]
        if list(state.get("subnets", [])) != names:
            raise InvalidInputError(f"the state is of a dynamic network with sub-nets "
                                    f"{state.get('subnets')}, this one has {names}")
        self._subnets = tuple(replace(s, predicted_ms=p, accuracy=a) for s, p, a in
                              zip(self._subnets, state["predicted_ms"], state["accuracy"]))
        self.hardware = state.get("hardware", self.hardware)
        self._margin = check_margin(state.get("margin", 0.0))
        self._confidence = check_confidence(state.get("confidence"))
        self.corrector.load_state_dict(state["correction"])
        self._refresh()

    def extra_repr(self) -> str:
        return (f"source={self.source!r}, exits={[c.name for c in self.exits]}, "
                f"widths={[w.label for w in self.widths]}, subnets={len(self._subnets)}")
