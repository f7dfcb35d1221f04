"""Per-row roofline pricing: compute time, memory time, fixed overheads.

All arithmetic is on numpy columns of a LayerTable, so pricing a table on many
profiles costs microseconds per profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..opclasses import OP_CLASSES
from ..tracing.table import LayerTable

#: op classes a ``fused`` (TensorRT-like) mode folds into the producing kernel
FUSED_AWAY = ("elementwise", "norm", "view")
#: op classes whose time grows when too few outputs are computed to fill the device.
#: Matmuls are left out: at batch 1 they are matrix-vector products that libraries
#: split along the reduction, and they are memory-bound anyway.
SATURATING_CLASSES = ("conv", "conv_grouped")


@dataclass(frozen=True)
class RowCosts:
    """Seconds per row, before scheduling (see ``timeline.py``)."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    kernel_s: np.ndarray  # device-side fixed cost of the row's kernels
    device_s: np.ndarray  # max(compute, memory) + kernel_s
    host_s: np.ndarray  # host dispatch time (0 when the mode has none)
    launch_s: float  # once per forward pass


def class_vector(values: dict[str, float], scale: float = 1.0) -> np.ndarray:
    """A per-op-class array from a profile mapping with a ``default`` entry."""
    default = values["default"]
    return np.array([values.get(c, default) * scale for c in OP_CLASSES], dtype=float)


def peak_vector(profile, dtype: str) -> np.ndarray:
    """Peak FLOP/s per op class at ``dtype``; classes with no peak get NaN."""
    out = np.empty(len(OP_CLASSES))
    for i, op_class in enumerate(OP_CLASSES):
        try:
            out[i] = profile.peak_flops(op_class, dtype)
        except KeyError:
            out[i] = np.nan
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
        peak=peak_vector(profile, dtype),
        eff_compute=np.array([eff.fraction("compute", c, dtype) for c in OP_CLASSES]),
        eff_memory=np.array([eff.fraction("memory", c, dtype) for c in OP_CLASSES]),
        dispatch_s=class_vector(overhead.dispatch_us, 1e-6),
        bandwidth=profile.bandwidth_bytes_per_s(),
        saturation=float(profile.saturation_outputs()),
        kernel_s=overhead.kernel_us_by_dtype.get(dtype, overhead.kernel_us) * 1e-6,
        launch_s=overhead.launch_us * 1e-6,
    )
    if cache is not None:
        cache[key] = vectors
    return vectors


_SATURATING_IDX = np.array([OP_CLASSES.index(c) for c in SATURATING_CLASSES])
_FUSED_IDX = np.array([OP_CLASSES.index(c) for c in FUSED_AWAY])


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
    compute_s = np.where(needs_peak, flops / (np.nan_to_num(peaks, nan=1.0) * v.eff_compute[cls]), 0.0)
    if v.saturation > 0:
        outputs = np.maximum(table.outputs, 1.0)
        saturating = np.isin(cls, _SATURATING_IDX)
        compute_s = np.where(saturating, compute_s * (1.0 + v.saturation / outputs), compute_s)
    memory_s = (table.bytes_read + table.bytes_written) / (v.bandwidth * v.eff_memory[cls])
    kernels = table.kernels.astype(float)
    if mode == "fused":
        folded = np.isin(cls, _FUSED_IDX)
        compute_s = np.where(folded, 0.0, compute_s)
        memory_s = np.where(folded, 0.0, memory_s)
        kernels = np.where(folded, 0.0, kernels)
    kernel_s = kernels * v.kernel_s
    device_s = np.maximum(compute_s, memory_s) + kernel_s
    host_s = v.dispatch_s[cls]
    return RowCosts(compute_s, memory_s, kernel_s, device_s, host_s, v.launch_s)
