"""A dynamic network at run time: switching cost, decision time, and deadline misses
under a varying budget while another process takes the CPU mid-run.

Setup (untimed): ``netcut.dynamic.build`` on resnet18 (random weights) at
``--input`` with exits layer1.1, layer2.1, layer3.1, layer4.1 and widths 1, 0.75, 0.5, 0.25,
priced on ``--hw`` (this machine's profile by default); the estimator keeps at
most 6 sub-nets. Calibration: ``--calibrate`` rounds, each timing every sub-net
once (interleaved, so a load spike from elsewhere hits all alike); a sub-net's
*quiet* latency is its minimum over the rounds, and is fed once to
``net.observe`` (its first measurement sets its ratio). That corrector state is
where every strategy of every run starts.

Measured:

* ``switch``: ``net.activate(a); net.activate(b)`` back and forth, per switch,
  against the fastest sub-net's median latency (target: < 1 %);
* ``decide``: ``net.select(budget)`` over varying budgets;
* ``run after switch``: the fastest sub-net's latency when each run follows a
  switch (alternating with the second fastest), against running it repeatedly;
* ``slice overhead``: each sub-net run through the dynamic (sliced) network vs
  the same sub-net as a static network with contiguous weights;
* deadline misses: ``--frames`` frames, the budget a seeded random walk in log
  space between 1.3x the fastest and 1.1x the slowest calibrated latency; during
  the middle third ``--hogs`` processes spin on the CPU (multiprocessing).
  Strategies, in turn within each run (rotated from run to run):
  ``fixed`` (the one sub-net expected to fit the median budget, always run),
  ``frozen`` (chosen per frame by the calibrated prediction, no online
  correction), ``per-subnet`` (EWMA per sub-net, ``shared=False``), ``shared``
  (EWMA per sub-net + device drift, the default) and ``shared-p90`` (the same,
  choosing with ``confidence=0.9``: room for the scatter seen). Reported per strategy: miss
  rate in all, during and outside the slowdown, and the mean FLOPs of what ran
  over the largest sub-net's (the capability used); and a *floor*: the frames
  whose budget is below the fastest sub-net's quiet latency (times the fixed
  network's slowdown inside the window), which no choice can meet.

Medians over ``--runs`` runs.

    nice -n 10 .venv/bin/python benchmarks/dynamic_switch.py [--runs 5] [--frames 240] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import sys
import time

from _common import machine_info, machine_line, print_table, verdict

EXITS = ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]
WIDTHS = (1.0, 0.75, 0.5, 0.25)
STRATEGIES = ("fixed", "frozen", "per-subnet", "shared", "shared-p90")
#: the target: one switch costs under this share of the fastest sub-net's latency
TARGET_SHARE = 0.01


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default="3x128x128", help="per-sample input shape")
    parser.add_argument("--hw", default="epyc-milan-2c", help="profile the sub-nets are priced on")
    parser.add_argument("--runs", type=int, default=5, help="runs of the deadline experiment")
    parser.add_argument("--frames", type=int, default=240, help="frames per strategy and run")
    parser.add_argument("--hogs", type=int, default=1, help="busy processes during the slowdown")
    parser.add_argument("--duty", type=float, default=1.0,
                        help="share of each 2 ms a busy process spins (1: always)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--calibrate", type=int, default=9, help="calibration rounds at the start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.frames < 3 or args.hogs < 0 or args.calibrate < 1 or not 0 < args.duty <= 1:
        parser.error("--runs, --calibrate >= 1, --frames >= 3, --hogs >= 0, 0 < --duty <= 1")
    return args


def _spin(stop, duty: float, period_s: float = 0.002) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        while time.perf_counter() - start < duty * period_s:
            pass
        if duty < 1:
            time.sleep((1 - duty) * period_s)


class Slowdown:
    """``hogs`` processes busy on the CPU between start() and stop()."""

    def __init__(self, hogs: int, duty: float = 1.0):
        self.hogs = hogs
        self.duty = duty
        self.context = multiprocessing.get_context("fork")
        self.stop_event = None
        self.procs: list = []

    def start(self) -> None:
        self.stop_event = self.context.Event()
        self.procs = [self.context.Process(target=_spin, args=(self.stop_event, self.duty),
                                          daemon=True)
                      for _ in range(self.hogs)]
        for p in self.procs:
            p.start()

    def stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self.procs = []


def budget_trace(frames: int, lo: float, hi: float, seed: int) -> list[float]:
    """A random walk in log space between lo and hi (reflected at the ends)."""
    rng = random.Random(seed)
    a, b = math.log(lo), math.log(hi)
    value, step, out = (a + b) / 2, (b - a) / 8, []
    for _ in range(frames):
        value += rng.gauss(0.0, step)
        while value < a or value > b:
            value = 2 * a - value if value < a else 2 * b - value
        out.append(math.exp(value))
    return out


def median_of(fn, number: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call over ``number`` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def timed_ms(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def run_subnet(net, x, i: int):
    return lambda: net(x, subnet=i)


def run_strategy(net, name: str, x, budgets: list[float], fixed_id: int, calibrated: dict,
                 slowdown: Slowdown) -> dict:
    """One pass of ``budgets`` with strategy ``name``; the slowdown covers the middle third."""
    n = len(budgets)
    window = range(n // 3, 2 * n // 3)
    state = dict(calibrated)
    if name == "per-subnet":  # each sub-net's own ratio: its bias times the device factor
        state.update(shared=False, drift=1.0,
                     ratio=[r * calibrated["drift"] for r in calibrated["ratio"]])
    net.corrector.load_state_dict(state)
    net.corrector.frozen = name == "frozen"
    net.confidence = 0.9 if name == "shared-p90" else None
    records = []
    try:
        for t, budget in enumerate(budgets):
            if t == window.start:
                slowdown.start()
            if t == window.stop:
                slowdown.stop()
            if name == "fixed":
                start = time.perf_counter()
                net(x, subnet=fixed_id)
                records.append((fixed_id, (time.perf_counter() - start) * 1e3, budget))
            else:
                _, d = net.run(x, budget)
                records.append((d.subnet, d.measured_ms, budget))
    finally:
        slowdown.stop()
    flops_max = max(s.flops for s in net.subnets)

    def rate(idx) -> float:
        sel = [records[i] for i in idx]
        return sum(ms > b for _, ms, b in sel) / len(sel) if sel else float("nan")

    inside = list(window)
    outside = [i for i in range(n) if i not in window]
    slowdown_factor = None
    if name == "fixed":  # how much slower the same network ran in the slowdown
        slowdown_factor = (statistics.median(records[i][1] for i in inside)
                           / statistics.median(records[i][1] for i in outside))
    return {"miss_rate": rate(range(n)), "miss_rate_slowdown": rate(inside),
            "miss_rate_normal": rate(outside),
            "capability": statistics.mean(net.subnets[s].flops for s, _, _ in records) / flops_max,
            "median_ms": statistics.median(ms for _, ms, _ in records),
            "slowdown_factor": slowdown_factor}


def miss_floor(budgets: list[float], fastest_ms: float, slowdown_factor: float) -> dict:
    """Misses no choice can avoid (an estimate): frames whose budget is below the
    fastest sub-net's quiet latency, times the slowdown inside the window."""
    n = len(budgets)
    window = range(n // 3, 2 * n // 3)
    late = [b < fastest_ms * (slowdown_factor if t in window else 1.0) for t, b in enumerate(budgets)]
    inside = [late[t] for t in window]
    outside = [late[t] for t in range(n) if t not in window]
    return {"miss_rate": sum(late) / n, "miss_rate_slowdown": sum(inside) / len(inside),
            "miss_rate_normal": sum(outside) / len(outside)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    import torchvision.models as tvm

    from netcut.dynamic import build
    from netcut.tracing import parse_input_shape

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    shape = parse_input_shape(args.input)
    torch.manual_seed(args.seed)
    net = build(tvm.resnet18().eval(), shape, exits=EXITS, widths=WIDTHS, num_classes=10,
                hardware=args.hw, max_subnets=6).eval()
    x = torch.randn(1, *shape)
    torch.set_grad_enabled(False)
    subnets = net.subnets
    with torch.inference_mode():
        for s in subnets:  # warm-up, untimed
            for _ in range(3):
                net(x, subnet=s.id)
        rounds: dict[str, list[float]] = {s.name: [] for s in subnets}
        for _ in range(args.calibrate):
            for s in subnets:
                rounds[s.name] += timed_ms(run_subnet(net, x, s.id), 1)
    measured = {name: min(ms) for name, ms in rounds.items()}  # the quiet latency
    net.corrector.reset()
    for s in subnets:
        net.observe(s.id, measured[s.name])
    calibrated = net.corrector.state_dict()
    expected = [net.expected_ms(s.id) for s in subnets]
    fastest = min(range(len(subnets)), key=lambda i: measured[subnets[i].name])
    fastest_ms = measured[subnets[fastest].name]
    second = sorted(range(len(subnets)), key=lambda i: measured[subnets[i].name])[1]

    # ----- switching, deciding -------------------------------------------------------------
    a, b = fastest, second

    def switch_pair():
        net.activate(a)
        net.activate(b)

    switch_s = median_of(switch_pair, 5000, 7) / 2
    lo, hi = 1.3 * min(expected), 1.1 * max(expected)
    sweep = budget_trace(1000, lo, hi, args.seed + 99)
    it = iter(sweep * 100)
    decide_s = median_of(lambda: net.select(next(it)), 1000, 7)

    def run(i):
        return run_subnet(net, x, i)

    with torch.inference_mode():
        same, after = [], []
        for _ in range(30):
            net.activate(a)
            same += timed_ms(run(a), 1)
            same += timed_ms(run(a), 1)
            net(x, subnet=b)
            after += timed_ms(run(a), 1)  # the first run after a switch from b
        slices = []
        for s in subnets:
            static = net.static(s.id, share=False).eval()
            dyn_ms, static_ms = [], []
            for _ in range(15):  # interleaved, so a busy machine slows both alike
                dyn_ms += timed_ms(run(s.id), 1)
                static_ms += timed_ms(lambda: static(x), 1)
            slices.append({"subnet": s.name, "predicted_ms": s.predicted_ms,
                           "measured_ms": measured[s.name],
                           "dynamic_ms": statistics.median(dyn_ms),
                           "static_ms": statistics.median(static_ms)})

    # ----- deadline misses ---------------------------------------------------------------------
    median_budget = math.exp((math.log(lo) + math.log(hi)) / 2)
    fits = [i for i in range(len(subnets)) if expected[i] <= median_budget]
    fixed_id = max(fits, key=lambda i: subnets[i].flops) if fits else fastest
    slowdown = Slowdown(args.hogs, args.duty)
    per_run: dict[str, list[dict]] = {k: [] for k in STRATEGIES}
    floors = []
    with torch.inference_mode():
        for r in range(args.runs):
            budgets = budget_trace(args.frames, lo, hi, args.seed + r)
            order = STRATEGIES[r % len(STRATEGIES):] + STRATEGIES[: r % len(STRATEGIES)]
            for name in order:
                per_run[name].append(run_strategy(net, name, x, budgets, fixed_id, calibrated,
                                                  slowdown))
            floors.append(miss_floor(budgets, fastest_ms, per_run["fixed"][-1]["slowdown_factor"]))
    net.corrector.load_state_dict(calibrated)
    net.confidence = None
    results = {}
    for name, rows in per_run.items():
        results[name] = {k: statistics.median(row[k] for row in rows)
                         for k in ("miss_rate", "miss_rate_slowdown", "miss_rate_normal",
                                   "capability", "median_ms")}
        results[name]["runs"] = rows
    slow_factor = statistics.median(row["slowdown_factor"] for row in per_run["fixed"])
    floor = {k: statistics.median(f[k] for f in floors) for k in floors[0]}
    share = switch_s * 1e3 / fastest_ms
    passed = share < TARGET_SHARE

    payload = {
        "benchmark": "dynamic_switch", "machine": info, "input": list(shape), "hw": args.hw,
        "runs": args.runs, "frames": args.frames, "hogs": args.hogs, "duty": args.duty,
        "threads": torch.get_num_threads(),
        "subnets": [{"id": s.id, "name": s.name, "predicted_ms": s.predicted_ms,
                     "calibrated_ms": expected[s.id], "flops": s.flops} for s in subnets],
        "switch_us": switch_s * 1e6, "fastest_ms": fastest_ms, "switch_share_of_fastest": share,
        "decide_us": decide_s * 1e6,
        "run_same_ms": statistics.median(same), "run_after_switch_ms": statistics.median(after),
        "slices": slices, "budget_range_ms": [lo, hi], "fixed_subnet": subnets[fixed_id].name,
        "slowdown_factor_fixed": slow_factor, "strategies": results, "floor": floor,
        "target": {"max_switch_share": TARGET_SHARE, "passed": passed},
    }
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    print(machine_line(info))
    print(f"resnet18 at {args.input}, exits {', '.join(EXITS)}, widths {WIDTHS}; priced on "
          f"{args.hw}; {len(subnets)} sub-nets kept; calibrated: the minimum of {args.calibrate} runs each")
    print_table(["sub-net", "predicted_ms", "quiet_ms", "dynamic_ms", "static_ms", "dyn/static"],
                [[r["subnet"], f"{r['predicted_ms']:.3f}", f"{r['measured_ms']:.3f}",
                  f"{r['dynamic_ms']:.3f}", f"{r['static_ms']:.3f}",
                  f"{r['dynamic_ms'] / r['static_ms']:.2f}"] for r in slices])
    print()
    print(f"switch (activate): {switch_s * 1e6:.2f} us = {share:.3%} of the fastest sub-net "
          f"({fastest_ms:.3f} ms); decide (select): {decide_s * 1e6:.2f} us")
    print(f"fastest sub-net run after a switch: {statistics.median(after):.3f} ms, "
          f"run again: {statistics.median(same):.3f} ms (medians of 30 and 60)")
    print()
    print(f"deadline misses: {args.frames} frames x {args.runs} runs, budgets {lo:.2f}..{hi:.2f} ms "
          f"(random walk), {args.hogs} busy process(es) in the middle third (the fixed network ran "
          f"{slow_factor:.2f}x slower then; duty {args.duty:g}); fixed = {subnets[fixed_id].name}")
    print_table(["strategy", "miss_all", "miss_slowdown", "miss_normal", "capability", "median_ms"],
                [[name, f"{r['miss_rate']:.1%}", f"{r['miss_rate_slowdown']:.1%}",
                  f"{r['miss_rate_normal']:.1%}", f"{r['capability']:.2f}", f"{r['median_ms']:.3f}"]
                 for name, r in results.items()]
                + [["floor (est.)", f"{floor['miss_rate']:.1%}", f"{floor['miss_rate_slowdown']:.1%}",
                    f"{floor['miss_rate_normal']:.1%}", "", ""]])
    print(f"target: one switch < {TARGET_SHARE:.0%} of the fastest sub-net: {share:.3%} -> "
          f"{verdict(passed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
