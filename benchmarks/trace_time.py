"""How long tracing a torchvision classifier takes: build on meta + fx trace + costs.

Each timed call is ``netcut.tracing.trace(spec, shape)`` with a spec string, so
building the model (on the ``meta`` device) is included. Every model is traced
once untimed first (imports, lazy initialisation; shown as ``first_s``), then
``--repeats`` times; the median and minimum of those are reported.

    .venv/bin/python benchmarks/trace_time.py                 # the default models
    .venv/bin/python benchmarks/trace_time.py --models resnet18,vgg16
    .venv/bin/python benchmarks/trace_time.py --all --repeats 3 --json
"""

from __future__ import annotations

import argparse
import json
import sys

from _common import machine_info, machine_line, print_table, summary, time_once, verdict

DEFAULT_MODELS = ("resnet50", "mobilenet_v3_large", "densenet121", "efficientnet_b0",
                  "vit_b_16", "swin_t", "convnext_tiny", "inception_v3")
#: the target: tracing resnet50 (median) takes under this many seconds
TARGET_MODEL, TARGET_S = "resnet50", 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--models", help="comma-separated torchvision names "
                       f"(default: {','.join(DEFAULT_MODELS)})")
    which.add_argument("--all", action="store_true",
                       help="every classifier of netcut.models.torchvision_classifiers()")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def bench_model(name: str, repeats: int) -> dict:
    from netcut.models import default_input_shape
    from netcut.tracing import trace

    shape = default_input_shape(name)
    record = {"model": name, "input_shape": list(shape)}
    try:
        holder = {}
        record["first_s"] = time_once(lambda: holder.setdefault("table", trace(name, shape)))
        table = holder["table"]
        record.update(rows=len(table), tracer=table.tracer)
        record.update(summary([time_once(lambda: trace(name, shape)) for _ in range(repeats)]))
    except Exception as exc:  # report and go on with the other models
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from netcut.models import torchvision_classifiers

    if args.all:
        models = list(torchvision_classifiers())
    elif args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        models = list(DEFAULT_MODELS)
    info = machine_info()
    results = []
    for name in models:
        results.append(bench_model(name, args.repeats))
        if not args.json:
            print(f"  traced {name}", file=sys.stderr, flush=True)
    target = next((r for r in results if r["model"] == TARGET_MODEL and "median_s" in r), None)
    passed = None if target is None else target["median_s"] < TARGET_S
    target_line = (f"target: {TARGET_MODEL} median < {TARGET_S} s: "
                   + (f"{target['median_s']:.3f} s -> {verdict(passed)}" if target
                      else "not measured"))
    if args.json:
        print(json.dumps({"benchmark": "trace_time", "machine": info, "repeats": args.repeats,
                          "results": results,
                          "target": {"model": TARGET_MODEL, "max_median_s": TARGET_S,
                                     "passed": passed}}, indent=2))
        return 0
    print(machine_line(info))
    print(f"trace time per model: netcut.tracing.trace(spec, shape), model build included; "
          f"{args.repeats} timed runs after 1 untimed")
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["model"], "-", "-", "-", "-", "-"])
            continue
        rows.append([r["model"], str(r["rows"]), r["tracer"], f"{r['first_s']:.3f}",
                     f"{r['median_s']:.3f}", f"{r['min_s']:.3f}"])
    print_table(["model", "rows", "tracer", "first_s", "median_s", "min_s"], rows)
    for r in results:
        if "error" in r:
            print(f"{r['model']}: {r['error']}")
    print(target_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
