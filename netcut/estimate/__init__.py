"""Pricing a LayerTable on a hardware profile: roofline rows, scheduled in time."""

from __future__ import annotations

import functools
import math
import warnings

from ..dtypes import normalize_dtype
from ..errors import InvalidInputError
from ..hardware import load_hardware
from ..tracing import LayerTable, parse_input_shape, trace
from .estimate import Estimate
from .roofline import RowCosts, price_rows
from .timeline import Schedule, schedule

#: default level of the two-sided prediction interval of a calibrated estimate
DEFAULT_INTERVAL = 0.90

__all__ = ["DEFAULT_INTERVAL", "Estimate", "RowCosts", "Schedule", "estimate_table", "predict"]


def estimate_table(table: LayerTable, hardware, mode: str | None = None,
                   interval: float = DEFAULT_INTERVAL) -> Estimate:
    """Price an already traced table (at its batch and dtype) on ``hardware``.

    On a calibrated profile the estimate carries a two-sided prediction interval at
    level ``interval`` (log-normal, from the calibration's leave-models-out spread).
    """
    profile = load_hardware(hardware) if not hasattr(hardware, "overhead") else hardware
    mode = mode or profile.default_mode
    costs = price_rows(table, profile, mode)
    asynchronous = profile.kind == "gpu"
    est = Estimate(
        table=table,
        hardware=profile.name,
        kind=profile.kind,
        mode=mode,
        costs=costs,
        sched=schedule(costs, asynchronous),
        profile_calibrated=profile.calibration is not None,
    )
    est.interval_ms = prediction_interval(est.total_ms, profile, interval)
    est.interval_level = interval
    unsupported = table.unsupported()
    if unsupported:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(unsupported.items()))
        est.warnings.append(f"priced as plain copies (no cost formula): {listed}")
    return est


def prediction_interval(total_ms: float, profile, level: float) -> tuple[float, float] | None:
    """``(low, high)`` around ``total_ms`` holding the measured value with probability
    ``level``, from ``calibration.log_residual_sd``; None for an uncalibrated profile."""
    sd = (profile.calibration or {}).get("log_residual_sd")
    if sd is None:
        if not 0 < level < 1:
            raise InvalidInputError(f"interval level must be between 0 and 1, got {level}")
        return None
    return interval_bounds(total_ms, float(sd), level)


def interval_bounds(total_ms, log_sd: float, level: float):
    """``(low, high)``: ``total_ms`` times exp(-/+ z x log_sd), z the normal quantile that
    leaves ``level`` in between (``total_ms`` may be an array)."""
    if not 0 < level < 1:
        raise InvalidInputError(f"interval level must be between 0 and 1, got {level}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    return total_ms * math.exp(-z * log_sd), total_ms * math.exp(z * log_sd)


@functools.lru_cache(maxsize=64)
def _cached_trace(spec: str, shape: tuple[int, ...]) -> LayerTable:
    return trace(spec, shape)


def predict(model, hardware, input_shape=None, dtype: str | None = None, mode: str | None = None,
            batch: int | None = None, interval: float = DEFAULT_INTERVAL) -> Estimate:
    """Predict the latency of ``model`` on ``hardware``.

    ``model``: an ``nn.Module`` or a spec (``"resnet50"``, ``"torchvision:resnet50"``,
    ``"package.module:factory"``). ``input_shape``: per sample (``(3, 224, 224)``
    or ``"3x224x224"``), or with a leading batch dimension when ``batch`` is not
    given. ``dtype``: ``float32``, ``float16``, ``bfloat16``; None = the dtype of the
    module's floating-point parameters (a ``.half()`` module is priced in float16),
    float32 for a spec. ``mode``: ``eager``, ``graph`` or ``fused``; None = the
    profile's default.
    ``interval``: level of the prediction interval a calibrated profile gives.
    """
    if isinstance(input_shape, (tuple, list)) and len(input_shape) == 4 and batch is None:
        batch, input_shape = input_shape[0], tuple(input_shape[1:])
    batch = 1 if batch is None else batch
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise InvalidInputError(f"batch must be a positive integer, got {batch!r}")
    shape = parse_input_shape(input_shape, model)
    dtype = normalize_dtype(_module_dtype(model) if dtype is None else dtype)
    if isinstance(model, str):
        table = _cached_trace(model, shape)
    else:
        table = trace(model, shape)
    est = estimate_table(table.at(batch=batch, dtype=dtype), hardware, mode, interval)
    for message in est.warnings:
        warnings.warn(f"{table.model_name}: {message}", stacklevel=2)
    return est


def _module_dtype(model) -> str:
    """The dtype of a module's first floating-point parameter or buffer; float32 for a
    spec string or a module without any."""
    if isinstance(model, str):
        return "float32"
    tensors = list(model.parameters()) + list(model.buffers())
    floating = [t for t in tensors if t.is_floating_point()]
    return str(floating[0].dtype).removeprefix("torch.") if floating else "float32"
