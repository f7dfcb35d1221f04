"""Each residual block of a torchvision ResNet, timed inside the network and alone.

    .venv/bin/python scripts/resnet_blocks_in_network.py [resnet50] [--threads 2] [--repeats 20] [--json]

Inside: the network's prefix up to and including the block, less the prefix before it
(both timed whole, the fastest of ``--repeats`` calls). Alone: the block called over and
over on the input it got in a real forward pass, so its weights stay in cache. The
difference is what the block pays for running inside the network; printed beside the
block's weights, it shows whether that grows with them (the evidence for a CPU profile's
``memory.usable_cache_mib``, docs/hardware-schema.md#cpu-caches). Random weights,
batch 1, fp32, malloc thresholds pinned as ``netcut measure`` pins them.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn as nn
import torchvision


def _fastest_ms(module, args: tuple, repeats: int) -> float:
    """The fastest of ``repeats`` calls after 3 warm-up calls, by netcut measure's own timer."""
    from netcut.measure.timing import time_forward

    return time_forward(module, args, warmup=3, repeats=repeats).min_ms


def blocks_in_network(name: str, repeats: int) -> list[dict]:
    """One row per residual block: ms inside the network, ms alone, weights (MiB)."""
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    blocks = [(f"{stage}.{i}", block) for stage in ("layer1", "layer2", "layer3", "layer4")
              for i, block in enumerate(getattr(model, stage))]
    inputs: dict[str, tuple] = {}
    hooks = [block.register_forward_pre_hook(lambda mod, args, key=key: inputs.setdefault(key, args) and None)
             for key, block in blocks]
    with torch.inference_mode():
        model(x)
    for hook in hooks:
        hook.remove()
    prefix = [nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)]
    before = _fastest_ms(prefix[0], (x,), repeats)
    rows = []
    for key, block in blocks:
        prefix.append(block)
        upto = _fastest_ms(nn.Sequential(*prefix), (x,), repeats)
        alone = _fastest_ms(block, inputs[key], repeats)
        rows.append({"block": key, "in_network_ms": upto - before, "alone_ms": alone,
                     "extra_ms": upto - before - alone,
                     "weights_mib": sum(p.numel() for p in block.parameters()) * 4 / 2**20})
        before = upto
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.model.startswith(("resnet", "resnext", "wide_resnet")):
        print(f"error: {args.model}: give a torchvision ResNet (resnet*, resnext*, wide_resnet*)",
              file=sys.stderr)
        return 2
    from netcut.measure.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = blocks_in_network(args.model, args.repeats)
    if args.json:
        json.dump({"model": args.model, "threads": args.threads, "blocks": rows}, sys.stdout, indent=1)
        print()
        return 0
    for r in rows:
        print(f"{r['block']:10s} inside {r['in_network_ms']:7.3f} ms  alone {r['alone_ms']:7.3f}  "
              f"extra {r['extra_ms']:+.3f}  weights {r['weights_mib']:6.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
