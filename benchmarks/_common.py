"""Shared helpers of the benchmark scripts: the machine's description, timing, a table.

Not a test module and not part of the package: the scripts in this folder import
it by name (``python benchmarks/x.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable


def machine_info() -> dict:
    import torch

    from netcut.measure.environment import cpu_model

    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def machine_line(info: dict) -> str:
    return (f"machine: {info['cpu']} ({info['cpu_count']} logical CPUs, torch threads "
            f"{info['torch_threads']}), {info['platform']}\n"
            f"python {info['python']}, torch {info['torch']}, "
            f"load average (1 min) at start {info['load_average_1min']}")


def time_once(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (wall clock, ``perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(samples_s: list[float]) -> dict:
    return {"median_s": statistics.median(samples_s), "min_s": min(samples_s),
            "max_s": max(samples_s), "runs": len(samples_s)}


def print_table(headers: list[str], rows: list[list[str]], file=sys.stdout) -> None:
    """A plain left/right aligned text table (numbers right-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = []
        for i, (cell, width) in enumerate(zip(cells, widths)):
            out.append(cell.ljust(width) if i == 0 else cell.rjust(width))
        return "  ".join(out).rstrip()

    print(line(headers), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for row in rows:
        print(line(row), file=file)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")
