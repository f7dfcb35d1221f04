"""A report on an exported dynamic network: Markdown, HTML (the plot embedded) and JSON.

:func:`build_report` gathers, from a folder written by ``netcut dynamic build``
(and ``netcut dynamic train``):

- one row per sub-net: exit, width, FLOPs, parameters, accuracy (and the
  single-path / multi-path accuracies when both were trained), and the predicted
  latency on each device asked for (``hardware``: profile names or files; each
  needs ``net.pt`` to price, the build's own device is read from the manifest);
- a **budget trace** run here, on this machine: the exported network (``dynamic.ts``)
  is warmed up, each sub-net timed ``calibrate`` times and its quickest run fed to
  the online correction once (so the predictions, made for the build's device,
  are scaled to this one), then ``frames`` frames are run under a budget that
  follows a seeded random walk in log space between ``budgets_ms`` (default: 0.8x
  the fastest and 1.2x the slowest sub-net's calibrated latency), choosing per
  frame and correcting online. Recorded per frame: the budget, the sub-net that
  ran, its measured time and whether it missed.

:func:`write_report` renders ``report.md``, ``report.html`` (plot inlined as a
base64 PNG: one file to mail), ``report.json`` and ``budget-trace.png`` into a
folder, each file written atomically. The plot (matplotlib, Agg backend): the
budget and the measured latency of every frame, misses marked, and below it the
sub-net chosen per frame.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import random
import statistics
from pathlib import Path
from typing import Sequence

import torch

from ..files import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError
from .export import load

__all__ = ["build_report", "budget_trace", "trace_plot", "write_report"]

NET_FILE = "net.pt"
FILES = {"md": "report.md", "html": "report.html", "json": "report.json", "png": "budget-trace.png"}


def budget_trace(low_ms: float, high_ms: float, frames: int, seed: int = 0) -> list[float]:
    """A seeded random walk in log space between ``low_ms`` and ``high_ms``
    (reflected at the ends), ``frames`` long."""
    if not (0 < low_ms <= high_ms and math.isfinite(high_ms)):
        raise InvalidInputError(f"budget range {low_ms!r}..{high_ms!r}: need 0 < low <= high")
    rng = random.Random(seed)
    lo, hi = math.log(low_ms), math.log(high_ms)
    step = (hi - lo) / 8 if hi > lo else 0.0
    value = rng.uniform(lo, hi)
    out = []
    for _ in range(frames):
        out.append(math.exp(value))
        value += rng.gauss(0.0, step)
        if value > hi:
            value = 2 * hi - value
        if value < lo:
            value = 2 * lo - value
        value = min(max(value, lo), hi)
    return out


def load_net(folder: Path, names: list[str] | None = None):
    """The DynamicNet ``netcut dynamic build`` saved in ``folder/net.pt``; with ``names``
    (the manifest's sub-nets), checked to hold exactly those."""
    from .net import DynamicNet

    path = folder / NET_FILE
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder written by `netcut dynamic build`")
    if not path.is_file():
        raise InvalidInputError(f"no {NET_FILE} in {folder}: `netcut dynamic build` writes one")
    try:
        net = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise InvalidInputError(f"cannot read {path}: {str(exc).strip().splitlines()[0][:200]}") from None
    if not isinstance(net, DynamicNet):
        raise InvalidInputError(f"{path} holds a {type(net).__name__}, not a DynamicNet")
    if names is not None and [s.name for s in net.subnets] != names:
        raise InvalidInputError(f"{path} has other sub-nets than {folder / 'manifest.json'}: "
                                "build again")
    return net


def build_report(folder: str | Path, hardware: Sequence[str] | None = None, *, frames: int = 120,
                 budgets_ms: Sequence[float] | None = None, calibrate: int = 5, seed: int = 0,
                 progress=None) -> dict:
    """Everything the report shows, as a JSON-ready dict (see the module docstring).
    ``progress``: an optional callable taking a short text, told what runs."""
    folder = Path(folder)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise InvalidInputError(f"frames must be a positive integer, got {frames!r}")
    if isinstance(calibrate, bool) or not isinstance(calibrate, int) or calibrate < 1:
        raise InvalidInputError(f"calibrate must be a positive integer, got {calibrate!r}")
    say = progress or (lambda text: None)
    runtime = load(folder)
    manifest = runtime.manifest
    names = list(runtime.names)
    # ----- predicted latency per device --------------------------------------------------
    devices: dict[str, dict[str, float | None]] = {}
    own = manifest.get("hardware")
    if own:
        devices[own] = {s["name"]: s.get("predicted_ms") for s in runtime.subnets}
    extra = [h for h in (hardware or []) if h != own]
    if extra:
        net = load_net(folder, names)
        for hw in extra:
            say(f"pricing on {hw}")
            priced = net.price(hw, batch=manifest.get("batch", 1), dtype=manifest.get("dtype", "float32"))
            devices[net.hardware] = dict(priced)
    # ----- the budget trace, here ----------------------------------------------------------
    x = torch.randn(manifest.get("batch", 1), *runtime.input_shape)
    say("warming up")
    runtime.warmup(x)
    quiet: dict[int, float] = {}
    with torch.inference_mode():
        for _ in range(calibrate):
            for i in range(len(names)):  # interleaved: a spike from elsewhere hits all alike
                start = _now()
                runtime.module(x, i)
                ms = (_now() - start) * 1e3
                quiet[i] = min(ms, quiet.get(i, math.inf))
    for i, ms in quiet.items():
        runtime.observe(i, ms)
    if budgets_ms is None:
        low, high = 0.8 * min(quiet.values()), 1.2 * max(quiet.values())
    else:
        if len(budgets_ms) != 2:
            raise InvalidInputError(f"the budget range is two times (low, high), got {list(budgets_ms)}")
        low, high = float(budgets_ms[0]), float(budgets_ms[1])
    budgets = budget_trace(low, high, frames, seed)
    decisions = []
    say(f"running {frames} frames")
    with torch.inference_mode():
        for budget in budgets:
            decisions.append(runtime.run(x, budget)[1])
    # ----- rows ---------------------------------------------------------------------------
    training = manifest.get("training") or {}
    results = training.get("results", {})
    rows = []
    for s in runtime.subnets:
        mine = [d for d in decisions if d.subnet == s["id"]]
        row = {k: s.get(k) for k in ("id", "name", "exit", "width", "flops", "params", "accuracy")}
        for method, result in results.items():
            row[f"accuracy_{method}"] = result.get("accuracies", {}).get(s["name"])
        row["predicted_ms"] = {hw: per.get(s["name"]) for hw, per in devices.items()}
        row["calibrated_ms_here"] = quiet[s["id"]]
        row["frames"] = len(mine)
        row["median_ms_here"] = statistics.median(d.measured_ms for d in mine) if mine else None
        rows.append(row)
    missed = [d.missed for d in decisions]
    accuracies = [s.get("accuracy") for s in runtime.subnets]
    chosen_acc = ([accuracies[d.subnet] for d in decisions] if all(a is not None for a in accuracies)
                  else None)
    return {
        "folder": str(folder), "source": manifest.get("source"),
        "input_shape": list(runtime.input_shape), "batch": manifest.get("batch", 1),
        "dtype": manifest.get("dtype"), "build_hardware": own, "devices": list(devices),
        "subnets": rows,
        "training": {k: v for k, v in training.items() if k != "results"} if training else None,
        "training_results": {m: {k: r.get(k) for k in ("wall_s", "train_s", "steps", "per_step_ms",
                                                          "epochs", "sampling")}
                             for m, r in results.items()} or None,
        "trace": {
            "where": "this machine", "threads": torch.get_num_threads(),
            "budget_range_ms": [low, high], "seed": seed, "frames": frames,
            "calibration_runs": calibrate,
            "miss_rate": sum(missed) / len(missed),
            "expected_to_fit": sum(d.fits for d in decisions) / len(decisions),
            "mean_accuracy_of_chosen": statistics.fmean(chosen_acc) if chosen_acc else None,
            "frames_per_subnet": {n: sum(d.subnet == i for d in decisions) for i, n in enumerate(names)},
            "decisions": [d.to_dict() for d in decisions],
        },
    }


def _now() -> float:
    import time

    return time.perf_counter()


# ----- rendering ------------------------------------------------------------------------------

def trace_plot(report: dict) -> bytes:
    """The budget trace as a PNG: budget and measured latency per frame (misses
    marked), and the sub-net chosen per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    trace = report["trace"]
    decisions = trace["decisions"]
    names = [s["name"] for s in report["subnets"]]
    frames = list(range(len(decisions)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    top.step(frames, [d["budget_ms"] for d in decisions], where="mid", color="0.3", lw=1.2,
             label="budget")
    ok = [(f, d["measured_ms"]) for f, d in zip(frames, decisions) if not d["missed"]]
    bad = [(f, d["measured_ms"]) for f, d in zip(frames, decisions) if d["missed"]]
    if ok:
        top.scatter(*zip(*ok), s=10, color="tab:blue", label="measured (fits)", zorder=3)
    if bad:
        top.scatter(*zip(*bad), s=28, color="tab:red", marker="x",
                    label=f"missed ({len(bad)} of {len(decisions)})", zorder=4)
    top.set_yscale("log")
    top.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    top.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    top.set_ylabel("latency / budget (ms)")
    top.legend(loc="upper right", fontsize=8)
    top.set_title(f"{report.get('source')}: budget trace on this machine, miss rate "
                  f"{trace['miss_rate']:.0%}", fontsize=10)
    bottom.step(frames, [d["subnet"] for d in decisions], where="mid", color="tab:green")
    for f, d in zip(frames, decisions):
        if d["missed"]:
            bottom.plot(f, d["subnet"], "x", color="tab:red", ms=5)
    bottom.set_yticks(range(len(names)))
    bottom.set_yticklabels(names, fontsize=7)
    bottom.set_ylim(-0.5, len(names) - 0.5)
    bottom.set_ylabel("sub-net chosen")
    bottom.set_xlabel("frame")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _fmt(value, kind: str = "ms") -> str:
    if value is None:
        return "-"
    if kind == "acc":
        return f"{value:.4f}"
    if kind == "count":
        from ..cli.render import fmt_count

        return fmt_count(value)
    from ..cli.render import fmt_ms

    return fmt_ms(value)


def _table(report: dict) -> tuple[list[str], list[list[str]]]:
    rows = report["subnets"]
    methods = [k[len("accuracy_"):] for k in rows[0] if k.startswith("accuracy_")] if rows else []
    head = (["id", "sub-net", "exit", "width", "FLOPs", "params", "accuracy"]
            + [f"accuracy ({m}-path)" for m in methods]
            + [f"predicted ms, {hw}" for hw in report["devices"]]
            + ["ms here (calibrated)", "frames chosen"])
    body = []
    for r in rows:
        body.append([str(r["id"]), r["name"], r["exit"], r["width"], _fmt(r["flops"], "count"),
                     _fmt(r["params"], "count"), _fmt(r["accuracy"], "acc")]
                    + [_fmt(r[f"accuracy_{m}"], "acc") for m in methods]
                    + [_fmt(r["predicted_ms"].get(hw)) for hw in report["devices"]]
                    + [_fmt(r["calibrated_ms_here"]), str(r["frames"])])
    return head, body


def _facts(report: dict) -> list[tuple[str, str]]:
    trace = report["trace"]
    facts = [("network", f"{report['source']} at {'x'.join(map(str, report['input_shape']))}, "
                         f"batch {report['batch']}, {len(report['subnets'])} sub-nets"),
             ("devices priced", ", ".join(report["devices"]) or "none"),
             ("budget trace", f"{trace['frames']} frames here ({trace['threads']} torch threads), "
                              f"budgets {_fmt(trace['budget_range_ms'][0])}-"
                              f"{_fmt(trace['budget_range_ms'][1])} ms (seed {trace['seed']})"),
             ("miss rate", f"{trace['miss_rate']:.1%} (expected to fit: "
                           f"{trace['expected_to_fit']:.1%})")]
    if trace["mean_accuracy_of_chosen"] is not None:
        facts.append(("mean accuracy of what ran", f"{trace['mean_accuracy_of_chosen']:.4f}"))
    training = report.get("training")
    if training:
        facts.append(("training", f"{training.get('method')} ({training.get('deployed')} deployed); "
                                  f"{training.get('budget', '')}"))
        for method, r in (report.get("training_results") or {}).items():
            facts.append((f"{method}-path time", f"{r['wall_s']:.1f} s wall, {r['steps']} steps, "
                                                 f"{r['per_step_ms']:.1f} ms a step"))
    return facts


def render_markdown(report: dict, image: str) -> str:
    head, body = _table(report)
    lines = [f"# Dynamic network: {report['source']}", ""]
    lines += [f"- **{k}**: {v}" for k, v in _facts(report)]
    lines += ["", "## Sub-nets", "", "| " + " | ".join(head) + " |",
              "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += ["", "Predicted latencies are netcut's estimator's for each device; \"ms here\" is "
              "the quickest of the calibration runs on the machine that wrote this report. "
              "Accuracies are top-1 on data not trained on (the validation split).", "",
              "## Budget trace", "", f"![budget trace]({image})", ""]
    return "\n".join(lines)


def render_html(report: dict, png: bytes) -> str:
    head, body = _table(report)

    def row(cells, tag="td"):
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

    facts = "".join(row([k, v]) for k, v in _facts(report))
    data = base64.b64encode(png).decode()
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>netcut dynamic network: {html.escape(str(report['source']))}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>Dynamic network: {html.escape(str(report['source']))}</h1>",
        f"<table class='facts'>{facts}</table>",
        "<h2>Sub-nets</h2>",
        f"<table class='subnets'><thead>{row(head, 'th')}</thead><tbody>"
        + "".join(row(r) for r in body) + "</tbody></table>",
        "<p>Predicted latencies are netcut's estimator's for each device; \"ms here\" is the "
        "quickest of the calibration runs on the machine that wrote this report. Accuracies "
        "are top-1 on data not trained on (the validation split).</p>",
        "<h2>Budget trace</h2>",
        f"<img alt='budget trace' src='data:image/png;base64,{data}'>",
        "</body></html>"])


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``report.json`` and ``budget-trace.png``
    into folder ``out`` (made if its parent exists), each atomically."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file, not a folder")
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write the report to {out}: folder {out.parent} does not exist")
    png = trace_plot(report)
    out.mkdir(exist_ok=True)
    written = {"png": atomic_write_bytes(out / FILES["png"], png)}
    written["json"] = atomic_write_text(out / FILES["json"], json.dumps(report, indent=1) + "\n")
    written["md"] = atomic_write_text(out / FILES["md"], render_markdown(report, FILES["png"]))
    written["html"] = atomic_write_text(out / FILES["html"], render_html(report, png))
    return written
