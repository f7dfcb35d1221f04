"""Measure a network whole and, with ``cuts=True``, every trimmed network at its block
cuts; rows in the shared schema, handed to ``on_row`` as soon as each is measured
(so a caller can save progress and an interrupted run keeps what it finished)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch

from ..dtypes import normalize_dtype
from ..errors import InvalidInputError
from ..measurements import Cut, LayerRow, Row
from ..planner.cuts import cut_points
from ..planner.trim import build_model, trim
from ..tracing import parse_input_shape
from ..tracing.cache import trace_cached
from ..tracing import trace
from .layers import measure_layers
from .timing import summarize_samples, time_forward, time_samples

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def measure(model, device: str = "cpu", batch: int = 1, dtype: str = "float32",
            input_shape=None, threads: int | None = None, cuts: bool = False,
            warmup: int = 5, repeats: int = 30, rounds: int = 1, mode: str = "eager",
            cudnn_benchmark: bool = True,
            progress: Callable[[int, int, str], None] | None = None,
            on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Time ``model`` (a spec or module) on ``device``; see :data:`timing.PROTOCOL`.

    ``rounds`` > 1 interleaves the networks (:data:`timing.ROUNDS_PROTOCOL`): every
    trimmed network is built first, and the rows are handed to ``on_row`` only when
    the last round ends. ``mode="graph"`` (CUDA only) times CUDA-graph replays
    (:data:`timing.GRAPH_PROTOCOL`); ``cudnn_benchmark`` sets
    ``torch.backends.cudnn.benchmark`` for the run (on, as in the shared H100 data)."""
    if mode not in ("eager", "graph"):
        raise InvalidInputError(f"mode must be eager or graph, got {mode!r}")
    if mode == "graph" and device != "cuda":
        raise InvalidInputError("--mode graph replays CUDA graphs: it needs --device cuda")
    with _cudnn_benchmark(cudnn_benchmark):
        return _measure(model, device, batch, dtype, input_shape, threads, cuts, warmup, repeats,
                        rounds, mode, progress, on_row)


@contextmanager
def _cudnn_benchmark(on: bool):
    """cuDNN autotuning on or off for one run, the caller's setting restored after."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(on)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _measure(model, device, batch, dtype, input_shape, threads, cuts, warmup, repeats, rounds,
             mode, progress, on_row) -> list[Row]:
    module, name, table, x, dtype = _prepare(model, device, batch, dtype, input_shape, threads,
                                             warmup, repeats)
    if not isinstance(rounds, int) or rounds < 1 or rounds > repeats:
        raise InvalidInputError(f"rounds must be an integer from 1 to repeats ({repeats}), got {rounds}")
    shape = tuple(x.shape[1:])
    points = cut_points(table) if cuts else []
    jobs = [(None, module)] + [(p, None) for p in points]

    def build(point, net):
        if net is None:
            net = trim(module, point, 10, table=table).eval().to(device=x.device, dtype=x.dtype)
        return net

    def row_for(k, point, timing) -> Row:
        cut = None if point is None else Cut(
            last_block=point.name, k=k, n_blocks=len(points), channels=point.channels,
            spatial=tuple(point.spatial) or None, num_classes=10)
        return Row(model=name, input=shape, batch=batch, dtype=dtype, mode=mode, cut=cut,
                   median_ms=timing.median_ms, min_ms=timing.min_ms, p90_ms=timing.p90_ms,
                   n=timing.n)

    def label(point) -> str:
        return f"{name} {'whole' if point is None else point.name}"

    rows: list[Row] = []
    if rounds == 1:
        for k, (point, net) in enumerate(jobs):
            if progress:
                progress(k, len(jobs), label(point))
            rows.append(row_for(k, point, time_forward(build(point, net), x, warmup, repeats, mode)))
            if on_row:
                on_row(rows[-1])
    else:
        nets = [build(point, net) for point, net in jobs]
        per_round = repeats // rounds
        samples: list[list[np.ndarray]] = [[] for _ in jobs]
        for r in range(rounds):
            for k, (point, _) in enumerate(jobs):
                if progress:
                    progress(r * len(jobs) + k, rounds * len(jobs), f"{label(point)} (round {r + 1})")
                samples[k].append(time_samples(nets[k], x, warmup if r == 0 else 1, per_round, mode))
        for k, (point, _) in enumerate(jobs):
            rows.append(row_for(k, point, summarize_samples(np.concatenate(samples[k]))))
            if on_row:
                on_row(rows[-1])
    if progress:
        progress(1, 1, "done")
    return rows


def measure_per_layer(model, device: str = "cpu", batch: int = 1, dtype: str = "float32",
                      input_shape=None, threads: int | None = None, warmup: int = 5,
                      repeats: int = 30, cudnn_benchmark: bool = True,
                      progress: Callable[[int, int, str], None] | None = None,
                      on_row: Callable[[LayerRow], None] | None = None) -> list[LayerRow]:
    """Time every leaf layer of ``model`` alone; see :data:`timing.LAYER_PROTOCOL`."""
    with _cudnn_benchmark(cudnn_benchmark):
        module, name, _, x, dtype = _prepare(model, device, batch, dtype, input_shape, threads,
                                             warmup, repeats)
        return measure_layers(module, x, name, dtype, warmup, repeats, progress, on_row)


def _prepare(model, device, batch, dtype, input_shape, threads, warmup, repeats):
    """Checked arguments -> (module on device, name, layer table, input, dtype name)."""
    dtype = normalize_dtype(dtype)
    if dtype not in _TORCH_DTYPES:
        raise InvalidInputError(f"measure supports {', '.join(_TORCH_DTYPES)}, not {dtype}")
    if device not in ("cpu", "cuda"):
        raise InvalidInputError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda: no CUDA GPU is visible to torch here")
    if not isinstance(batch, int) or batch < 1 or repeats < 1 or warmup < 0:
        raise InvalidInputError("batch and repeats must be positive integers, warmup >= 0")
    if threads is not None:
        if threads < 1:
            raise InvalidInputError(f"threads must be positive, got {threads}")
        torch.set_num_threads(threads)
    shape = parse_input_shape(input_shape, model)
    module, name = build_model(model)
    table = trace_cached(model, shape) if isinstance(model, str) else trace(module, shape)
    tdtype = _TORCH_DTYPES[dtype]
    module = module.eval().to(device=device, dtype=tdtype)
    x = torch.randn(batch, *shape, device=device, dtype=tdtype)
    return module, name, table, x, dtype
