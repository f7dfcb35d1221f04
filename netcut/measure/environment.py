"""What a measured latency depends on, recorded beside it."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

import torch


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it, else platform's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile",
             "amx_bf16", "asimd", "sve")
"""The /proc/cpuinfo flags that change which kernels PyTorch and oneDNN pick."""


def cpu_identity(cpuinfo: str | None = None) -> dict:
    """Which chip this is, beyond its name: a KVM guest's "AMD EPYC" is a Zen 3 on one
    machine and a Zen 4 (twice as fast, with AVX-512) on the next, so a measurement
    file keeps family/model, the ISA flags that pick kernels, and ATen's CPU level."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    first: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if first:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    out: dict = {}
    for key, name in (("vendor_id", "vendor"), ("cpu family", "family"), ("model", "model"),
                      ("stepping", "stepping")):
        if key in first:
            value = first[key]
            out[name] = int(value) if value.isdigit() else value
    flags = set((first.get("flags") or first.get("Features") or "").split())
    out["isa"] = [f for f in ISA_FLAGS if f in flags]
    try:
        out["aten_capability"] = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        pass
    return out


def environment(device: str) -> dict:
    """Library versions, device, CPU and threads, cuDNN/TF32 settings, timestamp."""
    import torchvision

    from .. import __version__

    env = {
        "device": device,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "netcut": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_id": cpu_identity(),
        "threads": torch.get_num_threads(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "allow_tf32_conv": bool(torch.backends.cudnn.allow_tf32),
        "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(os, "getloadavg"):  # other work on a shared machine shows up here
        env["load_average_1m"] = round(os.getloadavg()[0], 2)
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, sms=props.multi_processor_count,
                   mem_gb=props.total_memory / 2**30, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env
