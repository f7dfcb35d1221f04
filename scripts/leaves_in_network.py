"""Every leaf module of a torchvision network, timed inside the network and alone.

    .venv/bin/python scripts/leaves_in_network.py resnet50 [mobilenet_v2 ...] [--threads 2]
        [--repeats 15] [--json]

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
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time

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


#: synthetic models the script times like networks, and their input shapes
SYNTHETIC = {
    "chain-resnet-like": (_resnet_like_chain, (1, 64, 56, 56)),
    "chain-one-shape": (lambda: nn.Sequential(*sum((_conv_bn_relu(64, 64) for _ in range(10)), [])),
                        (1, 64, 56, 56)),
    "chain-bn-relu": (lambda: nn.Sequential(*sum(([nn.BatchNorm2d(64), nn.ReLU()] for _ in range(4)), [])),
                      (1, 64, 56, 56)),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models
               if m not in SYNTHETIC and not callable(getattr(torchvision.models, m, None))]
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
    for name in args.models:
        result = leaves_in_network(name, args.repeats)
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
        json.dump({"environment": environment("cpu"), "memory": memory,
                   "repeats": args.repeats, "networks": results}, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
