"""Predict measured rows (whole and trimmed networks) from one trace per model.

A trimmed row is the prefix of the network up to the end of its ``last_block``,
followed by the measured head: global average pool, flatten, Linear(C, 10). The
prefix's priced rows are reused; only the small head is priced on its own.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch.nn as nn

from ..estimate.roofline import RowCosts, price_rows
from ..estimate.timeline import schedule
from ..measurements import Row
from ..tracing import LayerTable, trace


def cut_row_index(table: LayerTable, last_block: str) -> int:
    """The last row of ``last_block`` (``stem`` = everything before ``layer1``)."""
    names = table.names
    if last_block == "stem":
        first = next(i for i, n in enumerate(names) if n.startswith("layer1."))
        return first - 1
    hits = [i for i, (n, b) in enumerate(zip(names, table.blocks))
            if n == last_block or n.startswith(last_block + ".") or b == last_block]
    if not hits:
        raise KeyError(f"{table.model_name} has no block {last_block!r}")
    return max(hits)


def _concat(a: RowCosts, b: RowCosts) -> RowCosts:
    return RowCosts(*(np.concatenate([getattr(a, f), getattr(b, f)])
                      for f in ("compute_s", "memory_s", "kernel_s", "device_s", "host_s")),
                    a.launch_s)


def _slice(c: RowCosts, stop: int) -> RowCosts:
    return RowCosts(c.compute_s[:stop], c.memory_s[:stop], c.kernel_s[:stop],
                    c.device_s[:stop], c.host_s[:stop], c.launch_s)


class RowPredictor:
    """Traces each model once and predicts any set of measured rows on a profile."""

    def __init__(self) -> None:
        self._tables: dict[tuple, LayerTable] = {}
        self._heads: dict[tuple, LayerTable] = {}
        self._cut_index: dict[tuple, int] = {}

    def table(self, model: str, shape: tuple[int, ...]) -> LayerTable:
        key = (model, tuple(shape))
        if key not in self._tables:
            self._tables[key] = trace(model, shape)
        return self._tables[key]

    def head(self, channels: int, spatial: tuple[int, ...]) -> LayerTable:
        key = (channels, tuple(spatial))
        if key not in self._heads:
            head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))
            self._heads[key] = trace(head, (channels, *spatial))
        return self._heads[key]

    def cut_index(self, row: Row) -> int:
        key = (row.model, row.input, row.cut.last_block)
        if key not in self._cut_index:
            self._cut_index[key] = cut_row_index(self.table(row.model, row.input), row.cut.last_block)
        return self._cut_index[key]

    def predict(self, rows: list[Row], profile) -> np.ndarray:
        """Predicted milliseconds for each row, in order."""
        out = np.empty(len(rows))
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[(row.model, row.input, row.batch, row.dtype, row.mode)].append(i)
        for (model, shape, batch, dtype, mode), members in groups.items():
            table = self.table(model, shape).at(batch=batch, dtype=dtype)
            costs = price_rows(table, profile, mode)
            asynchronous = profile.kind == "gpu" and mode == "eager"
            for i in members:
                row = rows[i]
                if row.cut is None:
                    out[i] = schedule(costs, asynchronous).total_s * 1e3
                    continue
                stop = self.cut_index(row) + 1
                spatial = tuple(table.out_shapes[stop - 1][2:])
                channels = table.out_shapes[stop - 1][1]
                head = self.head(channels, spatial).at(batch=batch, dtype=dtype)
                joined = _concat(_slice(costs, stop), price_rows(head, profile, mode))
                out[i] = schedule(joined, asynchronous).total_s * 1e3
        return out
