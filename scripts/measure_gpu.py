"""Measure a CUDA GPU for netcut's validation in one process, within a time budget.

The same 11 torchvision networks as the shared H100 data, written in netcut's
measurement schema (the header of `netcut measure`):

  1. OUT/<name>-graph.json   CUDA-graph replays of the whole networks at batch
                             1/16/64, fp32 and fp16
  2. OUT/<name>-eager.json   eager: the same whole networks
  3. OUT/<name>-kernels.json torch.profiler's CUDA kernels (name, launches, µs)
                             of each leaf module of two networks run alone at
                             batch 16, and the copy bandwidth and matmul rates
  4. OUT/<name>-eager-layers.json   the same leaves timed alone (isolated)
  5. every trimmed network, graph mode at batch 16 (fp32, fp16), into file 1
  6. every trimmed network, eager at batch 1 fp32, into file 2

Stages run in that order and each file is rewritten atomically after every
network, so a run cut short by the budget (or a lease running out) keeps what it
finished; what was skipped is printed. One process, so torch is imported once:

    python scripts/measure_gpu.py --out calibration/data/h200 --name h200 --budget-s 330
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ["resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2", "mobilenet_v3_large",
          "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "squeezenet1_1", "alexnet"]
WHOLE = [(b, d) for d in ("float32", "float16") for b in (1, 16, 64)]
LAYER_MODELS = ["squeezenet1_1", "alexnet"]


class Budget:
    """Seconds left of the run; a stage asks before each network."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.skipped: list[str] = []

    def left(self, what: str) -> bool:
        if time.monotonic() < self.end:
            return True
        self.skipped.append(what)
        return False


class Sink:
    """One measurement file, rewritten atomically after each network."""

    def __init__(self, path: Path, header: dict):
        self.path, self.header, self.rows = path, header, []

    def add(self, rows) -> None:
        from netcut.files import atomic_write_text

        self.rows += [r.model_dump(mode="json", exclude_none=True) for r in rows]
        atomic_write_text(self.path, json.dumps(self.header | {"rows": self.rows}, indent=1))


def measure_networks(sink: Sink, budget: Budget, mode: str, jobs, warmup: int, repeats: int) -> None:
    from netcut.measure import measure

    for model, batch, dtype, cuts in jobs:
        label = f"{mode} {model} b{batch} {dtype}{' cuts' if cuts else ''}"
        if not budget.left(label):
            continue
        t0 = time.monotonic()
        rows = measure(model, device="cuda", batch=batch, dtype=dtype, cuts=cuts, warmup=warmup,
                       repeats=repeats, mode=mode)
        sink.add([r for r in rows if r.cut is not None] if cuts else rows)  # whole: stage 1
        print(f"{label}: {len(rows)} rows, whole {rows[0].median_ms:.3f} ms "
              f"({time.monotonic() - t0:.1f} s)", flush=True)


def measure_layers(path: Path, header: dict, budget: Budget, warmup: int, repeats: int,
                   models=LAYER_MODELS) -> None:
    from netcut.files import atomic_write_text
    from netcut.measure import measure_per_layer

    rows = []
    for model in models:
        if not budget.left(f"layers {model}"):
            continue
        rows += [r.model_dump(mode="json", exclude_none=True) for r in measure_per_layer(
            model, device="cuda", batch=16, dtype="float32", warmup=warmup, repeats=repeats)]
        atomic_write_text(path, json.dumps(header | {"rows": rows}, indent=1))
        print(f"layers {model}: {len(rows)} rows so far", flush=True)


def kernel_profile(path: Path, budget: Budget, models=LAYER_MODELS, dtype: str = "float32") -> None:
    """Which CUDA kernels each leaf module launches alone, and for how long (batch 16,
    cudnn.benchmark on): how many kernels an op really is, which the profile prices."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from netcut.files import atomic_write_text
    from netcut.measure.layers import leaf_calls
    from netcut.planner.trim import build_model

    torch.backends.cudnn.benchmark = True
    out = {"micro": micro_benchmarks(), "dtype": dtype, "batch": 16, "networks": {}}
    atomic_write_text(path, json.dumps(out, indent=1))
    for model in models:
        if not budget.left(f"kernels {model}"):
            continue
        net, _ = build_model(model)
        x = torch.randn(16, 3, 224, 224, device="cuda", dtype=getattr(torch, dtype))
        leaves = []
        with torch.inference_mode():
            for name, module, args, out_shape, kwargs in leaf_calls(net.eval().cuda().to(x.dtype), x):
                for _ in range(3):
                    module(*args, **kwargs)
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    for _ in range(5):
                        module(*args, **kwargs)
                    torch.cuda.synchronize()
                kernels: dict[str, list] = {}
                for e in prof.events():
                    if e.device_type.name == "CUDA":
                        slot = kernels.setdefault(e.name, [0, 0.0])
                        slot[0] += 1
                        slot[1] += e.time_range.elapsed_us()
                leaves.append({"name": name, "type": type(module).__name__,
                               "in_shape": list(args[0].shape), "out_shape": list(out_shape),
                               "kernels": [[k, n / 5, us / 5] for k, (n, us) in kernels.items()]})
        out["networks"][model] = leaves
        atomic_write_text(path, json.dumps(out, indent=1))
        print(f"kernels {model}: {len(leaves)} leaves", flush=True)


def micro_benchmarks() -> dict:
    """Copy bandwidth and matmul rates on this GPU: the ceilings a profile assumes."""
    import torch

    def cuda_ms(fn, n=10):
        fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / n

    src = torch.empty(2**29, device="cuda")  # 2 GiB of fp32
    dst = torch.empty_like(src)
    copy_ms = cuda_ms(lambda: dst.copy_(src))
    out = {"copy_gbs": 2 * src.numel() * 4 / copy_ms / 1e6}  # bytes read + written
    for dtype, tf32 in (("float16", False), ("float32", False), ("float32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        m = torch.randn(8192, 8192, device="cuda", dtype=getattr(torch, dtype))
        ms = cuda_ms(lambda: m @ m)
        out[f"matmul_tflops_{dtype}{'_tf32' if tf32 else ''}"] = 2 * 8192**3 / ms / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="gpu", help="file name prefix, e.g. h200")
    parser.add_argument("--budget-s", type=float, default=330.0)
    parser.add_argument("--profile-hint", default=None)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--layer-models", nargs="*", default=LAYER_MODELS,
                        help="the networks of stages 3 and 4")
    parser.add_argument("--kernel-dtypes", nargs="*", default=["float32"],
                        help="stage 3's dtypes (one kernels file each; float32 keeps the plain name)")
    parser.add_argument("--stages", default="123456",
                        help="which stages to run, e.g. 12 for a repeat of the whole networks")
    args = parser.parse_args(argv)
    run = set(args.stages)

    from netcut.measure import file_header, layer_file_header

    args.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_s)
    graph = Sink(args.out / f"{args.name}-graph.json",
                 file_header("cuda", warmup=5, repeats=100, mode="graph", profile_hint=args.profile_hint))
    eager = Sink(args.out / f"{args.name}-eager.json",
                 file_header("cuda", warmup=10, repeats=50, profile_hint=args.profile_hint))
    print(json.dumps(graph.header["environment"]), flush=True)

    whole = [(m, b, d, False) for m in args.models for b, d in WHOLE]
    if "1" in run:
        measure_networks(graph, budget, "graph", whole, 5, 100)
    if "2" in run:
        measure_networks(eager, budget, "eager", whole, 10, 50)
    if "3" in run:
        for dtype in args.kernel_dtypes:
            suffix = "" if dtype == "float32" else f"-{dtype}"
            kernel_profile(args.out / f"{args.name}-kernels{suffix}.json", budget,
                           args.layer_models, dtype)
    if "4" in run:
        layer_header = layer_file_header(file_header("cuda", warmup=5, repeats=50,
                                                     profile_hint=args.profile_hint), warmup=5, repeats=50)
        measure_layers(args.out / f"{args.name}-eager-layers.json", layer_header, budget, 5, 50,
                       args.layer_models)
    if "5" in run:
        measure_networks(graph, budget, "graph", [(m, 16, d, True) for d in ("float32", "float16")
                                                  for m in args.models], 5, 100)
    if "6" in run:
        measure_networks(eager, budget, "eager", [(m, 1, "float32", True) for m in args.models], 10, 50)
    print(f"skipped for the budget: {budget.skipped or 'nothing'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
