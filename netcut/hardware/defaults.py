"""Generic efficiency and overhead defaults for datasheet-only profiles.

These are what a profile gets before any fitting to its device; the shipped
datasheet-only profiles copy them, and validation uses them as the "uncalibrated"
baseline. ``docs/hardware-schema.md#defaults`` explains where they come from.
"""

from __future__ import annotations

#: ``pool``: PyTorch's NCHW pooling kernels are bound by their per-element index work,
#: not by bandwidth: a 3x3/2 max-pool ran at 50-64 G outputs/s on an H200 at batch 16
#: and 64, in float16 as in float32 (calibration/data/h200/h200-micro.json), i.e. about
#: 0.54 T window elements/s = 0.008 of the float32 CUDA-core peak (67 TFLOP/s).
GPU_EFFICIENCY = {
    "compute": {"default": 0.5, "conv": 0.5, "conv_grouped": 0.2, "conv_depthwise": 0.1,
                "matmul": 0.6, "attention": 0.4, "pool": 0.008},
    "memory": {"default": 0.7},
}
CPU_EFFICIENCY = {
    "compute": {"default": 0.3, "conv": 0.5, "conv_grouped": 0.25, "conv_depthwise": 0.15,
                "matmul": 0.6, "attention": 0.4},
    "memory": {"default": 0.6},
}
#: per execution mode; the eager dispatch cost is for a server x86 host
#: (a kernel costs the device the same whichever way it was launched: eager kernel_us =
#: graph kernel_us; a fused engine still enqueues each of its kernels from the host,
#: about 3 us per cudaLaunchKernel on an x86 server, profiles scale it by host speed;
#: in eager mode each kernel of an op after its first costs the host that launch too)
GPU_OVERHEAD = {
    "eager": {"dispatch_us": {"default": 25.0, "view": 5.0}, "kernel_us": 2.0, "launch_us": 10.0,
              "enqueue_us": 3.0},
    "graph": {"dispatch_us": {"default": 0.0}, "kernel_us": 2.0, "launch_us": 10.0},
    "fused": {"dispatch_us": {"default": 3.0}, "kernel_us": 2.0, "launch_us": 20.0},
}
CPU_OVERHEAD = {
    "eager": {"dispatch_us": {"default": 6.0, "view": 2.0}, "kernel_us": 0.0, "launch_us": 5.0},
}


def datasheet_only(profile):
    """``profile`` as if nothing had been fitted to it: generic efficiencies and
    overheads (for the modes it has), the default occupancy term, no calibration.

    The generic eager dispatch cost assumes a server x86 host (as on the H100 data);
    profiles with slower hosts scale it in their own YAML instead.
    """
    from .schema import Efficiency, ModeOverhead

    gpu = profile.kind == "gpu"
    eff = GPU_EFFICIENCY if gpu else CPU_EFFICIENCY
    generic = GPU_OVERHEAD if gpu else CPU_OVERHEAD
    overhead = {mode: ModeOverhead(**generic[mode]) if mode in generic else value
                for mode, value in profile.overhead.items()}
    update = {"efficiency": Efficiency(**eff), "overhead": overhead, "calibration": None}
    if gpu:
        update["compute"] = profile.compute.model_copy(update={"saturation_outputs": None})
    return profile.model_copy(update=update)
