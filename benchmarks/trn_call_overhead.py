"""What binding a TRN's layers saves: its forward time with and without bind_submodules.

fx's generated code reaches each layer through its module path at every call
(``nn.Module.__getattr__``, about 0.8 us a step on the Xeon 6 guest); ``trim``
binds the prefix's layers as plain attributes (``netcut/planner/bind.py``). Per
network, the TRN cut at its deepest legal cut (all blocks kept, a 10-class head) is
timed as ``trim`` returns it and as a copy with the binding removed, in turns, at
batch 1 fp32 on the CPU (``netcut measure``'s timing: warm-up, then the median of
``--calls`` calls; malloc thresholds pinned as ``netcut measure`` pins them).
Reported: each variant's median over ``--repeats`` rounds and the ratio unbound /
bound of those medians, with the eager source model beside.

    .venv/bin/python benchmarks/trn_call_overhead.py [--models mnasnet1_0,resnet18] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

from _common import machine_info, machine_line, print_table, verdict

MODELS = ("mnasnet1_0", "mobilenet_v3_large", "densenet121", "resnet18")
#: the target: unbound / bound >= 1 on every network (binding never slows a TRN)
TARGET_RATIO = 1.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated torchvision names")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--calls", type=int, default=40, help="timed calls per round (default 40)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.calls < 1:
        parser.error("--repeats and --calls must be at least 1")
    return args


def unbound(module):
    """A copy of ``module`` with every bound submodule entry removed from ``__dict__``."""
    import torch

    twin = copy.deepcopy(module)
    for sub in twin.modules():
        for key in [k for k, v in vars(sub).items() if isinstance(v, torch.nn.Module)]:
            del sub.__dict__[key]
    return twin


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    import torchvision

    from netcut.measure.allocator import keep_freed_memory
    from netcut.measure.timing import time_forward
    from netcut.planner import cut_points, trim
    from netcut.tracing import trace

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    info = machine_info()
    x = torch.randn(1, 3, 224, 224)
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        source = getattr(torchvision.models, name)(weights=None).eval()
        table = trace(source, (3, 224, 224))
        point = cut_points(table)[-1]
        bound = trim(source, point, 10, table=table).eval()
        nets = {"source": source, "bound": bound, "unbound": unbound(bound)}
        samples = {k: [] for k in nets}
        with torch.inference_mode():
            for _ in range(args.repeats):
                for key, net in nets.items():  # in turns: a busy machine slows all alike
                    samples[key].append(time_forward(net, x, 5, args.calls, "eager").median_ms)
        med = {k: statistics.median(v) for k, v in samples.items()}
        results.append({"model": name, "cut": point.name, "layers": len(table),
                        **{f"{k}_ms": v for k, v in med.items()},
                        "unbound_over_bound": med["unbound"] / med["bound"],
                        "unbound_over_source": med["unbound"] / med["source"],
                        "bound_over_source": med["bound"] / med["source"]})
    passed = all(r["unbound_over_bound"] >= TARGET_RATIO for r in results)
    if args.json:
        print(json.dumps({"benchmark": "trn_call_overhead", "machine": info, "repeats": args.repeats,
                          "calls": args.calls, "threads": args.threads, "results": results,
                          "target": {"min_unbound_over_bound": TARGET_RATIO, "passed": passed}},
                         indent=2))
        return 0
    print(machine_line(info))
    print(f"deepest-cut TRN, batch 1 fp32, {args.threads} threads; median of {args.calls} calls, "
          f"median over {args.repeats} rounds taken in turns")
    print_table(["model", "cut", "rows", "source ms", "bound ms", "unbound ms", "unbound/bound",
                 "unbound/source", "bound/source"],
                [[r["model"], r["cut"], str(r["layers"]), f"{r['source_ms']:.2f}",
                  f"{r['bound_ms']:.2f}", f"{r['unbound_ms']:.2f}", f"{r['unbound_over_bound']:.3f}",
                  f"{r['unbound_over_source']:.3f}", f"{r['bound_over_source']:.3f}"] for r in results])
    print(f"target: unbound/bound >= {TARGET_RATIO} on every network: {verdict(passed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
