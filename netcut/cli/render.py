"""Renderers: rich tables for people, JSON for machines. Pure functions of results."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_count(value: float) -> str:
    if value == 0:
        return "0"
    exp = min(int(math.log10(abs(value)) // 3), 4)
    unit = ["", "K", "M", "G", "T"][exp]
    return f"{value / 10 ** (3 * exp):.3g}{unit}"


def print_json(console: Console, payload: Any) -> None:
    console.print_json(json.dumps(payload, default=_jsonable))


def _jsonable(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def estimate_tables(est, per_layer: bool) -> list[Table]:
    s = est.summary()
    head = Table(title=f"{s['model']} on {s['hardware']}", show_header=False, box=None)
    head.add_column(style="bold")
    head.add_column()
    total = fmt_ms(s["total_ms"]) + " ms"
    if s["interval_ms"]:
        lo, hi = s["interval_ms"]
        total += f"  [{fmt_ms(lo)}, {fmt_ms(hi)}] ({s['interval_level']:.0%} interval)"
    head.add_row("latency", total)
    head.add_row("mode / batch / dtype", f"{s['mode']} / {s['batch']} / {s['dtype']}")
    head.add_row("input", "x".join(map(str, s["input_shape"])))
    head.add_row("FLOPs / params", f"{fmt_count(s['flops'])} / {fmt_count(s['params'])}")
    head.add_row("bound (share of time)",
                 ", ".join(f"{k} {v:.0%}" for k, v in s["bound_share"].items()))
    head.add_row("rows / legal cuts", f"{s['rows']} / {s['legal_cuts']}")
    head.add_row("calibrated", "yes" if s["calibrated"] else "no (datasheet + defaults)")
    tables = [head]
    if per_layer:
        t = Table(title="per layer")
        for col in ("#", "name", "op", "out shape", "FLOPs", "bytes", "ms", "end ms", "bound", "cut"):
            t.add_column(col, justify="right" if col not in ("name", "op", "bound") else "left")
        for r in est.layers:
            t.add_row(str(r["index"]), r["name"], r["op"], "x".join(map(str, r["out_shape"])),
                      fmt_count(r["flops"]), fmt_count(r["bytes_read"] + r["bytes_written"]),
                      fmt_ms(r["latency_ms"]), fmt_ms(r["end_ms"]), r["bound"],
                      "yes" if r["cut_legal"] else "")
        tables.append(t)
    else:
        t = Table(title="per block")
        t.add_column("block")
        t.add_column("ms", justify="right")
        t.add_column("share", justify="right")
        total_ms = s["total_ms"] or 1.0
        for block, ms in s["by_block_ms"].items():
            t.add_row(block, fmt_ms(ms), f"{ms / total_ms:.1%}")
        tables.append(t)
    return tables


def hardware_table(profiles: list) -> Table:
    t = Table(title="hardware profiles")
    for col in ("name", "kind", "description", "fp32 peak", "fp16 peak", "bandwidth", "modes"):
        t.add_column(col)
    for p in profiles:
        def peak(dtype):
            try:
                return f"{p.peak_flops('conv', dtype) / 1e12:.3g} TF/s"
            except KeyError:
                return "-"
        t.add_row(p.name, p.kind, p.description, peak("float32"), peak("float16"),
                  f"{p.bandwidth_bytes_per_s() / 1e9:.0f} GB/s", ", ".join(p.overhead))
    return t
