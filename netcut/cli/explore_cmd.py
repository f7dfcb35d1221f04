"""``netcut explore``: plan, retrain the proposed TRNs, pick the most accurate one
that meets the deadline, report and export it."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)
from rich.table import Table

from . import main as cli
from .outputs import relay_warnings, report_and_json


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _weights(values: list[str] | None) -> dict[str, str]:
    from ..errors import InvalidInputError

    out: dict[str, str] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InvalidInputError(f"--weights {value!r}: expected NAME=PATH, e.g. "
                                    "resnet18=ckpt/resnet18.pt")
        if name.strip() in out:
            raise InvalidInputError(f"--weights: {name.strip()!r} given twice")
        out[name.strip()] = path.strip()
    return out


def _default_report(hardware: str, deadline_ms: float) -> Path:
    slug = re.sub(r"[^a-z0-9.-]+", "-", Path(hardware).stem.lower())
    return Path("reports") / f"explore-{slug}-{deadline_ms:g}ms.html"


@cli.app.command()
def explore(
    hw: str = typer.Option(..., "--hw", help="profile name or YAML file of the target device"),
    deadline: str = typer.Option(..., "--deadline", help="e.g. 20ms, 0.5s, 800us"),
    data: Path = typer.Option(..., "--data", help="image folder: one sub-folder per class "
                              "(or train/ and val/ holding them)"),
    models: Optional[List[str]] = typer.Option(
        None, "--models", help="comma-separated specs (default: resnet18, resnet50, "
        "mobilenet_v2, mobilenet_v3_large, efficientnet_b0, densenet121)"),
    weights: Optional[List[str]] = typer.Option(
        None, "--weights", help="NAME=PATH: a local checkpoint for model NAME (repeatable); "
        "other models get torchvision's pretrained weights"),
    budget_epochs: int = typer.Option(5, "--budget-epochs", help="epochs per TRN, at most"),
    exhaustive: bool = typer.Option(False, "--exhaustive",
                                    help="also retrain every candidate and compare"),
    input: Optional[str] = typer.Option(
        None, "--input", help="network input, e.g. 3x64x64 (default: each network's own)"),
    train_mode: str = typer.Option("head", "--train-mode",
                                   help="head (prefix frozen), full or discriminative"),
    head: str = typer.Option("linear", help="new head: linear or mlp"),
    lr: Optional[float] = typer.Option(None, help="learning rate (default: the mode's)"),
    batch_size: int = typer.Option(32, "--batch-size", help="training batch size"),
    seed: int = typer.Option(0, help="seeds the split, the shuffling and the new head"),
    val_fraction: float = typer.Option(0.2, "--val-fraction",
                                       help="share of each class held out when there is no val/"),
    patience: int = typer.Option(3, help="early stopping after this many epochs without "
                                 "improvement; 0 turns it off"),
    granularity: str = typer.Option("block", help="cuts proposed from: block, layer, or preact (block cuts before a closing activation)"),
    exhaustive_granularity: str = typer.Option(
        "layer", "--exhaustive-granularity", help="cuts of the exhaustive search: layer or block"),
    runners_up: int = typer.Option(2, "--runners-up", min=0,
                                   help="feasible cuts proposed beside the deepest, per network"),
    confidence: Optional[float] = typer.Option(
        None, help="judge the upper bound at this confidence, e.g. 0.9 (calibrated profiles)"),
    batch: int = typer.Option(1, help="inference batch size the deadline is for"),
    dtype: str = typer.Option("float32", help="inference dtype: float32, float16, bfloat16"),
    mode: Optional[str] = typer.Option(None, help="execution mode eager, graph or fused "
                                       "(default: the profile's)"),
    test: Optional[Path] = typer.Option(None, "--test",
                                        help="an image folder never trained on: scores the picks"),
    state: Optional[Path] = typer.Option(
        None, "--state", help="where finished TRNs are kept for resuming "
        "(default: explore-state/ beside the report)"),
    report: Optional[Path] = typer.Option(
        None, "--report", help="report path (.html; .md and .json beside it). "
        "Default: reports/explore-<hw>-<deadline>.html"),
    no_report: bool = typer.Option(False, "--no-report", help="write no report"),
    export: Optional[Path] = typer.Option(
        None, "--export", help="export folder of the chosen network (default: <report>_export/)"),
    no_export: bool = typer.Option(False, "--no-export", help="export nothing"),
    offline: bool = typer.Option(False, "--offline",
                                 help="never download weights (torchvision's cache only)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="data loader processes (default: cores - 1, <= 4)"),
    accelerator: str = typer.Option("auto", help="Lightning accelerator: auto, cpu, gpu..."),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Retrain the TRNs that meet DEADLINE on --hw and pick the most accurate (NetCut)."""
    from ..errors import InvalidInputError
    from ..explore.loop import explore as run_explore
    from ..explore.report import report_stem, write_report
    from ..planner.plan import check_deadline

    deadline_ms = check_deadline(deadline)
    target = report if report is not None else _default_report(hw, deadline_ms)
    if not no_report:
        if report is None:
            target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.is_dir():
            raise InvalidInputError(f"cannot write the report to {target}: folder "
                                    f"{target.parent} does not exist")
    state_dir = state if state is not None else (
        target.parent if not no_report else Path("reports")) / "explore-state"
    stem = report_stem(target)
    export_dir = export if export is not None else (
        None if no_report or no_export else stem.parent / f"{stem.name}_export")
    if no_export:
        export_dir = None

    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=cli.err,
                        transient=True, disable=not cli.err.is_terminal)
    bars = _Bars(progress)
    try:
        with progress, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_explore(
                _split(models), hw, deadline_ms, data, weights=_weights(weights),
                epochs=budget_epochs, exhaustive=exhaustive, input_shape=input,
                mode=train_mode, head=head, lr=lr, seed=seed, batch_size=batch_size,
                val_fraction=val_fraction, patience=patience or None, granularity=granularity,
                exhaustive_granularity=exhaustive_granularity, runners_up=runners_up,
                confidence=confidence, batch=batch, dtype=dtype, latency_mode=mode,
                state_dir=state_dir, test_data=test, export_dir=export_dir,
                download=not offline, num_workers=workers, accelerator=accelerator,
                progress=bars)
    except (KeyboardInterrupt, SystemExit) as exc:
        # Ctrl-C and SIGTERM (the loop turns it into a KeyboardInterrupt; Lightning
        # answers both inside a fit with SystemExit(1), or SIGTERMException, code None)
        if (isinstance(exc, SystemExit) and exc.code in (0, None)
                and type(exc).__name__ != "SIGTERMException"):
            raise
        from ..explore.state import ExploreState

        kept = len(ExploreState(state_dir).keys())
        cli.err.print(f"interrupted: {kept} finished TRN results are kept in {state_dir}; "
                      "the same command resumes from them", highlight=False)
        raise typer.Exit(130) from None
    relay_warnings(caught)
    written = report_and_json(result, write_report, None if no_report else target, as_json)
    if written is None:  # printed as JSON
        return
    _print_summary(result)
    if result.export.get("onnx_skipped"):
        cli.err.print(f"onnx export skipped: {result.export['onnx_skipped']}", highlight=False)
    if written:
        cli.err.print(f"report: {written['html']} (+ .md, .json)")
    if result.export.get("card"):
        cli.err.print(f"export: {result.export['folder']}")


class _Bars:
    """The loop's progress as two rich bars: candidate k of n, and epochs."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.stage_task = progress.add_task("starting", total=None)
        self.trial_task = None
        self.epoch_task = None

    def stage(self, text: str) -> None:
        task = self.stage_task if self.trial_task is None else self.trial_task
        self.progress.update(task, description=text)

    def trial(self, k: int, n: int, trial, resumed: bool) -> None:
        if self.trial_task is None:
            self.progress.remove_task(self.stage_task)
            self.trial_task = self.progress.add_task("", total=n)
            self.epoch_task = self.progress.add_task("epochs", total=None)
        verb = "read back" if resumed else "retraining"
        self.progress.update(self.trial_task, completed=k - 1, total=n,
                             description=f"candidate {k}/{n}: {verb} {trial.label}")
        self.progress.reset(self.epoch_task, total=None, description="epochs")

    def epoch(self, done: int, total: int, val_acc) -> None:
        acc = f", val top-1 {val_acc:.3f}" if val_acc is not None else ""
        self.progress.update(self.epoch_task, completed=done, total=total,
                             description=f"epochs{acc}")

    def finished(self, k: int, n: int, result) -> None:
        self.progress.update(self.trial_task, completed=k)


_ROLE = {"off-the-shelf": "shelf", "proposed": "TRN", "exhaustive": "exh."}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _print_summary(result) -> None:
    chosen, base = result.chosen(), result.baseline()
    title = (f"{result.hardware}: deadline {result.deadline_ms:g} ms - {len(result.explored())} "
             f"networks retrained of {result.exhaustive_count} candidates")
    table = Table(title=title, title_justify="left",
                  caption="as: shelf = off-the-shelf network (new head), TRN = proposed, "
                  "exh. = exhaustive search only; ms: predicted latency; * = chosen")
    for col in ("network", "cut", "as", "ms", "top-1", "epochs", "s", "from"):
        table.add_column(col, justify="left" if col in ("network", "cut", "as", "from")
                         else "right")
    shown = sorted(result.results, key=lambda r: (not r.trial.explored, r.candidate.latency_ms))
    for r in shown[:25]:
        c = r.candidate
        mark = " *" if chosen and r.trial.ident == chosen.trial.ident else ""
        table.add_row(c.network, c.cut + (" (whole)" if c.whole else "") + mark,
                      _ROLE[next(x for x in _ROLE if x in r.trial.roles)],
                      f"{c.latency_ms:.3g}", _pct(r.val_top1),
                      str(r.epochs_run), f"{r.trial_s:.1f}", "state" if r.resumed else "this run")
    if len(shown) > 25:
        table.caption += f"; {len(shown) - 25} more in the report"
    cli.out.print(table)
    if chosen is None:
        cli.out.print("[red]no retrained network meets the deadline[/]")
        return
    c = chosen.candidate
    cli.out.print(f"chosen: [bold]{c.network}[/] cut at [bold]{c.cut}[/]"
                  f"{' (whole)' if c.whole else ''}: val top-1 {_pct(chosen.val_top1)}, "
                  f"{c.latency_ms:.3g} ms predicted (upper {c.upper_ms:.3g} ms)", highlight=False)
    if base is None:
        cli.out.print("no off-the-shelf network meets the deadline", highlight=False)
    else:
        gain = result.gain()
        cli.out.print(f"best off-the-shelf: {base.label} {_pct(base.val_top1)}; relative gain "
                      f"{'n/a' if gain is None else f'{100 * gain:+.2f}%'}", highlight=False)
    comp = result.comparison()
    line = (f"exploration: {len(result.explored())} networks, {result.exploration_s():.1f} s "
            f"(planning {result.plan_s:.1f} s)")
    if comp:
        line += (f"; exhaustive: {len(result.exhaustive())} networks, {comp['exhaustive_s']:.1f} s "
                 f"-> {comp['speedup']:.1f}x faster; same network: "
                 f"{'yes' if comp['same_network'] else 'no (' + str(comp['exhaustive_choice']) + ')'}")
    cli.out.print(line, highlight=False)
