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
    "Linear(C, 10)."
)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    p90_ms: float
    n: int


def time_forward(module: torch.nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> Timing:
    """Time ``module(x)`` following :data:`PROTOCOL`."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    cuda = x.device.type == "cuda"
    samples = np.empty(repeats)
    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        if cuda:
            torch.cuda.synchronize(x.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for i in range(repeats):
            if cuda:
                start.record()
                module(x)
                end.record()
                end.synchronize()
                samples[i] = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                module(x)
                samples[i] = (time.perf_counter() - t0) * 1e3
    return Timing(float(np.median(samples)), float(samples.min()),
                  float(np.percentile(samples, 90)), repeats)
