"""``netcut validate``: regenerate reports/validation.md and its plots from the data.

Thin: parse the options, run the validation parts, hand the results to the writer
and print a summary (a rich table, or every metric as JSON with ``--json``).
Progress goes to stderr and disappears when done.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InvalidInputError
from . import main as cli
from .render import print_json

PARTS = ("h100", "h200", "jetson", "timm", "cpu", "nb201")


def parse_only(value: Optional[str]) -> tuple[str, ...]:
    """``"h100,jetson"`` -> ("h100", "jetson"); None -> every part."""
    if value is None:
        return PARTS
    chosen = [p.strip().lower() for p in value.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown or not chosen:
        raise InvalidInputError(f"--only {value!r}: unknown part {', '.join(map(repr, unknown)) or '(none given)'}"
                                f"; choose from {', '.join(PARTS)} (comma-separated)")
    return tuple(p for p in PARTS if p in chosen)


def command_line(out_dir: Path, only: Optional[str], as_json: bool) -> str:
    words = ["netcut", "validate"]
    if str(out_dir) != "reports":
        words += ["--out", str(out_dir)]
    if only is not None:
        words += ["--only", only]
    if as_json:
        words.append("--json")
    return " ".join(words)


@cli.app.command()
def validate(
    out_dir: Path = typer.Option(Path("reports"), "--out", help="where validation.md and validation/*.png go"),
    only: Optional[str] = typer.Option(None, "--only", help="comma-separated parts: " + ", ".join(PARTS)),
    as_json: bool = typer.Option(False, "--json", help="print every metric as JSON"),
) -> None:
    """Predicted against measured: regenerate the validation report from the shipped data.

    --only writes validation-PARTS.md (e.g. validation-cpu.md) beside validation.md,
    so a partial run never replaces the full report.
    """
    from ..validation.report import Validation, h100_leave_models_out, headline, jetson_datasheet
    from ..validation.h200 import h200_cases, h200_validation
    from ..validation.help_nb201 import nb201_validation
    from ..validation.jetson_fewshot import jetson_cases
    from ..validation.pytorch_era import era_dispatch_scale
    from ..validation.this_cpu import cpu_cases, cpu_data_dir
    from ..validation.timm_cpu import timm_cases
    from ..validation.writer import prepare_output, report_name, run_context, write_report

    parts = parse_only(only)
    prepare_output(out_dir)
    validation = Validation()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=cli.err, transient=True) as progress:
        if "h100" in parts:
            task = progress.add_task("H100 leave-models-out", total=None)

            def step(k: int, n: int, model: str) -> None:
                progress.update(task, total=n + 1, completed=k,
                                description=f"H100 leave-models-out: fitting without {model}")

            result = h100_leave_models_out(step)
            progress.update(task, completed=progress.tasks[task].total)
            validation.h100 = result
        if "h200" in parts:
            task = progress.add_task("H200: datasheet-only and the H100 fit moved", total=None)
            validation.h200 = h200_validation()
            progress.update(task, total=1, completed=1)
            validation.fewshot["h200"] = _run_cases(progress, "H200 3-shot", h200_cases())
        if "jetson" in parts:
            task = progress.add_task("Jetson: PyTorch 1.x dispatch from HELP's GPUs", total=None)
            validation.jetson_era = era_dispatch_scale()
            progress.update(task, description="Jetson: datasheet-only profiles")
            validation.jetson = jetson_datasheet(era=validation.jetson_era)
            progress.update(task, total=1, completed=1)
            validation.fewshot["jetson"] = _run_cases(progress, "Jetson 3-shot", jetson_cases())
        if "timm" in parts:
            validation.fewshot["timm"] = _run_cases(progress, "timm CPU 5-shot", timm_cases())
        if "nb201" in parts:
            task = progress.add_task("NAS-Bench-201 on HELP's devices", total=None)

            def nb_step(k: int, n: int, column: str) -> None:
                progress.update(task, total=n, completed=k, description=f"NAS-Bench-201: {column}")

            validation.nb201 = nb201_validation(progress=nb_step)
        if "cpu" in parts:
            if only is None and not any(cpu_data_dir().glob("*.json")):
                cli.err.print("skipped the 'cpu' part: no measurements of this machine yet "
                              "(scripts/measure_this_cpu.sh, on a quiet machine)")
            else:
                validation.fewshot["cpu"] = _run_cases(progress, "this CPU 5-shot", cpu_cases())
        progress.add_task("writing the report and plots", total=None)
        written = write_report(out_dir, validation, run_context(command_line(out_dir, only, as_json)),
                               name=report_name(parts if only is not None else None))
    cli.err.print(f"wrote {written[-1]} and {len(written) - 1} plot(s) in {written[-1].parent / 'validation'}",
                  highlight=False)
    summary = validation.summary()
    if as_json:
        print_json(cli.out, _finite(summary))
        return
    cli.out.print(summary_table(headline(summary)))


def _run_cases(progress, label: str, cases: list) -> list:
    """Run few-shot cases with one progress task; one predictor shares the traces."""
    from ..validation.fewshot import run_case
    from ..validation.predictor import RowPredictor

    predictor = RowPredictor()
    task = progress.add_task(label, total=len(cases))
    results = []
    for k, case in enumerate(cases):
        progress.update(task, completed=k, description=f"{label}: {case.key}")
        results.append(run_case(case, predictor))
    progress.update(task, completed=len(cases))
    return results


SHORT_PROFILE = {"leave-models-out fit": "fit", "datasheet-only": "datasheet"}


def summary_table(rows: list[dict]) -> Table:
    """device, group, profile, n, MAPE, share within ±10%, and each target met or not."""
    t = Table(title="predicted against measured", box=None, padding=(0, 1),
              header_style="bold")
    for col in ("device", "group", "profile", "n", "MAPE", "±10%", "target met?"):
        t.add_column(col, justify="right" if col in ("n", "MAPE", "±10%") else "left")
    for r in rows:
        checks = "\n".join(_check_text(c) for c in r["targets"])
        t.add_row(r["part"], r["group"], SHORT_PROFILE.get(r["profile"], r["profile"]), str(r["n"]),
                  _pct(r["mape"]), _pct(r["within_10"]), checks)
    return t


def _check_text(c: dict) -> str:
    op = "≤" if c["op"] == "<=" else "≥"
    if "spearman" in c["metric"]:
        what = f"ρ{op}{c['threshold']:g}"
    else:
        what = f"{'MAPE' if c['metric'] == 'mape' else '±10%'}{op}{c['threshold']:.0%}"
    return f"{what}: " + ("[green]yes[/]" if c["met"] else "[red]no[/]")


def _pct(value: float) -> str:
    return f"{value:.1%}" if math.isfinite(value) else "–"


def _finite(value):
    """JSON has no NaN: undefined metrics become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
