"""Per-row roofline pricing: compute time, memory time, fixed overheads.

All arithmetic is on numpy columns of a LayerTable, so pricing a table on many
profiles costs microseconds per profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..opclasses import MATRIX_CLASSES, OP_CLASS_FALLBACK, OP_CLASSES
from ..dtypes import dtype_bytes
from ..tracing.table import LayerTable
from .in_network import in_network_s

#: op classes a ``fused`` (TensorRT-like) mode folds into the producing kernel
FUSED_AWAY = ("elementwise", "norm", "view")
#: reduction channels a tensor-core convolution consumes per filter tap (the K-tile of
#: cuDNN's implicit GEMM); a conv with fewer input channels (an RGB stem: 3) pays for
#: the whole tile, ceil(Cin / tile) * tile / Cin times its FLOPs
CONV_CHANNEL_TILE = 32
#: PyTorch keeps half tensors NCHW while tensor-core convolutions run NHWC, so a
#: float16/bfloat16 conv on tensor cores launches a layout transform before and after
#: it (eager and graph modes; a TensorRT-like engine keeps one layout throughout).
#: A 1x1 conv is a plain GEMM on NCHW and mostly needs none: torch.profiler on an H200
#: showed transforms around 25 of 146 fp16 1x1 convs of four networks (resnet50: 14 of
#: 36) and around 16 of 16 fp16 3x3 convs (calibration/data/h200/h200-kernels-*).
HALF_LAYOUT_KERNELS = 2
#: a float16/bfloat16 BatchNorm in eval on a GPU is three kernels in PyTorch (two small
#: ones fold the running statistics into a scale and a shift, then the transform); in
#: float32 cuDNN does it in one (the same H200 profiles: 195 of 195 fp16 BNs had 3)
HALF_BATCH_NORM_EXTRA_KERNELS = 2
#: multiplications saved by Winograd F(2x2, 3x3) on a dense 3x3 stride-1 conv (36 -> 16
#: per 2x2 output tile, Lavin & Gray 2016); used where the engine times its tactics
#: (``fused``) and the conv runs on CUDA cores (tensor-core GEMMs beat Winograd)
WINOGRAD_3X3_SAVING = 2.25
#: op classes whose time grows when too few outputs are computed to fill the device.
#: Matmuls are left out: at batch 1 they are matrix-vector products that libraries
#: split along the reduction, and they are memory-bound anyway.
SATURATING_CLASSES = ("conv", "conv_grouped")
#: op classes a CPU conv library runs in its blocked channel layout (``channel_block``)
BLOCKED_CLASSES = ("conv", "conv_grouped", "conv_depthwise")
#: A GPU conv with a bias, run by PyTorch (eager or CUDA graph), is two kernels: cuDNN's
#: convolution, then a broadcast add of the bias that reads and writes the whole output
#: again (ATen's _convolution adds it apart; torch.profiler shows the extra
#: elementwise_kernel after every biased conv, calibration/data/h200/h200-kernels.json).
#: On an H200 that add costs the same per element in float16 as in float32 (stem conv
#: 3->64 at batch 16: +40 us fp32, +33 us fp16; h200-micro.json), so its traffic is
#: priced at float32 width, at the elementwise class's share of bandwidth.
BIAS_PASS_BYTES_PER_ELEMENT = 8.0  # 4 read + 4 written
BIAS_PASS_MODES = ("eager", "graph")


@dataclass(frozen=True)
class RowCosts:
    """Seconds per row, before scheduling (see ``timeline.py``)."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    kernel_s: np.ndarray  # device-side fixed cost of the row's kernels
    device_s: np.ndarray  # max(compute, memory) + a separate bias pass + kernel_s
    host_s: np.ndarray  # host dispatch time (0 when the mode has none)
    launch_s: float  # once per forward pass


def class_vector(values: dict[str, float], scale: float = 1.0) -> np.ndarray:
    """A per-op-class array from a profile mapping with a ``default`` entry."""
    default = values["default"]
    return np.array([values.get(c, values.get(OP_CLASS_FALLBACK.get(c), default)) * scale
                     for c in OP_CLASSES], dtype=float)


#: PyTorch runs float16 convolutions and matmuls with float32 accumulation (ATen's
#: cuDNN ConvolutionDescriptor sets the math type to CUDNN_DATA_FLOAT for half data;
#: cuBLAS half GEMMs use CUBLAS_COMPUTE_32F). Tensor cores accumulate in fp32 at the
#: listed fp16 rate, but plain CUDA cores then run at their float32 FMA rate; only a
#: TensorRT-like engine (``fused``) uses true fp16 (half2) arithmetic on them.
PSEUDO_HALF_MODES = ("eager", "graph")


def peak_vector(profile, dtype: str, mode: str | None = None) -> np.ndarray:
    """Peak FLOP/s per op class at ``dtype``; classes with no peak get NaN."""
    out = np.empty(len(OP_CLASSES))
    pseudo_half = profile.kind == "gpu" and dtype == "float16" and mode in PSEUDO_HALF_MODES
    for i, op_class in enumerate(OP_CLASSES):
        try:
            out[i] = profile.peak_flops(op_class, dtype)
        except KeyError:
            out[i] = np.nan
            continue
        if pseudo_half and (op_class in MATRIX_CLASSES or op_class in ("pool", "pool_max")):
            # pooling too: the H200's max-pool took the same time in fp16 as in fp32
            unit = profile.unit_for(op_class, dtype)
            if not unit.startswith("tensor"):
                out[i] = min(out[i], profile.compute.peak_tflops[unit].get("float32", np.inf) * 1e12)
    return out


@dataclass(frozen=True)
class ProfileVectors:
    """Everything pricing needs from a profile at one (dtype, mode), per op class."""

    peak: np.ndarray  # FLOP/s before efficiency (NaN: no peak at this dtype)
    eff_compute: np.ndarray
    eff_memory: np.ndarray
    dispatch_s: np.ndarray
    bandwidth: float  # bytes/s before efficiency
    saturation: float  # output elements that fill the device (0: no occupancy term)
    kernel_s: float
    launch_s: float
    enqueue_s: float = 0.0  # host time of each kernel of an op after its first
    cuda_core_conv: np.ndarray = None  # per class: True for a dense conv on a non-tensor unit
    cache_bandwidth: float = 0.0  # CPU: bytes/s of cache-resident traffic (0: none given)
    cache_bytes: float = 0.0  # CPU: the last-level cache
    stream_weights: bool = False  # CPU: weights beyond the cache stream after the compute
    eff_pointwise: float = float("nan")  # 1x1 dense convs' compute efficiency (conv's if unlisted)
    network_bandwidth: float = 0.0  # CPU: bytes/s every op's traffic moves at again (0: none)
    channel_block: float = 0.0  # CPU: channels per vector block of conv layouts (0: none)
    pool_input_s: float = 0.0  # CPU: seconds per input element of a max-pool (0: none)
    depthwise_input_s: float = 0.0  # CPU: seconds per input element of a depthwise conv
    depthwise_output_s: float = 0.0  # CPU: ... and per output element (0: none)
    pointwise_input_s: float = 0.0  # CPU: seconds per input element of a oneDNN 1x1 conv
    pointwise_output_s: float = 0.0  # CPU: ... and per output element (0: none)
    onednn_conv_s: float | None = None  # CPU eager: fixed cost of a oneDNN dense conv
    misaligned: np.ndarray = None  # CPU, per class: x time of a conv off the channel block
    misaligned_pointwise: float = 1.0  # ... for 1x1 dense convs
    misaligned_pointwise_s: float = 0.0  # CPU: seconds per element moved, in place of the factor
    misaligned_depthwise_s: float = 0.0  # ... for depthwise convs (0: the factor)
    in_network: dict | None = None  # CPU eager: overhead.eager.in_network's fields (None: none)
    activation_s: dict | None = None  # CPU: seconds per output element, by op kind (None: none)


def profile_vectors(profile, dtype: str, mode: str) -> ProfileVectors:
    """Per-class vectors of ``profile``, built once per (dtype, mode) and cached on it."""
    cache = getattr(profile, "_vectors", None)
    key = (dtype, mode)
    if cache is not None and key in cache:
        return cache[key]
    if mode not in profile.overhead:
        raise InvalidInputError(
            f"{profile.name} has no '{mode}' execution mode (it has: {', '.join(profile.overhead)})"
        )
    overhead = profile.overhead[mode]
    eff = profile.efficiency
    vectors = ProfileVectors(
        peak=peak_vector(profile, dtype, mode),
        eff_compute=np.array([eff.fraction("compute", c, dtype) for c in OP_CLASSES]),
        eff_pointwise=eff.fraction("compute", "conv_pointwise", dtype),
        eff_memory=np.array([eff.fraction("memory", c, dtype) for c in OP_CLASSES]),
        dispatch_s=class_vector(overhead.dispatch_us, 1e-6),
        bandwidth=profile.bandwidth_bytes_per_s(),
        saturation=float(profile.saturation_outputs()),
        kernel_s=overhead.kernel_us_by_dtype.get(dtype, overhead.kernel_us) * 1e-6,
        launch_s=overhead.launch_us * 1e-6,
        enqueue_s=overhead.enqueue_us * 1e-6,
        cuda_core_conv=np.array([c == "conv" and not profile.unit_for(c, dtype).startswith("tensor")
                                 for c in OP_CLASSES]),
        cache_bandwidth=profile.cache_bandwidth_bytes_per_s() if profile.kind == "cpu" else 0.0,
        cache_bytes=profile.cache_bytes() if profile.kind == "cpu" else 0.0,
        stream_weights=profile.kind == "cpu" and bool(profile.memory.usable_cache_mib),
        network_bandwidth=profile.network_bandwidth_bytes_per_s() if profile.kind == "cpu" else 0.0,
        channel_block=float(getattr(profile.compute, "channel_block", None) or 0.0),
        pool_input_s=profile.pool_input_s() if profile.kind == "cpu" else 0.0,
        depthwise_input_s=profile.depthwise_element_s()[0] if profile.kind == "cpu" else 0.0,
        depthwise_output_s=profile.depthwise_element_s()[1] if profile.kind == "cpu" else 0.0,
        pointwise_input_s=profile.pointwise_element_s()[0] if profile.kind == "cpu" else 0.0,
        pointwise_output_s=profile.pointwise_element_s()[1] if profile.kind == "cpu" else 0.0,
        onednn_conv_s=(overhead.onednn_conv_us * 1e-6
                       if profile.kind == "cpu" and overhead.onednn_conv_us is not None else None),
        in_network=_in_network_terms(profile, overhead),
        activation_s=_activation_seconds(profile),
        **_misaligned_vectors(profile),
    )
    if cache is not None:
        cache[key] = vectors
    return vectors


def _in_network_terms(profile, overhead) -> dict | None:
    """A CPU profile's in-network costs as a plain mapping (None: it lists none)."""
    terms = getattr(overhead, "in_network", None)
    if profile.kind != "cpu" or terms is None:
        return None
    return dict(terms) if isinstance(terms, dict) else terms.model_dump()


def _activation_seconds(profile) -> dict | None:
    """Seconds per output element of the activations a CPU profile measured (None: none)."""
    per_core = getattr(profile.compute, "activation_ns_per_element_per_core", None) if profile.kind == "cpu" else None
    if not per_core:
        return None
    return {kind: ns * 1e-9 / profile.effective_cores() for kind, ns in per_core.items()}


def _misaligned_vectors(profile) -> dict:
    """``misaligned_factor`` as a per-class vector and the 1x1 convs' factor, and the
    per-element costs that replace the factor for some kinds ({}: none)."""
    compute = profile.compute if profile.kind == "cpu" else None
    factors = getattr(compute, "misaligned_factor", None) or {}
    per_element = getattr(compute, "misaligned_ns_per_element_per_core", None) or {}
    if not factors and not per_element:
        return {}
    per_class = np.ones(len(OP_CLASSES))
    for cls in ("conv", "conv_depthwise"):
        per_class[OP_CLASSES.index(cls)] = factors.get(cls, 1.0)
    seconds = 1e-9 / profile.effective_cores()
    return {"misaligned": per_class,
            "misaligned_pointwise": factors.get("conv_pointwise", factors.get("conv", 1.0)),
            "misaligned_pointwise_s": per_element.get("conv_pointwise", 0.0) * seconds,
            "misaligned_depthwise_s": per_element.get("conv_depthwise", 0.0) * seconds}


_CONV_IDX = OP_CLASSES.index("conv")
_ELEMENTWISE_IDX = OP_CLASSES.index("elementwise")
_POOL_MAX_IDX = OP_CLASSES.index("pool_max")

def _winograd_rows(table: LayerTable) -> np.ndarray:
    """Dense 3x3 stride-1 convolutions (9 taps, same spatial size)."""
    same = np.array([bool(s) and len(s[0]) == 4 and len(o) == 4 and tuple(s[0][2:]) == tuple(o[2:])
                     for s, o in zip(table.in_shapes, table.out_shapes)])
    return (table.conv_taps == 9.0) & same


_SATURATING_IDX = np.array([OP_CLASSES.index(c) for c in SATURATING_CLASSES])
_BLOCKED_IDX = np.array([OP_CLASSES.index(c) for c in BLOCKED_CLASSES])
_DEPTHWISE_IDX = OP_CLASSES.index("conv_depthwise")
_FUSED_IDX = np.array([OP_CLASSES.index(c) for c in FUSED_AWAY])


def streamed_weights(table: LayerTable, v: ProfileVectors) -> np.ndarray:
    """Bytes of weights each row reads from DRAM outside its roofline (0 where none).

    With ``memory.usable_cache_mib`` a network whose weights exceed it finds none of them
    in cache (each pass evicts the last), and an op reads its weights before it computes
    (oneDNN reorders a conv's weights first): on the Xeon 6 guest chains of distinct 1-row
    linears streamed 16-64 MiB of weights at 49-50 GB/s and 128-384 MiB at 26-29 GB/s,
    the DRAM copy rate, and ResNet-50's layer4 blocks (17-23 MiB of weights each) took
    a median 0.5-1.2 ms longer in the network than alone
    (scripts/resnet_blocks_in_network.py). The network's total decides for every row, as
    for the roofline's own weight rule; a trimmed network with fewer weights is priced
    with its source network's total."""
    weights = table.weight_read * dtype_bytes(table.dtype)
    if not v.stream_weights or weights.sum() <= v.cache_bytes:
        return np.zeros(len(weights))
    return weights


def _cpu_memory_s(table: LayerTable, traffic: np.ndarray, v: ProfileVectors,
                  streamed: np.ndarray | float = 0.0) -> np.ndarray:
    """Seconds of memory traffic on a CPU whose profile gives a cache bandwidth.

    At small batch an op reads activations its predecessor has just written, so they
    come from cache when they fit in the last-level cache; weights come from cache only
    when ALL the network's weights fit there (they are then still resident from the
    previous pass), else they stream from DRAM on every pass. On the Zen 4 guest a
    4 MiB copy ran at 163 GB/s and a 1 GiB one at 33 GB/s
    (calibration/data/cpu-epyc-genoa-2c-micro-keepmem.json), which a single DRAM
    figure cannot price both of. ``traffic`` excludes the ``streamed`` weights, which are
    priced outside the roofline (``streamed_weights``).
    """
    weights = table.weight_read * dtype_bytes(table.dtype) - streamed
    activations = np.maximum(traffic - weights, 0.0)
    act_bw = np.where(activations <= v.cache_bytes, v.cache_bandwidth, v.bandwidth)
    weight_bw = v.cache_bandwidth if weights.sum() <= v.cache_bytes else v.bandwidth
    return activations / act_bw + weights / weight_bw


#: PyTorch's CPU build runs a float32 dense conv at batch 1 as im2col + GEMM when its
#: input holds at most this many elements and its kernel is at most 3 wide in some
#: dimension; every other dense conv goes to oneDNN (checked with torch.profiler on
#: torch 2.14: calibration/data/cpu-xeon-gnr-2c-conv-path-scan.json)
ONEDNN_MIN_INPUT = 20480


def onednn_convs(table: LayerTable) -> np.ndarray:
    """Dense conv rows PyTorch's CPU build hands to oneDNN rather than im2col + GEMM:
    batch above 1, a dtype other than float32, an input of more than ONEDNN_MIN_INPUT
    elements, or 16 filter taps or more (a kernel larger than 3x3 in both dimensions; the
    table keeps taps, not the kernel's shape). oneDNN pays a fixed cost per call (primitive
    lookup, layout reorders) that the GEMM path does not: 67 us against 8 us on the Xeon 6
    guest. Grouped and depthwise convs always go to oneDNN and carry it in their own class."""
    dense = table.op_class_idx == _CONV_IDX
    if table.batch > 1 or table.dtype != "float32":
        return dense
    return dense & ((table.inputs > ONEDNN_MIN_INPUT) | (table.conv_taps >= 16.0))


def misaligned_rows(table: LayerTable, block: float) -> np.ndarray:
    """Blocked-layout conv rows with input or output channels off a multiple of ``block``
    (counts below the block, an RGB stem's 3, have kernels of their own and are not)."""
    blocked = np.isin(table.op_class_idx, _BLOCKED_IDX)
    off = np.zeros(len(table.names), dtype=bool)
    for channels in (table.in_channels, table.out_channels):
        off |= (channels >= block) & (np.mod(channels, block) != 0)
    return blocked & off


def channel_block_factor(table: LayerTable, block: float) -> np.ndarray:
    """Per row, how many times its FLOPs grow when a conv's channels are rounded up to a
    multiple of ``block`` (1 elsewhere): the conv library computes whole blocks.

    Dense convs round their input and output channels, depthwise convs their channels,
    grouped convs their output channels. A count below the block (an RGB stem's 3) is
    left as it is: libraries give such convs kernels of their own, and on the Xeon 6
    guest a 3 -> 64 7x7 stem ran at the rate of a 64 -> 64 3x3 conv
    (calibration/data/cpu-xeon-gnr-2c-micro-keepmem.json).
    """
    factor = np.ones(len(table.names))
    blocked = np.isin(table.op_class_idx, _BLOCKED_IDX)
    if not block or not blocked.any():
        return factor
    depthwise = table.op_class_idx == _DEPTHWISE_IDX
    for channels, rounded in ((table.in_channels, (table.op_class_idx == _CONV_IDX) | depthwise),
                              (table.out_channels, blocked & ~depthwise)):
        padded = np.ceil(channels / block) * block
        grows = rounded & (channels >= block)
        factor = np.where(grows, factor * padded / np.maximum(channels, 1.0), factor)
    return factor


def _padding(channels: np.ndarray, block: float) -> np.ndarray | float:
    """How many times more elements a blocked layout moves than ``channels`` hold (1 with
    no block, or for counts below it: those convs have kernels of their own)."""
    if not block:
        return 1.0
    channels = np.maximum(channels, 1.0)
    return np.where(channels >= block, np.ceil(channels / block) * block / channels, 1.0)


def price_rows(table: LayerTable, profile, mode: str) -> RowCosts:
    """Roofline time of every row of ``table`` (at its batch and dtype) on ``profile``.

    A convolution with few outputs cannot fill a GPU: its compute time is scaled by
    ``1 + saturation / outputs`` (outputs = elements written; see
    ``GpuCompute.saturation_outputs``). Every kernel adds ``kernel_us`` of fixed
    device time (launch latency, ramp-up and tail).
    """
    v = profile_vectors(profile, table.dtype, mode)
    cls = table.op_class_idx
    peaks = v.peak[cls]
    flops = table.flops
    needs_peak = flops > 0
    if np.any(np.isnan(peaks) & needs_peak):
        raise InvalidInputError(
            f"{profile.name} lists no {table.dtype} peak for some ops "
            f"(it has: {', '.join(profile.dtypes())})"
        )
    conv = cls == _CONV_IDX
    tensor_conv = conv & ~v.cuda_core_conv[cls]
    if CONV_CHANNEL_TILE:
        cin = np.maximum(table.in_channels, 1.0)
        pad = np.ceil(cin / CONV_CHANNEL_TILE) * CONV_CHANNEL_TILE / cin
        flops = np.where(tensor_conv, flops * pad, flops)
    if v.channel_block:
        flops = flops * channel_block_factor(table, v.channel_block)
    if mode == "fused" and WINOGRAD_3X3_SAVING:
        flops = np.where(_winograd_rows(table) & v.cuda_core_conv[cls], flops / WINOGRAD_3X3_SAVING, flops)
    efficiency = np.where(conv & (table.conv_taps == 1.0), v.eff_pointwise, v.eff_compute[cls])
    compute_s = np.where(needs_peak, flops / (np.nan_to_num(peaks, nan=1.0) * efficiency), 0.0)
    if v.pool_input_s > 0:  # a CPU max-pool reads its input once, whatever its windows overlap
        compute_s = np.where(cls == _POOL_MAX_IDX, compute_s + table.inputs * v.pool_input_s, compute_s)
    if v.depthwise_input_s or v.depthwise_output_s:  # a CPU depthwise conv moves activations slowly
        moved = table.inputs * v.depthwise_input_s + table.outputs * v.depthwise_output_s
        moved = moved * _padding(table.in_channels, v.channel_block)  # its padding channels move too
        compute_s = np.where(cls == _DEPTHWISE_IDX, compute_s + moved, compute_s)
    pointwise = np.zeros(len(cls), dtype=bool)
    if v.pointwise_input_s or v.pointwise_output_s:  # oneDNN moves a 1x1 conv's activations again
        pointwise = conv & (table.conv_taps == 1.0) & onednn_convs(table)
        moved = (table.inputs * v.pointwise_input_s * _padding(table.in_channels, v.channel_block)
                 + table.outputs * v.pointwise_output_s * _padding(table.out_channels, v.channel_block))
        compute_s = np.where(pointwise, compute_s + moved, compute_s)
    if v.saturation > 0:
        outputs = np.maximum(table.outputs, 1.0)
        # the per-element terms above were fitted without the occupancy term: they replace it
        saturating = np.isin(cls, _SATURATING_IDX) & ~pointwise
        compute_s = np.where(saturating, compute_s * (1.0 + v.saturation / outputs), compute_s)
    if v.misaligned is not None and v.channel_block:  # slower than the padded conv priced above
        off = misaligned_rows(table, v.channel_block)
        one_by_one = conv & (table.conv_taps == 1.0)
        factor = np.where(one_by_one, v.misaligned_pointwise, v.misaligned[cls])
        # where measured per element, the extra follows the activations moved, not the FLOPs
        per_element = np.where(one_by_one, v.misaligned_pointwise_s,
                               np.where(cls == _DEPTHWISE_IDX, v.misaligned_depthwise_s, 0.0))
        moved = (table.inputs + table.outputs) * per_element
        compute_s = np.where(off, np.where(per_element > 0, compute_s + moved, compute_s * factor), compute_s)
    if v.activation_s:  # measured per element: the nominal FLOPs of erf or exp say little
        per_element = np.array([v.activation_s.get(op, 0.0) for op in table.ops])
        compute_s = np.where(per_element > 0, table.outputs * per_element, compute_s)
    traffic = table.bytes_read + table.bytes_written
    streamed = streamed_weights(table, v) if v.cache_bandwidth > 0 else 0.0
    traffic = traffic - streamed  # read after the roofline, at DRAM speed (below)
    kernels = table.kernels.astype(float)
    half_in_pytorch = mode in PSEUDO_HALF_MODES and table.dtype in ("float16", "bfloat16")
    if half_in_pytorch:
        # the transforms move the conv's input and output activations once more
        moved = (table.act_read1 + table.act_write1) * table._scale * dtype_bytes(table.dtype)
        transformed = tensor_conv & (table.conv_taps > 1)
        traffic = np.where(transformed, traffic + moved, traffic)
        kernels = np.where(transformed, kernels + HALF_LAYOUT_KERNELS, kernels)
    if half_in_pytorch and profile.kind == "gpu":
        kernels = kernels + table.is_batch_norm * HALF_BATCH_NORM_EXTRA_KERNELS
    if v.cache_bandwidth > 0:
        memory_s = _cpu_memory_s(table, traffic, v, streamed) / v.eff_memory[cls]
    else:
        memory_s = traffic / (v.bandwidth * v.eff_memory[cls])
    bias_s = 0.0
    if profile.kind == "gpu" and mode in BIAS_PASS_MODES:
        bias = table.bias_pass
        if bias.any():
            bias_s = np.where(bias, table.outputs * BIAS_PASS_BYTES_PER_ELEMENT
                              / (v.bandwidth * v.eff_memory[_ELEMENTWISE_IDX]), 0.0)
            kernels = kernels + bias
    if mode == "fused":
        folded = np.isin(cls, _FUSED_IDX)
        compute_s = np.where(folded, 0.0, compute_s)
        memory_s = np.where(folded, 0.0, memory_s)
        kernels = np.where(folded, 0.0, kernels)
    kernel_s = kernels * v.kernel_s
    device_s = np.maximum(compute_s, memory_s) + bias_s + kernel_s + streamed / v.bandwidth
    if v.network_bandwidth > 0:
        # inside a network an op finds its inputs and weights in the shared cache or DRAM,
        # not in the core's own caches as when it is timed alone
        device_s = device_s + traffic / v.network_bandwidth
    if v.in_network is not None and mode == "eager":  # the same, measured op kind by op kind
        device_s = device_s + in_network_s(table, v.in_network)
    host_s = v.dispatch_s[cls]
    if v.onednn_conv_s is not None and mode == "eager":
        host_s = np.where(onednn_convs(table), v.onednn_conv_s, host_s)
    if mode == "fused":  # an engine enqueues only the kernels left after folding
        host_s = np.where(kernels > 0, host_s, 0.0)
    elif v.enqueue_s:  # an op's dispatch covers its first kernel; each further one is launched too
        host_s = host_s + np.maximum(kernels - 1.0, 0.0) * v.enqueue_s
    return RowCosts(compute_s, memory_s, kernel_s, device_s, host_s, v.launch_s)
