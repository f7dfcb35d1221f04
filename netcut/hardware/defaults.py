"""Generic efficiency and overhead defaults for datasheet-only profiles.

These are what a profile gets before any fitting to its device; the shipped
datasheet-only profiles copy them, and validation uses them as the "uncalibrated"
baseline. ``docs/hardware-schema.md#defaults`` explains where they come from.
"""

from __future__ import annotations

GPU_EFFICIENCY = {
    "compute": {"default": 0.5, "conv": 0.5, "conv_grouped": 0.2, "conv_depthwise": 0.1,
                "matmul": 0.6, "attention": 0.4},
    "memory": {"default": 0.7},
}
CPU_EFFICIENCY = {
    "compute": {"default": 0.3, "conv": 0.5, "conv_grouped": 0.25, "conv_depthwise": 0.15,
                "matmul": 0.6, "attention": 0.4},
    "memory": {"default": 0.6},
}


def datasheet_only(profile):
    """``profile`` with its efficiencies reset to the generic defaults."""
    from .schema import Efficiency

    eff = GPU_EFFICIENCY if profile.kind == "gpu" else CPU_EFFICIENCY
    return profile.model_copy(update={"efficiency": Efficiency(**eff), "calibration": None})
