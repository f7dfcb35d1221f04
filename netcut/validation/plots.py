"""Predicted-against-measured scatter plots, rendered to PNG bytes.

Pure: points in, bytes out. Uses matplotlib's object API with the Agg canvas
directly, so no pyplot state and no global backend switch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

#: colour-blind-safe (Okabe-Ito), in the order groups are first seen
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


@dataclass
class Panel:
    """One log-log axis: measured (x) against predicted (y), coloured by ``groups``."""

    title: str
    measured_ms: np.ndarray
    predicted_ms: np.ndarray
    groups: list[str]
    order: list[str] = field(default_factory=list)  # legend order; default: first seen


def scatter_png(panels: list[Panel], title: str, dpi: int = 110) -> bytes:
    """Log-log scatter panels side by side, each with y = x and a shaded ±10% band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(panels), 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    values = np.concatenate([np.concatenate([p.measured_ms, p.predicted_ms]) for p in panels])
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = (values.min() / 1.5, values.max() * 1.5) if values.size else (0.1, 10.0)
    line = np.geomspace(lo, hi, 50)
    for ax, panel in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.fill_between(line, line * 0.9, line * 1.1, color="0.85", label="±10%", zorder=0)
        ax.plot(line, line, color="0.35", lw=1, label="y = x", zorder=1)
        groups = np.array(panel.groups)
        order = panel.order or list(dict.fromkeys(panel.groups))
        for i, name in enumerate(order):
            mask = groups == name
            if not mask.any():
                continue
            ax.scatter(panel.measured_ms[mask], panel.predicted_ms[mask], s=14, alpha=0.75,
                       color=PALETTE[i % len(PALETTE)], edgecolors="none",
                       label=f"{name} ({int(mask.sum())})", zorder=2 + len(order) - i)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted (ms)")
        ax.set_title(panel.title, fontsize=10)
        ax.grid(True, which="major", color="0.92", lw=0.6)
        ax.legend(fontsize=8, loc="upper left", frameon=False)
    fig.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
