"""Online correction of predicted latencies from measured ones.

The expected latency of sub-net ``i`` is ``predicted_i * factor(i)``.

``shared=False``: ``factor(i)`` is an exponentially weighted ratio of measured to
predicted latency of sub-net ``i`` alone (rate ``alpha``; the first measurement
sets it outright, as a bias-corrected EWMA would; 1 until it first runs).

``shared=True`` (the default) splits that ratio in two, ``factor(i) = b_i * s``:

- ``b_i``, the estimator's bias for sub-net ``i`` on this device: set by its
  first run, then learned slowly (rate ``bias_alpha``); a sub-net that never ran
  takes the geometric mean of the others' biases (an estimator 3x optimistic
  for some sub-nets here is likely so for the rest);
- ``s``, the *device* factor, shared by all: the geometric EWMA (rate ``alpha``)
  of ``measured / (predicted * b_i)`` over every run of any sub-net. When another
  process takes the CPU, one slow run of whichever sub-net is running makes all
  of them expected slower; when it stops, one fast run makes them faster again.
  ``s`` reverts to the current device speed rather than accumulating noise.

The corrector also tracks how much runs scatter around what it expects: ``sd_``
is the EWMA (rate ``alpha``) of the squared log surprise (measured / expected) of
every run after a sub-net's first. A selector asked for a ``confidence``
compares ``expected * exp(z * sd_)`` with the budget (``z`` the normal quantile),
so on a jittery device the chosen sub-net leaves room for the jitter.

Ratios and surprises are clamped to ``[1/10, 10]``: one 100x stall (a page fault,
the process descheduled) moves the estimate, but does not wreck it.
"""

from __future__ import annotations

import math

from ..errors import InvalidInputError

__all__ = ["LatencyCorrector"]

_CLAMP = (0.1, 10.0)


def _clamp(x: float) -> float:
    return min(_CLAMP[1], max(_CLAMP[0], x))


class LatencyCorrector:
    """Correction factors for ``n`` sub-nets (scikit-learn-style: learned values end
    in ``_``; ``frozen`` stops learning). ``ratio_[i]``: sub-net ``i``'s own ratio
    (``shared=False``) or its bias ``b_i`` (``shared=True``); ``drift_``: the
    device factor ``s``."""

    def __init__(self, n: int, alpha: float = 0.3, shared: bool = True,
                 bias_alpha: float = 0.05):
        for name, value in (("alpha", alpha), ("bias_alpha", bias_alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise InvalidInputError(f"{name} (an EWMA rate) must be in (0, 1], got {value!r}")
        self.n = int(n)
        self.alpha = float(alpha)
        self.bias_alpha = float(bias_alpha)
        self.shared = bool(shared)
        self.frozen = False
        self.reset()

    def reset(self) -> None:
        """Forget every observation."""
        self.ratio_ = [1.0] * self.n
        self.count_ = [0] * self.n
        self.drift_ = 1.0
        self.prior_ = 1.0
        self.var_ = 0.0

    @property
    def sd_(self) -> float:
        """Spread of log(measured / expected) over recent runs (0 before any repeat)."""
        return math.sqrt(self.var_)

    def factor(self, i: int) -> float:
        """Expected / predicted latency of sub-net ``i`` now."""
        if not self.shared:
            return self.ratio_[i]
        if self.count_[i] == 0:
            return self.prior_ * self.drift_
        return self.ratio_[i] * self.drift_

    def update(self, i: int, predicted_ms: float, measured_ms: float) -> float:
        """Learn from one run of sub-net ``i``; returns its new factor."""
        if self.frozen:
            return self.factor(i)
        x = _clamp(measured_ms / predicted_ms)
        first = self.count_[i] == 0
        if not first:
            surprise = _clamp(x / self.factor(i))
            self.var_ = (1 - self.alpha) * self.var_ + self.alpha * math.log(surprise) ** 2
        if not self.shared:
            self.ratio_[i] = x if first else _clamp((1 - self.alpha) * self.ratio_[i] + self.alpha * x)
        elif first:  # the bias, as far as the device factor explains the rest
            self.ratio_[i] = _clamp(x / self.drift_)
        else:
            a, b = self.alpha, self.bias_alpha
            self.drift_ = _clamp(self.drift_ * (x / (self.ratio_[i] * self.drift_)) ** a)
            self.ratio_[i] = _clamp(self.ratio_[i] * (x / (self.ratio_[i] * self.drift_)) ** b)
        self.count_[i] += 1
        if self.shared:
            seen = [math.log(r) for r, c in zip(self.ratio_, self.count_) if c > 0]
            self.prior_ = math.exp(sum(seen) / len(seen))
        return self.factor(i)

    # ----- persistence (export manifests, state_dict extra state) ---------------------
    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "bias_alpha": self.bias_alpha, "shared": self.shared,
                "frozen": self.frozen, "ratio": list(self.ratio_), "count": list(self.count_),
                "drift": self.drift_, "prior": self.prior_, "var": self.var_}

    def load_state_dict(self, state: dict) -> "LatencyCorrector":
        ratio = list(state["ratio"])
        if len(ratio) != self.n:
            raise InvalidInputError(f"correction state for {len(ratio)} sub-nets, not {self.n}")
        self.alpha = float(state["alpha"])
        self.bias_alpha = float(state.get("bias_alpha", self.bias_alpha))
        self.shared = bool(state["shared"])
        self.frozen = bool(state.get("frozen", False))
        self.ratio_ = [float(r) for r in ratio]
        self.count_ = [int(c) for c in state["count"]]
        self.drift_ = float(state["drift"])
        self.prior_ = float(state.get("prior", 1.0))
        self.var_ = float(state.get("var", 0.0))
        if not all(math.isfinite(v) and v > 0 for v in self.ratio_ + [self.drift_, self.prior_]):
            raise InvalidInputError("correction state holds a ratio that is not a positive number")
        return self

    def __repr__(self) -> str:
        return (f"LatencyCorrector(n={self.n}, alpha={self.alpha}, shared={self.shared}, "
                f"drift={self.drift_:.3g}, sd={self.sd_:.3g}, observed={sum(self.count_)})")
