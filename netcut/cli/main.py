"""The ``netcut`` command. Thin: parse, call the library, render.

Results go to stdout, errors and progress to stderr. A user mistake (a
:class:`NetcutError`) prints one line and exits 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from ..errors import NetcutError
from ..files import atomic_write_text
from .render import estimate_tables, hardware_table, print_json

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Which network, cut where, meets my deadline on that device?")
hw_app = typer.Typer(no_args_is_help=True, help="List, show and check hardware profiles.")
app.add_typer(hw_app, name="hw")

#: consoles are module attributes so tests can point them at a StringIO
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.command()
def predict(
    model: str = typer.Argument(..., help="resnet50, torchvision:resnet50 or package.module:factory"),
    hw: str = typer.Option(..., "--hw", help="profile name (netcut hw list) or a YAML file"),
    batch: int = typer.Option(1, help="batch size"),
    input: Optional[str] = typer.Option(None, "--input", help="per-sample shape, e.g. 3x224x224"),
    dtype: str = typer.Option("float32", help="float32, float16, bfloat16"),
    mode: Optional[str] = typer.Option(None, help="eager, graph or fused (default: the profile's)"),
    threads: Optional[int] = typer.Option(None, help="CPU profiles: threads to use"),
    interval: float = typer.Option(0.9, help="level of the prediction interval (calibrated profiles)"),
    scale: list[str] = typer.Option([], "--scale", help="NAME=FACTOR: scale the profile's numbers "
                                    "as netcut calibrate's parameter NAME does (repeatable), "
                                    "e.g. dispatch=1.66 for PyTorch 1.x host overhead"),
    per_layer: bool = typer.Option(False, "--per-layer", help="one row per op instead of per block"),
    trace_out: Optional[Path] = typer.Option(None, "--trace", help="write a Chrome/Perfetto trace here"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Predict the latency of MODEL on a device, from its hardware profile."""
    from .. import load_hardware, predict as run_predict
    from ..calibrate.scale import parse_scales, scale_profile

    scales = parse_scales(scale)
    profile = load_hardware(hw, cores=threads) if threads else load_hardware(hw)
    profile = scale_profile(profile, scales, note="netcut predict --scale")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = run_predict(model, profile, input_shape=input, dtype=dtype, mode=mode, batch=batch,
                          interval=interval)
    for w in caught:
        if "netcut" in str(w.filename) or "priced as plain copies" in str(w.message):
            err.print(f"[yellow]warning:[/] {w.message}")
    if trace_out is not None:
        atomic_write_text(trace_out, json.dumps(est.timeline()))
        err.print(f"trace written to {trace_out} (open in https://ui.perfetto.dev)")
    if as_json:
        payload = est.summary()
        if scales:
            payload["scales"] = scales
        if per_layer:
            payload["layers"] = est.layers
        print_json(out, payload)
        return
    for table in estimate_tables(est, per_layer):
        out.print(table)
    if scales:
        err.print(f"{profile.name} scaled: " + ", ".join(f"{k} x{v:g}" for k, v in scales.items()),
                  highlight=False)
    if est.unsupported_ops:
        err.print(f"[yellow]unsupported ops (priced as copies):[/] {est.unsupported_ops}")


@hw_app.command("list")
def hw_list(
    pattern: str = typer.Argument("*", help="shell-style filter, e.g. 'jetson*'"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the shipped hardware profiles."""
    from ..hardware import list_hardware, load_hardware

    profiles = [load_hardware(n) for n in list_hardware(pattern)]
    if as_json:
        print_json(out, [{"name": p.name, "kind": p.kind, "description": p.description}
                         for p in profiles])
    else:
        out.print(hardware_table(profiles))


@hw_app.command("show")
def hw_show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one profile with every number and its source."""
    from ..hardware import load_hardware, resolve_profile_path

    profile = load_hardware(name)
    if as_json:
        print_json(out, profile.model_dump(mode="json"))
    else:
        out.print(resolve_profile_path(name).read_text(encoding="utf-8"), markup=False)


@hw_app.command("check")
def hw_check(files: List[Path], as_json: bool = typer.Option(False, "--json")) -> None:
    """Validate your own profile files; exit 2 if any has an error."""
    from ..hardware import load_hardware

    results, failed = [], False
    for path in files:
        try:
            profile = load_hardware(path)
            results.append({"file": str(path), "ok": True, "name": profile.name})
        except NetcutError as exc:
            failed = True
            results.append({"file": str(path), "ok": False, "error": str(exc)})
    if as_json:
        print_json(out, results)
    else:
        for r in results:
            if r["ok"]:
                out.print(f"[green]ok[/] {r['file']} ({r['name']})")
            else:
                err.print(r["error"], markup=False)
    if failed:
        raise typer.Exit(2)


def _register_optional_commands() -> None:
    from . import calibrate_cmd  # noqa: F401  (adds `netcut calibrate`)
    from . import dynamic_cmd  # noqa: F401  (adds `netcut dynamic ...`)
    from . import explore_cmd  # noqa: F401  (adds `netcut explore`)
    from . import measure_cmd  # noqa: F401  (adds `netcut measure`)
    from . import plan_cmd  # noqa: F401  (adds `netcut plan`)
    from . import validate_cmd  # noqa: F401  (adds `netcut validate`)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s",
                        stream=sys.stderr)
    _register_optional_commands()
    try:
        app(args=argv, prog_name="netcut", standalone_mode=True)
    except NetcutError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except SystemExit as exc:  # click's own exit (usage errors: 2, --help: 0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
