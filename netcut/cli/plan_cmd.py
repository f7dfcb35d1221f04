"""``netcut plan``: which network, cut where, meets the deadline on which device."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import main as cli
from .outputs import relay_warnings, report_and_json


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _default_report(hardware: list[str], deadline_ms: float) -> Path:
    slug = re.sub(r"[^a-z0-9.-]+", "-", "+".join(Path(h).stem for h in hardware).lower())
    return Path("reports") / f"plan-{slug}-{deadline_ms:g}ms.html"


@cli.app.command()
def plan(
    hw: List[str] = typer.Option(..., "--hw", help="profile name or YAML file; repeat for several devices"),
    deadline: str = typer.Option(..., "--deadline", help="e.g. 20ms, 0.5s, 800us"),
    models: Optional[List[str]] = typer.Option(
        None, "--models", help="comma-separated specs (default: every torchvision classifier)"),
    batch: int = typer.Option(1, help="batch size"),
    dtype: str = typer.Option("float32", help="float32, float16, bfloat16"),
    mode: Optional[str] = typer.Option(None, help="eager, graph or fused (default: the profile's)"),
    confidence: Optional[float] = typer.Option(
        None, help="judge the upper bound at this confidence, e.g. 0.9 (calibrated profiles)"),
    num_classes: int = typer.Option(10, "--num-classes", help="classes of the new head"),
    granularity: str = typer.Option("block", help="block (default), layer, or preact (block cuts before a closing activation)"),
    runners_up: int = typer.Option(2, "--runners-up", min=0,
                                   help="feasible cuts proposed beside the deepest, per network"),
    report: Optional[Path] = typer.Option(
        None, "--report", help="report path (.html; .md and .json beside it). "
        "Default: reports/plan-<hw>-<deadline>.html"),
    no_report: bool = typer.Option(False, "--no-report", help="print only, write no files"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Plan trimmed networks that meet DEADLINE on each --hw device, and write a report."""
    from ..errors import InvalidInputError
    from ..planner.plan import check_deadline, plan as run_plan
    from ..planner.report import write_report

    deadline_ms = check_deadline(deadline)
    specs = _split(models)
    target = report if report is not None else _default_report(hw, deadline_ms)
    if not no_report and report is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    if not no_report and not target.parent.is_dir():
        raise InvalidInputError(f"cannot write the report to {target}: folder {target.parent} does not exist")
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=cli.err, transient=True,
                        disable=not cli.err.is_terminal)
    with progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = progress.add_task("tracing and pricing", total=None)

        def tick(done: int, total: int, name: str) -> None:
            progress.update(task, completed=done, total=total, description=f"pricing {name}")

        result = run_plan(specs, hw, deadline_ms, batch=batch, dtype=dtype, confidence=confidence,
                          mode=mode, num_classes=num_classes, granularity=granularity,
                          progress=tick, strict=specs is not None, runners_up=runners_up)
    relay_warnings(caught)
    for name, why in result.skipped.items():
        cli.err.print(f"[yellow]skipped {name}:[/] {why}", highlight=False)
    written = report_and_json(result, write_report, None if no_report else target, as_json)
    if written is None:  # printed as JSON
        return
    _print_summary(result)
    if written:
        cli.err.print(f"report: {written['html']} (+ .md, .json)")


def _print_summary(result) -> None:
    for hw in result.hardware:
        props = sorted((c for c in result.proposals() if c.hardware == hw),
                       key=lambda c: (-c.depth_fraction, c.latency_ms))
        shelf = [c for c in result.off_the_shelf() if c.hardware == hw]
        title = (f"{hw}: deadline {result.deadline_ms:g} ms, batch {result.batch}, {result.dtype} - "
                 f"{len(shelf)} off-the-shelf networks fit, {len(props)} TRNs proposed")
        if not props:
            fastest = result.fastest(hw)
            cli.out.print(f"[bold]{title}[/]")
            cli.out.print(f"[red]Nothing meets {result.deadline_ms:g} ms on {hw}.[/] Fastest: "
                          f"{fastest.network} cut at {fastest.cut}, {fastest.upper_ms:.3g} ms "
                          f"(the deadline it would need).", highlight=False)
            continue
        table = Table(title=title, title_justify="left")
        for col in ("network", "cut", "depth kept", "latency ms", "slack ms"):
            table.add_column(col, justify="right" if col != "network" and col != "cut" else "left")
        for c in props[:20]:
            table.add_row(c.network, c.cut + (" (whole)" if c.whole else ""), f"{c.depth_fraction:.2f}",
                          f"{c.latency_ms:.3g}", f"{result.deadline_ms - c.upper_ms:+.3g}")
        if len(props) > 20:
            table.caption = f"{len(props) - 20} more in the report"
        cli.out.print(table)
