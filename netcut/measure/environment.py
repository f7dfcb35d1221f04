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
