"""LayerTable: one row per traced operation, as numpy columns.

Tracing happens once, at batch 1 in float32 on the ``meta`` device. Everything a
price needs at another batch size or dtype follows from the stored counts: FLOPs
and activation traffic scale with the batch (``batch_scaled`` rows), weights do
not, and bytes are elements times the dtype's size. So one table prices every cut
point, profile, batch and dtype without re-tracing.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..dtypes import dtype_bytes, normalize_dtype
from ..opclasses import MATRIX_CLASSES, OP_CLASS_INDEX, OP_CLASSES


@dataclass(frozen=True)
class LayerRow:
    """One operation of a traced network (a read-only view of a table row)."""

    index: int
    name: str
    op: str
    op_class: str
    block: str
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    flops: float
    bytes_read: float
    bytes_written: float
    params: int
    kernels: int
    cut_legal: bool
    supported: bool


@dataclass
class LayerTable:
    """The traced network. Columns are per row, at ``batch`` and ``dtype``.

    ``flops``, ``act_read``, ``weight_read`` and ``act_write`` hold the batch-1
    counts (elements for traffic); :meth:`at` returns the same table priced for
    another batch size or dtype without tracing again.
    """

    model_name: str
    input_shape: tuple[int, ...]  # one sample, e.g. (3, 224, 224)
    names: list[str]
    ops: list[str]
    blocks: list[str]
    in_shapes: list[tuple[tuple[int, ...], ...]]
    out_shapes: list[tuple[int, ...]]
    op_class_idx: np.ndarray
    flops1: np.ndarray
    act_read1: np.ndarray
    weight_read: np.ndarray
    act_write1: np.ndarray
    params: np.ndarray
    kernels: np.ndarray
    cut_legal: np.ndarray
    batch_scaled: np.ndarray
    supported: np.ndarray
    #: per row, True for a conv whose bias is added by a separate kernel on GPUs
    #: (None: the table's maker did not record it, read as all False)
    conv_bias: np.ndarray | None = None
    tracer: str = "fx"
    batch: int = 1
    dtype: str = "float32"
    notes: list[str] = field(default_factory=list)

    # ----- pricing at batch/dtype -------------------------------------------------
    def at(self, batch: int | None = None, dtype: str | None = None) -> "LayerTable":
        """The same table at another batch size and/or dtype (no re-tracing)."""
        from dataclasses import replace

        copy = replace(
            self,
            batch=self.batch if batch is None else int(batch),
            dtype=self.dtype if dtype is None else normalize_dtype(dtype),
        )
        for cached in ("in_channels", "out_channels", "conv_taps", "is_batch_norm"):  # batch- and dtype-free
            if cached in self.__dict__:
                copy.__dict__[cached] = self.__dict__[cached]
        return copy

    @functools.cached_property
    def in_channels(self) -> np.ndarray:
        """Channels of each row's first input (dimension 1; 0 where it has none)."""
        return np.array([float(s[0][1]) if s and len(s[0]) > 1 else 0.0 for s in self.in_shapes])

    @functools.cached_property
    def out_channels(self) -> np.ndarray:
        """Channels of each row's output (dimension 1; 0 where it has none)."""
        return np.array([float(s[1]) if len(s) > 1 else 0.0 for s in self.out_shapes])

    @functools.cached_property
    def conv_taps(self) -> np.ndarray:
        """Filter taps (kh * kw) of each dense conv row, FLOPs / (2 * outputs * Cin);
        0 for every other row (grouped convs included). Batch- and dtype-free."""
        dense = self.op_class_idx == OP_CLASS_INDEX["conv"]
        outputs = np.maximum(self.act_write1, 1.0) * np.maximum(self.in_channels, 1.0)
        return np.where(dense, np.round(self.flops1 / (2.0 * outputs)), 0.0)

    @functools.cached_property
    def is_batch_norm(self) -> np.ndarray:
        return np.array([op == "batch_norm" for op in self.ops], dtype=bool)

    @property
    def bias_pass(self) -> np.ndarray:
        """``conv_bias`` as a bool array of the table's length."""
        if self.conv_bias is None:
            return np.zeros(len(self.names), dtype=bool)
        return np.asarray(self.conv_bias, dtype=bool)

    @property
    def _scale(self) -> np.ndarray:
        return np.where(self.batch_scaled, float(self.batch), 1.0)

    @property
    def flops(self) -> np.ndarray:
        return self.flops1 * self._scale

    @property
    def bytes_read(self) -> np.ndarray:
        return (self.act_read1 * self._scale + self.weight_read) * dtype_bytes(self.dtype)

    @property
    def bytes_written(self) -> np.ndarray:
        return self.act_write1 * self._scale * dtype_bytes(self.dtype)

    @property
    def outputs(self) -> np.ndarray:
        """Elements each row writes (its parallelism, for occupancy)."""
        return self.act_write1 * self._scale

    @property
    def inputs(self) -> np.ndarray:
        """Activation elements each row reads (weights not counted)."""
        return self.act_read1 * self._scale

    @property
    def op_classes(self) -> list[str]:
        return [OP_CLASSES[i] for i in self.op_class_idx]

    # ----- queries -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def row(self, i: int) -> LayerRow:
        batch = self.batch
        scale = batch if self.batch_scaled[i] else 1
        nbytes = dtype_bytes(self.dtype)
        return LayerRow(
            index=i,
            name=self.names[i],
            op=self.ops[i],
            op_class=OP_CLASSES[self.op_class_idx[i]],
            block=self.blocks[i],
            in_shapes=tuple(_with_batch(s, batch) for s in self.in_shapes[i]),
            out_shape=_with_batch(self.out_shapes[i], batch) if self.batch_scaled[i] else self.out_shapes[i],
            flops=float(self.flops1[i] * scale),
            bytes_read=float((self.act_read1[i] * scale + self.weight_read[i]) * nbytes),
            bytes_written=float(self.act_write1[i] * scale * nbytes),
            params=int(self.params[i]),
            kernels=int(self.kernels[i]),
            cut_legal=bool(self.cut_legal[i]),
            supported=bool(self.supported[i]),
        )

    def __iter__(self) -> Iterator[LayerRow]:
        return (self.row(i) for i in range(len(self)))

    def total_flops(self) -> float:
        return float(self.flops.sum())

    def matrix_flops(self) -> float:
        """FLOPs of conv/linear/matmul/attention rows: what FLOP counters agree on."""
        mask = np.isin(self.op_class_idx, [OP_CLASS_INDEX[c] for c in MATRIX_CLASSES])
        return float(self.flops[mask].sum())

    def total_params(self) -> int:
        return int(self.params.sum())

    def cut_indices(self) -> np.ndarray:
        """Row indices after which a cut is legal (one live tensor crosses)."""
        return np.flatnonzero(self.cut_legal)

    def unsupported(self) -> dict[str, int]:
        """Op kinds the cost registry could not price, with their counts."""
        counts: dict[str, int] = {}
        for i in np.flatnonzero(~self.supported):
            counts[self.ops[i]] = counts.get(self.ops[i], 0) + 1
        return counts

    def to_records(self) -> list[dict]:
        out = []
        for r in self:
            out.append(
                {
                    "index": r.index,
                    "name": r.name,
                    "op": r.op,
                    "op_class": r.op_class,
                    "block": r.block,
                    "in_shapes": [list(s) for s in r.in_shapes],
                    "out_shape": list(r.out_shape),
                    "flops": r.flops,
                    "bytes_read": r.bytes_read,
                    "bytes_written": r.bytes_written,
                    "params": r.params,
                    "kernels": r.kernels,
                    "cut_legal": r.cut_legal,
                    "supported": r.supported,
                }
            )
        return out


def _with_batch(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    if not shape or batch == 1:
        return tuple(shape)
    return (shape[0] * batch,) + tuple(shape[1:])
