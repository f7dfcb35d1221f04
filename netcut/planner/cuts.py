"""Cut points: where a pretrained network can be trimmed, as a checked data contract.

A cut after row ``i`` of a :class:`~netcut.tracing.LayerTable` keeps rows ``0..i``
as a feature extractor; a trimmed network (TRN) then pools that activation and
puts a new head on it. A cut is only offered where the table marks it legal
(exactly one live activation crosses it), so a prefix is a plain function of
one tensor: no skip connection is cut in half.

**The classifier head is never kept.** Its first row is the network's global
pooling: the last adaptive pool / ``mean`` after which the activation stays
pooled (at most one non-1 axis), or, for class-token readouts (ViT) with no
pool, the first row after which every output is 2-D. A network whose last
matrix op comes before that pool (SqueezeNet's 1x1-conv classifier) has its
head start at that op, dropout before it included. Every cut lies before the
head; the deepest one is the network's *feature end*.

**Block granularity** (the default) gives one cut per block as the table
defines blocks (``LayerTable.blocks``: ResNet ``layer1.0``, ``features.3``,
``Mixed_5b``, ``encoder.layers.encoder_layer_0``). Rows are split into runs of
one block, then grouped:

1. a run without matrix FLOPs (a lone activation, pooling, norm or reshape:
   ResNet's ``bn1, relu, maxpool``, VGG's ReLU and pools, DenseNet's final
   ``norm5`` + ``relu``, ViT's ``encoder.ln``) holds no learnable work of its own
   and joins the group before it (runs before the first matrix op, the next);
2. a group with no legal row (one branch of an Inception module) joins the next;
3. each group gives one cut, at its last legal row, named after its first
   block with matrix work, widened to the outermost module whose blocks all lie
   in the group (GoogLeNet's ``inception3a``, ShuffleNet's ``conv1``).

So ResNet-18 gives ``conv1`` (the stem, up to the max-pool), ``layer1.0`` ...
``layer4.1``. ``granularity="layer"`` gives every legal row before the head,
named by its row (``#k`` added where a module runs k times, k counting from 1).

``granularity="preact"`` gives the block cuts, each moved one row up when the
block ends in an activation (ReLU, ReLU6, hard-swish, ...) and the row feeding it
is a legal cut: ResNet-18's ``layer3.0.add_4`` (the residual sum) instead of
``layer3.0`` (its ReLU). A new head then also sees the negative half of the
features, which the ReLU would zero (pre-ReLU features carry more for a new
reader: Heo et al., "A Comprehensive Overhaul of Feature Distillation", ICCV
2019). A moved cut takes its layer name; a block without a closing activation
keeps its block cut, and the feature end is never moved (the whole network
stays the whole network).

All numbers are per sample (batch 1), from the table: FLOPs at any batch scale
linearly, so they are not repeated per batch.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch.nn as nn

from ..errors import InvalidInputError
from ..opclasses import MATRIX_CLASSES, OP_CLASS_INDEX
from ..tracing import LayerTable, parse_input_shape, trace

__all__ = ["CutPoint", "cut_points", "find_cut", "head_start", "resolve_cut"]

GRANULARITIES = ("block", "layer", "preact")

#: element-wise nonlinearities that may close a block (what ``preact`` cuts before)
ACTIVATION_OPS = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu",
                            "silu", "mish", "hardswish", "hardtanh", "prelu", "softplus"})

#: layouts a cut's activation can have; "NLC" is a token sequence (ViT)
LAYOUTS = ("NCL", "NCHW", "NCDHW", "NLC", "NHWC", "NDHWC")
_CHANNELS_LAST = {"NLC", "NHWC", "NDHWC"}

#: ops that reduce a feature map to one vector per channel (a global pool)
_GLOBAL_POOLS = {"adaptive_avg_pool", "adaptive_max_pool", "mean"}
_FIXED_POOLS = {"avg_pool", "max_pool"}
#: ops whose input layout is known: channels on axis 1, or on the last axis
_READS_CHANNELS_FIRST = {"conv", "batch_norm", "group_norm", "max_pool", "avg_pool",
                         "adaptive_avg_pool", "adaptive_max_pool"}
_READS_CHANNELS_LAST = {"linear", "layer_norm", "window_attention", "multihead_attention",
                        "patch_merging_pad"}
_LAYOUT_SCAN_ROWS = 64  # how far ahead to look for a row that reveals the layout


@dataclass(frozen=True)
class CutPoint:
    """One legal place to trim a network, checked when built (like timm's FeatureInfo).

    ``name`` is what :func:`netcut.planner.trim` takes; ``node`` is the table row
    name of the last op kept (a module path such as ``layer1.0.relu``, or
    ``path.fx_node`` for a functional op), which is how the prefix is rebuilt
    from the fx graph. ``shape`` is the activation crossing the cut at batch 1;
    ``layout`` says where its channels are (``NCHW``, ``NHWC`` for Swin, ``NLC``
    for ViT tokens, whose ``spatial`` is empty). ``depth_fraction`` is the share
    of the whole network's *matrix* FLOPs (conv/linear/matmul/attention, what FLOP
    counters agree on) computed before the cut; ``flops_kept`` counts every op.
    """

    name: str
    row_index: int
    node: str
    shape: tuple[int, ...]
    layout: str
    channels: int
    spatial: tuple[int, ...]
    flops_kept: float
    params_kept: int
    depth_fraction: float

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not isinstance(self.name, str):
            problems.append("name must be a non-empty string")
        if self.row_index < 0:
            problems.append(f"row_index {self.row_index} is negative")
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        elif len(self.shape) != len(self.layout):
            problems.append(f"shape {self.shape} does not match layout {self.layout}")
        else:
            axis = -1 if self.layout in _CHANNELS_LAST else 1
            if self.channels != self.shape[axis] or self.channels <= 0:
                problems.append(f"channels {self.channels} is not axis {axis} of {self.shape}")
            spatial = () if self.layout == "NLC" else (
                self.shape[1:-1] if axis == -1 else self.shape[2:])
            if tuple(self.spatial) != tuple(spatial):
                problems.append(f"spatial {self.spatial} is not {spatial} for {self.layout}")
        if not 0.0 <= self.depth_fraction <= 1.0:
            problems.append(f"depth_fraction {self.depth_fraction} is outside [0, 1]")
        if self.flops_kept < 0 or self.params_kept < 0:
            problems.append("flops_kept and params_kept must be >= 0")
        if problems:
            raise ValueError(f"invalid cut point {self.name!r}: " + "; ".join(problems))

    @property
    def channels_last(self) -> bool:
        return self.layout in _CHANNELS_LAST


def cut_points(model_or_table: nn.Module | str | LayerTable, input_shape=None,
               granularity: str = "block") -> list[CutPoint]:
    """The legal cuts of a network, shallowest first, the feature end last.

    ``model_or_table``: a model spec, an ``nn.Module`` (traced here, at batch 1
    on meta/fake tensors) or an already traced :class:`LayerTable` (used as is).
    ``granularity``: ``"block"`` (one cut per block, see the module docstring),
    ``"layer"`` (every legal row) or ``"preact"`` (the block cuts, before a
    closing activation).
    """
    if granularity not in GRANULARITIES:
        raise InvalidInputError(
            f"granularity {granularity!r}: allowed {', '.join(GRANULARITIES)}")
    table = _as_table(model_or_table, input_shape)
    end = head_start(table)
    if granularity == "layer":
        rows = [i for i in range(end) if _cuttable(table, i)]
        names = [_row_label(table, i) for i in rows]
    else:
        rows, names = _block_cuts(table, end)
        if granularity == "preact":
            rows, names = _before_activations(table, rows, names)
    if not rows:
        raise InvalidInputError(
            f"{table.model_name}: no legal cut before the classifier head "
            f"(head starts at row {end}, {table.names[end] if end < len(table) else 'end'})")
    matrix = _matrix_flops(table)
    total_matrix = float(matrix.sum())
    cum_matrix = np.cumsum(matrix)
    cum_flops = np.cumsum(table.flops1)
    cum_params = np.cumsum(table.params)
    cuts = []
    for name, i in zip(_unique(names), rows):
        shape = tuple(int(s) for s in table.out_shapes[i])
        layout = layout_at(table, i)
        axis = -1 if layout in _CHANNELS_LAST else 1
        spatial = () if layout == "NLC" else (shape[1:-1] if axis == -1 else shape[2:])
        fraction = cum_matrix[i] / total_matrix if total_matrix > 0 else (i + 1) / len(table)
        cuts.append(CutPoint(
            name=name, row_index=int(i), node=table.names[i], shape=shape, layout=layout,
            channels=shape[axis], spatial=tuple(spatial), flops_kept=float(cum_flops[i]),
            params_kept=int(cum_params[i]), depth_fraction=float(min(1.0, fraction))))
    return cuts


def find_cut(cuts: Sequence[CutPoint], name: str) -> CutPoint:
    """The cut called ``name``; a clear error with close names when there is none."""
    for cut in cuts:
        if cut.name == name:
            return cut
    known = [c.name for c in cuts]
    raise InvalidInputError(f"no cut point named {name!r}{_suggest(name, known)} "
                            f"(cuts: {_summary(known)})")


def resolve_cut(table: LayerTable, cut: str | CutPoint) -> CutPoint:
    """The cut of ``table`` that ``cut`` names: a block cut, else a layer cut (a
    name that is both, like ResNet's ``conv1``, means the block; pass the layer's
    CutPoint to mean the row). The error says why a name in the network is no cut."""
    name = cut.name if isinstance(cut, CutPoint) else cut
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a cut must be a cut point name or a CutPoint, got {cut!r}")
    blocks = cut_points(table, granularity="block")
    layers = cut_points(table, granularity="layer")
    found = [c for c in blocks + layers if c.name == name]
    if isinstance(cut, CutPoint) and found:
        # matched by op, not row index: a table traced on meta may hold fewer rows
        # than one traced with real weights (ops that return None on meta)
        same = [c for c in found if c.node == cut.node]
        if not same:
            raise InvalidInputError(
                f"cut {name!r} ends at {cut.node!r}, but in {table.model_name} it ends at "
                f"{found[0].node!r}: the CutPoint is from another model")
        return same[0]
    if found:
        return found[0]
    end = head_start(table)
    rows = [i for i, n in enumerate(table.names) if n == name or n.startswith(name + ".")]
    rows += [i for i, b in enumerate(table.blocks) if b == name and i not in rows]
    deepest = blocks[-1].name
    same_end = [c for c in blocks + layers if rows and c.row_index == max(rows)]
    if same_end:  # a container ending at a cut: layer1 ends where layer1.1 does
        why = f"{name!r} is no cut name, but it ends at cut {same_end[0].name!r}: use that"
    elif rows and min(rows) >= end:
        why = f"{name!r} is part of the classifier head (the deepest cut is {deepest!r})"
    elif rows:
        why = (f"{name!r} is inside the network, but no single tensor crosses after it "
               "(a skip connection or several branches are live there)")
    else:
        why = f"no cut point named {name!r}"
    known = [c.name for c in blocks]
    close = "" if same_end else _suggest(name, known + [c.name for c in layers])
    raise InvalidInputError(f"{table.model_name}: {why}{close} (block cuts: {_summary(known)}; "
                            "granularity='layer' lists every legal row)")


def head_start(table: LayerTable) -> int:
    """Index of the first row of the classifier head (``len(table)`` if none)."""
    n = len(table)
    shapes = table.out_shapes
    flat = n  # first row after which every output is 2-D (flatten, class token)
    while flat > 0 and len(shapes[flat - 1]) <= 2:
        flat -= 1
    if flat == n:
        flat = None
    pooled_after = n  # rows >= pooled_after all stay pooled
    while pooled_after > 0 and _pooled(shapes[pooled_after - 1]):
        pooled_after -= 1
    start = flat if flat is not None else n
    for i in range(min(start, n - 1), -1, -1):
        if i + 1 < pooled_after:
            break  # a pool mid-network (squeeze-excitation) is no head
        if _is_global_pool(table, i):
            start = i
            break
    if start == n:
        return n  # a backbone without head: the whole network is features
    matrix = np.flatnonzero(_matrix_flops(table) > 0)
    if len(matrix) and matrix[-1] < start:  # the classifier is a conv before the pool
        start = int(matrix[-1])
    while start > 0 and table.ops[start - 1] == "identity":  # dropout before the head
        start -= 1
    return start


# ----- helpers --------------------------------------------------------------------------

def _as_table(model_or_table, input_shape) -> LayerTable:
    if isinstance(model_or_table, LayerTable):
        if input_shape is not None:
            shape = parse_input_shape(input_shape)
            if shape != tuple(model_or_table.input_shape):
                raise InvalidInputError(
                    f"input shape {shape} differs from the table's {model_or_table.input_shape}; "
                    "trace the model again at that shape")
        return model_or_table
    return trace(model_or_table, input_shape)


def _matrix_flops(table: LayerTable) -> np.ndarray:
    mask = np.isin(table.op_class_idx, [OP_CLASS_INDEX[c] for c in MATRIX_CLASSES])
    return np.where(mask, table.flops1, 0.0)


def _pooled(shape) -> bool:
    """At most one axis beside the batch is longer than 1."""
    return len(shape) <= 2 or sum(1 for s in shape[1:] if s > 1) <= 1


def _is_global_pool(table: LayerTable, i: int) -> bool:
    op = table.ops[i]
    if op in _GLOBAL_POOLS:
        return True
    shape = table.out_shapes[i]
    return op in _FIXED_POOLS and len(shape) > 2 and all(s == 1 for s in shape[2:])


def _cuttable(table: LayerTable, i: int) -> bool:
    """Legal, and a feature map or token sequence (not a 6-D window partition)."""
    return bool(table.cut_legal[i]) and 3 <= len(table.out_shapes[i]) <= 5


def _block_cuts(table: LayerTable, end: int) -> tuple[list[int], list[str]]:
    matrix = _matrix_flops(table) > 0
    runs: list[tuple[str, int, int]] = []  # (block, first row, last row)
    for i in range(end):
        if runs and runs[-1][0] == table.blocks[i]:
            runs[-1] = (runs[-1][0], runs[-1][1], i)
        else:
            runs.append((table.blocks[i], i, i))
    groups: list[list[tuple[str, int, int]]] = []
    pending: list[tuple[str, int, int]] = []
    for run in runs:  # a run without matrix work joins the block before it
        if matrix[run[1]: run[2] + 1].any():
            groups.append(pending + [run])
            pending = []
        elif groups:
            groups[-1].append(run)
        else:
            pending.append(run)
    if pending:
        groups.append(pending)
    merged: list[list[tuple[str, int, int]]] = []
    carry: list[tuple[str, int, int]] = []
    for group in groups:  # a group with nowhere to cut (parallel branches) joins the next
        group = carry + group
        if any(_cuttable(table, i) for _, a, b in group for i in range(a, b + 1)):
            merged.append(group)
            carry = []
        else:
            carry = group
    rows, names = [], []
    for group in merged:
        legal = [i for _, a, b in group for i in range(a, b + 1) if _cuttable(table, i)]
        anchor = next((r for r in group if matrix[r[1]: r[2] + 1].any()), group[0])[0]
        rows.append(legal[-1])
        names.append(_widen(anchor, {b for b, _, _ in group}, table.blocks))
    return rows, names


def _before_activations(table: LayerTable, rows: list[int],
                        names: list[str]) -> tuple[list[int], list[str]]:
    """Block cuts moved to the row before a closing activation, where that row is a
    legal cut not already taken and its layer name names no block cut. The feature
    end stays: the deepest cut is the whole network (the off-the-shelf baseline)."""
    taken, blocks = set(rows), set(names)
    out_rows, out_names = [], []
    for k, (i, name) in enumerate(zip(rows, names)):
        j = i - 1
        if (k < len(rows) - 1 and table.ops[i] in ACTIVATION_OPS and j >= 0 and j not in taken and _cuttable(table, j)
                and tuple(table.out_shapes[j]) == tuple(table.out_shapes[i])
                and _row_label(table, j) not in blocks):
            i, name = j, _row_label(table, j)
        out_rows.append(i)
        out_names.append(name)
    return out_rows, out_names


def _widen(name: str, group: set[str], all_blocks: Sequence[str]) -> str:
    """The outermost module around ``name`` whose blocks all lie in ``group``
    (ShuffleNet's stem ``conv1`` rather than ``conv1.0``, Swin's ``features.0``)."""
    while "." in name:
        parent = name.rsplit(".", 1)[0]
        inside = {b for b in all_blocks if b == parent or b.startswith(parent + ".")}
        if not inside <= group:
            break
        name = parent
    return name


def _row_label(table: LayerTable, i: int) -> str:
    name = table.names[i]
    count = table.names.count(name)
    if count == 1:
        return name
    return f"{name}#{table.names[: i + 1].count(name)}"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def layout_at(table: LayerTable, i: int) -> str:
    """Where the channels of row ``i``'s output are: from the op that wrote it, else
    from the nearest later op reading a tensor of exactly that shape, else from the
    nearest earlier op writing one (a residual ``add`` says nothing itself)."""
    shape = tuple(table.out_shapes[i])
    last = _reads_channels_last(table.ops[i])
    for j in range(i + 1, min(len(table), i + 1 + _LAYOUT_SCAN_ROWS)):
        if last is not None:
            break
        if any(tuple(s) == shape for s in table.in_shapes[j]):
            last = _reads_channels_last(table.ops[j])
    for j in range(i - 1, max(-1, i - 1 - _LAYOUT_SCAN_ROWS), -1):
        if last is not None:
            break
        if tuple(table.out_shapes[j]) == shape:
            last = _reads_channels_last(table.ops[j])
    if last is None:
        last = len(shape) == 3  # a 3-D activation nothing tells about: tokens
    spatial = "DHW"[3 - (len(shape) - 2):] if len(shape) > 3 else ""
    if len(shape) == 3:
        return "NLC" if last else "NCL"
    return f"N{spatial}C" if last else f"NC{spatial}"


def _reads_channels_last(op: str) -> bool | None:
    if op in _READS_CHANNELS_LAST:
        return True
    if op in _READS_CHANNELS_FIRST:
        return False
    return None


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(known)), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _summary(names: Sequence[str], limit: int = 8) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ..., {', '.join(names[-3:])} ({len(names)} in all)"
