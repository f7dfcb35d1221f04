"""``netcut measure``: time a network (and its trimmed versions) on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import main as cli
from ..files import atomic_write_text
from .render import print_json


@cli.app.command()
def measure(
    model: str = typer.Argument(..., help="resnet50, torchvision:resnet50 or package.module:factory"),
    out_file: Path = typer.Option(..., "--out", help="measurement file to write (JSON, netcut schema)"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    batch: int = typer.Option(1, help="batch size"),
    dtype: str = typer.Option("float32", help="float32, float16, bfloat16"),
    input: Optional[str] = typer.Option(None, "--input", help="per-sample shape, e.g. 3x224x224"),
    threads: Optional[int] = typer.Option(None, help="CPU threads (torch.set_num_threads)"),
    cuts: bool = typer.Option(False, "--cuts", help="also every trimmed network at its block cuts"),
    per_layer: bool = typer.Option(False, "--per-layer",
                                   help="also every leaf layer alone (written to OUT's stem + .layers.json)"),
    warmup: int = typer.Option(5, help="untimed calls before timing"),
    repeats: int = typer.Option(30, help="timed calls per row (median, min, p90 kept)"),
    rounds: int = typer.Option(1, help="interleave the networks in N rounds of repeats/N calls "
                                      "(a shared machine's slow spells then hit every row alike)"),
    mode: str = typer.Option("eager", help="eager, or graph: time CUDA-graph replays (--device cuda)"),
    cudnn_benchmark: bool = typer.Option(True, "--cudnn-benchmark/--no-cudnn-benchmark",
                                         help="let cuDNN autotune its algorithms (recorded in the file)"),
    keep_memory: bool = typer.Option(True, "--keep-memory/--no-keep-memory",
                                     help="pin glibc's malloc thresholds so activations are not "
                                          "re-faulted every call (recorded in the file)"),
    profile_hint: Optional[str] = typer.Option(None, "--profile-hint", help="closest shipped profile"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
) -> None:
    """Measure MODEL's latency here, following netcut's written protocol.

    The file is rewritten atomically after every row, so Ctrl-C keeps what finished
    (with --rounds N, rows are written when the last round ends).
    --per-layer times each leaf module alone on the input it received in a real
    forward pass (isolated timing, like the shared H100 data; not torch.profiler).
    --keep-memory (the default) stops glibc from unmapping freed activations, so a
    call does not page-fault memory the previous one used (netcut/measure/allocator.py).
    """
    from ..errors import InvalidInputError
    from ..measure import file_header, layer_file_header, measure as run_measure, measure_per_layer

    if not out_file.parent.is_dir() and str(out_file.parent):
        raise InvalidInputError(f"cannot write {out_file}: folder {out_file.parent} does not exist")
    if per_layer and mode != "eager":
        raise InvalidInputError("--per-layer times eager calls; leave out --mode graph")
    header = file_header(device, warmup=warmup, repeats=repeats, rounds=max(rounds, 1), mode=mode,
                         threads=threads, cudnn_benchmark=cudnn_benchmark, profile_hint=profile_hint)
    if keep_memory:
        from ..measure.allocator import keep_freed_memory

        header["environment"]["memory"] = keep_freed_memory()
    else:
        header["environment"]["memory"] = {"pinned": False}
    rows: list[dict] = []
    layer_file = out_file.with_name(out_file.name.removesuffix(".json") + ".layers.json")
    layer_header = layer_file_header(header, warmup=warmup, repeats=repeats)
    layers: list[dict] = []

    def save(row) -> None:
        rows.append(row.model_dump(mode="json", exclude_none=True))
        atomic_write_text(out_file, json.dumps(header | {"rows": rows}, indent=1))

    def save_layer(row) -> None:
        layers.append(row.model_dump(mode="json", exclude_none=True))
        atomic_write_text(layer_file, json.dumps(layer_header | {"rows": layers}, indent=1))

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=cli.err, transient=True,
                        disable=not cli.err.is_terminal)
    try:
        with progress:
            task = progress.add_task("measuring", total=None)
            run_measure(model, device=device, batch=batch, dtype=dtype, input_shape=input,
                        threads=threads, cuts=cuts, warmup=warmup, repeats=repeats, rounds=rounds,
                        mode=mode, cudnn_benchmark=cudnn_benchmark,
                        progress=lambda k, n, what: progress.update(
                            task, completed=k, total=n, description=f"measuring {what}"),
                        on_row=save)
            if per_layer:
                measure_per_layer(model, device=device, batch=batch, dtype=dtype, input_shape=input,
                                  threads=threads, warmup=warmup, repeats=repeats,
                                  cudnn_benchmark=cudnn_benchmark,
                                  progress=lambda k, n, what: progress.update(
                                      task, completed=k, total=n, description=f"layer {what}"),
                                  on_row=save_layer)
    except KeyboardInterrupt:
        kept = f" and {len(layers)} layers in {layer_file}" if layers else ""
        cli.err.print(f"interrupted: {len(rows)} finished rows kept in {out_file}{kept}")
        raise typer.Exit(130)
    if as_json:
        print_json(cli.out, {"rows": rows, "layers": layers} if per_layer else rows)
    else:
        for r in rows:
            cut = r.get("cut", {}).get("last_block", "whole")
            cli.out.print(f"{r['model']:24s} {cut:32s} median {r['median_ms']:9.3f} ms  "
                          f"min {r['min_ms']:9.3f}  p90 {r['p90_ms']:9.3f}  (n={r['n']})",
                          highlight=False)
    cli.err.print(f"wrote {len(rows)} rows to {out_file}")
    if per_layer:
        cli.err.print(f"wrote {len(layers)} layer rows to {layer_file}")
