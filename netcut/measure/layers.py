"""Per-layer timing: every leaf module alone, on the input it saw in a real pass.

Isolated timing (not ``torch.profiler``): it needs no profiler support on the
device, matches how the shared H100 per-layer data was taken, and gives each
layer's cost including one dispatch - what an eager network pays per op.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..measurements import LayerRow
from .timing import time_forward


def leaf_calls(module: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """(name, leaf module, its inputs, its output shape) for every leaf call, in order."""
    calls: list[list] = []
    handles = []

    def pre_hook(name):
        def hook(mod, args):
            copied = tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args)
            calls.append([name, mod, copied, None])
        return hook

    def post_hook(mod, args, output):
        for call in reversed(calls):
            if call[1] is mod and call[3] is None:
                call[3] = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
                break

    for name, mod in module.named_modules():
        if name and not any(True for _ in mod.children()):
            handles.append(mod.register_forward_pre_hook(pre_hook(name)))
            handles.append(mod.register_forward_hook(post_hook))
    try:
        with torch.inference_mode():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return [tuple(c) for c in calls]


def measure_layers(module: nn.Module, x: torch.Tensor, model_name: str, dtype: str,
                   warmup: int, repeats: int,
                   progress: Callable[[int, int, str], None] | None = None,
                   on_row: Callable[[LayerRow], None] | None = None) -> list[LayerRow]:
    """Time every leaf call of ``module`` on ``x`` (see ``timing.LAYER_PROTOCOL``)."""
    calls = leaf_calls(module, x)
    seen: dict[str, int] = {}
    rows: list[LayerRow] = []
    for k, (name, mod, args, out_shape) in enumerate(calls):
        if progress:
            progress(k, len(calls), f"{model_name} {name}")
        call = seen[name] = seen.get(name, -1) + 1
        t = time_forward(mod, args, warmup, repeats)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        row = LayerRow(model=model_name, batch=x.shape[0], dtype=dtype, name=name, call=call,
                       type=type(mod).__name__,
                       in_shape=tuple(first.shape) if first is not None else (),
                       out_shape=out_shape or None, median_ms=max(t.median_ms, 1e-6),
                       min_ms=max(t.min_ms, 1e-6), p90_ms=max(t.p90_ms, 1e-6), n=t.n)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows
