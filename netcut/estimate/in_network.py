"""What a CPU op pays inside a network beyond its time alone.

A profile's efficiencies and per-op costs come from single ops timed over and over, on
inputs and weights that stay in the core's own caches. Inside a network each op finds
its weights in the shared cache (the rest of the network evicted them), a conv's
library sets it up again among many other shapes, and the op after a conv reads an
output the conv's library just wrote back in the plain layout. On the Xeon 6 guest
these costs were measured leaf by leaf in synthetic chains of generic patterns
(``scripts/leaves_in_network.py patterns``; docs/hardware-schema.md#in-network-costs)
and fitted as a fixed cost per call plus a cost per MB, by the op's kind:

* a dense conv: ``conv_us``; a grouped or depthwise one: ``grouped_conv_us``;
* every op with weights: ``weights_us_per_mb`` of them;
* an op right after a conv: ``after_conv_us`` + ``after_conv_us_per_mb`` of its input;
* any other op (views excepted): ``other_us`` + ``other_us_per_mb`` of its input.

The numbers are times, so one calibration scale (``in_network``) moves them together
and the time stays linear in it.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import dtype_bytes
from ..opclasses import OP_CLASSES
from ..tracing.table import LayerTable

_DENSE = OP_CLASSES.index("conv")
_GROUPED = np.array([OP_CLASSES.index("conv_grouped"), OP_CLASSES.index("conv_depthwise")])
_VIEW = OP_CLASSES.index("view")


def after_conv_rows(table: LayerTable) -> np.ndarray:
    """Rows (not convs, not views) whose previous non-view row is a conv of any kind: the
    op that reads a conv's output (tables list rows in execution order)."""
    cls = table.op_class_idx
    conv = (cls == _DENSE) | np.isin(cls, _GROUPED)
    working = np.flatnonzero(cls != _VIEW)
    after = np.zeros(len(cls), dtype=bool)
    if len(working) > 1:
        follows_conv = conv[working[:-1]] & ~conv[working[1:]]
        after[working[1:][follows_conv]] = True
    return after


def in_network_s(table: LayerTable, terms: dict[str, float]) -> np.ndarray:
    """Seconds per row that an op pays inside a network beyond its time alone. Weights a
    network streams from DRAM (``memory.usable_cache_mib``) pay ``weights_us_per_mb`` as
    well: exempting them scored worse on the development set (see the docs)."""
    cls = table.op_class_idx
    dense = cls == _DENSE
    grouped = np.isin(cls, _GROUPED)
    conv = dense | grouped
    size = dtype_bytes(table.dtype) / 1e6  # MB per element
    read_mb = table.act_read1 * table._scale * size
    weights_mb = table.weight_read * size
    after = after_conv_rows(table)
    other = ~conv & ~after & (cls != _VIEW)
    us = (dense * terms.get("conv_us", 0.0) + grouped * terms.get("grouped_conv_us", 0.0)
          + weights_mb * terms.get("weights_us_per_mb", 0.0)
          + after * (terms.get("after_conv_us", 0.0) + read_mb * terms.get("after_conv_us_per_mb", 0.0))
          + other * (terms.get("other_us", 0.0) + read_mb * terms.get("other_us_per_mb", 0.0)))
    return us * 1e-6
