"""How long pricing one traced table takes: resnet50 on 20 hardware profiles.

resnet50 is traced once and the first 20 profiles of ``netcut.hardware.list_hardware()``
are loaded with ``load_hardware`` before any clock starts. Then, per repeat, all 20
pricings run back to back ``--number`` times and the time of one pass (20 pricings)
is kept; the median over ``--repeats`` is reported, together with the time per
pricing (pass / 20). Three variants are timed:

* ``estimate_table``      - ``netcut.estimate.estimate_table(table, profile)``, the API;
* ``price_rows+schedule`` - ``roofline.price_rows`` and ``timeline.schedule`` alone, so
  what the ``Estimate`` wrapper adds on top is visible;
* ``estimate_table cold`` - the API on freshly loaded profiles (loaded untimed), each
  pass timed once: a profile's per-class vectors are built on its first pricing and
  cached on it, and this row includes that.

    .venv/bin/python benchmarks/price_time.py [--repeats 5] [--number 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from _common import machine_info, machine_line, print_table, summary, verdict

MODEL, N_PROFILES = "resnet50", 20
#: the target: the 20 pricings together (warm, median) take under this many seconds
TARGET_S = 5e-3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument("--number", type=int, default=10,
                        help="passes over the 20 profiles per repeat, averaged (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.number < 1:
        parser.error("--repeats and --number must be at least 1")
    return args


def load_profiles(names: list[str]) -> list:
    from netcut.hardware import load_hardware

    return [load_hardware(name) for name in names]


def time_passes(passes: list, repeats: int, number: int) -> list[list[float]]:
    """Seconds per pass of each callable in ``passes``: ``repeats`` samples each, a
    sample being the mean over ``number`` passes. The callables take turns within a
    repeat, so that a busy machine slows them alike."""
    samples: list[list[float]] = [[] for _ in passes]
    for _ in range(repeats):
        for one_pass, out in zip(passes, samples):
            start = time.perf_counter()
            for _ in range(number):
                one_pass()
            out.append((time.perf_counter() - start) / number)
    return samples


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from netcut.estimate import estimate_table
    from netcut.estimate.roofline import price_rows
    from netcut.estimate.timeline import schedule
    from netcut.hardware import list_hardware
    from netcut.tracing import trace

    info = machine_info()
    table = trace(MODEL)
    names = list_hardware()[:N_PROFILES]
    profiles = load_profiles(names)
    modes = [(p, p.default_mode, p.kind == "gpu" and p.default_mode == "eager") for p in profiles]

    def api_pass():
        for profile in profiles:
            estimate_table(table, profile)

    def raw_pass():
        for profile, mode, asynchronous in modes:
            schedule(price_rows(table, profile, mode), asynchronous)

    api_pass()  # warm-up: builds and caches each profile's per-class vectors
    raw_pass()
    api, raw = time_passes([api_pass, raw_pass], args.repeats, args.number)
    cold = []
    for _ in range(args.repeats):
        fresh = load_profiles(names)  # untimed
        start = time.perf_counter()
        for profile in fresh:
            estimate_table(table, profile)
        cold.append(time.perf_counter() - start)

    n = len(profiles)
    variants = [("estimate_table", api, args.number), ("price_rows+schedule", raw, args.number),
                ("estimate_table cold", cold, 1)]
    results = []
    for label, samples, number in variants:
        s = summary(samples)
        results.append({"variant": label, "passes_per_sample": number, **s,
                        "median_per_pricing_s": s["median_s"] / n})
    api_median = statistics.median(api)
    raw_median = statistics.median(raw)
    passed = api_median < TARGET_S
    if args.json:
        print(json.dumps({"benchmark": "price_time", "machine": info, "model": MODEL,
                          "rows": len(table), "profiles": names, "repeats": args.repeats,
                          "results": results,
                          "wrapper_overhead_s": api_median - raw_median,
                          "target": {"max_median_s_for_20": TARGET_S, "passed": passed}},
                         indent=2))
        return 0
    print(machine_line(info))
    print(f"pricing {MODEL} ({len(table)} rows) on {n} profiles; profiles loaded untimed; "
          f"{args.repeats} repeats (medians), warm rows = mean of {args.number} passes per repeat")
    rows = [[r["variant"], f"{r['median_s'] * 1e3:.3f}", f"{r['min_s'] * 1e3:.3f}",
             f"{r['median_per_pricing_s'] * 1e6:.1f}"] for r in results]
    print_table([f"variant (x{n} profiles)", "median_ms", "min_ms", "per_pricing_us"], rows)
    print(f"Estimate wrapper overhead: {(api_median - raw_median) * 1e3:.3f} ms per {n} pricings "
          f"({(api_median - raw_median) / n * 1e6:.1f} us each)")
    print(f"target: {n} pricings (estimate_table, warm) median < {TARGET_S * 1e3:.0f} ms: "
          f"{api_median * 1e3:.3f} ms -> {verdict(passed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
