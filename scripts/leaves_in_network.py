"""Every leaf module of a torchvision network, timed inside the network and alone.

    .venv/bin/python scripts/leaves_in_network.py resnet50 [mobilenet_v2 ...] [--threads 2]
        [--repeats 15] [--runs 1] [--json]
    .venv/bin/python scripts/leaves_in_network.py patterns --repeats 40 --runs 3 --json

Inside: forward hooks stamp each leaf call's start and end during whole forward passes
(the median over ``--repeats`` passes after 5 warm-up ones). Alone: the same leaf called
over and over on the input it got in a real pass, timed by the same hooks, so both sides
carry the hooks' own cost. A leaf called more than once per pass (a ResNet block's
ReLU) is one row per call. Per op kind the script prints what the leaves took inside,
alone, the difference per op and per MB of activations moved; and what a pass without
hooks took beyond its leaves' times inside (functional ops such as residual adds and
``torch.cat``, container modules, Python; a lower bound, since each leaf's stamped window
holds part of the hooks' own cost). A module that runs its children's weights without
calling them (``nn.MultiheadAttention``: its ``out_proj`` is never called) is no leaf
and shows there too: in vit_b_16 the self-attention is most of that remainder.

It splits what a network pays beyond its layers timed alone
(docs/hardware-schema.md#cpu-caches) by op kind. Besides torchvision classifiers it
times three synthetic chains of conv-batchnorm-ReLU (``SYNTHETIC``): whether a pattern
seen in networks shows without any network. Random weights, batch 1, fp32, malloc
thresholds pinned as ``netcut measure`` pins them.

``patterns`` times ``PATTERNS``: generic chains (bottlenecks, grouped bottlenecks,
inverted residuals with and without squeeze-excite, an RGB stem with a classifier) at a
few sizes, no network among them. With ``--json`` their output carries ``in_network``,
the per-call and per-MB costs of ``netcut.estimate.in_network`` fitted to their leaf
calls (``in_network_terms``), which ``scripts/cpu_profile_numbers.py --in-network``
writes into a CPU profile. ``--runs`` times everything that many times over, in turn,
and keeps each leaf call's medians: one run's conv extras swing by hundreds of
microseconds on the 2-vCPU guest.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

FLOAT_BYTES = 4


def op_kind(module: nn.Module) -> str:
    """A leaf's kind: convs split as 1x1, kxk, depthwise and grouped; others by type."""
    if isinstance(module, nn.Conv2d):
        if module.groups > 1:
            return "depthwise" if module.groups == module.in_channels else "grouped"
        return "1x1" if module.kernel_size == (1, 1) else "kxk"
    return type(module).__name__


def _elements(value) -> int:
    """Tensor elements in a tensor or a tuple/list of values (others count none)."""
    if torch.is_tensor(value):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(_elements(v) for v in value)
    return 0


class _Stamps:
    """Forward hooks that time every leaf call and can capture its inputs."""

    def __init__(self, model: nn.Module):
        self.leaves = {name: m for name, m in model.named_modules() if not list(m.children())}
        self.calls: collections.Counter = collections.Counter()
        self.seconds: dict[tuple[str, int], float] = {}
        self.capture: dict[tuple[str, int], dict] | None = None
        self._open: dict[str, tuple[tuple[str, int], float]] = {}
        self.handles = []
        for name, leaf in self.leaves.items():
            self.handles.append(leaf.register_forward_pre_hook(self._pre(name)))
            self.handles.append(leaf.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, args):
            key = (name, self.calls[name])
            self.calls[name] += 1
            if self.capture is not None:
                weights = sum(p.numel() for p in module.parameters(recurse=False)) * FLOAT_BYTES
                self.capture[key] = {"args": tuple(a.clone() if torch.is_tensor(a) else a for a in args),
                                     "weight_bytes": weights, "in_bytes": _elements(args) * FLOAT_BYTES}
            self._open[name] = (key, time.perf_counter())
        return hook

    def _post(self, name):
        def hook(module, args, output):
            key, start = self._open.pop(name)
            self.seconds[key] = time.perf_counter() - start
            if self.capture is not None:
                self.capture[key]["out_bytes"] = _elements(output) * FLOAT_BYTES
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _median_pass(model: nn.Module, x: torch.Tensor, repeats: int, stamps: _Stamps | None = None):
    """Median seconds of a whole pass, and of each leaf call inside it (with ``stamps``)."""
    passes, per_call = [], collections.defaultdict(list)
    for i in range(5 + repeats):
        if stamps is not None:
            stamps.calls.clear()
            stamps.seconds.clear()
        start = time.perf_counter()
        model(x)
        elapsed = time.perf_counter() - start
        if i >= 5:
            passes.append(elapsed)
            for key, seconds in (stamps.seconds.items() if stamps is not None else ()):
                per_call[key].append(seconds)
    return statistics.median(passes), {k: statistics.median(v) for k, v in per_call.items()}


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    kernel = 1 if stride == 1 else 3
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def _resnet_like_chain() -> nn.Sequential:
    """1x1 conv-batchnorm-ReLU triples (a 3x3 at each stride 2) whose channels and sizes
    change as a ResNet's do, from 64 x 56 x 56: no residuals, no network's weights."""
    layers, channels = [], 64
    for out, stride in ((64, 1), (256, 1), (64, 1), (256, 1), (128, 2), (512, 1), (128, 1), (512, 1),
                        (256, 2), (1024, 1), (256, 1), (1024, 1)):
        layers += _conv_bn_relu(channels, out, stride)
        channels = out
    return nn.Sequential(*layers)


class _SqueezeExcite(nn.Module):
    """A squeeze-excite gate: pooled, two 1x1 convs, a sigmoid, multiplied back in."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU(inplace=True)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _bottleneck(channels: int, width: int, groups: int = 1) -> list[nn.Module]:
    """1x1 down to ``width``, a 3x3 (grouped when ``groups`` > 1), 1x1 back up; each
    followed by batchnorm and ReLU. No residual: the pattern, not a network."""
    return [*_conv_bn_relu(channels, width),
            nn.Conv2d(width, width, 3, 1, 1, groups=groups, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), *_conv_bn_relu(width, channels)]


def _inverted(channels: int, expand: int = 6, kernel: int = 3, squeeze: bool = False) -> list[nn.Module]:
    """1x1 up by ``expand``, a depthwise conv, (a squeeze-excite gate), 1x1 back down."""
    wide = channels * expand
    layers = [nn.Conv2d(channels, wide, 1, bias=False), nn.BatchNorm2d(wide), nn.ReLU6(inplace=True),
              nn.Conv2d(wide, wide, kernel, 1, kernel // 2, groups=wide, bias=False), nn.BatchNorm2d(wide),
              nn.ReLU6(inplace=True)]
    if squeeze:
        layers.append(_SqueezeExcite(wide, max(8, channels // 4)))
    return layers + [nn.Conv2d(wide, channels, 1, bias=False), nn.BatchNorm2d(channels)]


def _inverted_step(cin: int, cout: int, stride: int, expand: int, kernel: int, squeeze: bool) -> list[nn.Module]:
    """An inverted residual that may change channels and stride (no residual)."""
    wide = cin * expand
    layers = [nn.Conv2d(cin, wide, 1, bias=False), nn.BatchNorm2d(wide), nn.ReLU6(inplace=True),
              nn.Conv2d(wide, wide, kernel, stride, kernel // 2, groups=wide, bias=False),
              nn.BatchNorm2d(wide), nn.ReLU6(inplace=True)]
    if squeeze:
        layers.append(_SqueezeExcite(wide, max(8, cin // 4)))
    return layers + [nn.Conv2d(wide, cout, 1, bias=False), nn.BatchNorm2d(cout)]


def _inverted_ladder() -> nn.Sequential:
    """Inverted residuals over five resolutions, 32 to 256 channels, each step a new
    shape: the many distinct shapes and evicted weights of a deep mobile network, without
    copying one."""
    steps = ((32, 32, 2, 4, 3, False), (32, 32, 1, 4, 3, False), (32, 64, 2, 4, 5, True),
             (64, 64, 1, 4, 5, True), (64, 96, 2, 4, 3, False), (96, 96, 1, 4, 3, False),
             (96, 128, 1, 4, 5, True), (128, 128, 1, 4, 5, True), (128, 256, 2, 4, 5, True),
             (256, 256, 1, 4, 5, True))
    return nn.Sequential(*sum((_inverted_step(*s) for s in steps), []))


def _bottleneck_ladder() -> nn.Sequential:
    """Bottlenecks over four resolutions, a strided 3x3 between stages: a deep dense
    network's shapes and weights, without copying one."""
    layers, channels = [], 128
    for out, stride in ((128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (1024, 2), (1024, 1)):
        if stride == 2:
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        layers += _bottleneck(channels, channels // 4)
    return nn.Sequential(*layers)


def _stem_and_head() -> nn.Sequential:
    """An RGB stem at 224 x 224, two convs, then pool and a 1280 -> 1000 classifier: the
    first and last ops of a pass."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                         *_conv_bn_relu(32, 64, 2), *_conv_bn_relu(64, 1280), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(1280, 1000))


#: generic patterns at a few sizes, none copied from a network: the data for the
#: in-network terms of a CPU profile (scripts/cpu_profile_numbers.py --in-network)
PATTERNS = {
    **{f"chain-bottleneck-{c}x{h}": ((lambda c=c: nn.Sequential(*_bottleneck(c, c // 4),
                                                               *_bottleneck(c, c // 4))), (1, c, h, h))
       for c, h in ((256, 56), (512, 28), (1024, 14), (2048, 7))},
    **{f"chain-grouped-{c}x{h}": ((lambda c=c: nn.Sequential(*_bottleneck(c, c // 2, c // 64),
                                                            *_bottleneck(c, c // 2, c // 64))), (1, c, h, h))
       for c, h in ((256, 56), (512, 28), (1024, 14))},
    **{f"chain-inverted-{c}x{h}": ((lambda c=c: nn.Sequential(*_inverted(c), *_inverted(c))), (1, c, h, h))
       for c, h in ((16, 112), (24, 56), (48, 28), (96, 14), (192, 7))},
    **{f"chain-inverted-se-{c}x{h}": ((lambda c=c: nn.Sequential(*_inverted(c, 4, 5, True),
                                                                *_inverted(c, 4, 5, True))), (1, c, h, h))
       for c, h in ((24, 56), (48, 28), (96, 14))},
    "chain-stem-head": (_stem_and_head, (1, 3, 224, 224)),
}

#: longer generic chains with many distinct shapes; tried as more data for the
#: in-network fit and not used by the shipped profile (docs/hardware-schema.md#in-network-costs)
LADDERS = {
    "chain-inverted-ladder": (_inverted_ladder, (1, 32, 112, 112)),
    "chain-bottleneck-ladder": (_bottleneck_ladder, (1, 128, 56, 56)),
}

#: synthetic models the script times like networks, and their input shapes
SYNTHETIC = {
    "chain-resnet-like": (_resnet_like_chain, (1, 64, 56, 56)),
    "chain-one-shape": (lambda: nn.Sequential(*sum((_conv_bn_relu(64, 64) for _ in range(10)), [])),
                        (1, 64, 56, 56)),
    "chain-bn-relu": (lambda: nn.Sequential(*sum(([nn.BatchNorm2d(64), nn.ReLU()] for _ in range(4)), [])),
                      (1, 64, 56, 56)),
    **PATTERNS,
    **LADDERS,
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """A torchvision classifier on a 224 x 224 image, or one of the SYNTHETIC chains."""
    if name in SYNTHETIC:
        factory, shape = SYNTHETIC[name]
        return factory().eval(), torch.randn(shape)
    return getattr(torchvision.models, name)(weights=None).eval(), torch.randn(1, 3, 224, 224)


def leaves_in_network(name: str, repeats: int) -> dict:
    """Each leaf call of ``name``: kind, ms inside the network and alone, bytes moved;
    and the whole pass with and without the hooks."""
    model, x = build(name)
    with torch.inference_mode():
        plain, _ = _median_pass(model, x, repeats)
        stamps = _Stamps(model)
        stamps.capture = {}
        model(x)
        captured, stamps.capture = stamps.capture, None
        hooked, inside = _median_pass(model, x, repeats, stamps)
        rows = []
        for key, call in captured.items():
            leaf = stamps.leaves[key[0]]
            alone = []
            for i in range(5 + repeats):
                stamps.calls.clear()
                stamps.calls[key[0]] = key[1]
                leaf(*call["args"])
                if i >= 5:
                    alone.append(stamps.seconds[key])
            rows.append({"leaf": key[0], "call": key[1], "kind": op_kind(leaf),
                         "inside_ms": inside[key] * 1e3, "alone_ms": statistics.median(alone) * 1e3,
                         "in_bytes": call["in_bytes"], "out_bytes": call["out_bytes"],
                         "weight_bytes": call["weight_bytes"]})
        stamps.remove()
    return {"model": name, "pass_ms": plain * 1e3, "pass_with_hooks_ms": hooked * 1e3, "leaves": rows}


def by_kind(result: dict) -> list[dict]:
    """Per op kind: count, ms inside and alone, the extra per op and per MB of activations."""
    sums = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for r in result["leaves"]:
        s = sums[r["kind"]]
        s[0] += 1
        s[1] += r["inside_ms"]
        s[2] += r["alone_ms"]
        s[3] += (r["in_bytes"] + r["out_bytes"]) / 1e6
    out = []
    for kind, (n, inside, alone, mb) in sorted(sums.items(), key=lambda kv: -kv[1][1]):
        extra = inside - alone
        out.append({"kind": kind, "ops": n, "inside_ms": inside, "alone_ms": alone,
                    "extra_us_per_op": extra * 1e3 / n, "activation_mb": mb,
                    "extra_us_per_activation_mb": extra * 1e3 / mb if mb else None})
    return out


def beyond_leaves_ms(result: dict) -> float:
    """What a pass without hooks took beyond its leaves' times inside the hooked passes:
    a lower bound, since each leaf's stamped window holds part of the hooks' own cost."""
    return result["pass_ms"] - sum(r["inside_ms"] for r in result["leaves"])


def merge_runs(runs: list[dict]) -> dict:
    """One result from several runs of the same model: per leaf call the median inside and
    alone times, and the median of each run's difference (``extra_ms``)."""
    first = runs[0]
    leaves = []
    for i, leaf in enumerate(first["leaves"]):
        calls = [run["leaves"][i] for run in runs]
        leaves.append({**leaf, "inside_ms": statistics.median(c["inside_ms"] for c in calls),
                       "alone_ms": statistics.median(c["alone_ms"] for c in calls),
                       "extra_ms": statistics.median(c["inside_ms"] - c["alone_ms"] for c in calls)})
    return {"model": first["model"], "runs": len(runs),
            "pass_ms": statistics.median(r["pass_ms"] for r in runs),
            "pass_with_hooks_ms": statistics.median(r["pass_with_hooks_ms"] for r in runs),
            "leaves": leaves}


#: leaf kinds that launch no work (views in a profile's tables)
NO_WORK = ("Flatten", "Dropout", "Identity")
DENSE, GROUPED = ("1x1", "kxk"), ("depthwise", "grouped")


def in_network_terms(networks: list[dict]) -> dict[str, float]:
    """The in-network costs of ``netcut.estimate.in_network`` fitted to leaf calls: each
    call's extra time inside over alone (``extra_ms`` where runs were merged) against a
    fixed cost per call by kind and per MB of weights and of input, by non-negative least
    squares. The first leaf of each network is left out: it also pays for the pass's
    start."""
    from scipy.optimize import nnls

    rows, extra = [], []
    for network in networks:
        previous = None
        for leaf in network["leaves"]:
            kind = leaf["kind"]
            if previous is not None and kind not in NO_WORK:
                conv = kind in DENSE + GROUPED
                after = not conv and previous in DENSE + GROUPED
                other = not conv and not after
                mb_in, mb_w = leaf["in_bytes"] / 1e6, leaf["weight_bytes"] / 1e6
                rows.append([kind in DENSE, kind in GROUPED, after, other, mb_w, after * mb_in, other * mb_in])
                extra.append(leaf.get("extra_ms", leaf["inside_ms"] - leaf["alone_ms"]) * 1e3)
            if kind not in NO_WORK:
                previous = kind
    coef, _ = nnls(np.array(rows, dtype=float), np.array(extra))
    names = ("conv_us", "grouped_conv_us", "after_conv_us", "other_us", "weights_us_per_mb",
             "after_conv_us_per_mb", "other_us_per_mb")
    return {name: round(float(c), 1) for name, c in zip(names, coef)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--runs", type=int, default=1,
                        help="time every model this many times over (in turn) and keep medians")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models
               if m not in SYNTHETIC and m != "patterns" and not callable(getattr(torchvision.models, m, None))]
    if unknown:
        print(f"error: {', '.join(unknown)}: not a torchvision.models builder nor one of "
              f"{', '.join(SYNTHETIC)}", file=sys.stderr)
        return 2
    from netcut.measure.allocator import keep_freed_memory
    from netcut.measure.environment import environment

    memory = keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    names = [n for m in args.models for n in (PATTERNS if m == "patterns" else [m])]
    runs = [[leaves_in_network(name, args.repeats) for name in names] for _ in range(max(1, args.runs))]
    for i, name in enumerate(names):
        result = runs[0][i] if len(runs) == 1 else merge_runs([run[i] for run in runs])
        result["by_kind"] = by_kind(result)
        result["beyond_leaves_ms"] = beyond_leaves_ms(result)
        results.append(result)
        if not args.json:
            print(f"{name}: pass {result['pass_ms']:.2f} ms, leaves inside "
                  f"{sum(r['inside_ms'] for r in result['leaves']):.2f}, alone "
                  f"{sum(r['alone_ms'] for r in result['leaves']):.2f}, beyond the leaves "
                  f"{result['beyond_leaves_ms']:.2f} or more")
            for k in result["by_kind"]:
                per_mb = k["extra_us_per_activation_mb"]
                print(f"  {k['kind']:18s} {k['ops']:4d} ops  inside {k['inside_ms']:7.2f} ms  alone "
                      f"{k['alone_ms']:7.2f}  extra {k['extra_us_per_op']:6.1f} us/op"
                      + (f", {per_mb:5.1f} us per MB of activations" if per_mb else ""))
    if args.json:
        out = {"environment": environment("cpu"), "memory": memory, "repeats": args.repeats,
               "runs": args.runs, "networks": results}
        if all(r["model"] in PATTERNS or r["model"] in LADDERS for r in results):
            out["in_network"] = in_network_terms(results)
        json.dump(out, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
