"""``netcut dynamic build|show|run|train|report``: the typer sub-app ``dynamic_app``.

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
from ..files import atomic_write_bytes
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


MULTI_FILE = "multipath.pt"


def _load_net(folder: Path):
    """The DynamicNet in ``folder/net.pt`` (what ``build`` wrote)."""
    from .report import load_net

    return load_net(folder)


def _torch_bytes(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@dynamic_app.command("train")
def train_cmd(
    folder: Path = typer.Argument(..., help="a folder written by `netcut dynamic build`"),
    data: Path = typer.Option(..., "--data", help="image folder: root/<class>/... or train/ + val/"),
    method: str = typer.Option("single", "--method", help="single (one shared-weight round), "
                               "multi (each sub-net alone) or both (compare; single is kept)"),
    epochs: int = typer.Option(3, "--epochs", help="epochs (per sub-net for multi-path)"),
    sampling: str = typer.Option("sandwich", "--sampling", help="single-path: sandwich, cycle, random"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate (cosine schedule)"),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="held out when DIR has no val/"),
    seed: int = typer.Option(0, "--seed"),
    workers: Optional[int] = typer.Option(None, "--workers", help="loader processes"),
    recalibrate: int = typer.Option(20, "--recalibrate-batches",
                                    help="single-path: batches to re-estimate BN statistics (0: off)"),
    accelerator: str = typer.Option("auto", "--accelerator", help="Lightning's: cpu, gpu, auto..."),
    devices: str = typer.Option("auto", "--devices", help="Lightning's: auto, 1, 4, 0,1..."),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning's: auto, ddp, "
                                 "ddp_find_unused_parameters_true..."),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Fine-tune the sub-nets of FOLDER on DIR (single-path, multi-path or both); write the
    trained weights back and the accuracies into its manifest."""
    from ..errors import InvalidInputError
    from ..retrain.data import ImageFolderDataModule
    from .export import MANIFEST, export
    from .train import METHODS, SAMPLING, train_dynamic

    if method not in (*METHODS, "both"):
        raise InvalidInputError(f"--method {method!r}: allowed single, multi, both")
    if sampling not in SAMPLING:
        raise InvalidInputError(f"--sampling {sampling!r}: allowed {', '.join(SAMPLING)}")
    if epochs < 1:
        raise InvalidInputError(f"--epochs must be at least 1, got {epochs}")
    if not (folder / MANIFEST).is_file():
        raise InvalidInputError(f"no {MANIFEST} in {folder}: not a folder written by "
                                "`netcut dynamic build`")
    net = _load_net(folder)
    datamodule = ImageFolderDataModule(data, net.input_shape, batch_size=batch_size,
                                       val_fraction=val_fraction, seed=seed, num_workers=workers)
    datamodule.setup("fit")
    info = datamodule.summary()
    dev = int(devices) if devices.isdigit() else devices
    results = train_dynamic(net, datamodule, method, epochs=epochs, sampling=sampling, lr=lr,
                            seed=seed, recalibrate_batches=recalibrate, accelerator=accelerator,
                            devices=dev, strategy=strategy, progress=None)
    deployed = "single" if "single" in results else "multi"
    n = len(net.subnets)
    training = {
        "method": method, "deployed": deployed,
        "data": {k: info[k] for k in ("root", "layout", "classes", "image_size", "train_images",
                                      "val_images")},
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": "adamw, cosine",
        "seed": seed, "sampling": sampling if "single" in results else None,
        "budget": (f"same {info['train_images']} training images, {epochs} epochs: multi-path "
                   f"{epochs} epochs per sub-net ({n} fits), single-path {epochs} epochs in all "
                   f"(one fit, sampling {sampling})"),
        "accuracy_on": f"validation split: {info['val_images']} images not trained on",
        "results": {m: r.to_dict() for m, r in results.items()},
    }
    if len(results) == 2:
        training["wall_ratio_multi_over_single"] = results["multi"].wall_s / results["single"].wall_s
    files = {}
    with _progress("writing the trained network"):
        if "multi" in results:
            copies = results["multi"].models
            files["multipath"] = str(atomic_write_bytes(folder / MULTI_FILE, _torch_bytes(copies)))
        if deployed == "single":
            files["net"] = str(atomic_write_bytes(folder / NET_FILE, _torch_bytes(net)))
            manifest = export(net, folder, extra={"training": training})
        else:  # the separately trained copies are what runs
            manifest = export(net, folder, modules=[copies[s.name] for s in net.subnets],
                              extra={"training": training})
        files["manifest"] = str(manifest)
        files["torchscript"] = str(manifest.parent / "dynamic.ts")
    payload = {"folder": str(folder), "method": method, "deployed": deployed,
               "budget": training["budget"], "accuracy_on": training["accuracy_on"],
               "results": training["results"], "files": files}
    if "wall_ratio_multi_over_single" in training:
        payload["wall_ratio_multi_over_single"] = training["wall_ratio_multi_over_single"]
    if as_json:
        print_json(cli.out, payload)
        return
    table = Table(title=f"{folder}: trained ({training['accuracy_on']})", title_justify="left")
    table.add_column("sub-net")
    table.add_column("predicted ms", justify="right")
    for m in results:
        table.add_column(f"accuracy, {m}-path", justify="right")
    for s in net.subnets:
        table.add_row(s.name, fmt_ms(s.predicted_ms) if s.predicted_ms else "-",
                      *(f"{r.accuracies[s.name]:.4f}" for r in results.values()))
    cli.out.print(table)
    for m, r in results.items():
        cli.out.print(f"{m}-path: {r.wall_s:.1f} s wall, {r.steps} steps, {r.per_step_ms:.1f} ms a "
                      f"step", highlight=False)
    if "wall_ratio_multi_over_single" in training:
        cli.out.print(f"multi-path / single-path time: {training['wall_ratio_multi_over_single']:.2f}x",
                      highlight=False)
    cli.err.print(f"budget: {training['budget']}", highlight=False)
    cli.err.print("written: " + ", ".join(files.values()), highlight=False)


@dynamic_app.command("report")
def report_cmd(
    folder: Path = typer.Argument(..., help="a folder written by `netcut dynamic build`"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder (default FOLDER/report)"),
    hw: Optional[List[str]] = typer.Option(None, "--hw", help="profiles to price the sub-nets on "
                                           "(comma-separated or repeated; the build's is included)"),
    frames: int = typer.Option(120, "--frames", help="frames of the budget trace"),
    budgets: Optional[List[str]] = typer.Option(
        None, "--budgets", help="budget range of the trace 'low,high' (default: from the "
        "sub-nets' latency here)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    seed: int = typer.Option(0, "--seed", help="seed of the budget trace"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Write a report (Markdown, HTML, JSON) on FOLDER: accuracy and predicted latency per
    sub-net per device, and a budget trace run here with the sub-net chosen and the misses."""
    import torch

    from ..errors import InvalidInputError
    from ..planner.plan import check_deadline
    from .report import build_report, write_report

    if frames < 1:
        raise InvalidInputError(f"--frames must be at least 1, got {frames}")
    values = [check_deadline(b) for b in _split(budgets) or []] or None
    if threads is not None:
        torch.set_num_threads(threads)
    target = out if out is not None else folder / "report"
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"--out {target} is a file, not a folder")
    with _progress("pricing and running the budget trace"):
        report = build_report(folder, _split(hw), frames=frames, budgets_ms=values, seed=seed)
        written = write_report(report, target)
    if as_json:
        print_json(cli.out, {**report, "files": {k: str(v) for k, v in written.items()}})
        return
    rows = report["subnets"]
    table = Table(title=f"{folder}: {len(rows)} sub-nets, trace miss rate "
                        f"{report['trace']['miss_rate']:.1%}", title_justify="left")
    for col in ("sub-net", "accuracy", *[f"ms {hw}" for hw in report["devices"]], "ms here",
                "frames"):
        table.add_column(col, justify="left" if col == "sub-net" else "right")
    for r in rows:
        table.add_row(r["name"], f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-",
                      *(fmt_ms(r["predicted_ms"][h]) if r["predicted_ms"].get(h) else "-"
                        for h in report["devices"]),
                      fmt_ms(r["calibrated_ms_here"]), str(r["frames"]))
    cli.out.print(table)
    cli.err.print(f"report: {written['html']} (+ report.md, report.json, budget-trace.png)",
                  highlight=False)
