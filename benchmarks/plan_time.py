"""Planner speed on the whole torchvision zoo: cold (tracing everything), warm (table
cache on disk), and re-asking a loaded plan with a new deadline or a new profile.

    python benchmarks/plan_time.py [--repeats 3] [--json]

Targets on the project's 2-core machine: cold < 60 s, warm < 2 s, new deadline or
profile on a loaded plan < 50 ms. Cold is run once (it is a minute); warm and the
re-asks are medians over --repeats runs. The profile re-ask prices the already
traced tables of every network on a second device (no tracing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings

from _common import machine_info, machine_line, summary, time_once


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ["NETCUT_CACHE_DIR"] = tempfile.mkdtemp(prefix="netcut-bench-cache-")
    from netcut.hardware import load_hardware
    from netcut.planner.plan import head_table, plan, price_network
    from netcut.planner.cuts import cut_points
    from netcut.tracing.cache import trace_cached

    hw, other, deadline = "jetson-orin-nano", load_hardware("raspberry-pi-4"), 20.0
    results: dict = {"machine": machine_info()}
    holder = {}
    results["cold_s"] = time_once(lambda: holder.update(p=plan(None, hw, deadline)))
    loaded = holder["p"]
    results["networks"] = len(loaded.networks)
    results["candidates"] = len(loaded.candidates)
    results["load_average_after_cold"] = round(os.getloadavg()[0], 2)
    results["warm"] = summary([time_once(lambda: plan(None, hw, deadline))
                               for _ in range(args.repeats)])
    def rejudge():
        again = loaded.with_deadline(35.0)
        again.proposals(), again.matrix(), again.pareto(hw), again.off_the_shelf()

    results["new_deadline"] = summary([time_once(rejudge) for _ in range(args.repeats)])
    tables = {n: trace_cached(n, loaded.estimates[(n, hw)].table.input_shape)
              for n in loaded.networks}
    cuts = {n: cut_points(t) for n, t in tables.items()}
    heads = {n: head_table(c, 10) for n, c in cuts.items()}

    def reprofile():
        for n, t in tables.items():
            price_network(t, cuts[n], other, 1, "float32", None, 10, heads[n])

    results["new_profile_pricing"] = summary([time_once(reprofile) for _ in range(args.repeats)])
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(machine_line(results["machine"]))
    print(f"whole zoo: {results['networks']} networks, {results['candidates']} candidates on {hw}")
    rows = [("cold (trace all, price, judge)", results["cold_s"], 60.0),
            ("warm (table cache)", results["warm"]["median_s"], 2.0),
            ("new deadline on a loaded plan", results["new_deadline"]["median_s"], 0.05),
            ("new profile: price every network's cuts", results["new_profile_pricing"]["median_s"], 0.05)]
    for label, value, target in rows:
        verdict = "PASS" if value < target else "FAIL"
        print(f"{label:45s} {value:8.3f} s   target < {target:g} s  {verdict}")
    print(f"(cold: one run; others: median of {args.repeats}; load average after cold "
          f"{results['load_average_after_cold']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
