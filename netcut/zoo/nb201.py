"""NAS-Bench-201 networks built from their arch strings, and a fast path to their tables.

An arch string names the six edges of the one cell every NAS-Bench-201 network
repeats (Dong & Yang, ICLR 2020)::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Groups split by ``+`` are nodes 1, 2 and 3; the token ``op~i`` of node ``j`` is the
edge from node ``i`` to node ``j``, and node ``j`` lists its inputs ``0..j-1`` in
order. The network (CIFAR, input 3x32x32, 10 classes)::

    stem      conv3x3(3->16) - BN
    cells.0-4    5 cells at C=16, 32x32
    cells.5      reduction block 16->32 (stride 2)
    cells.6-10   5 cells at C=32, 16x16
    cells.11     reduction block 32->64 (stride 2)
    cells.12-16  5 cells at C=64, 8x8
    head      BN - ReLU - global average pool - flatten - linear(64->10)

A reduction block is the NAS-Bench-201 ``ResNetBasicblock``: ReLU-conv3x3(stride
2)-BN, ReLU-conv3x3-BN, plus a shortcut avgpool(2x2, stride 2)-conv1x1, added.

**Edge semantics (latency-faithful, as the official code runs them).** Every
edge is computed, including ``none`` edges, and every node is the Python
``sum`` of its inputs, in the order of the arch string:

* ``none`` is ``x.mul(0.0)``: one elementwise kernel that outputs zeros. The
  official ``Zero`` op does exactly that, and its zeros are summed like any other
  input. A node whose inputs are all ``none`` still exists (a zero tensor), and
  the edges leaving it are still computed - a conv on zeros costs what a conv
  costs. Nothing is pruned: pruning would predict the latency of a network
  nobody measured.
* ``skip_connect`` is ``nn.Identity`` (a row with no kernel: the Python module
  call is its only cost; the official op is an identity module too).
* ``nor_conv_1x1`` / ``nor_conv_3x3`` are ReLU - conv (no bias) - BN;
  ``avg_pool_3x3`` is ``AvgPool2d(3, stride 1, padding 1, count_include_pad=False)``.
* ``sum`` starts from the integer 0, so node ``j`` costs ``j`` additions, the
  first being ``0 + t`` (a kernel that reads one tensor; the official cell sums
  the same way). Every cell therefore has 6 additions whatever its ops.

So two archs differing only in ``none`` against ``skip_connect`` differ by one
elementwise kernel per edge - which is what a host-bound GPU measures.

**Programs.** ``program="eager"`` (the default) is the network above.
``program="folded"`` is what a graph compiler that folds constants and removes
dead code would run (see :func:`cell_plan`): ``none`` edges and everything that
only feeds them vanish, a node of ``k`` live inputs costs ``k - 1`` additions,
and a network whose output cannot depend on its input (every path crosses a
``none``) runs nothing at all. It exists for measurements of converted models.

**Fast path.** Tracing one network with torch.fx costs about 0.3 s (2 s for the
first) on a 2-core machine, so all 15,625 would take over an hour. Every row of
an NB201 table depends only on (stage, edge op) - a cell's shapes do not depend
on its ops - so
:class:`NB201Composer` traces five probe networks (all six edges the same op)
once, cuts them into pieces (stem, each op's edge rows per stage, the two kinds
of addition, reduction blocks, head) and composes any arch's table from them:
:meth:`NB201Composer.table` returns a :class:`LayerTable` equal row for row to
``trace(build_nb201(arch), (3, 32, 32))``, and :class:`NB201Predictor` prices
thousands of archs at once from row indices into one priced catalogue of pieces.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from ..errors import ModelSpecError
from ..tracing.table import LayerTable

#: the five NAS-Bench-201 edge operations, in the benchmark's own order
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to_node, from_node) of the six edges, in arch-string order
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: (channels, spatial size) of the three stages at a 32x32 input
STAGES: tuple[tuple[int, int], ...] = ((16, 32), (32, 16), (64, 8))
CELLS_PER_STAGE = 5
INPUT_SHAPE: tuple[int, int, int] = (3, 32, 32)
NUM_CLASSES = 10
SPEC_PREFIX = "nb201:"

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


# ----- arch strings ---------------------------------------------------------------------


def parse_arch(text: str) -> tuple[str, ...]:
    """The six edge ops of an arch string, in :data:`EDGES` order.

    Raises :class:`ModelSpecError` naming the offending token for anything that is
    not exactly three ``|``-delimited nodes with inputs ``0..j-1`` in order.
    """
    if not isinstance(text, str) or not text.strip():
        raise ModelSpecError(f"NAS-Bench-201 arch must be a non-empty string, got {text!r}")
    arch = text.strip()
    nodes = arch.split("+")
    if len(nodes) != 3:
        raise ModelSpecError(
            f"NAS-Bench-201 arch {arch!r}: expected 3 nodes separated by '+', got {len(nodes)}")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        if len(node) < 2 or not (node.startswith("|") and node.endswith("|")):
            raise ModelSpecError(
                f"NAS-Bench-201 arch {arch!r}: node {j} {node!r} must start and end with '|'")
        tokens = node[1:-1].split("|")
        if len(tokens) != j:
            raise ModelSpecError(
                f"NAS-Bench-201 arch {arch!r}: node {j} {node!r} needs {j} input(s), has {len(tokens)}")
        for i, token in enumerate(tokens):
            match = _TOKEN.match(token)
            if match is None:
                raise ModelSpecError(
                    f"NAS-Bench-201 arch {arch!r}: token {token!r} of node {j} is not like 'op~i'")
            op, source = match.group(1), int(match.group(2))
            if op not in OPS:
                raise ModelSpecError(
                    f"NAS-Bench-201 arch {arch!r}: unknown op {op!r} in token {token!r} "
                    f"(allowed: {', '.join(OPS)})")
            if source != i:
                raise ModelSpecError(
                    f"NAS-Bench-201 arch {arch!r}: token {token!r} of node {j} should read "
                    f"from node {i} (inputs are listed 0..{j - 1} in order)")
            ops.append(op)
    return tuple(ops)


def arch_string(ops: Sequence[str]) -> str:
    """The canonical arch string of six edge ops (the inverse of :func:`parse_arch`)."""
    ops = tuple(ops)
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ModelSpecError(f"NAS-Bench-201 needs 6 ops from {', '.join(OPS)}, got {ops!r}")
    nodes: list[list[str]] = [[], [], []]
    for (to, frm), op in zip(EDGES, ops):
        nodes[to - 1].append(f"{op}~{frm}")
    return "+".join("|" + "|".join(n) + "|" for n in nodes)


def _ops_of(arch: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(arch, str):
        return parse_arch(arch)
    return parse_arch(arch_string(arch))


# ----- the network ------------------------------------------------------------------------


class Zero(nn.Module):
    """The ``none`` edge: outputs zeros of the input's shape (``x.mul(0.0)``, as the
    official code does, so it costs one elementwise kernel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
    )


def edge_op(op: str, channels: int) -> nn.Module:
    """The module of one cell edge (stride 1, ``channels`` in and out)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return relu_conv_bn(channels, channels, 1, 1, 0)
    if op == "nor_conv_3x3":
        return relu_conv_bn(channels, channels, 3, 1, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ModelSpecError(f"unknown NAS-Bench-201 op {op!r} (allowed: {', '.join(OPS)})")


PROGRAMS = ("eager", "folded")


def _check_program(program: str) -> str:
    if program not in PROGRAMS:
        raise ModelSpecError(f"NAS-Bench-201 program {program!r}: allowed {', '.join(PROGRAMS)}")
    return program


def cell_plan(ops: Sequence[str], program: str = "eager") -> tuple[tuple[int, tuple[int, ...]], ...]:
    """For each node ``j`` (1..3) that is computed, the edges (indices into
    :data:`EDGES`) summed into it, in order.

    ``eager`` computes every edge into every node. ``folded`` is what a graph
    compiler that folds constants and removes dead code runs: an edge is computed
    only if it is not ``none``, its source depends on the input, and its target is
    used by the cell output; a node summing ``k`` computed edges costs ``k - 1``
    additions. Empty when the cell output does not depend on its input.
    """
    ops = tuple(ops)
    if _check_program(program) == "eager":
        return tuple((j, tuple(e for e, (to, _) in enumerate(EDGES) if to == j)) for j in (1, 2, 3))
    live = {0: True}
    for j in (1, 2, 3):
        live[j] = any(live[frm] and ops[e] != "none" for e, (to, frm) in enumerate(EDGES) if to == j)
    if not live[3]:
        return ()
    needed = {3: True}
    for j in (2, 1, 0):
        needed[j] = any(ops[e] != "none" and needed[to] for e, (to, frm) in enumerate(EDGES) if frm == j)
    plan = []
    for j in (1, 2, 3):
        if not (live[j] and needed[j]):
            continue
        plan.append((j, tuple(e for e, (to, frm) in enumerate(EDGES)
                              if to == j and ops[e] != "none" and live[frm])))
    return tuple(plan)


def is_constant(ops: Sequence[str], program: str = "eager") -> bool:
    """True when the network's output does not depend on its input under ``program``
    (``folded`` only: every path through the cell crosses a ``none`` edge), so a
    graph compiler folds the whole network into a constant and runs nothing."""
    return program == "folded" and not cell_plan(ops, program)


class Cell(nn.Module):
    """One NAS-Bench-201 cell: node_j = sum(edge(node_i) for i < j), node 3 is the output.

    ``program="eager"`` runs the official cell (Python ``sum``, every edge);
    ``"folded"`` runs only what :func:`cell_plan` keeps, adding with ``a + b``.
    """

    def __init__(self, ops: Sequence[str], channels: int, program: str = "eager") -> None:
        super().__init__()
        self.edges = nn.ModuleList(edge_op(op, channels) for op in ops)
        self.program = _check_program(program)
        self.plan = cell_plan(ops, program)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = {0: x}
        for j, edges in self.plan:
            if self.program == "eager":
                # Python's sum: 0 + e0 + e1 ..., as the official cell computes a node
                node = sum(self.edges[e](nodes[EDGES[e][1]]) for e in edges)
            else:
                node = None
                for e in edges:
                    out = self.edges[e](nodes[EDGES[e][1]])
                    node = out if node is None else node + out
            nodes[j] = node
        return nodes[3]


class ReductionBlock(nn.Module):
    """The residual block between stages (NAS-Bench-201's ``ResNetBasicblock``, stride 2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = relu_conv_bn(c_in, c_out, 3, 2, 1)
        self.conv_b = relu_conv_bn(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        return self.downsample(x) + out


class Stem(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Head(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.relu(self.bn(x)))
        return self.classifier(torch.flatten(out, 1))


class NB201Network(nn.Module):
    """A NAS-Bench-201 network (see the module docstring for the layout and semantics).

    Blocks (cut points) are ``stem``, ``cells.0`` .. ``cells.16`` and ``head``.
    """

    def __init__(self, arch: str | Sequence[str], num_classes: int = NUM_CLASSES,
                 program: str = "eager") -> None:
        super().__init__()
        self.ops = _ops_of(arch)
        self.arch = arch_string(self.ops)
        self.program = _check_program(program)
        if is_constant(self.ops, program):
            raise ModelSpecError(
                f"NAS-Bench-201 arch {self.arch!r}: under the folded program its output does not "
                "depend on its input (every path crosses a 'none' edge), so nothing runs")
        self.stem = Stem(STAGES[0][0])
        cells: list[nn.Module] = []
        for s, (channels, _) in enumerate(STAGES):
            if s > 0:
                cells.append(ReductionBlock(STAGES[s - 1][0], channels))
            cells.extend(Cell(self.ops, channels, program) for _ in range(CELLS_PER_STAGE))
        self.cells = nn.ModuleList(cells)
        self.head = Head(STAGES[-1][0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)


def build_nb201(arch: str | Sequence[str], num_classes: int = NUM_CLASSES,
                device: str | torch.device = "meta", program: str = "eager") -> NB201Network:
    """An :class:`NB201Network` for ``arch`` (an arch string or six op names).

    Built on ``meta`` by default (shapes only, as netcut traces everything);
    ``device="cpu"`` gives a runnable network with initialised weights.
    ``program``: ``"eager"`` (the official network, the default) or ``"folded"``
    (what a constant-folding graph compiler keeps; see :func:`cell_plan`).
    """
    ops = _ops_of(arch)  # errors before any module is built
    with torch.device(device):
        return NB201Network(ops, num_classes, program)


def resolve_nb201_spec(spec: str) -> tuple[NB201Network, str]:
    """``nb201:<arch string>`` -> (network on meta, display name) for a model-spec hook.

    ``nb201:<index>`` (a NAS-Bench-201 index) needs the index->arch table, which
    ships with the HELP data: see ``netcut.validation.help_nb201.arch_of_index``.
    """
    if not isinstance(spec, str) or not spec.startswith(SPEC_PREFIX):
        raise ModelSpecError(f"not a NAS-Bench-201 spec (expected '{SPEC_PREFIX}<arch>'): {spec!r}")
    body = spec[len(SPEC_PREFIX):].strip()
    if body.isdigit():
        from ..validation.help_nb201 import arch_of_index

        body = arch_of_index(int(body))
    net = build_nb201(body)
    return net, f"{SPEC_PREFIX}{net.arch}"


def count_params(arch: str | Sequence[str], num_classes: int = NUM_CLASSES) -> int:
    """Trainable parameters of the network (what NAS-Bench-201 reports, in units, not MB)."""
    return sum(p.numel() for p in build_nb201(arch, num_classes).parameters())


# ----- the fast path: tables composed from traced pieces ----------------------------------

_FX_FUNCTION = re.compile(r"^(?P<prefix>.*)\.(?P<base>add|mul|flatten)(?:_\d+)?$")


def cell_index(stage: int, cell: int) -> int:
    """Position in ``cells`` of cell ``cell`` (0-4) of stage ``stage`` (0-2)."""
    return stage * (CELLS_PER_STAGE + 1) + cell


def _reduction_index(stage: int) -> int:
    return stage * (CELLS_PER_STAGE + 1) - 1


def _concat_rows(parts: list[tuple[LayerTable, np.ndarray]], model_name: str) -> LayerTable:
    """One LayerTable of the given rows of several tables, in order."""
    def column(attr):
        return np.concatenate([getattr(t, attr)[rows] for t, rows in parts])

    def listed(attr):
        return [getattr(t, attr)[i] for t, rows in parts for i in rows]

    return LayerTable(
        model_name=model_name, input_shape=INPUT_SHAPE, names=listed("names"),
        ops=listed("ops"), blocks=listed("blocks"), in_shapes=listed("in_shapes"),
        out_shapes=listed("out_shapes"), op_class_idx=column("op_class_idx"),
        flops1=column("flops1"), act_read1=column("act_read1"), weight_read=column("weight_read"),
        act_write1=column("act_write1"), params=column("params"), kernels=column("kernels"),
        conv_bias=np.concatenate([t.bias_pass[rows] for t, rows in parts]),
        cut_legal=column("cut_legal"), batch_scaled=column("batch_scaled"),
        supported=column("supported"), tracer="fx")


@dataclass(frozen=True)
class _Step:
    """One row of a cell: row ``part`` of edge ``edge``'s op, or the addition after it."""

    kind: str  # "edge" or "add"
    edge: int = -1
    part: int = 0  # which row of the edge's op
    one_tensor: bool = False  # an add of ``0 + t`` (eager only)


def _cell_steps(ops: tuple[str, ...], program: str, rows_per_op: dict[str, int]):
    """The rows of one cell in execution order, and whether a cut after each is legal.

    Legality follows the tracer's rule (``fx_tracer._legal_cuts``): exactly one
    activation is live after the row, and it is the row's own output. The fast
    path (:meth:`NB201Composer._template`) lists the same rows without legality.
    """
    steps: list[_Step] = []
    consumes: list[tuple] = []
    produces: list[tuple] = []
    node_value: dict[int, tuple] = {0: ("in",)}
    for j, edges in cell_plan(ops, program):
        partial = None
        for e in edges:
            value = node_value[EDGES[e][1]]
            for part in range(rows_per_op[ops[e]]):
                steps.append(_Step("edge", e, part))
                consumes.append((value,))
                value = ("row", len(steps) - 1)
                produces.append(value)
            if program == "eager":  # sum(): 0 + first, then partial + next
                steps.append(_Step("add", e, one_tensor=partial is None))
                consumes.append((value,) if partial is None else (partial, value))
            elif partial is None:
                partial = value
                continue
            else:
                steps.append(_Step("add", e))
                consumes.append((partial, value))
            partial = ("row", len(steps) - 1)
            produces.append(partial)
        node_value[j] = partial
    n = len(steps)
    last_use: dict[tuple, int] = {}
    for r, used in enumerate(consumes):
        for v in used:
            last_use[v] = r
    if n:
        last_use[node_value[3]] = n  # the cell output is used by what follows
    live = np.zeros(n + 1, dtype=int)
    births = [(("in",), 0)] + [(v, r) for r, v in enumerate(produces)]  # "in": before row 0
    for v, born in births:
        if v in last_use:
            live[born] += 1
            live[min(last_use[v], n)] -= 1
    live = np.cumsum(live)[:n]
    legal = [bool(live[r] == 1 and last_use.get(produces[r], -1) > r) for r in range(n)]
    return steps, legal


@dataclass(frozen=True)
class _Slot:
    """Where a composed row comes from and what it is called."""

    row: int  # index into the catalogue
    name: str  # module path, or 'prefix|base' for an fx function node
    function: bool
    block: str
    cut_legal: bool


class NB201Composer:
    """LayerTables of NAS-Bench-201 networks, composed from traced pieces.

    Five probe networks (each with all six edges the same op) are traced once; the
    *catalogue* holds every distinct row they contain: the stem, each op's edge
    rows in each stage, the two kinds of addition per stage (``0 + t`` and
    ``t + t``), the two reduction blocks and the head. An arch's table is a
    sequence of catalogue rows (:meth:`indices`); :meth:`table` adds the names,
    blocks and cut points torch.fx gives it, so the result equals
    ``trace(build_nb201(arch, program=program), (3, 32, 32))`` row for row.
    A network that ``folded`` reduces to a constant has no rows.
    """

    def __init__(self) -> None:
        self._catalogue: LayerTable | None = None
        self._edge: dict[tuple[int, str], np.ndarray] = {}
        self._edge_names: dict[str, list[tuple[str, bool]]] = {}
        self._add: dict[tuple[int, bool], int] = {}
        self._fixed: dict[str, list[tuple[int, str, bool, bool]]] = {}  # stem/reductions/head
        self._steps: dict[tuple, object] = {}  # cell templates and per-stage lookups
        self._cells: dict[tuple, np.ndarray] = {}
        self._indices: dict[tuple, np.ndarray] = {}

    # ----- the catalogue ---------------------------------------------------------------
    @property
    def catalogue(self) -> LayerTable:
        """Every distinct row of any NB201 network, at batch 1 in float32."""
        if self._catalogue is None:
            self._build()
        return self._catalogue

    def _build(self) -> None:
        from ..tracing import trace

        probes = {op: trace(build_nb201([op] * len(EDGES)), INPUT_SHAPE) for op in OPS}
        parts: list[tuple[LayerTable, np.ndarray]] = []
        count = 0

        def take(table: LayerTable, rows) -> np.ndarray:
            nonlocal count
            rows = np.asarray(rows, dtype=int)
            parts.append((table, rows))
            out = np.arange(count, count + len(rows))
            count += len(rows)
            return out

        def block_rows(table: LayerTable, block: str) -> np.ndarray:
            rows = np.flatnonzero(np.asarray(table.blocks) == block)
            if not len(rows) or np.any(np.diff(rows) != 1):
                raise RuntimeError(f"NB201 probe: block {block!r} is not one run of rows")
            return rows

        def split_name(name: str, prefix: str | None = None) -> tuple[str, bool]:
            match = _FX_FUNCTION.match(name)
            if match and (prefix is None or match.group("prefix") == prefix):
                return (match.group("base") if prefix is not None
                        else match.group("prefix") + "|" + match.group("base")), True
            return (name if prefix is None else name[len(prefix):]), False

        base = probes["nor_conv_3x3"]
        for block in ["stem", f"cells.{_reduction_index(1)}", f"cells.{_reduction_index(2)}", "head"]:
            rows = block_rows(base, block)
            self._fixed[block] = [(int(i), *split_name(base.names[r]), bool(base.cut_legal[r]))
                                  for r, i in zip(rows, take(base, rows))]
        for s in range(len(STAGES)):
            k0 = cell_index(s, 0)
            for op in OPS:
                table = probes[op]
                rows = block_rows(table, f"cells.{k0}")
                per_edge = len(rows) // len(EDGES)
                if per_edge * len(EDGES) != len(rows) or any(
                        table.ops[rows[e * per_edge + per_edge - 1]] != "add" for e in range(len(EDGES))):
                    raise RuntimeError(f"NB201 probe {op}: cell rows are not (edge rows, add) x 6")
                edge_rows = rows[: per_edge - 1]
                self._edge[s, op] = take(table, edge_rows)
                if s == 0:
                    prefix = f"cells.{k0}.edges.0"
                    self._edge_names[op] = [split_name(table.names[r], prefix) for r in edge_rows]
                if op == "nor_conv_3x3":
                    for e in (0, 2):  # edge 0's add is 0 + t, edge 2's adds two tensors
                        add_row = rows[e * per_edge + per_edge - 1]
                        self._add[s, e == 0] = int(take(table, [add_row])[0])
        self._catalogue = _concat_rows(parts, "nb201-catalogue")

    # ----- composing -------------------------------------------------------------------
    def _rows_per_op(self) -> dict[str, int]:
        return {op: len(self._edge[0, op]) for op in OPS}  # the same in every stage

    def _template(self, ops: tuple[str, ...], program: str) -> list[tuple]:
        """A cell's rows as stage-free keys (the fast twin of :func:`_cell_steps`)."""
        key = (ops, program)
        template = self._steps.get(key)
        if template is None:
            rows = self._rows_per_op()
            template = []
            for _, edges in cell_plan(ops, program):
                first = True
                for e in edges:
                    template.extend(("edge", ops[e], part) for part in range(rows[ops[e]]))
                    if program == "eager":
                        template.append(("add", first))
                    elif not first:
                        template.append(("add", False))
                    first = False
            self._steps[key] = template
        return template

    def _lookup(self, stage: int) -> dict[tuple, int]:
        key = ("lookup", stage)
        if key not in self._steps:
            table = {("edge", op, part): int(i) for op in OPS
                     for part, i in enumerate(self._edge[stage, op])}
            table.update({("add", one): i for (s, one), i in self._add.items() if s == stage})
            self._steps[key] = table
        return self._steps[key]

    def _cell(self, stage: int, ops: tuple[str, ...], program: str) -> np.ndarray:
        """Catalogue rows of one cell of ``stage``."""
        key = (stage, ops, program)
        if key not in self._cells:
            self.catalogue  # noqa: B018 - builds the pieces
            lookup = self._lookup(stage)
            self._cells[key] = np.array([lookup[t] for t in self._template(ops, program)],
                                        dtype=np.int32)
        return self._cells[key]

    def indices(self, arch: str | Sequence[str], program: str = "eager") -> np.ndarray:
        """Catalogue rows of ``arch``'s network, in execution order (none when the
        ``folded`` network is a constant)."""
        key = (arch if isinstance(arch, str) else tuple(arch), program)
        cached = self._indices.get(key)
        if cached is not None:
            return cached
        ops = _ops_of(arch)  # validates (raises with a clear message)
        _check_program(program)
        if is_constant(ops, program):
            out = np.zeros(0, dtype=np.int32)
        else:
            self.catalogue  # noqa: B018
            seq = [np.array([f[0] for f in self._fixed["stem"]], dtype=np.int32)]
            for s in range(len(STAGES)):
                if s:
                    seq.append(np.array([f[0] for f in self._fixed[f"cells.{_reduction_index(s)}"]],
                                        dtype=np.int32))
                seq.extend([self._cell(s, ops, program)] * CELLS_PER_STAGE)
            seq.append(np.array([f[0] for f in self._fixed["head"]], dtype=np.int32))
            out = np.concatenate(seq)
        out.setflags(write=False)
        self._indices[key] = out
        self._indices[ops, program] = out
        return out

    def _slots(self, ops: tuple[str, ...], program: str) -> list[_Slot]:
        if is_constant(ops, program):
            return []
        slots: list[_Slot] = []

        def fixed(block: str) -> None:
            for row, name, function, legal in self._fixed[block]:
                slots.append(_Slot(row, name, function, block, legal))

        fixed("stem")
        for s in range(len(STAGES)):
            if s:
                fixed(f"cells.{_reduction_index(s)}")
            idx = self._cell(s, ops, program)
            steps, legal = _cell_steps(ops, program, self._rows_per_op())
            for c in range(CELLS_PER_STAGE):
                block = f"cells.{cell_index(s, c)}"
                for row, step, ok in zip(idx, steps, legal):
                    if step.kind == "edge":
                        suffix, function = self._edge_names[ops[step.edge]][step.part]
                        prefix = f"{block}.edges.{step.edge}"
                        name = f"{prefix}|{suffix}" if function else prefix + suffix
                        slots.append(_Slot(int(row), name, function, block, ok))
                    else:
                        slots.append(_Slot(int(row), f"{block}|add", True, block, ok))
        fixed("head")
        return slots

    def table(self, arch: str | Sequence[str], program: str = "eager") -> LayerTable:
        """``arch``'s LayerTable (batch 1, float32), equal to tracing the built network."""
        ops = _ops_of(arch)
        cat = self.catalogue
        slots = self._slots(ops, program)
        idx = np.array([s.row for s in slots], dtype=int)
        if not np.array_equal(idx, self.indices(ops, program)):
            raise RuntimeError("NB201 composer: slots and indices disagree")
        counters: dict[str, int] = defaultdict(int)
        names = []
        for slot in slots:
            if slot.function:  # torch.fx numbers function nodes per name, in graph order
                prefix, base = slot.name.split("|")
                n = counters[base]
                counters[base] += 1
                fx_name = base if n == 0 else f"{base}_{n}"
                names.append(f"{prefix}.{fx_name}" if prefix else fx_name)
            else:
                names.append(slot.name)
        return LayerTable(
            model_name=f"{SPEC_PREFIX}{arch_string(ops)}", input_shape=INPUT_SHAPE, names=names,
            ops=[cat.ops[i] for i in idx], blocks=[s.block for s in slots],
            in_shapes=[cat.in_shapes[i] for i in idx], out_shapes=[cat.out_shapes[i] for i in idx],
            op_class_idx=cat.op_class_idx[idx], flops1=cat.flops1[idx],
            act_read1=cat.act_read1[idx], weight_read=cat.weight_read[idx],
            act_write1=cat.act_write1[idx], params=cat.params[idx], kernels=cat.kernels[idx],
            conv_bias=cat.bias_pass[idx],
            cut_legal=np.array([s.cut_legal for s in slots], dtype=bool),
            batch_scaled=cat.batch_scaled[idx], supported=cat.supported[idx], tracer="fx",
            notes=[] if program == "eager" else [f"NAS-Bench-201 '{program}' program"])

    def index_matrix(self, archs: Sequence[str | Sequence[str]], program: str = "eager") -> np.ndarray:
        """Rows of many archs as one (n_archs, longest) int matrix, padded with
        ``len(catalogue)`` (a row the predictor prices at zero)."""
        rows = [self.indices(a, program) for a in archs]
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), max(width, 1)), len(self.catalogue), dtype=np.int32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def matrix_flops(self, archs: Sequence[str | Sequence[str]], program: str = "eager") -> np.ndarray:
        """FLOPs of conv and linear rows per arch at batch 1 (what FLOP counters report)."""
        from ..opclasses import MATRIX_CLASSES, OP_CLASS_INDEX

        cat = self.catalogue
        matrix = np.isin(cat.op_class_idx, [OP_CLASS_INDEX[c] for c in MATRIX_CLASSES])
        per_row = np.append(np.where(matrix, cat.flops1, 0.0), 0.0)
        return per_row[self.index_matrix(archs, program)].sum(axis=1)


class NB201Predictor:
    """Predicts measured NAS-Bench-201 rows on a profile from one priced catalogue.

    ``predict(rows, profile)`` has the contract of
    :class:`netcut.validation.predictor.RowPredictor` (milliseconds per row, whole
    networks only) and gives the same numbers as tracing each network and
    scheduling it, thousands of archs at a time: each (batch, dtype, mode) group
    prices the catalogue once and gathers every arch's rows from it. A row's
    ``model`` is an arch string, ``nb201:<arch string>`` or ``nb201:<index>``
    (the index needs ``index_to_arch``, e.g. ``help_nb201.arch_of_index``).
    ``program``: which network runs (``eager`` or ``folded``, see :func:`cell_plan`);
    a ``folded`` network that is a constant costs the profile's launch time only.
    """

    CHUNK = 2048  # archs scheduled at once (bounds the temporary arrays to a few MB)

    def __init__(self, composer: NB201Composer | None = None, index_to_arch=None,
                 program: str = "eager") -> None:
        self.composer = composer or NB201Composer()
        self.index_to_arch = index_to_arch
        self.program = _check_program(program)
        self._ops: dict[str, tuple[str, ...]] = {}
        self._matrices: dict[tuple, np.ndarray] = {}
        self._at: dict[tuple, LayerTable] = {}

    def ops_of(self, model: str) -> tuple[str, ...]:
        """The six edge ops a row's ``model`` names."""
        ops = self._ops.get(model)
        if ops is None:
            body = model[len(SPEC_PREFIX):] if model.startswith(SPEC_PREFIX) else model
            body = body.strip()
            if body.isdigit():
                if self.index_to_arch is None:
                    raise ModelSpecError(
                        f"model {model!r} is a NAS-Bench-201 index; give NB201Predictor an index_to_arch")
                body = self.index_to_arch(int(body))
            ops = parse_arch(body)
            self._ops[model] = ops
        return ops

    def _matrix(self, key: tuple, archs) -> np.ndarray:
        """The composer's index matrix of ``archs``, cached under ``key`` (a few at a time)."""
        matrix = self._matrices.get(key)
        if matrix is None:
            matrix = self.composer.index_matrix(archs(), self.program)
            if len(self._matrices) >= 32:
                self._matrices.clear()
            self._matrices[key] = matrix
        return matrix

    def predict(self, rows: list, profile) -> np.ndarray:
        """Milliseconds for each row (a :class:`netcut.measurements.Row`), in order."""
        from ..errors import InvalidInputError

        out = np.empty(len(rows))
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            if row.cut is not None:
                raise InvalidInputError(f"{row.model}: trimmed NAS-Bench-201 rows are not supported")
            if tuple(row.input) != INPUT_SHAPE:
                raise InvalidInputError(
                    f"{row.model}: NAS-Bench-201 networks take input 3x32x32, the row says "
                    f"{'x'.join(map(str, row.input))}")
            groups[(row.batch, row.dtype, row.mode)].append(i)
        for (batch, dtype, mode), members in groups.items():
            models = tuple(rows[i].model for i in members)
            matrix = self._matrix(("rows",) + models, lambda: [self.ops_of(m) for m in models])
            out[members] = self._totals_ms(matrix, profile, batch, dtype, mode)
        return out

    def predict_archs(self, archs: Sequence[str | Sequence[str]], profile, batch: int = 1,
                      dtype: str = "float32", mode: str | None = None) -> np.ndarray:
        """Milliseconds for each arch (strings or op tuples) at one batch/dtype/mode."""
        key = ("archs",) + tuple(a if isinstance(a, str) else tuple(a) for a in archs)
        matrix = self._matrix(key, lambda: archs)
        return self._totals_ms(matrix, profile, batch, dtype, mode or profile.default_mode)

    def _totals_ms(self, matrix: np.ndarray, profile, batch: int, dtype: str, mode: str) -> np.ndarray:
        from ..estimate.roofline import price_rows

        key = (batch, dtype)
        if key not in self._at:
            self._at[key] = self.composer.catalogue.at(batch=batch, dtype=dtype)
        costs = price_rows(self._at[key], profile, mode)
        host = np.append(costs.host_s, 0.0)  # the padding row costs nothing
        device = np.append(costs.device_s, 0.0)
        asynchronous = profile.kind == "gpu" and mode == "eager"
        out = np.empty(len(matrix))
        for start in range(0, len(matrix), self.CHUNK):
            idx = matrix[start:start + self.CHUNK]
            out[start:start + len(idx)] = schedule_totals(host[idx], device[idx], costs.launch_s,
                                                          asynchronous)
        return out * 1e3


def schedule_totals(host: np.ndarray, device: np.ndarray, launch_s: float,
                    asynchronous: bool) -> np.ndarray:
    """Total seconds of many row sequences at once (one per line of ``host``/``device``).

    The same recurrences as :func:`netcut.estimate.timeline.schedule`, along axis 1;
    trailing rows with zero host and device time leave a total unchanged.
    """
    if not asynchronous:
        return launch_s + np.cumsum(host + device, axis=1)[:, -1]
    host_end = launch_s + np.cumsum(host, axis=1)
    device_total = np.cumsum(device, axis=1)
    before = device_total - device
    device_end = device_total + np.maximum.accumulate(host_end - before, axis=1)
    return np.maximum(device_end[:, -1], host_end[:, -1])
