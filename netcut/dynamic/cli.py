"""``netcut dynamic build|run|show``: the typer sub-app ``dynamic_app``.

Register it in ``netcut/cli/main.py`` (``app.add_typer(dynamic_app, name="dynamic")``).
Thin like the other commands: parse, call :mod:`netcut.dynamic`, render. Results
on stdout (``--json`` for machines), progress and notes on stderr, user mistakes
as :class:`~netcut.errors.NetcutError` (one ``error:`` line from ``main``).
"""

from __future__ import annotations

import io
import itertools
import statistics
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..cli import main as cli
from ..cli.files import atomic_write_bytes
from ..cli.render import fmt_count, fmt_ms, print_json

dynamic_app = typer.Typer(no_args_is_help=True,
                          help="Dynamic networks: sub-nets of one backbone, chosen by latency budget.")

NET_FILE = "net.pt"


def parse_widths(values: list[str] | None):
    """``--widths 1,0.75,0.5`` (uniform ratios) and ``--widths 'layer4.*=0.5,*=0.75'``
    (one non-uniform width) -> what :func:`netcut.dynamic.build` takes."""
    from ..errors import InvalidInputError

    if not values:
        return None
    widths: list = []
    for value in values:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if any("=" in p for p in parts):
            mapping = {}
            for part in parts:
                pattern, _, ratio = part.partition("=")
                mapping[pattern.strip()] = _number(ratio, f"layer {pattern.strip()!r}")
            widths.append(mapping)
        else:
            widths.extend(_number(p, "all sliceable layers") for p in parts)
    if not widths:
        raise InvalidInputError("--widths is empty: give ratios like 1,0.5")
    return widths


def _number(text: str, where: str) -> float:
    from ..errors import InvalidInputError

    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"width ratio {text.strip()!r} for {where} is not a number") from None


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _progress(text: str) -> Progress:
    progress = Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=cli.err,
                        transient=True, disable=not cli.err.is_terminal)
    progress.add_task(text, total=None)
    return progress


def _subnet_table(title: str, subnets: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("id", "sub-net", "exit", "width", "predicted ms", "expected ms", "FLOPs", "params",
                "accuracy"):
        table.add_column(col, justify="left" if col in ("sub-net", "exit", "width") else "right")
    for s in subnets:
        table.add_row(str(s["id"]), s["name"], s["exit"], s["width"],
                      fmt_ms(s["predicted_ms"]) if s.get("predicted_ms") else "-",
                      fmt_ms(s["expected_ms"]) if s.get("expected_ms") else "-",
                      fmt_count(s["flops"]), fmt_count(s["params"]),
                      f"{s['accuracy']:.4g}" if s.get("accuracy") is not None else "-")
    return table


@dynamic_app.command("build")
def build_cmd(
    model: str = typer.Argument(..., help="resnet18, torchvision:resnet18 or package.module:factory"),
    out: Path = typer.Option(..., "--out", help="folder to write net.pt, dynamic.ts and manifest.json"),
    num_classes: int = typer.Option(..., "--num-classes", help="classes of every exit's head"),
    input: Optional[str] = typer.Option(None, "--input", help="per-sample shape, e.g. 3x224x224"),
    exits: Optional[List[str]] = typer.Option(None, "--exits", help="comma-separated cut names "
                                              "(default: every block cut)"),
    widths: Optional[List[str]] = typer.Option(
        None, "--widths", help="uniform ratios '1,0.5,0.25', or one non-uniform width "
        "'layer4.*=0.5,*=0.75'; repeatable"),
    hw: Optional[str] = typer.Option(None, "--hw", help="profile to price sub-nets on (netcut hw list)"),
    budgets: Optional[List[str]] = typer.Option(
        None, "--budgets", help="budget range 'low,high' (e.g. 2ms,10ms) or a list; needs --hw"),
    max_subnets: int = typer.Option(6, "--max-subnets", min=1, help="sub-nets kept (with --hw)"),
    batch: int = typer.Option(1, help="batch the predictions are for"),
    dtype: str = typer.Option("float32", help="float32, float16, bfloat16 (pricing)"),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="pretrained weights: a torchvision name (DEFAULT, IMAGENET1K_V1) "
        "or a checkpoint file; default: random initialisation"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Build a dynamic network of MODEL and export it (TorchScript + manifest)."""
    import torch

    from ..errors import InvalidInputError
    from . import build, export

    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file, not a folder")
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write to {out}: folder {out.parent} does not exist")
    backbone = model
    if weights is not None:
        from ..retrain.weights import load_pretrained

        backbone = load_pretrained(model, weights)
    with _progress("building and pricing sub-nets"):
        net = build(backbone, input, exits=_split(exits), widths=parse_widths(widths),
                    num_classes=num_classes, hardware=hw, budgets_ms=_split(budgets),
                    max_subnets=max_subnets, batch=batch, dtype=dtype)
    with _progress("exporting"):
        manifest = export(net, out)
        buffer = io.BytesIO()
        torch.save(net, buffer)
        atomic_write_bytes(out / NET_FILE, buffer.getvalue())
    summary = net.summary()
    files = {"net": str(out / NET_FILE), "manifest": str(manifest),
             "torchscript": str(manifest.parent / "dynamic.ts")}
    if as_json:
        print_json(cli.out, {**summary, "files": files})
        return
    title = (f"{summary['source']} at {'x'.join(map(str, summary['input_shape']))}: "
             f"{len(summary['subnets'])} sub-nets")
    if summary["hardware"]:
        title += f" priced on {summary['hardware']} (batch {summary['batch']})"
    cli.out.print(_subnet_table(title, summary["subnets"]))
    cli.err.print(f"written: {files['net']} (torch.load(..., weights_only=False)), "
                  f"{files['torchscript']}, {files['manifest']}", highlight=False)


@dynamic_app.command("show")
def show_cmd(folder: Path = typer.Argument(..., help="a folder written by `netcut dynamic build`"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Show the sub-nets of an exported dynamic network."""
    from .export import MANIFEST, load

    runtime = load(folder)
    subnets = [{**s, "expected_ms": runtime.expected_ms(s["id"])} for s in runtime.subnets]
    if as_json:
        print_json(cli.out, {**runtime.manifest, "subnets": subnets})
        return
    cli.out.print(_subnet_table(f"{folder / MANIFEST}", subnets))


@dynamic_app.command("run")
def run_cmd(
    folder: Path = typer.Argument(..., help="a folder written by `netcut dynamic build`"),
    budgets: List[str] = typer.Option(..., "--budgets", help="budgets to cycle through, e.g. 2ms,5ms,10ms"),
    frames: int = typer.Option(60, "--frames", min=1, help="runs in all (budgets taken in turn)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    no_correction: bool = typer.Option(False, "--no-correction", help="do not learn from measured times"),
    save: bool = typer.Option(False, "--save", help="keep the learned correction in the manifest"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Run an exported dynamic network on random input under a cycle of budgets and
    report which sub-net ran, how long it took and how often a budget was missed."""
    import torch

    from ..planner.plan import check_deadline
    from .export import load

    values = [check_deadline(b) for b in _split(budgets) or []]
    if threads is not None:
        torch.set_num_threads(threads)
    runtime = load(folder)
    runtime.auto_observe = not no_correction
    x = torch.randn(runtime.manifest.get("batch", 1), *runtime.input_shape)
    decisions = []
    with torch.inference_mode(), _progress(f"running {frames} frames"):
        runtime.warmup(x)  # TorchScript optimises each graph on its first calls
        for budget in itertools.islice(itertools.cycle(values), frames):
            decisions.append(runtime.run(x, budget)[1])
    if save:
        runtime.save_manifest()
    per_budget = []
    for budget in values:
        mine = [d for d in decisions if d.budget_ms == budget]
        if not mine:
            continue
        per_budget.append({
            "budget_ms": budget, "runs": len(mine),
            "subnets": sorted({runtime.names[d.subnet] for d in mine}),
            "median_ms": statistics.median(d.measured_ms for d in mine),
            "miss_rate": sum(d.missed for d in mine) / len(mine),
            "expected_to_fit": sum(d.fits for d in mine) / len(mine)})
    result = {"folder": str(folder), "frames": len(decisions), "correction": not no_correction,
              "miss_rate": sum(d.missed for d in decisions) / len(decisions),
              "per_budget": per_budget, "decisions": [d.to_dict() for d in decisions]}
    if as_json:
        print_json(cli.out, result)
        return
    table = Table(title=f"{folder}: {len(decisions)} frames, miss rate {result['miss_rate']:.1%}",
                  title_justify="left")
    for col in ("budget ms", "runs", "sub-nets", "median ms", "missed", "expected to fit"):
        table.add_column(col, justify="left" if col == "sub-nets" else "right")
    for row in per_budget:
        table.add_row(fmt_ms(row["budget_ms"]), str(row["runs"]), ", ".join(row["subnets"]),
                      fmt_ms(row["median_ms"]), f"{row['miss_rate']:.0%}", f"{row['expected_to_fit']:.0%}")
    cli.out.print(table)
