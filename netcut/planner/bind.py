"""Let a TRN's fx code reach each layer at dict speed instead of through ``nn.Module.__getattr__``.

fx's generated ``forward`` looks every layer up through its path at every call:
``getattr(getattr(getattr(self.layers, "8"), "0").layers, "0")(x)``. A submodule
lives in its parent's ``_modules``, not in the instance's ``__dict__``, so each step
misses Python's fast attribute path and runs ``nn.Module.__getattr__``: about 0.8 us
a step on the Xeon 6 guest (3.6 us for that depth-4 path). mnasnet1_0 has ~150 layers,
so its fx graph ran 4% slower than the eager model at batch 1 on a CPU; on an eager
GPU, where the host is the bottleneck, it is a larger share (see
``benchmarks/trn_call_overhead.py``).

:func:`bind_submodules` also writes each submodule into its parent's instance
``__dict__``, so the lookup is an ordinary attribute hit. ``_modules`` stays the
only registry: ``state_dict``, ``named_modules``, ``.to()``, hooks, deep copies and
pickling see the model unchanged. Assigning a new submodule with ``parent.name =
module`` (or ``parent[i] = module`` on a Sequential) goes through
``nn.Module.__setattr__``, which drops the bound entry first, so it stays right. Two
edits leave the old module reachable as an attribute: ``del parent.name`` and
``parent.name = None``; :func:`bind_submodules` called again repairs both.
"""

from __future__ import annotations

from torch import nn


def bind_submodules(root: nn.Module) -> nn.Module:
    """Bind every submodule of ``root`` (recursively) as a plain attribute; returns ``root``."""
    for parent in root.modules():
        stale = [k for k, v in vars(parent).items() if isinstance(v, nn.Module)
                 and parent._modules.get(k) is not v]
        for key in stale:  # a bound entry whose submodule was deleted or replaced
            del parent.__dict__[key]
        for name, child in parent._modules.items():
            if child is not None:
                parent.__dict__[name] = child
    return root
