"""Per-op throughput of PyTorch's eager CPU kernels on this machine: the numbers a
CPU profile's efficiencies come from, measured on single ops, never on networks.

    .venv/bin/python scripts/cpu_microbench.py [--threads 1] [--repeats 30] [--json]

Each op runs alone on a fixed, typical ImageNet-sized input (batch 1, fp32, shapes
picked before looking at any network's error); its time is the MINIMUM over
``--repeats`` calls after 3 warm-up calls (the least disturbed run: on a shared VM
the median drifts with whatever else runs). Printed per op: milliseconds, GFLOP/s
(FLOPs counted as netcut's tables count them: a multiply-add = 2) and GB/s of the
bytes the table says the op moves.

Three more sections: each op class's fixed cost (the same op on a 1x16x8x8 input,
where the work is negligible: what one call costs beyond its arithmetic), the copy
bandwidth of a cache-resident (4 MiB) and a DRAM-sized (1 GiB) tensor, and depthwise
3x3 convolutions at neighbouring channel counts (PyTorch's CPU kernel for them is
10-20x slower at some counts than at the next). ``--conv-scan`` runs one more, alone:
dense convolutions over a grid of input and output channel counts and sizes, the data
for pricing small convolutions (a 1x1 conv with 16 channels in or out reaches a
fraction of the rate of one with 512; calibration/data/cpu-epyc-genoa-2c/README.md). ``--grouped-scan``
runs grouped 3x3 convolutions over group widths 4-64 at ResNeXt-like stage shapes,
alone: the conv_grouped efficiency comes from it (one grouped conv cannot stand for
the class: at group width 4 it reaches about 0.4 of its rate at width 16).
``--occupancy-scan`` times dense 3x3 convs C -> C (C = 64-512) at 56x56 down to 7x7 and
fits how the rate falls with the outputs written: a conv with n outputs runs
(1 + s / n) times slower than with many (the CPU profile's ``saturation_outputs``).
``--attention-scan`` times self-attention blocks (``nn.MultiheadAttention`` as ViTs call
it) at ViT and Swin shapes, and one on 4 tokens of width 16 for the class's fixed cost:
the source of a CPU profile's ``attention`` efficiency. ``--activation-scan`` times
GELU, SiLU, sigmoid, hard-swish, hard-sigmoid, tanh and ReLU on cache-resident inputs:
ns per element for the activations whose math sets their time (a CPU profile's
``activation_ns_per_element_per_core``), with a dense conv beside them for the clock.
``--alignment-scan`` times 1x1, dense 3x3 and depthwise 3x3 convs C -> C with C off a multiple of 16, each beside the
next multiple (the evidence for a CPU profile's ``channel_block``). ``--depthwise-scan``
times depthwise 3x3 and 5x5 convs over strides and sizes and fits ms = fixed + a x inputs
+ b x outputs + c x FLOPs (the source of a CPU profile's ``depthwise_*_ns_per_core``).
``--conv-path-scan`` times dense convs either side of the input size at which PyTorch
hands a conv to oneDNN instead of im2col + GEMM, and a 5x5 conv on the tiny input: the
fixed cost of a oneDNN conv (a CPU profile's ``onednn_conv_us``). ``--chain-scan`` times
chains of batchnorm-ReLU and 1x1 conv-batchnorm-ReLU (every op its own module) as a
whole and op by op alone: what an op pays inside a sequence (no profile uses it yet; see
docs/hardware-schema.md#cpu-caches). ``--weight-stream-scan`` times chains of distinct
1-row linears holding 16-384 MiB of weights: up to how many MiB a network's weights stay
in cache (a CPU profile's ``usable_cache_mib``). ``--pointwise-scan`` times 1x1 convs over
pairs of channel counts 16-512 at sizes where oneDNN runs them and fits ms = oneDNN's
fixed cost + a x inputs + b x outputs + FLOPs / R (a CPU profile's ``conv_pointwise``
efficiency and ``pointwise_*_ns_per_core``). ``--primitive-scan`` times 1-96 small 5x5
convs called in turn, all of one shape or each of its own, against each called alone:
what a oneDNN conv pays when the calls before it ran other primitives, as in a network
(no profile uses it yet).
``hwmodels/xeon-gnr-2c.yaml`` (this machine since 2026-12-05) takes its efficiencies,
dispatch costs, bandwidths and occupancy term from ``calibration/data/cpu-xeon-gnr-2c-*.json``;
``hwmodels/epyc-genoa-2c.yaml`` (the Zen 4 before it)
takes its efficiencies, dispatch costs and bandwidths from a run saved in
``calibration/data/cpu-epyc-genoa-2c-micro-keepmem.json`` (malloc thresholds pinned, as
``netcut measure`` does by default; ``cpu-epyc-genoa-2c-micro.json`` is an earlier run
without, where ops with outputs of a few MiB paid page faults on every call).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn


def _ops():
    """(name, what it stands for, module or callable, input shape(s))."""
    return [
        # dense convolutions: K = Cin * kh * kw, the reduction depth of the GEMM
        ("conv3x3 64-64 @56", "dense conv, K=576", nn.Conv2d(64, 64, 3, 1, 1), (1, 64, 56, 56)),
        ("conv3x3 256-256 @14", "dense conv, K=2304", nn.Conv2d(256, 256, 3, 1, 1), (1, 256, 14, 14)),
        ("conv1x1 256-64 @56", "dense conv, K=256", nn.Conv2d(256, 64, 1), (1, 256, 56, 56)),
        ("conv1x1 64-256 @56", "dense conv, K=64", nn.Conv2d(64, 256, 1), (1, 64, 56, 56)),
        ("conv1x1 16-64 @56", "dense conv, K=16", nn.Conv2d(16, 64, 1), (1, 16, 56, 56)),
        ("conv7x7 3-64 s2 @224", "stem conv, K=147", nn.Conv2d(3, 64, 7, 2, 3), (1, 3, 224, 224)),
        ("conv3x3 3-32 s2 @224", "stem conv, K=27", nn.Conv2d(3, 32, 3, 2, 1), (1, 3, 224, 224)),
        ("grouped 3x3 128/32 @56", "grouped conv", nn.Conv2d(128, 128, 3, 1, 1, groups=32), (1, 128, 56, 56)),
        ("depthwise 3x3 144 @56", "depthwise conv", nn.Conv2d(144, 144, 3, 1, 1, groups=144), (1, 144, 56, 56)),
        ("depthwise 5x5 240 @14", "depthwise conv", nn.Conv2d(240, 240, 5, 1, 2, groups=240), (1, 240, 14, 14)),
        ("linear 768-3072 x197", "matmul, K=768", nn.Linear(768, 3072), (1, 197, 768)),
        ("linear 2048-1000", "matmul, K=2048, one row", nn.Linear(2048, 1000), (1, 2048)),
        ("maxpool 3x3 s2 @112", "pool", nn.MaxPool2d(3, 2, 1), (1, 64, 112, 112)),
        ("avgpool 2x2 @56", "pool", nn.AvgPool2d(2, 2), (1, 128, 56, 56)),
        ("adaptive avgpool @7", "pool (global)", nn.AdaptiveAvgPool2d(1), (1, 2048, 7, 7)),
        ("batchnorm @112", "norm", nn.BatchNorm2d(64).eval(), (1, 64, 112, 112)),
        ("layernorm 768 x197", "norm", nn.LayerNorm(768), (1, 197, 768)),
        ("relu @112", "elementwise", nn.ReLU(), (1, 64, 112, 112)),
        ("hardswish @112", "elementwise", nn.Hardswish(), (1, 64, 112, 112)),
        ("silu @112", "elementwise", nn.SiLU(), (1, 64, 112, 112)),
        ("add @56", "elementwise (two inputs)", torch.add, [(1, 256, 56, 56), (1, 256, 56, 56)]),
        ("cat 2x @56", "data movement", lambda a, b: torch.cat([a, b], 1), [(1, 128, 56, 56), (1, 128, 56, 56)]),
    ]


def _tiny_ops():
    """(op class, module or callable, input shape): work too small to matter."""
    x = (1, 16, 8, 8)
    return [
        ("conv", nn.Conv2d(16, 16, 1), x),
        ("conv_grouped", nn.Conv2d(16, 16, 3, 1, 1, groups=4), x),
        ("conv_depthwise", nn.Conv2d(16, 16, 3, 1, 1, groups=16), x),
        ("matmul", nn.Linear(16, 16), (1, 16)),
        ("norm", nn.BatchNorm2d(16).eval(), x),
        ("pool", nn.MaxPool2d(3, 2, 1), x),
        ("elementwise", nn.ReLU(), x),
        ("view", lambda t: t.flatten(1), x),
    ]


DEPTHWISE_SCAN = [(16, 112), (24, 112), (32, 112), (64, 112), (144, 56), (192, 56), (240, 56),
                  (288, 56), (384, 14), (960, 7)]


def _copy_gbs(mib: int, repeats: int) -> float:
    """Bytes read + written per second by ``copy_`` of a ``mib`` MiB float32 tensor."""
    src = torch.randn(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    calls = max(1, 256 // mib)
    best = float("inf")
    for i in range(repeats + 2):
        start = time.perf_counter()
        for _ in range(calls):
            dst.copy_(src)
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 * calls / best / 1e9


def _time(fn, inputs, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            fn(*inputs)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*inputs)
            best = min(best, time.perf_counter() - start)
    return best * 1e3


def _costs(fn, shapes) -> tuple[float, float]:
    """FLOPs and bytes moved, from netcut's own trace of the op (what a profile prices)."""
    from netcut import trace

    if isinstance(shapes, list):  # two inputs: traced as one input split in two
        module, shape = _Pair(fn), (2 * shapes[0][1], *shapes[0][2:])
    else:
        module, shape = fn, shapes[1:]
    table = trace(module, tuple(shape)).at(batch=1)
    return float(table.flops.sum()), float((table.bytes_read + table.bytes_written).sum())


class _Pair(nn.Module):
    """A two-input op fed by one input split in two (the split is a view: free)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return self.fn(a, b)


def _machine(memory: dict, args) -> dict:
    from netcut.measure.environment import cpu_identity, cpu_model

    return {"cpu": cpu_model(), "cpu_id": cpu_identity(), "memory": memory, "threads": args.threads,
            "repeats": args.repeats, "torch": torch.__version__, "statistic": "min"}


#: (kernel, stride, output size, channel counts): every (in, out) pair of the counts
CONV_SCAN = ((1, 1, 56, (16, 32, 64, 128, 256, 512)), (1, 1, 14, (16, 32, 64, 128, 256, 512)),
             (3, 1, 28, (16, 64, 256)), (3, 2, 28, (32, 128)))


def _conv_scan(repeats: int) -> list[dict]:
    """Dense convs (bias on, as torchvision's are not: the bias is fused, free) timed alone."""
    out = []
    for k, stride, size, counts in CONV_SCAN:
        for cin in counts:
            for cout in counts:
                conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
                x = torch.randn(1, cin, size * stride, size * stride)
                ms = _time(conv, [x], repeats)
                out.append({"kernel": k, "stride": stride, "cin": cin, "cout": cout, "size": size,
                            "ms": ms, "flops": 2.0 * cin * k * k * cout * size * size,
                            "inputs": float(x.numel()), "outputs": float(cout * size * size),
                            "positions": float(size * size)})
    return out


#: (channels, output size) of the grouped 3x3 convs scanned, at each group width: the
#: stage shapes of a ResNeXt-like backbone at 224x224
#: dense 3x3 convs C -> C over sizes: how a conv's rate falls as its outputs shrink
OCCUPANCY_CHANNELS = (64, 128, 256, 512)
OCCUPANCY_SIZES = (56, 28, 14, 7)
#: the largest input the scan times (64 x 56 x 56 x 2 elements: 512 @ 56 takes seconds)
OCCUPANCY_MAX_INPUT = 64 * 56 * 56 * 2


def _occupancy_scan(repeats: int) -> list[dict]:
    """Dense 3x3 convs (no bias) at every channel count and size of the grid, timed alone."""
    out = []
    for channels in OCCUPANCY_CHANNELS:
        for size in OCCUPANCY_SIZES:
            if channels * size * size > OCCUPANCY_MAX_INPUT:
                continue
            conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
            ms = _time(conv, [torch.randn(1, channels, size, size)], repeats)
            out.append({"channels": channels, "size": size, "ms": ms,
                        "outputs": channels * size * size,
                        "flops": 2.0 * channels * channels * 9 * size * size})
    return out


def occupancy_fit(scan: list[dict]) -> dict:
    """Least squares of ms = a x FLOPs + b x FLOPs / outputs over the scan: a conv with n
    outputs runs (1 + s / n) times slower than its rate at many outputs, s = b / a (the
    ``saturation_outputs`` of a CPU profile, at the threads the scan ran with)."""
    flops = np.array([r["flops"] for r in scan])
    per_output = flops / np.array([r["outputs"] for r in scan])
    ms = np.array([r["ms"] for r in scan])
    # relative errors: weight each row by 1 / its time
    design = np.stack([flops, per_output], axis=1) / ms[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(ms), rcond=None)
    fitted = flops * a + per_output * b
    return {"saturation_outputs": float(b / a), "gflops_per_s_at_many_outputs": float(1e-6 / a),
            "mape": float(np.mean(np.abs(fitted / ms - 1)))}


#: (kernel, stride, output size, channel counts) of the depthwise convs scanned: the
#: shapes MobileNet/MnasNet/EfficientNet-like backbones run at 224x224
DEPTHWISE_GRID = ((3, 1, 112, (16, 32, 64)), (3, 2, 56, (96, 144)), (3, 1, 56, (96, 144, 240)),
                  (3, 2, 28, (144, 240)), (3, 1, 28, (120, 192, 288)), (3, 1, 14, (192, 384, 576)),
                  (3, 1, 7, (576, 960)), (5, 2, 28, (72, 144)), (5, 1, 28, (120, 240)),
                  (5, 1, 14, (240, 480, 672)), (5, 2, 7, (480, 672)), (5, 1, 7, (576, 1152)))


def _depthwise_scan(repeats: int) -> list[dict]:
    """Depthwise convs (no bias, as in torchvision) over kernels, strides and sizes."""
    out = []
    for k, stride, size, counts in DEPTHWISE_GRID:
        for channels in counts:
            conv = nn.Conv2d(channels, channels, k, stride, k // 2, groups=channels, bias=False)
            x = torch.randn(1, channels, size * stride, size * stride)
            ms = _time(conv, [x], repeats)
            out.append({"kernel": k, "stride": stride, "channels": channels, "size": size, "ms": ms,
                        "inputs": float(x.numel()), "outputs": float(channels * size * size),
                        "flops": 2.0 * k * k * channels * size * size})
    return out


def depthwise_fit(scan: list[dict]) -> dict:
    """Least squares of ms = fixed + a x inputs + b x outputs + c x FLOPs (relative
    errors): a depthwise conv moves its activations at a rate far below the cache's and
    does few FLOPs per element, so both terms show."""
    cols = [np.ones(len(scan))] + [np.array([r[k] for r in scan]) for k in ("inputs", "outputs", "flops")]
    ms = np.array([r["ms"] for r in scan])
    design = np.stack(cols, axis=1) / ms[:, None]
    coef, *_ = np.linalg.lstsq(design, np.ones_like(ms), rcond=None)
    fitted = np.stack(cols, axis=1) @ coef
    return {"fixed_us": float(coef[0] * 1e3), "ns_per_input": float(coef[1] * 1e6),
            "ns_per_output": float(coef[2] * 1e6), "gflops_per_s": float(1e-6 / coef[3]) if coef[3] > 0 else None,
            "mape": float(np.mean(np.abs(fitted / ms - 1)))}


#: (output size, channel counts) of the pointwise scan: 1x1 convs C_in -> C_out over every
#: pair of counts, at sizes where PyTorch hands them to oneDNN (input > 20480 elements)
POINTWISE_GRID = ((56, (16, 32, 64, 128, 256, 512)), (28, (32, 64, 128, 256, 512)),
                  (14, (128, 256, 512)))


def _pointwise_scan(repeats: int) -> list[dict]:
    """1x1 convs (no bias, as in torchvision) over channel pairs and sizes, with the
    kernel that ran each (oneDNN reorders the input, the weights and the output around
    every such call: ``ONEDNN_VERBOSE=1`` lists them)."""
    out = []
    for size, counts in POINTWISE_GRID:
        for cin in counts:
            if cin * size * size <= 20480:
                continue
            for cout in counts:
                conv = nn.Conv2d(cin, cout, 1, bias=False).eval()
                x = torch.randn(1, cin, size, size)
                out.append({"cin": cin, "cout": cout, "size": size, "backend": _conv_backend(conv, x),
                            "ms": _time(conv, [x], repeats), "inputs": float(x.numel()),
                            "outputs": float(cout * size * size), "flops": 2.0 * cin * cout * size * size})
    return out


def pointwise_fit(scan: list[dict], fixed_us: float) -> dict:
    """Least squares of ms - fixed = a x inputs + b x outputs + c x FLOPs (relative
    errors), ``fixed`` oneDNN's cost per call: a 1x1 conv does few FLOPs per element it
    moves, and oneDNN moves every input and output element once more to change layout."""
    ms = np.array([r["ms"] for r in scan])
    cols = np.stack([np.array([r[k] for r in scan]) for k in ("inputs", "outputs", "flops")], axis=1)
    coef, *_ = np.linalg.lstsq(cols / ms[:, None], 1.0 - fixed_us / 1e3 / ms, rcond=None)
    fitted = cols @ coef + fixed_us / 1e3
    return {"fixed_us": fixed_us, "ns_per_input": float(coef[0] * 1e6), "ns_per_output": float(coef[1] * 1e6),
            "gflops_per_s": float(1e-6 / coef[2]) if coef[2] > 0 else None,
            "mape": float(np.mean(np.abs(fitted / ms - 1)))}


#: how many distinct oneDNN conv primitives the primitive scan cycles through per pass
PRIMITIVE_COUNTS = (1, 4, 16, 48, 96)


class _Fan(nn.Module):
    """Calls each conv on its own fixed input, one after the other (outputs dropped)."""

    def __init__(self, convs, inputs):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.inputs = inputs

    def forward(self, _):
        for conv, x in zip(self.convs, self.inputs):
            conv(x)


def _primitive_scan(repeats: int) -> list[dict]:
    """K small 5x5 convs (oneDNN by their kernel size) called in turn, K = PRIMITIVE_COUNTS:
    all of one shape (one oneDNN primitive, its code and descriptors reused), or each of
    its own size (K primitives, as a network's convs are), against the same convs each
    called alone. What a conv call pays when the calls before it ran other primitives."""
    out = []
    for count in PRIMITIVE_COUNTS:
        for distinct in (False, True):
            sizes = [6 + i % 48 for i in range(count)] if distinct else [12] * count
            channels = [16 + 16 * (i // 48) for i in range(count)] if distinct else [16] * count
            convs = [nn.Conv2d(c, c, 5, padding=2, bias=False).eval() for c in channels]
            inputs = [torch.randn(1, c, size, size) for c, size in zip(channels, sizes)]
            together = _time(_Fan(convs, inputs), [None], repeats)
            alone = sum(_time(conv, [x], repeats) for conv, x in zip(convs, inputs))
            out.append({"convs": count, "distinct_shapes": distinct, "together_ms": together,
                        "alone_ms": alone, "extra_us_per_conv": (together - alone) * 1e3 / count})
    return out


#: (output size, channel counts off a multiple of 16) of the alignment scan: each count
#: is timed beside the next multiple of 16, as a 1x1, a dense 3x3 and a depthwise 3x3 conv
#: C -> C (the counts MnasNet, ShuffleNet and MobileNetV3-like backbones use)
ALIGNMENT_GRID = ((56, (24, 40, 58, 72)), (28, (40, 72, 116, 120, 200)), (14, (80, 116, 184, 232, 472)),
                  (7, (232, 456, 1000)))


def _alignment_scan(repeats: int) -> list[dict]:
    """Convs whose channels are off a multiple of 16, each beside the padded count."""
    out = []
    for size, counts in ALIGNMENT_GRID:
        for c in counts:
            for channels in (c, -(-c // 16) * 16):
                for kind, k, groups in (("1x1", 1, 1), ("3x3", 3, 1), ("depthwise 3x3", 3, channels)):
                    conv = nn.Conv2d(channels, channels, k, 1, k // 2, groups=groups, bias=False)
                    ms = _time(conv, [torch.randn(1, channels, size, size)], repeats)
                    out.append({"conv": kind, "kernel": k, "groups": groups, "channels": channels,
                                "size": size, "ms": ms})
    return out


#: (tokens, width, heads) of the self-attention blocks scanned: ViT-B/16, ViT-S/16 and
#: ViT-L/16 at 224x224 (197 tokens), ViT-B/32 (50 tokens), a Swin-T window (49 tokens)
ATTENTION_SCAN = ((197, 768, 12), (197, 384, 6), (197, 1024, 16), (50, 768, 12), (49, 96, 3))


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` called as a ViT encoder block calls it."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x):
        return self.attention(x, x, x, need_weights=False)[0]


def _attention_scan(repeats: int) -> list[dict]:
    """Self-attention blocks timed alone, with the FLOPs netcut's table counts for them."""
    out = []
    for tokens, width, heads in ATTENTION_SCAN:
        block = SelfAttention(width, heads).eval()
        ms = _time(block, [torch.randn(1, tokens, width)], repeats)
        flops, _ = _costs(block, (1, tokens, width))
        out.append({"tokens": tokens, "width": width, "heads": heads, "ms": ms, "flops": flops})
    return out


#: (kernel, stride, channels, input size) of the max-pools scanned: overlapping 3x3
#: windows at stride 1 (Inception's branches) and 2 (ResNet's stem), and 2x2 at stride 2,
#: over the stage shapes of 224x224 backbones
POOL_GRID = tuple((k, s, c, size) for k, s in ((3, 1), (3, 2), (2, 2))
                  for c, size in ((64, 112), (192, 56), (256, 28), (512, 28), (512, 14), (832, 14),
                                  (832, 7)))


def _pool_scan(repeats: int) -> list[dict]:
    """NCHW max-pools (padding k // 2 for 3x3, ceil_mode off) timed alone."""
    out = []
    for k, stride, channels, size in POOL_GRID:
        pool = nn.MaxPool2d(k, stride, k // 2 if k == 3 else 0)
        x = torch.randn(1, channels, size, size)
        ms = _time(pool, [x], repeats)
        outputs = pool(x).numel()
        out.append({"kernel": k, "stride": stride, "channels": channels, "size": size, "ms": ms,
                    "inputs": float(x.numel()), "outputs": float(outputs),
                    "window_elements": float(outputs * k * k)})
    return out


def pool_fit(scan: list[dict]) -> dict:
    """Least squares of ms = a x window elements + b x input elements (relative errors):
    a max-pool compares every element of every window, and reads its input once; with
    overlapping windows (stride 1) it reads each input element into 9 windows, with
    3x3/2 into about 2.25, so the two terms tell the strides apart."""
    cols = [np.array([r[k] for r in scan]) for k in ("window_elements", "inputs")]
    ms = np.array([r["ms"] for r in scan])
    design = np.stack(cols, axis=1) / ms[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(ms), rcond=None)
    fitted = cols[0] * a + cols[1] * b
    window_only = cols[0] * float(np.median(ms / cols[0]))  # one rate per window element
    return {"ns_per_window_element": float(a * 1e6), "ns_per_input": float(b * 1e6),
            "mape": float(np.mean(np.abs(fitted / ms - 1))),
            "mape_window_elements_only": float(np.mean(np.abs(window_only / ms - 1)))}


GROUPED_SCAN = ((128, 56), (256, 28), (512, 14), (1024, 7))
GROUP_WIDTHS = (4, 8, 16, 32, 64)


def _grouped_scan(repeats: int) -> list[dict]:
    """Grouped 3x3 convs (no bias, as in torchvision) over group widths, timed alone."""
    out = []
    for channels, size in GROUPED_SCAN:
        for width in GROUP_WIDTHS:
            conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels // width, bias=False)
            ms = _time(conv, [torch.randn(1, channels, size, size)], repeats)
            out.append({"channels": channels, "group_width": width, "size": size, "ms": ms,
                        "flops": 2.0 * channels * width * 9 * size * size})
    return out


#: Dense convs at batch 1 fp32 go one of two ways in PyTorch's CPU build: to oneDNN when
#: the input holds more than 20480 elements or the kernel is larger than 3 in both
#: dimensions, else to im2col + GEMM (``_slow_conv2d_forward``). Each pair straddles the
#: element threshold with the same filter: (in channels below, in channels above, out
#: channels, kernel, size)
CONV_PATH_PAIRS = ((104, 105, 16, 1, 14), (104, 105, 104, 1, 14), (26, 27, 16, 1, 28),
                   (20, 21, 16, 3, 32), (408, 418, 16, 3, 7))


def _conv_backend(conv, x) -> str:
    """Which ATen kernel ran ``conv`` on ``x`` (from the profiler's op names)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        conv(x)
    names = {e.key for e in prof.key_averages()}
    for name in ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward"):
        if name in names:
            return name.split("::")[1]
    return "other"


def _conv_path_scan(repeats: int) -> list[dict]:
    """Each pair of CONV_PATH_PAIRS timed, with the kernel that ran it."""
    out = []
    for below, above, cout, k, size in CONV_PATH_PAIRS:
        for cin in (below, above):
            conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False).eval()
            x = torch.randn(1, cin, size, size)
            out.append({"cin": cin, "cout": cout, "kernel": k, "size": size, "inputs": float(x.numel()),
                        "backend": _conv_backend(conv, x), "ms": _time(conv, [x], repeats)})
    return out


def conv_path_fit(scan: list[dict], tiny: dict) -> dict:
    """oneDNN's fixed cost per dense conv: the tiny 5x5 conv (oneDNN by its kernel size)
    on the 1x16x8x8 input the other classes' fixed costs use; and how much more each
    pair's oneDNN conv took than its im2col neighbour, for comparison."""
    steps = [(b["ms"] - a["ms"]) * 1e3 for a, b in zip(scan[::2], scan[1::2])]
    return {"onednn_conv_us": tiny["conv_onednn"], "pair_steps_us": steps,
            "backends_as_expected": all(a["backend"] == "_slow_conv2d_forward"
                                        and b["backend"] == "mkldnn_convolution"
                                        for a, b in zip(scan[::2], scan[1::2]))}


#: (channels, size) of the chain scan: activations of 0.02-3 MiB, 1x1 weights of 4 KiB-1 MiB
CHAIN_SHAPES = ((32, 14), (64, 28), (32, 56), (64, 56), (96, 56), (32, 112), (64, 112), (256, 14),
                (512, 7), (256, 28))
#: op sequences the chain scan repeats (each op its own module, so weights are distinct)
CHAIN_PATTERNS = (("bn", "relu"), ("conv1x1", "bn", "relu"))
CHAIN_REPEATS = 10


def _chain_module(kind: str, channels: int) -> nn.Module:
    return {"bn": lambda: nn.BatchNorm2d(channels).eval(), "relu": lambda: nn.ReLU(),
            "conv1x1": lambda: nn.Conv2d(channels, channels, 1, bias=False).eval()}[kind]()


def _chain_scan(repeats: int) -> list[dict]:
    """Chains of ops (CHAIN_PATTERNS x CHAIN_REPEATS, every op its own module) timed as a
    whole and op by op alone on the same input: what an op pays inside a sequence beyond
    its time alone, with its activation size and weights."""
    out = []
    for pattern in CHAIN_PATTERNS:
        for channels, size in CHAIN_SHAPES:
            x = torch.randn(1, channels, size, size)
            mods = [_chain_module(k, channels) for _ in range(CHAIN_REPEATS) for k in pattern]
            alone = {kind: 0.0 for kind in pattern}
            for kind, mod in zip(pattern * CHAIN_REPEATS, mods):
                alone[kind] += _time(mod, [x], repeats)
            chain = _time(nn.Sequential(*mods).eval(), [x], max(repeats // 2, 1))
            out.append({"pattern": "-".join(pattern), "channels": channels, "size": size,
                        "ops": len(mods), "tensor_mib": x.numel() * 4 / 2**20,
                        "weights_mib_per_conv": (channels * channels * 4 / 2**20
                                                 if "conv1x1" in pattern else 0.0),
                        "chain_ms": chain, "alone_ms": alone,
                        "extra_us_per_op": (chain - sum(alone.values())) * 1e3 / len(mods)})
    return out


#: layers of 4 MiB (Linear 1024 -> 1024, fp32) in each chain of the weight-stream scan:
#: 16 MiB to 384 MiB of distinct weights
WEIGHT_STREAM_LAYERS = (4, 8, 16, 24, 32, 40, 48, 64, 96)


def _weight_stream_scan(repeats: int) -> list[dict]:
    """Chains of distinct 1-row linears, each weight read once per pass: the rate a
    network's weights stream at, by how many there are. Alone (called over and over)
    one layer's 4 MiB stay in cache; in a chain they come from wherever the previous
    pass left them, the last-level cache while it holds them all, DRAM beyond."""
    out = []
    x = torch.randn(1, 1024)
    for count in WEIGHT_STREAM_LAYERS:
        chain = nn.Sequential(*[nn.Linear(1024, 1024, bias=False) for _ in range(count)]).eval()
        ms = _time(chain, [x], repeats)
        weights = count * 1024 * 1024 * 4
        out.append({"layers": count, "weights_mib": weights / 2**20, "ms": ms,
                    "gb_per_s": weights / ms / 1e6})
    return out


def usable_cache_mib(scan: list[dict], cache_gbs: float, dram_gbs: float) -> float:
    """The most weights (MiB) the scan streamed closer to the cache copy rate than to the
    DRAM copy rate: what a network's weights can count on staying in cache."""
    middle = (cache_gbs + dram_gbs) / 2
    fast = [r["weights_mib"] for r in scan if r["gb_per_s"] >= middle]
    return max(fast) if fast else 0.0


#: activations netcut prices by their math rather than their traffic, as PyTorch calls them
#: in torchvision's networks (GELU in ConvNeXt and ViT, SiLU and sigmoid in EfficientNet,
#: hard-swish and hard-sigmoid in MobileNetV3); ReLU as the memory-bound reference
ACTIVATIONS = {
    "relu": nn.ReLU(), "gelu": nn.GELU(), "silu": nn.SiLU(), "sigmoid": nn.Sigmoid(),
    "hardswish": nn.Hardswish(), "hardsigmoid": nn.Hardsigmoid(), "tanh": nn.Tanh(),
}
#: (channels, size): 50-200 thousand elements, in and out within one core's L2 at 2 threads
ACTIVATION_SHAPES = ((64, 28), (128, 28), (64, 56))


def _activation_scan(repeats: int) -> list[dict]:
    """Each activation out of place on cache-resident NCHW inputs, timed alone."""
    out = []
    for kind, module in ACTIVATIONS.items():
        for channels, size in ACTIVATION_SHAPES:
            x = torch.randn(1, channels, size, size)
            out.append({"kind": kind, "channels": channels, "size": size,
                        "elements": float(x.numel()), "ms": _time(module, [x], repeats)})
    return out


def activation_fit(scan: list[dict], fixed_us: float) -> dict[str, float]:
    """Per kind, the median over shapes of ns per element once the elementwise class's
    fixed cost per call is taken off (at the threads the scan ran with)."""
    kinds = dict.fromkeys(r["kind"] for r in scan)
    return {kind: float(np.median([(r["ms"] * 1e3 - fixed_us) * 1e3 / r["elements"]
                                   for r in scan if r["kind"] == kind])) for kind in kinds}


#: the runs that time one scan alone: flag -> what it times
SCANS = {
    "activation-scan": "activations on cache-resident inputs, per element",
    "conv-scan": "the dense conv scan",
    "grouped-scan": "the grouped conv scan",
    "occupancy-scan": "the dense 3x3 conv scan over sizes",
    "depthwise-scan": "the depthwise conv scan over kernels, strides and sizes",
    "alignment-scan": "the scan of convs off a multiple of 16 channels",
    "attention-scan": "the self-attention scan",
    "pool-scan": "the max-pool scan over kernels, strides and sizes",
    "conv-path-scan": "dense convs either side of PyTorch's oneDNN threshold",
    "chain-scan": "chains of ops timed as a whole against each op alone",
    "weight-stream-scan": "chains of distinct linears: the rate weights stream at, by total size",
    "pointwise-scan": "1x1 convs over channel pairs and sizes on oneDNN's path",
    "primitive-scan": "small oneDNN convs called in turn, one shape or many, against each alone",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    for flag, what in SCANS.items():
        parser.add_argument(f"--{flag}", action="store_true", help=f"only {what} (JSON on stdout)")
    parser.add_argument("--no-keep-memory", action="store_true",
                        help="leave glibc's malloc thresholds alone (netcut measure --no-keep-memory)")
    args = parser.parse_args(argv)
    from netcut.measure.allocator import keep_freed_memory

    memory = {"pinned": False} if args.no_keep_memory else keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    def fixed_us(op_class: str) -> float:
        """One class's fixed cost, timed alongside a scan as the main run times it."""
        _, tiny, shape = next(op for op in _tiny_ops() if op[0] == op_class)
        return _time(tiny, [torch.randn(shape)], max(args.repeats, 200)) * 1e3

    scan = None  # one scan alone, printed as JSON with the machine it ran on
    if args.conv_scan:
        scan = {"dense_conv_scan": _conv_scan(args.repeats)}
    elif args.occupancy_scan:
        rows = _occupancy_scan(args.repeats)
        scan = {"occupancy_scan": rows, "fit": occupancy_fit(rows)}
    elif args.attention_scan:
        tiny = SelfAttention(16, 2).eval()
        scan = {"attention_scan": _attention_scan(args.repeats),
                "fixed_us": {"attention": _time(tiny, [torch.randn(1, 4, 16)], max(args.repeats, 200)) * 1e3}}
    elif args.alignment_scan:
        scan = {"alignment_scan": _alignment_scan(args.repeats)}
    elif args.depthwise_scan:
        rows = _depthwise_scan(args.repeats)
        scan = {"depthwise_scan": rows, "fit": depthwise_fit(rows),
                "fixed_us": {"conv_depthwise": fixed_us("conv_depthwise")}}
    elif args.pool_scan:
        rows = _pool_scan(args.repeats)
        scan = {"pool_scan": rows, "fit": pool_fit(rows)}
    elif args.weight_stream_scan:
        scan = {"weight_stream_scan": _weight_stream_scan(args.repeats)}
    elif args.chain_scan:
        scan = {"chain_scan": _chain_scan(args.repeats)}
    elif args.conv_path_scan:
        rows = _conv_path_scan(args.repeats)
        onednn = nn.Conv2d(16, 16, 5, 1, 2, bias=False).eval()  # oneDNN by its kernel size
        tiny = {"conv": fixed_us("conv"),
                "conv_onednn": _time(onednn, [torch.randn(1, 16, 8, 8)], max(args.repeats, 200)) * 1e3}
        scan = {"conv_path_scan": rows, "fixed_us": tiny, "fit": conv_path_fit(rows, tiny)}
    elif args.primitive_scan:
        scan = {"primitive_scan": _primitive_scan(args.repeats)}
    elif args.pointwise_scan:
        rows = _pointwise_scan(args.repeats)
        onednn = nn.Conv2d(16, 16, 5, 1, 2, bias=False).eval()  # oneDNN by its kernel size
        fixed = _time(onednn, [torch.randn(1, 16, 8, 8)], max(args.repeats, 200)) * 1e3
        scan = {"pointwise_scan": rows, "fixed_us": {"conv_onednn": fixed}, "fit": pointwise_fit(rows, fixed)}
    elif args.activation_scan:
        rows = _activation_scan(args.repeats)
        fixed = fixed_us("elementwise")
        # the main run's dense 3x3 conv beside them (without its bias, which oneDNN fuses):
        # the clock the guest ran at, against the main run's
        reference = _time(nn.Conv2d(64, 64, 3, 1, 1, bias=False), [torch.randn(1, 64, 56, 56)], args.repeats)
        scan = {"activation_scan": rows, "fixed_us": {"elementwise": fixed},
                "reference_ms": {"conv3x3 64-64 @56": reference},
                "ns_per_element": activation_fit(rows, fixed)}
    elif args.grouped_scan:
        scan = {"grouped_conv_scan": _grouped_scan(args.repeats),
                "fixed_us": {"conv_grouped": fixed_us("conv_grouped")}}
    if scan is not None:
        json.dump({"machine": _machine(memory, args), **scan}, sys.stdout, indent=1)
        print()
        return 0
    results = []
    for name, kind, fn, shapes in _ops():
        inputs = [torch.randn(s) for s in shapes] if isinstance(shapes, list) else [torch.randn(shapes)]
        ms = _time(fn, inputs, args.repeats)
        flops, moved = _costs(fn, shapes)
        results.append({"op": name, "kind": kind, "ms": ms, "gflops_per_s": flops / ms / 1e6,
                        "gb_per_s": moved / ms / 1e6, "flops": flops, "bytes": moved})
    fixed = {cls: _time(fn, [torch.randn(shape)], max(args.repeats, 200)) * 1e3
             for cls, fn, shape in _tiny_ops()}
    bandwidth = {"copy_4MiB_gbs": _copy_gbs(4, args.repeats // 3 or 1),
                 "copy_1GiB_gbs": _copy_gbs(1024, 3)}
    scan = []
    for c, size in DEPTHWISE_SCAN:
        conv = nn.Conv2d(c, c, 3, 1, 1, groups=c)
        ms = _time(conv, [torch.randn(1, c, size, size)], args.repeats)
        scan.append({"channels": c, "size": size, "ms": ms, "outputs_per_ns": c * size * size / ms / 1e6})
    info = _machine(memory, args)
    if args.json:
        json.dump({"machine": info, "ops": results, "fixed_us": fixed, "bandwidth": bandwidth,
                   "depthwise_3x3_scan": scan}, sys.stdout, indent=1)
        print()
        return 0
    print(f"# {info}")
    print(f"{'op':26s} {'kind':26s} {'ms':>8s} {'GFLOP/s':>8s} {'GB/s':>7s}")
    for r in results:
        print(f"{r['op']:26s} {r['kind']:26s} {r['ms']:8.3f} {r['gflops_per_s']:8.1f} {r['gb_per_s']:7.1f}")
    print("fixed cost per call (1x16x8x8 input), us: "
          + ", ".join(f"{k} {v:.1f}" for k, v in fixed.items()))
    print("copy bandwidth, GB/s: " + ", ".join(f"{k} {v:.1f}" for k, v in bandwidth.items()))
    print("depthwise 3x3, stride 1: " + ", ".join(
        f"{d['channels']}@{d['size']} {d['ms']:.3f} ms" for d in scan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
