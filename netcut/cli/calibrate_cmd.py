"""``netcut calibrate``: fit a profile to measured runs and write it as a new YAML file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import main as cli
from ..files import atomic_write_text
from .render import print_json


@cli.app.command()
def calibrate(
    hw: str = typer.Option(..., "--hw", help="base profile (name or YAML file) to start from"),
    measurements: List[Path] = typer.Option(..., "--measurements", "-m",
                                            help="measurement file(s) (netcut measure's JSON)"),
    out_file: Path = typer.Option(..., "--out", help="calibrated profile to write (YAML)"),
    params: str = typer.Option("auto", help="'auto' or names, e.g. compute,dispatch,memory"),
    name: Optional[str] = typer.Option(None, help="name of the new profile (default BASE-calibrated)"),
    cross_validate: bool = typer.Option(True, "--cv/--no-cv",
                                        help="leave-models-out error and interval (one refit per model)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Fit BASE's free parameters to measured runs; write the calibrated profile.

    The new profile records what it was fitted from and carries a prediction
    interval, which `netcut predict` shows and `netcut plan --confidence` uses.
    """
    from ..calibrate import Calibrator
    from ..calibrate.yaml_out import profile_yaml
    from ..errors import InvalidInputError
    from ..hardware import load_hardware

    if out_file.suffix not in (".yaml", ".yml"):
        raise InvalidInputError(f"--out {out_file}: a profile is a .yaml file")
    base = load_hardware(hw)
    chosen = params if params == "auto" else [p.strip() for p in params.split(",") if p.strip()]
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=cli.err, transient=True,
                        disable=not cli.err.is_terminal)
    with progress:
        task = progress.add_task("calibrating", total=None)
        cal = Calibrator(base, params=chosen, cross_validate=cross_validate,
                         progress=lambda k, n, what: progress.update(
                             task, completed=k, total=n, description=what)).fit(measurements)
    profile = cal.profile_
    if name:
        profile = profile.model_copy(update={"name": name})
    header = (f"{profile.name}: {base.name} calibrated by `netcut calibrate` from "
              f"{', '.join(str(m) for m in measurements)}.\nSee 'calibration' at the end for the "
              "fitted scales, their 95% intervals and the leave-models-out error.")
    atomic_write_text(out_file, profile_yaml(profile, header))
    summary = cal.results_.summary() | {"profile": profile.name, "written": str(out_file)}
    if as_json:
        print_json(cli.out, summary)
    else:
        for table in calibration_tables(summary):
            cli.out.print(table)
    cli.err.print(f"wrote {out_file} (use it as --hw {out_file})")
    if not as_json:
        for advice in (calibration_advice(summary), limit_advice(summary)):
            if advice:
                cli.err.print(advice)


def calibration_advice(s: dict) -> str | None:
    """One line when the fit does not beat the uncalibrated profile on unseen models."""
    unseen, base = s["leave_models_out"], s.get("uncalibrated") or {}
    if not unseen.get("n") or not base.get("n") or unseen["mape"] < base["mape"]:
        return None
    return (f"note: on models left out of the fit the calibrated profile is off by "
            f"{unseen['mape']:.1%} (MAPE), the uncalibrated {s['base']} by {base['mape']:.1%} "
            "on the same rows; fewer parameters (--params compute) or more measured networks "
            "may do better")


def limit_advice(s: dict) -> str | None:
    """One line naming the parameters that ended at a limit of the fit, or whose 95%
    interval reaches the edge of its range on the side that makes time longer."""
    at = [f"{name} ({p['at_limit']})" if p.get("at_limit") else
          f"{name} (x{p['scale']:.3g}, its 95% interval reaching the edge of the fit's range)"
          for name, p in s["params"].items() if p.get("at_limit") or p.get("unpinned")]
    if not at:
        return None
    it = "it" if len(at) == 1 else "them"
    return (f"note: {', '.join(at)}: the measured networks cannot pin {it}, and a fit without "
            f"{it} (--params) may predict other networks better")


def calibration_tables(s: dict) -> list[Table]:
    """Fitted parameters, then the errors in-sample and on models left out."""
    t = Table(title=f"{s['base']} calibrated on {s['n_rows']} rows of {len(s['models'])} models")
    for col in ("parameter", "scale", "95% interval", "fitted by", "meaning"):
        t.add_column(col, justify="right" if col in ("scale", "95% interval") else "left")
    for name, p in s["params"].items():
        ci = p["ci95"]
        t.add_row(name, f"{p['scale']:.3g}", f"{ci[0]:.3g} - {ci[1]:.3g}" if ci else "-",
                  p["method"].split(" (")[0], p["meaning"])
    for name, why in s["skipped"].items():
        t.add_row(f"[dim]{name}[/]", "-", "-", "not fitted", f"[dim]{why}[/]")
    e = Table(title="error (|predicted/measured - 1|)")
    for col in ("rows", "n", "MAPE", "median", "within ±10%"):
        e.add_column(col, justify="left" if col == "rows" else "right")
    for label, m in (("fitted rows (in-sample)", s["in_sample"]),
                     ("models left out (unseen)", s["leave_models_out"]),
                     (f"{s['base']} uncalibrated (same rows)", s.get("uncalibrated"))):
        if not m or not m.get("n"):
            e.add_row(label, "0", "-", "-", "-")
            continue
        e.add_row(label, str(m["n"]), f"{m['mape']:.1%}", f"{m['median_ape']:.1%}",
                  f"{m['within_10']:.0%}")
    sd = s["log_residual_sd"]
    e.caption = (f"prediction interval from {s['interval_from']}: log-sd {sd:.3f} "
                 f"(90% interval x{math.exp(1.645 * sd):.2f} either way)"
                 if sd is not None else "no prediction interval: as many parameters as rows")
    return [t, e]
