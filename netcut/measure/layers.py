"""Per-layer timing: every leaf module alone, on the input it saw in a real pass.

Self-attention modules count as leaves (``OPAQUE_MODULES``): their children are
weights they read, not layers they call.

Isolated timing (not ``torch.profiler``): it needs no profiler support on the
device, matches how the shared H100 per-layer data was taken, and gives each
layer's cost including one dispatch - what an eager network pays per op.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from ..measurements import LayerRow
from .timing import time_forward


#: modules timed as one layer although they have children: their forward reads the
#: children's weights without calling them (``nn.MultiheadAttention`` hands
#: ``out_proj.weight`` to ``F.multi_head_attention_forward``), so the children alone would
#: never be timed, and the attention itself would be missing from the layer rows
OPAQUE_MODULES: tuple[type, ...] = (nn.MultiheadAttention,)


class LeafCall(NamedTuple):
    """One call of a layer in a real forward pass, with what it was called with."""

    name: str
    module: nn.Module
    args: tuple
    out_shape: tuple
    kwargs: dict


def timed_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers per-layer timing times: every leaf module, and every module of
    ``OPAQUE_MODULES`` in place of its children."""
    opaque = [name for name, mod in module.named_modules() if name and isinstance(mod, OPAQUE_MODULES)]
    out = []
    for name, mod in module.named_modules():
        if not name or any(name.startswith(o + ".") for o in opaque):
            continue
        if isinstance(mod, OPAQUE_MODULES) or not any(True for _ in mod.children()):
            out.append((name, mod))
    return out


def leaf_calls(module: nn.Module, x: torch.Tensor) -> list[LeafCall]:
    """Every call of a timed layer (``timed_layers``), in order, with its inputs."""
    calls: list[list] = []
    handles = []

    def pre_hook(name):
        def hook(mod, args, kwargs):
            # one copy per distinct tensor: self-attention's query, key and value are the
            # same tensor, which selects PyTorch's packed projection
            copies: dict[int, torch.Tensor] = {}

            def copy(value):
                if not isinstance(value, torch.Tensor):
                    return value
                if id(value) not in copies:
                    copies[id(value)] = value.detach().clone()
                return copies[id(value)]

            calls.append([name, mod, tuple(copy(a) for a in args), None,
                          {k: copy(v) for k, v in kwargs.items()}])
        return hook

    def post_hook(mod, args, output):
        first = output[0] if isinstance(output, tuple) and output else output  # attention: (out, weights)
        for call in reversed(calls):
            if call[1] is mod and call[3] is None:
                call[3] = tuple(first.shape) if isinstance(first, torch.Tensor) else ()
                break

    for name, mod in timed_layers(module):
        handles.append(mod.register_forward_pre_hook(pre_hook(name), with_kwargs=True))
        handles.append(mod.register_forward_hook(post_hook))
    try:
        with torch.inference_mode():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return [LeafCall(*c) for c in calls]


def measure_layers(module: nn.Module, x: torch.Tensor, model_name: str, dtype: str,
                   warmup: int, repeats: int,
                   progress: Callable[[int, int, str], None] | None = None,
                   on_row: Callable[[LayerRow], None] | None = None) -> list[LayerRow]:
    """Time every leaf call of ``module`` on ``x`` (see ``timing.LAYER_PROTOCOL``)."""
    calls = leaf_calls(module, x)
    seen: dict[str, int] = {}
    rows: list[LayerRow] = []
    for k, (name, mod, args, out_shape, kwargs) in enumerate(calls):
        if progress:
            progress(k, len(calls), f"{model_name} {name}")
        call = seen[name] = seen.get(name, -1) + 1
        t = time_forward(mod, args, warmup, repeats, kwargs=kwargs)
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
