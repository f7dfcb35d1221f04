"""Predict measured rows (whole and trimmed networks) from one trace per model.

A trimmed row is the prefix of the network up to the end of its ``last_block``,
followed by the head ``netcut measure --cuts`` timed: trim's ``GlobalPool`` (mean over
the spatial axes, or the class token of a token sequence) and Linear(C, 10). The
prefix's priced rows are reused; only the small head is priced on its own.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch.nn as nn

from ..estimate.roofline import RowCosts, price_rows
from ..estimate.timeline import continue_schedule, schedule
from ..measurements import Row
from ..errors import InvalidInputError
from ..planner.cuts import layout_at, resolve_cut
from ..planner.trim import GlobalPool
from ..tracing import LayerTable, trace
from ..tracing.cache import trace_cached


def cut_row_index(table: LayerTable, last_block: str, shape: tuple[int, ...] | None = None) -> int:
    """The row a trimmed network named ``last_block`` ends at.

    A name has two readings: the last row of that block (the shared H100 files:
    ``layer1``, ``features.3``, a ResNet's ``stem`` = everything before ``layer1``), and
    the cut point of that name (what ``netcut measure --cuts`` writes: its ``conv1`` cut
    of a ResNet ends after the stem's max-pool). ``shape`` = (channels, *spatial) of the
    measured network's cut activation picks the reading that matches it; without it
    the block reading comes first.
    """
    names = table.names
    readings: list[int] = []
    if last_block == "stem" and any(n.startswith("layer1.") for n in names):
        readings.append(next(i for i, n in enumerate(names) if n.startswith("layer1.")) - 1)
    hits = [i for i, (n, b) in enumerate(zip(names, table.blocks))
            if n == last_block or n.startswith(last_block + ".") or b == last_block]
    if hits:
        readings.append(max(hits))
    try:
        readings.append(resolve_cut(table, last_block).row_index)
    except InvalidInputError:
        pass
    if not readings:
        raise KeyError(f"{table.model_name} has no block {last_block!r}")
    if shape:
        for index in readings:
            if tuple(table.out_shapes[index][1:]) == tuple(shape):
                return index
    return readings[0]


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

    def head(self, shape: tuple[int, ...], layout: str) -> LayerTable:
        """The head for a cut whose per-sample activation is ``shape`` in ``layout``."""
        key = (tuple(shape), layout)
        if key not in self._heads:
            channels = shape[-1] if layout.endswith("C") else shape[0]
            # channels first: the shared H100 files' head, AdaptiveAvgPool2d (same cost)
            pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) \
                if layout == "NCHW" else GlobalPool(layout)
            head = nn.Sequential(pool, nn.Linear(channels, 10))
            self._heads[key] = trace(head, tuple(shape))
        return self._heads[key]

    def cut_index(self, row: Row) -> int:
        cut = row.cut
        shape = (cut.channels, *cut.spatial) if cut.channels and cut.spatial else None
        key = (row.model, row.input, cut.last_block, shape)
        if key not in self._cut_index:
            self._cut_index[key] = cut_row_index(self.table(row.model, row.input), cut.last_block, shape)
        return self._cut_index[key]

    def _group_table(self, model, shape, batch, dtype) -> LayerTable:
        key = (model, tuple(shape), batch, dtype)
        if key not in self._at:
            self._at[key] = self.table(model, shape).at(batch=batch, dtype=dtype)
        return self._at[key]

    def _head_for(self, row: Row, table: LayerTable) -> LayerTable:
        stop = self.cut_index(row) + 1
        shape = tuple(table.out_shapes[stop - 1][1:])
        layout = layout_at(table, stop - 1)
        key = (shape, layout, row.batch, row.dtype)
        if key not in self._at:
            self._at[key] = self.head(shape, layout).at(batch=row.batch, dtype=row.dtype)
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
