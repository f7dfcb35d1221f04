"""Tracing a network into a LayerTable (torch.fx first, ATen dispatch as fallback)."""

from __future__ import annotations

import logging
from typing import Sequence

import torch.nn as nn

from ..errors import InvalidInputError, TraceError
from ..models import default_input_shape, resolve_model
from .costs import OpCall, TensorArg, cost_of, known_kinds, register_cost
from .table import LayerRow, LayerTable

log = logging.getLogger(__name__)

__all__ = ["LayerRow", "LayerTable", "OpCall", "TensorArg", "cost_of", "known_kinds",
           "register_cost", "trace", "parse_input_shape"]


def parse_input_shape(text: str | Sequence[int] | None, spec: object = None) -> tuple[int, ...]:
    """``"3x224x224"`` or ``(3, 224, 224)`` -> a per-sample shape (no batch dim)."""
    if text is None:
        return default_input_shape(spec) if isinstance(spec, str) else (3, 224, 224)
    if isinstance(text, str):
        parts = text.lower().replace(",", "x").replace(" ", "").split("x")
        try:  # an empty part ("3x", "3xx224") is an error, not a dimension to skip
            shape = tuple(int(p) for p in parts)
        except ValueError:
            raise InvalidInputError(f"input shape {text!r} is not like 3x224x224") from None
    else:
        shape = tuple(int(s) for s in text)
    if not shape or any(s <= 0 for s in shape):
        raise InvalidInputError(f"input shape {text!r} must be positive sizes, like 3x224x224")
    return shape


def trace(model: nn.Module | str, input_shape=None, tracer: str = "auto") -> LayerTable:
    """Trace ``model`` (a module or spec string) at batch 1 into a LayerTable.

    ``tracer``: ``"fx"``, ``"dispatch"`` or ``"auto"`` (fx, falling back to
    dispatch with a warning when fx cannot trace the model).
    """
    from .dispatch_tracer import trace_dispatch
    from .fx_tracer import trace_fx

    module, name = resolve_model(model)
    shape = parse_input_shape(input_shape, model)
    if tracer not in ("auto", "fx", "dispatch"):
        raise InvalidInputError(f"tracer {tracer!r}: allowed auto, fx, dispatch")
    fx_error: Exception | None = None
    if tracer in ("auto", "fx"):
        try:
            return trace_fx(module, shape, name)
        except Exception as exc:  # fx raises many types for untraceable code
            fx_error = exc
            if tracer == "fx":
                raise TraceError(_describe(name, shape, exc, "torch.fx")) from None
            log.warning("%s: torch.fx could not trace it (%s); using the dispatch fallback",
                        name, _first_line(exc))
    try:
        table = trace_dispatch(module, shape, name)
    except Exception as exc:
        raise TraceError(_describe(name, shape, exc, "the dispatch fallback")) from None
    if fx_error is not None:
        table.notes.append(f"torch.fx failed ({_first_line(fx_error)}); traced at ATen level")
    return table


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _describe(name: str, shape, exc: Exception, how: str) -> str:
    size = "x".join(map(str, shape))
    hint = (" (is the input shape right for this model?)" if "shape" in str(exc).lower()
            or isinstance(exc, AssertionError) or "size" in str(exc).lower() else "")
    return f"cannot trace {name} at input {size} with {how}: {_first_line(exc)}{hint}"
