"""Estimate: the priced, scheduled network, with a small query API.

Results are data; renderers (rich tables, JSON, Chrome traces) live elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tracing.table import LayerTable
from .roofline import RowCosts
from .timeline import Schedule, chrome_trace

BOUNDS = ("compute", "memory", "overhead")


@dataclass
class Estimate:
    """Predicted latency of one network on one device, mode, batch and dtype."""

    table: LayerTable
    hardware: str
    kind: str  # gpu | cpu
    mode: str
    costs: RowCosts
    sched: Schedule
    profile_calibrated: bool = False
    interval_ms: tuple[float, float] | None = None  # prediction interval, once calibrated
    interval_level: float | None = None  # the probability that interval holds
    warnings: list[str] = field(default_factory=list)

    # ----- totals -----------------------------------------------------------------
    @property
    def total_ms(self) -> float:
        return self.sched.total_s * 1e3

    @property
    def batch(self) -> int:
        return self.table.batch

    @property
    def dtype(self) -> str:
        return self.table.dtype

    @property
    def end_ms(self) -> np.ndarray:
        """Time at which each row's result is ready: the latency of a network cut
        after that row (prefix sums of the schedule, every cut point at once)."""
        return np.maximum(self.sched.device_end, self.sched.host_end) * 1e3

    @property
    def row_ms(self) -> np.ndarray:
        """Each row's share of the total: how much it moved the finish time."""
        end = self.end_ms
        return np.diff(np.concatenate([[0.0], end]))

    @property
    def bound(self) -> list[str]:
        """What limits each row: compute, memory, or fixed overhead (dispatch/launch)."""
        roof = np.maximum(self.costs.compute_s, self.costs.memory_s)
        fixed = self.costs.device_s - roof + self.costs.host_s  # kernel time, floor, dispatch
        stacked = np.vstack([self.costs.compute_s, self.costs.memory_s, fixed])
        return [BOUNDS[i] for i in np.argmax(stacked, axis=0)]

    @property
    def unsupported_ops(self) -> dict[str, int]:
        """Op kinds priced only as memory copies because no formula exists."""
        return self.table.unsupported()

    def cut_latency_ms(self) -> dict[int, float]:
        """Latency of the network cut after each legal row (without a new head)."""
        end = self.end_ms
        return {int(i): float(end[i]) for i in self.table.cut_indices()}

    # ----- breakdowns -------------------------------------------------------------
    @property
    def layers(self) -> list[dict]:
        """One record per row: the traced facts plus timings in milliseconds."""
        records = self.table.to_records()
        row_ms, end, bound = self.row_ms, self.end_ms, self.bound
        for i, rec in enumerate(records):
            rec.update(
                compute_ms=float(self.costs.compute_s[i] * 1e3),
                memory_ms=float(self.costs.memory_s[i] * 1e3),
                kernel_ms=float(self.costs.kernel_s[i] * 1e3),
                device_ms=float(self.costs.device_s[i] * 1e3),
                host_ms=float(self.costs.host_s[i] * 1e3),
                latency_ms=float(row_ms[i]),
                end_ms=float(end[i]),
                bound=bound[i],
            )
        return records

    def by_block(self) -> dict[str, float]:
        """Milliseconds per block, in network order (sums to ``total_ms``)."""
        return _group(self.table.blocks, self.row_ms)

    def by_op(self) -> dict[str, float]:
        """Milliseconds per op kind, largest first."""
        grouped = _group(self.table.ops, self.row_ms)
        return dict(sorted(grouped.items(), key=lambda kv: -kv[1]))

    def bound_share(self) -> dict[str, float]:
        """Fraction of the total latency spent in rows of each bound."""
        row_ms = self.row_ms
        total = row_ms.sum() or 1.0
        bound = np.array(self.bound)
        return {b: float(row_ms[bound == b].sum() / total) for b in BOUNDS}

    def timeline(self) -> dict:
        """Chrome trace-event JSON of the host and device streams (Perfetto)."""
        title = f"{self.table.model_name} on {self.hardware} ({self.mode}, batch {self.batch}, {self.dtype})"
        return chrome_trace(self.table.names, self.table.ops, self.sched, title)

    def summary(self) -> dict:
        """A JSON-ready summary (what ``netcut predict --json`` prints)."""
        return {
            "model": self.table.model_name,
            "hardware": self.hardware,
            "mode": self.mode,
            "batch": self.batch,
            "dtype": self.dtype,
            "input_shape": [self.batch, *self.table.input_shape],
            "total_ms": self.total_ms,
            "interval_ms": list(self.interval_ms) if self.interval_ms else None,
            "interval_level": self.interval_level if self.interval_ms else None,
            "calibrated": self.profile_calibrated,
            "flops": self.table.total_flops(),
            "params": self.table.total_params(),
            "rows": len(self.table),
            "legal_cuts": int(self.table.cut_legal.sum()),
            "bound_share": self.bound_share(),
            "unsupported_ops": self.unsupported_ops,
            "tracer": self.table.tracer,
            "warnings": self.warnings,
            "by_block_ms": self.by_block(),
        }


def _group(keys: list[str], values: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in zip(keys, values):
        out[key] = out.get(key, 0.0) + float(value)
    return out
