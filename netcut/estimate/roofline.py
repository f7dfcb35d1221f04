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


def price_rows(table: LayerTable, profile, mode: str) -> RowCosts:
    if mode not in profile.overhead:
        raise InvalidInputError(
            f"{profile.name} has no '{mode}' execution mode (it has: {', '.join(profile.overhead)})"
        )
    overhead = profile.overhead[mode]
    cls = table.op_class_idx
    peaks = peak_vector(profile, table.dtype)[cls]
    flops = table.flops
    needs_peak = flops > 0
    if np.any(np.isnan(peaks) & needs_peak):
        raise InvalidInputError(
            f"{profile.name} lists no {table.dtype} peak for some ops "
            f"(it has: {', '.join(profile.dtypes())})"
        )
    eff_c = class_vector(profile.efficiency.compute)[cls]
    eff_m = class_vector(profile.efficiency.memory)[cls]
    compute_s = np.where(needs_peak, flops / (np.nan_to_num(peaks, nan=1.0) * eff_c), 0.0)
    memory_s = (table.bytes_read + table.bytes_written) / (profile.bandwidth_bytes_per_s() * eff_m)
    kernels = table.kernels.astype(float)
    if mode == "fused":
        folded = np.isin(cls, [OP_CLASSES.index(c) for c in FUSED_AWAY])
        compute_s = np.where(folded, 0.0, compute_s)
        memory_s = np.where(folded, 0.0, memory_s)
        kernels = np.where(folded, 0.0, kernels)
    kernel_s = kernels * overhead.kernel_us * 1e-6
    device_s = np.maximum(compute_s, memory_s) + kernel_s
    host_s = class_vector(overhead.dispatch_us, 1e-6)[cls]
    return RowCosts(compute_s, memory_s, kernel_s, device_s, host_s, overhead.launch_us * 1e-6)
