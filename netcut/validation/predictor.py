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
from ..estimate.timeline import continue_schedule, schedule
from ..measurements import Row
from ..tracing import LayerTable, trace
from ..tracing.cache import trace_cached


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


class RowPredictor:
    """Traces each model once and predicts any set of measured rows on a profile."""

    def __init__(self) -> None:
        self._tables: dict[tuple, LayerTable] = {}
        self._heads: dict[tuple, LayerTable] = {}
        self._cut_index: dict[tuple, int] = {}
        self._at: dict[tuple, LayerTable] = {}

    def table(self, model: str, shape: tuple[int, ...]) -> LayerTable:
        key = (model, tuple(shape))
        if key not in self._tables:  # the on-disk cache: a table is traced once per version
            self._tables[key] = trace_cached(model, tuple(shape))
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

    def _group_table(self, model, shape, batch, dtype) -> LayerTable:
        key = (model, tuple(shape), batch, dtype)
        if key not in self._at:
            self._at[key] = self.table(model, shape).at(batch=batch, dtype=dtype)
        return self._at[key]

    def _head_for(self, row: Row, table: LayerTable) -> LayerTable:
        stop = self.cut_index(row) + 1
        out = table.out_shapes[stop - 1]
        key = (out[1], tuple(out[2:]), row.batch, row.dtype)
        if key not in self._at:
            self._at[key] = self.head(out[1], tuple(out[2:])).at(batch=row.batch, dtype=row.dtype)
        return self._at[key]

    def predict(self, rows: list[Row], profile) -> np.ndarray:
        """Predicted milliseconds for each row, in order.

        Each (model, batch, dtype, mode) is priced and scheduled once; a trimmed row
        continues that schedule from its cut through its own small head.
        """
        out = np.empty(len(rows))
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[(row.model, row.input, row.batch, row.dtype, row.mode)].append(i)
        asynchronous = profile.kind == "gpu"
        head_costs: dict[tuple, RowCosts] = {}
        for (model, shape, batch, dtype, mode), members in groups.items():
            table = self._group_table(model, shape, batch, dtype)
            is_async = asynchronous
            sched = schedule(price_rows(table, profile, mode), is_async)
            for i in members:
                row = rows[i]
                if row.cut is None:
                    out[i] = sched.total_s * 1e3
                    continue
                head = self._head_for(row, table)
                key = (id(head), mode)
                if key not in head_costs:
                    head_costs[key] = price_rows(head, profile, mode)
                out[i] = continue_schedule(sched, self.cut_index(row) + 1, head_costs[key], is_async) * 1e3
        return out
