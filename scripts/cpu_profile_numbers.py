"""The numbers a CPU profile takes from its micro-benchmarks, derived by one written rule.

    .venv/bin/python scripts/cpu_profile_numbers.py \\
        calibration/data/cpu-xeon-gnr-2c-micro-keepmem.json \\
        --grouped calibration/data/cpu-xeon-gnr-2c-grouped-scan.json \\
        --occupancy calibration/data/cpu-xeon-gnr-2c-occupancy-scan.json \\
        --attention calibration/data/cpu-xeon-gnr-2c-attention-scan.json \\
        --pool calibration/data/cpu-xeon-gnr-2c-pool-scan.json \\
        --depthwise calibration/data/cpu-xeon-gnr-2c-depthwise-scan.json \\
        --conv-paths calibration/data/cpu-xeon-gnr-2c-conv-path-scan.json \\
        --alignment calibration/data/cpu-xeon-gnr-2c-alignment-scan.json \\
        --weight-stream calibration/data/cpu-xeon-gnr-2c-weight-stream-scan.json \\
        --pointwise calibration/data/cpu-xeon-gnr-2c-pointwise-scan.json \\
        --in-network calibration/data/cpu-xeon-gnr-2c-leaves-in-patterns.json \\
        --activations calibration/data/cpu-xeon-gnr-2c-activation-scan.json \\
        --peak-gflops-per-core 256 [--cores 2] [--thread-efficiency 0.85] [--json]

Prints the efficiency, overhead, bandwidth and occupancy entries of the profile
(``scripts/cpu_microbench.py`` writes the inputs). The rule, as the sources of
``hwmodels/xeon-gnr-2c.yaml`` state it:

- peak = peak per core x (1 + (cores - 1) x thread efficiency);
- a conv's share of peak is its FLOPs over (time - its class's fixed cost per call); with
  ``--conv-paths``, a dense conv PyTorch hands to oneDNN (``netcut.estimate.roofline.
  onednn_convs``: every dense conv of the micro-benchmarks) takes off oneDNN's fixed cost,
  the scan's tiny 5x5 conv, which the profile lists as ``onednn_conv_us``;
  dense and grouped convs are then multiplied by (1 + s / outputs), undoing the
  occupancy term s (``--occupancy``: the scan's fit, rounded to 10 per core);
- ``conv``: the median over the dense convs with a kxk filter (k > 1), stems included;
  ``conv_pointwise``: over the 1x1 convs, or with ``--pointwise`` (the 1x1 scan, refitted
  after ``onednn_conv_us``) its fit's FLOP rate over the peak, with
  ``pointwise_input_ns_per_core`` and ``pointwise_output_ns_per_core`` its times per
  element x the effective cores; ``conv_grouped``: over the grouped scan;
  ``conv_depthwise``: over the depthwise ops, or with ``--depthwise`` (the depthwise
  scan) its fit's FLOP rate over the peak, with ``depthwise_input_ns_per_core`` and
  ``depthwise_output_ns_per_core`` its times per element x the effective cores;
  ``matmul``: the compute-bound linear;
  ``attention`` (``--attention``): over the self-attention scan, after its fixed cost;
- ``pool``/``pool_max``: the average/max pool's rate over the peak; with ``--pool``
  (the max-pool scan), ``pool_max`` is the scan fit's rate per window element over the
  peak, and ``pool_input_ns_per_core`` its time per input element x the effective cores;
- ``misaligned_ns_per_element_per_core`` (``--alignment``): for 1x1 and depthwise convs,
  the median over the scan of (time(C) - time(next multiple)) per element read and
  written, x the effective cores (``misaligned_ns_per_element``);
- ``misaligned_factor`` (``--alignment``, the scan of convs off a multiple of 16
  channels): per kind (1x1, dense 3x3, depthwise 3x3), the median over the scan of each
  such conv's time over its neighbour's at the next multiple of 16, rounded to 2 places;
- memory ``default``: the median elementwise rate over the 4 MiB copy rate (capped at
  1), ``norm``: the same over batchnorm and layernorm;
- dispatch costs: each class's fixed cost (``default``: elementwise; ``pool_max``: pool;
  ``attention``: the scan's 4-token call);
- bandwidths per core: the 1 GiB copy (DRAM), the 4 MiB copy (cache, and the network
  term, which ``--in-network`` replaces);
- ``in_network`` (``--in-network``, ``scripts/leaves_in_network.py patterns --json``):
  the per-call and per-MB costs ``leaves_in_network.in_network_terms`` fits to the
  synthetic chains' leaf calls (inside the chain over alone), refitted from the file;
- ``activation_ns_per_element_per_core`` (``--activations``, the activation scan): per
  activation but ReLU (the scan's memory-bound reference), the scan's ns per element
  after the elementwise fixed cost, x the effective cores, x the main run's dense 3x3
  conv time over the scan's (``ACTIVATION_CLOCK_OP``): the activations' math runs at the
  clock, and a scan taken while the guest ran slower is brought to the main run's clock;
- ``usable_cache_mib`` (``--weight-stream``, chains of distinct 1-row linears): the most
  weights the scan streamed closer to the 4 MiB copy rate than to the 1 GiB one.

Rounded as the profile writes them. ``tests/test_measure.py`` checks that the shipped
``xeon-gnr-2c`` profile holds exactly these numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import torch

#: micro-benchmark op names, by the class they stand for
ELEMENTWISE_OPS = ("relu @112", "hardswish @112", "silu @112", "add @56", "cat 2x @56")
NORM_OPS = ("batchnorm @112", "layernorm 768 x197")
DEPTHWISE_OPS = ("depthwise 3x3 144 @56", "depthwise 5x5 240 @14")
MATMUL_OP = "linear 768-3072 x197"  # the one-row linear is memory-bound: the memory side prices it
AVG_POOL_OP, MAX_POOL_OP = "avgpool 2x2 @56", "maxpool 3x3 s2 @112"
ACTIVATION_CLOCK_OP = "conv3x3 64-64 @56"  # timed in the main run and beside the activation scan


def _bench():
    """scripts/cpu_microbench.py as a module: its op list gives each op's module and input."""
    path = Path(__file__).resolve().with_name("cpu_microbench.py")
    spec = importlib.util.spec_from_file_location("cpu_microbench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaves():
    """scripts/leaves_in_network.py as a module: its fit of the in-network costs."""
    path = Path(__file__).with_name("leaves_in_network.py")
    spec = importlib.util.spec_from_file_location("leaves_in_network", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dense_convs() -> dict[str, tuple[int, int, bool]]:
    """Each dense conv of the micro-benchmark: (kernel taps, outputs written, whether
    PyTorch hands it to oneDNN, by ``netcut.estimate.roofline.onednn_convs``)."""
    from netcut import trace
    from netcut.estimate.roofline import onednn_convs

    out = {}
    for name, _, module, shape in _bench()._ops():
        if isinstance(module, torch.nn.Conv2d) and module.groups == 1:
            with torch.no_grad():
                outputs = module(torch.zeros(shape)).numel()
            table = trace(module, tuple(shape[1:])).at(batch=shape[0], dtype="float32")
            out[name] = (module.kernel_size[0] * module.kernel_size[1], outputs,
                         bool(onednn_convs(table)[0]))
    return out


def derive(micro: dict, grouped: dict | None, occupancy: dict | None, peak_per_core: float,
           cores: int = 2, thread_efficiency: float = 0.85, attention: dict | None = None,
           pool: dict | None = None, depthwise: dict | None = None,
           conv_paths: dict | None = None, alignment: dict | None = None, block: int = 16,
           weight_stream: dict | None = None, pointwise: dict | None = None,
           in_network: dict | None = None, activations: dict | None = None) -> dict:
    """The profile entries (see the module docstring for the rule)."""
    effective = 1 + (cores - 1) * thread_efficiency
    peak = peak_per_core * effective  # GFLOP/s
    ops = {r["op"]: r for r in micro["ops"]}
    fixed = micro["fixed_us"]
    per_core = round(occupancy["fit"]["saturation_outputs"] / cores, -1) if occupancy else 0.0
    s = per_core * cores

    def share(flops: float, ms: float, fixed_us: float, outputs: float = 0.0) -> float:
        rate = flops / ((ms - fixed_us / 1e3) * 1e6)  # GFLOP/s after the fixed cost
        return rate / peak * (1 + s / outputs if outputs else 1.0)

    dense = _dense_convs()
    onednn_us = conv_paths["fit"]["onednn_conv_us"] if conv_paths else None

    def dense_fixed(onednn: bool) -> float:
        return onednn_us if onednn_us is not None and onednn else fixed["conv"]

    kxk = [share(ops[n]["flops"], ops[n]["ms"], dense_fixed(od), o)
           for n, (taps, o, od) in dense.items() if taps > 1]
    one_by_one = [share(ops[n]["flops"], ops[n]["ms"], dense_fixed(od), o)
                  for n, (taps, o, od) in dense.items() if taps == 1]
    compute = {"conv": statistics.median(kxk), "conv_pointwise": statistics.median(one_by_one)}
    if grouped:
        g_fixed = grouped["fixed_us"]["conv_grouped"]
        compute["conv_grouped"] = statistics.median(
            share(r["flops"], r["ms"], g_fixed, r["channels"] * r["size"] ** 2)
            for r in grouped["grouped_conv_scan"])
    pointwise_fit = None
    if pointwise:  # refitted after the fixed cost the profile itself prices oneDNN convs at
        fixed_pw = onednn_us if onednn_us is not None else pointwise["fixed_us"]["conv_onednn"]
        pointwise_fit = _bench().pointwise_fit(pointwise["pointwise_scan"], fixed_pw)
        compute["conv_pointwise"] = pointwise_fit["gflops_per_s"] / peak
    compute["conv_depthwise"] = statistics.median(
        share(ops[n]["flops"], ops[n]["ms"], fixed["conv_depthwise"]) for n in DEPTHWISE_OPS)
    if depthwise:  # the scan's fit: FLOPs at a rate, plus time per input and output element
        compute["conv_depthwise"] = depthwise["fit"]["gflops_per_s"] / peak
    compute["matmul"] = share(ops[MATMUL_OP]["flops"], ops[MATMUL_OP]["ms"], fixed["matmul"])
    if attention:
        a_fixed = attention["fixed_us"]["attention"]
        compute["attention"] = statistics.median(
            share(r["flops"], r["ms"], a_fixed) for r in attention["attention_scan"])
    compute["pool"] = ops[AVG_POOL_OP]["gflops_per_s"] / peak
    compute["pool_max"] = ops[MAX_POOL_OP]["gflops_per_s"] / peak
    if pool:  # the scan's two-term fit: per window element, and per input element read
        compute["pool_max"] = 1.0 / pool["fit"]["ns_per_window_element"] / peak
    cache = micro["bandwidth"]["copy_4MiB_gbs"]
    memory = {"default": min(1.0, statistics.median(ops[n]["gb_per_s"] for n in ELEMENTWISE_OPS) / cache),
              "norm": statistics.median(ops[n]["gb_per_s"] for n in NORM_OPS) / cache}
    dispatch = {"default": fixed["elementwise"], "view": fixed["view"], "conv": fixed["conv"],
                "conv_grouped": fixed["conv_grouped"], "conv_depthwise": fixed["conv_depthwise"],
                "matmul": fixed["matmul"], "norm": fixed["norm"], "pool": fixed["pool"],
                "pool_max": fixed["pool"]}
    if attention:
        dispatch["attention"] = attention["fixed_us"]["attention"]
    out = {
        "efficiency": {
            "compute": {k: round(v, 4 if k.startswith("pool") else 2) for k, v in compute.items()},
            "memory": {k: round(v, 2) for k, v in memory.items()},
        },
        "dispatch_us": {k: round(v, 2 if v < 1 else 1) for k, v in dispatch.items()},
        "memory": {"bandwidth_gbs_per_core": round(micro["bandwidth"]["copy_1GiB_gbs"] / cores, 2),
                   "cache_bandwidth_gbs_per_core": round(cache / cores, 2)},
    }
    if in_network:  # measured op kind by op kind, in place of one bandwidth for all traffic
        out["in_network"] = _leaves().in_network_terms(in_network["networks"])
    else:
        out["memory"]["network_bandwidth_gbs_per_core"] = round(cache / cores, 2)
    if occupancy:
        out["saturation_outputs_per_core"] = per_core
    if pool:
        out["pool_input_ns_per_core"] = round(pool["fit"]["ns_per_input"] * effective, 2)
    if depthwise:
        out["depthwise_input_ns_per_core"] = round(depthwise["fit"]["ns_per_input"] * effective, 2)
        out["depthwise_output_ns_per_core"] = round(depthwise["fit"]["ns_per_output"] * effective, 2)
    if pointwise_fit:
        out["pointwise_input_ns_per_core"] = round(pointwise_fit["ns_per_input"] * effective, 2)
        out["pointwise_output_ns_per_core"] = round(pointwise_fit["ns_per_output"] * effective, 2)
    if onednn_us is not None:
        out["onednn_conv_us"] = round(onednn_us, 1)
    if alignment:
        out["misaligned_factor"] = misaligned_factor(alignment["alignment_scan"], block)
        out["misaligned_ns_per_element_per_core"] = {
            key: round(ns * effective, 2)
            for key, ns in misaligned_ns_per_element(alignment["alignment_scan"], block).items()
            if key != "conv"}
    if activations:
        clock = ops[ACTIVATION_CLOCK_OP]["ms"] / activations["reference_ms"][ACTIVATION_CLOCK_OP]
        out["activation_ns_per_element_per_core"] = {
            kind: round(ns * effective * clock, 2)
            for kind, ns in activations["ns_per_element"].items() if kind != "relu"}
    if weight_stream:
        out["usable_cache_mib"] = _bench().usable_cache_mib(
            weight_stream["weight_stream_scan"], cache, micro["bandwidth"]["copy_1GiB_gbs"])
    return out


#: the alignment scan's conv kinds, by the profile key of their factor
ALIGNMENT_KINDS = {"1x1": "conv_pointwise", "3x3": "conv", "depthwise 3x3": "conv_depthwise"}


def _misaligned_pairs(scan: list[dict], block: int = 16):
    """(profile kind, size, channels, ms, ms at the next multiple of ``block``) for every
    channel count of the scan off a multiple that was timed beside its neighbour."""
    times = {(r["conv"], r["size"], r["channels"]): r["ms"] for r in scan}
    for (kind, size, channels), ms in times.items():
        aligned = (kind, size, -(-channels // block) * block)
        if channels % block and aligned in times:
            yield ALIGNMENT_KINDS[kind], size, channels, ms, times[aligned]


def misaligned_factor(scan: list[dict], block: int = 16) -> dict[str, float]:
    """Per conv kind, the median of time(C) / time(next multiple of ``block``) over the
    scan's channel counts C off a multiple (each timed beside its neighbour, same size)."""
    ratios: dict[str, list[float]] = {}
    for kind, _, _, ms, aligned_ms in _misaligned_pairs(scan, block):
        ratios.setdefault(kind, []).append(ms / aligned_ms)
    return {key: round(statistics.median(values), 2) for key, values in ratios.items()}


def misaligned_ns_per_element(scan: list[dict], block: int = 16) -> dict[str, float]:
    """Per conv kind, the median over the scan of (time(C) - time(next multiple of
    ``block``)) per element the C-channel conv reads and writes (C x size^2 each): ns at
    the scan's threads. For 1x1 convs it stays near 0.25 ns from 7x7 to 56x56, where the
    ratio of the times goes from 1.0 to 1.47."""
    per_element: dict[str, list[float]] = {}
    for kind, size, channels, ms, aligned_ms in _misaligned_pairs(scan, block):
        per_element.setdefault(kind, []).append((ms - aligned_ms) * 1e6 / (2 * channels * size * size))
    return {key: statistics.median(values) for key, values in per_element.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("micro", type=Path, help="cpu_microbench.py --json output")
    parser.add_argument("--grouped", type=Path, help="cpu_microbench.py --grouped-scan output")
    parser.add_argument("--occupancy", type=Path, help="cpu_microbench.py --occupancy-scan output")
    parser.add_argument("--attention", type=Path, help="cpu_microbench.py --attention-scan output")
    parser.add_argument("--pool", type=Path, help="cpu_microbench.py --pool-scan output")
    parser.add_argument("--depthwise", type=Path, help="cpu_microbench.py --depthwise-scan output")
    parser.add_argument("--conv-paths", type=Path, help="cpu_microbench.py --conv-path-scan output")
    parser.add_argument("--alignment", type=Path, help="cpu_microbench.py --alignment-scan output")
    parser.add_argument("--weight-stream", type=Path, help="cpu_microbench.py --weight-stream-scan output")
    parser.add_argument("--pointwise", type=Path, help="cpu_microbench.py --pointwise-scan output")
    parser.add_argument("--in-network", type=Path,
                        help="leaves_in_network.py patterns --json output")
    parser.add_argument("--activations", type=Path, help="cpu_microbench.py --activation-scan output")
    parser.add_argument("--peak-gflops-per-core", type=float, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--thread-efficiency", type=float, default=0.85)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def load(path):
        return json.loads(path.read_text()) if path else None

    out = derive(load(args.micro), load(args.grouped), load(args.occupancy), args.peak_gflops_per_core,
                 args.cores, args.thread_efficiency, load(args.attention), load(args.pool),
                 load(args.depthwise), load(args.conv_paths), load(args.alignment),
                 weight_stream=load(args.weight_stream), pointwise=load(args.pointwise),
                 in_network=load(args.in_network), activations=load(args.activations))
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        for section, values in out.items():
            print(f"{section}: {values}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
