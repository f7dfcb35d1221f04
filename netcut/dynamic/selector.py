"""Run-time choice of a sub-net for a latency budget (shared by DynamicNet and the
exported runtime, so both decide alike).

The choice is the most capable sub-net whose *expected* latency (predicted x the
online correction factor) is within ``budget * (1 - margin)``; with a
``confidence`` (e.g. 0.9) the expected latency is first raised by the scatter
the corrector has seen, ``x exp(z * sd)``, so the choice fits that often. Capability is the
measured accuracy when every sub-net has one, else FLOPs (larger is better). When
nothing fits, the sub-net expected to be fastest runs and the choice says it does
not fit (``fits=False``): a budget below every sub-net is reported, never raised.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Sequence

from ..errors import InvalidInputError
from .correction import LatencyCorrector

__all__ = ["Choice", "Decision", "Selector"]


@dataclass(frozen=True)
class Choice:
    """What :meth:`Selector.select` picked: ``expected_ms`` is the corrected prediction."""

    subnet: int
    budget_ms: float
    expected_ms: float
    fits: bool


@dataclass(frozen=True)
class Decision:
    """One budgeted run: the choice, and what it measured. ``missed``: the run took
    longer than the budget (whether or not it was expected to fit)."""

    subnet: int
    budget_ms: float
    expected_ms: float
    measured_ms: float
    fits: bool

    @property
    def missed(self) -> bool:
        return self.measured_ms > self.budget_ms

    @property
    def slack_ms(self) -> float:
        return self.budget_ms - self.measured_ms

    def to_dict(self) -> dict:
        return {"subnet": self.subnet, "budget_ms": self.budget_ms,
                "expected_ms": self.expected_ms, "measured_ms": self.measured_ms,
                "fits": self.fits, "missed": self.missed}


class Selector:
    """Picks sub-nets by budget from predictions, capability scores and a corrector."""

    def __init__(self, predicted_ms: Sequence[float | None], scores: Sequence[float],
                 corrector: LatencyCorrector, margin: float = 0.0, names: Sequence[str] = (),
                 confidence: float | None = None):
        self.predicted_ms: list[float | None] = [None if p is None else float(p) for p in predicted_ms]
        self.corrector = corrector
        self.margin = check_margin(margin)
        self.confidence = confidence
        self.names = list(names) or [str(i) for i in range(len(self.predicted_ms))]
        n = len(self.predicted_ms)
        # best first; among equals the faster
        self.order = sorted(range(n), key=lambda i: (-scores[i], self.predicted_ms[i] or 0.0))

    @property
    def confidence(self) -> float | None:
        return self._confidence

    @confidence.setter
    def confidence(self, value: float | None) -> None:
        self._confidence = check_confidence(value)
        self._z = 0.0 if value is None else NormalDist().inv_cdf(value)

    def expected_ms(self, i: int) -> float | None:
        p = self.predicted_ms[i]
        return None if p is None else p * self.corrector.factor(i)

    def select(self, budget_ms: float, margin: float | None = None) -> Choice:
        if type(budget_ms) is not float:  # the common case skips the full check
            budget_ms = check_budget(budget_ms)
        elif not budget_ms > 0 or budget_ms == math.inf:
            budget_ms = check_budget(budget_ms)
        limit = budget_ms * (1.0 - (self.margin if margin is None else check_margin(margin)))
        if self._z:  # leave room for the scatter seen so far
            limit /= math.exp(self._z * self.corrector.sd_)
        predicted, factor = self.predicted_ms, self.corrector.factor
        fastest, fastest_ms = -1, math.inf
        for i in self.order:
            p = predicted[i]
            if p is None:
                raise InvalidInputError(
                    f"sub-net {self.names[i]!r} has no latency to go by: build with hardware=..., "
                    "call net.price(hardware) or measure it (net.measure_latency(x))")
            expected = p * factor(i)
            if expected <= limit:
                return Choice(i, budget_ms, expected, True)
            if expected < fastest_ms:
                fastest, fastest_ms = i, expected
        return Choice(fastest, budget_ms, fastest_ms, False)

    def observe(self, i: int, measured_ms: float) -> None:
        if not (isinstance(measured_ms, (int, float)) and math.isfinite(measured_ms)
                and measured_ms > 0):
            raise InvalidInputError(f"measured latency must be a positive number of ms, "
                                    f"got {measured_ms!r}")
        if self.predicted_ms[i] is None:  # no prediction: the first measurement is one
            self.predicted_ms[i] = float(measured_ms)
        self.corrector.update(i, self.predicted_ms[i], float(measured_ms))

    def timed(self, run: Callable[[int], object], budget_ms: float, observe: bool = True,
              sync: Callable[[], None] | None = None) -> tuple[object, Decision]:
        """Select for ``budget_ms``, call ``run(subnet)`` under the clock (``sync``
        before and after, for asynchronous devices), learn from the time taken."""
        choice = self.select(budget_ms)
        if sync is not None:
            sync()
        start = time.perf_counter()
        out = run(choice.subnet)
        if sync is not None:
            sync()
        measured = (time.perf_counter() - start) * 1e3
        if observe:
            self.observe(choice.subnet, measured)
        return out, Decision(choice.subnet, choice.budget_ms, choice.expected_ms, measured,
                             choice.fits)


def check_budget(budget_ms) -> float:
    if isinstance(budget_ms, bool) or not isinstance(budget_ms, (int, float)) or not (
            math.isfinite(budget_ms) and budget_ms > 0):
        raise InvalidInputError(f"a latency budget must be a positive number of ms, got {budget_ms!r}")
    return float(budget_ms)


def check_margin(margin) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise InvalidInputError(f"margin must be in [0, 1) (a share of the budget kept free), "
                                f"got {margin!r}")
    return float(margin)


def check_confidence(confidence) -> float | None:
    if confidence is None:
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
            0.5 <= confidence < 1):
        raise InvalidInputError(f"confidence must be in [0.5, 1) (the share of runs that should "
                                f"fit), got {confidence!r}")
    return float(confidence)
