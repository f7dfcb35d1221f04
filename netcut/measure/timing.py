"""How one latency is measured: the protocol every row of ``netcut measure`` follows."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

PROTOCOL = (
    "netcut measure: model.eval() under torch.inference_mode(), random weights "
    "(weights=None), random normal input of the row's batch/shape/dtype, NCHW. "
    "{warmup} untimed warm-up calls, then {repeats} timed calls, each timed alone: "
    "time.perf_counter around the call on CPUs; on GPUs CUDA events around the call, "
    "then a synchronize. median_ms, min_ms, p90_ms over the timed calls; n = repeats. "
    "Trimmed networks: netcut.trim(model, cut, 10) = the prefix, global average pool, "
    "Linear(C, 10); the prefix is an fx GraphModule with its layers bound as plain "
    "attributes (netcut/planner/bind.py; files written before 2026-12-05 21:00 UTC "
    "timed prefixes without that binding)."
)
LAYER_PROTOCOL = (
    "netcut measure --per-layer: isolated timing. One forward pass with a forward "
    "pre-hook on every leaf module (no children) records the positional inputs of "
    "each call; then each call is timed ALONE on a copy of its own input, with the "
    "whole-network protocol ({warmup} warm-up, {repeats} timed calls, median/min/p90). "
    "Functional ops that are not modules (residual +, torch.cat, F.relu) are not "
    "timed, so the layers do not sum to the whole network; each GPU row includes "
    "one host dispatch."
)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    p90_ms: float
    n: int


GRAPH_PROTOCOL = (
    " Graph mode (CUDA only): after the warm-up calls (at least 3, on a side stream) the "
    "forward pass is captured once as a CUDA graph (torch.cuda.CUDAGraph) and each timed "
    "call is one replay of it between CUDA events: the GPU's own work plus one graph "
    "launch, without the host's per-kernel dispatch (as the shared h100-graph data)."
)

ROUNDS_PROTOCOL = (
    " Interleaved in {rounds} rounds: each round visits every network of the file in "
    "turn, with 1 warm-up call per visit (the full warm-up on the first) and "
    "{per_round} timed calls (n = {rounds} x {per_round}); a row's statistics are over all its rounds' calls, so a "
    "slow spell of a shared machine spreads over every row instead of skewing one."
)


def summarize_samples(samples: np.ndarray) -> Timing:
    return Timing(float(np.median(samples)), float(samples.min()),
                  float(np.percentile(samples, 90)), int(samples.size))


def time_forward(module: torch.nn.Module, x, warmup: int, repeats: int,
                 mode: str = "eager", kwargs: dict | None = None) -> Timing:
    """Time ``module(x)`` following :data:`PROTOCOL`; ``x`` is a tensor or a tuple of
    positional arguments (a leaf layer's captured inputs), ``kwargs`` its keyword ones."""
    return summarize_samples(time_samples(module, x, warmup, repeats, mode, kwargs))


def time_samples(module: torch.nn.Module, x, warmup: int, repeats: int,
                 mode: str = "eager", kwargs: dict | None = None) -> np.ndarray:
    """The ``repeats`` timed calls of ``module(x)`` (ms) after ``warmup`` untimed ones;
    ``mode="graph"`` times replays of a CUDA graph of the call (:data:`GRAPH_PROTOCOL`)."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    args = x if isinstance(x, tuple) else (x,)
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    cuda = device.type == "cuda"
    if mode not in ("eager", "graph"):
        raise ValueError(f"mode must be eager or graph, got {mode!r}")
    if mode == "graph" and not cuda:
        raise ValueError("graph mode replays a CUDA graph: it needs CUDA tensors")
    if mode == "graph" and kwargs:
        raise ValueError("graph mode times positional calls only")
    kwargs = kwargs or {}
    samples = np.empty(repeats)
    with torch.inference_mode():
        if mode == "graph":
            call = _captured(module, args, device, warmup)
        else:
            call = lambda: module(*args, **kwargs)  # noqa: E731
            for _ in range(warmup):
                call()
        if cuda:
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for i in range(repeats):
            if cuda:
                start.record()
                call()
                end.record()
                end.synchronize()
                samples[i] = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                call()
                samples[i] = (time.perf_counter() - t0) * 1e3
    return samples


def _captured(module, args, device, warmup: int):
    """Warm up on a side stream (cuDNN picks its algorithms there), capture one call
    as a CUDA graph, and return its replay."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 3)):
            module(*args)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        module(*args)
    return graph.replay
