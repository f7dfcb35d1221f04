"""Re-estimating batch-norm statistics per width (switchable BN).

Slicing channels changes the activations every later layer sees, so statistics
inherited from the full network are wrong for a narrower one. After a width is
built (or trained with others), :func:`recalibrate_bn` re-estimates its
statistics from a few batches: the running mean and variance of that width are
reset and replaced by their plain average over the batches (BatchNorm's
``momentum=None`` cumulative average), with only the norms in train mode -
dropout and the like stay off and no weight changes.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InvalidInputError
from .net import DynamicNet
from .slim import SlimBatchNorm2d

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(net: DynamicNet, loader: Iterable, *, batches: int = 20,
                   subnets: Sequence[int | str] | None = None,
                   device: torch.device | str | None = None) -> dict[str, int]:
    """Re-estimate the statistics of each width used by ``subnets`` (default: all)
    from up to ``batches`` batches of ``loader`` (tensors, or tuples/lists whose
    first item is the input). Each width runs to the deepest exit any of its
    sub-nets uses. Returns width label -> batches used. ``device``: where to move
    the batches (default: the network's)."""
    if not isinstance(net, DynamicNet):
        raise InvalidInputError(f"recalibrate_bn needs a DynamicNet, got {type(net).__name__}")
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise InvalidInputError(f"batches must be a positive integer, got {batches!r}")
    chosen = [net.subnet(s) for s in subnets] if subnets is not None else list(net.subnets)
    deepest: dict[int, int] = {}  # width index -> the sub-net reaching furthest
    for s in chosen:
        best = deepest.get(s.width_index)
        if best is None or s.exit_index > net.subnets[best].exit_index:
            deepest[s.width_index] = s.id
    if device is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    plain = [m for m in norms if not isinstance(m, SlimBatchNorm2d)]
    modes = [(m, m.training) for m in net.modules()]
    momenta = [(m, m.momentum) for m in norms]
    previous = net.active.id
    used: dict[str, int] = {}
    try:
        net.eval()
        for m in norms:
            m.train()
            m.momentum = None
        for k, sid in sorted(deepest.items()):
            net.activate(sid)
            for m in norms:
                if isinstance(m, SlimBatchNorm2d):
                    m.reset_width_stats(k)
            if plain and not used:  # non-switchable norms (BatchNorm1d/3d): averaged over widths
                for m in plain:
                    m.reset_running_stats()
            n = 0
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if not isinstance(x, torch.Tensor):
                    raise InvalidInputError(f"the loader gave a {type(x).__name__}, not a tensor "
                                            "(or a tuple whose first item is one)")
                net(x.to(device))
                n += 1
                if n >= batches:
                    break
            if n == 0:
                raise InvalidInputError("the loader gave no batches to estimate statistics from")
            used[net.widths[k].label] = n
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        for m, training in modes:
            m.training = training
        net.activate(previous)
    return used
