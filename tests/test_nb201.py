"""NAS-Bench-201: the builder, the composed fast path against torch.fx, and the HELP data.

The expensive fixture is the composer's catalogue (five probe networks traced once,
a few seconds); everything else prices arrays.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from netcut import ModelSpecError
from netcut.estimate import estimate_table
from netcut.hardware import load_hardware
from netcut.hardware.defaults import datasheet_only
from netcut.measurements import Row
from netcut.tracing import trace
from netcut.validation.predictor import RowPredictor
from netcut.zoo.nb201 import (EDGES, INPUT_SHAPE, OPS, NB201Composer, NB201Predictor, arch_string,
                              build_nb201, cell_plan, count_params, is_constant, parse_arch,
                              resolve_nb201_spec)

#: NAS-Bench-201 index 1 (the example of the brief): 3 conv3x3, a pool, 2 skips per cell
ARCH_1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL = {op: arch_string([op] * 6) for op in OPS}
MIXED_NONE = "|none~0|+|nor_conv_1x1~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
#: node 1 is zero (its only input is none), yet its outgoing conv still runs in eager
DEAD_NODE = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|"


@functools.lru_cache(maxsize=1)
def composer() -> NB201Composer:
    return NB201Composer()


# ----- arch strings --------------------------------------------------------------------------


def test_parse_and_format_round_trip():
    ops = parse_arch(ARCH_1)
    assert ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect",
                   "nor_conv_3x3", "skip_connect")
    assert arch_string(ops) == ARCH_1
    assert [to for to, _ in EDGES] == [1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("text, fragment", [
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'conv_5x5~0'"),
    ("|none~0|+|none~0|none~1|", "3 nodes"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|", "node 3"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "'none~1'"),
    ("|none~0|+|none~0|none-1|+|none~0|none~1|none~2|", "'none-1'"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1"),
    ("", "non-empty"),
])
def test_malformed_arch_names_the_bad_part(text, fragment):
    with pytest.raises(ModelSpecError) as info:
        build_nb201(text)
    message = str(info.value)
    assert fragment in message and "\n" not in message


# ----- the network -----------------------------------------------------------------------------


def test_network_runs_and_stage_shapes():
    net = build_nb201(ARCH_1, device="cpu").eval()
    with torch.no_grad():
        out = net(torch.zeros(2, *INPUT_SHAPE))
    assert out.shape == (2, 10)
    table = composer().table(ARCH_1)
    last = {b: table.out_shapes[max(i for i, x in enumerate(table.blocks) if x == b)]
            for b in ("stem", "cells.4", "cells.5", "cells.10", "cells.11", "cells.16", "head")}
    assert last == {"stem": (1, 16, 32, 32), "cells.4": (1, 16, 32, 32), "cells.5": (1, 32, 16, 16),
                    "cells.10": (1, 32, 16, 16), "cells.11": (1, 64, 8, 8),
                    "cells.16": (1, 64, 8, 8), "head": (1, 10)}


def test_parameter_counts_match_nas_bench_201():
    # Hand count for ARCH_1 (3 conv3x3 edges per cell; conv3x3 edge = 9C^2 weights + 2C BN):
    #   stem 3*16*9 + 32 = 464; cells 5*(27C^2 + 6C) at C=16/32/64 = 35,040 + 139,200 + 554,880;
    #   reduction 16->32: 4,608+64 + 9,216+64 + 512 = 14,464; 32->64: 18,432+128 + 36,864+128
    #   + 2,048 = 57,600; head BN 128 + linear 640+10 = 778.  Total 802,426.
    assert count_params(ARCH_1) == 802_426
    # NAS-Bench-201's CIFAR-10 extremes (its API reports params in MB = millions):
    # 0.073306 (every edge none) and 1.531546 (every edge nor_conv_3x3).
    assert count_params(ALL["none"]) == 73_306
    assert count_params(ALL["nor_conv_3x3"]) == 1_531_546


def test_flops_match_nas_bench_201():
    # NAS-Bench-201 reports 7.78305 and 220.11969 MFLOPs for the extremes: conv + linear
    # multiply-adds plus the classifier's 10 bias additions. netcut counts 2 FLOPs per MAC.
    flops = composer().matrix_flops([ALL["none"], ALL["nor_conv_3x3"]])
    assert flops / 2 + 10 == pytest.approx([7.78305e6, 220.11969e6], abs=1)


def test_none_edges_run_and_are_summed():
    # eager: every none edge is one mul kernel, every node sums with Python's sum (0 + t ...):
    # 15 cells x (6 mul + 6 add) + stem 2 + reductions 2 x 9 + head 5 = 205 rows
    table = composer().table(ALL["none"])
    assert len(table) == 205
    assert table.ops.count("mul") == 90 and table.ops.count("add") == 90 + 2
    # a node whose inputs are all none still exists: its outgoing conv is computed
    dead = composer().table(DEAD_NODE)
    assert dead.ops.count("conv") == 2 * 15 + 1 + 2 * 3  # conv3x3 + conv1x1 per cell, stem, reductions


def test_folded_program_keeps_what_a_compiler_keeps():
    # node 1 = none(node 0) is constant: the edge 1->2 is folded away, node 2 = skip(node 0)
    assert cell_plan(parse_arch(DEAD_NODE), "folded") == ((2, (1,)), (3, (3, 5)))
    assert cell_plan(parse_arch(DEAD_NODE), "eager") == ((1, (0,)), (2, (1, 2)), (3, (3, 4, 5)))
    assert is_constant(parse_arch(ALL["none"]), "folded")
    assert not is_constant(parse_arch(ALL["none"]), "eager")
    with pytest.raises(ModelSpecError, match="does not depend on its input"):
        build_nb201(ALL["none"], program="folded")
    assert len(composer().indices(ALL["none"], "folded")) == 0


def test_spec_hook_resolves_arch_and_index():
    net, name = resolve_nb201_spec(f"nb201:{ARCH_1}")
    assert name == f"nb201:{ARCH_1}" and net.arch == ARCH_1
    net, name = resolve_nb201_spec("nb201:1")  # index 1 of NAS-Bench-201 (via HELP's table)
    assert net.arch == ARCH_1
    with pytest.raises(ModelSpecError, match="outside"):
        resolve_nb201_spec("nb201:99999")


# ----- composed == traced ----------------------------------------------------------------------

COLUMNS = ("names", "ops", "blocks", "in_shapes", "out_shapes")
ARRAYS = ("op_class_idx", "flops1", "act_read1", "weight_read", "act_write1", "params", "kernels",
          "cut_legal", "batch_scaled", "supported")
CASES = [(ARCH_1, "eager"), (ALL["none"], "eager"), (ALL["skip_connect"], "eager"),
         (MIXED_NONE, "eager"), (DEAD_NODE, "eager"), (MIXED_NONE, "folded"), (DEAD_NODE, "folded")]


@pytest.mark.parametrize("arch, program", CASES)
def test_composed_table_equals_traced_table(arch, program):
    traced = trace(build_nb201(arch, program=program), INPUT_SHAPE)
    composed = composer().table(arch, program)
    for name in COLUMNS:
        assert getattr(composed, name) == getattr(traced, name), name
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(composed, name), getattr(traced, name), err_msg=name)

    # and the fast predictor prices it exactly as tracing + RowPredictor would
    rows = [Row(model=arch, input=INPUT_SHAPE, batch=b, dtype="float32", mode="eager", median_ms=1.0)
            for b in (1, 256)]
    reference = RowPredictor()
    reference._tables[(arch, INPUT_SHAPE)] = traced  # the traced table, not a new trace
    fast = NB201Predictor(composer(), program=program)
    for hw in ("titan-rtx", "xeon-gold-6226"):
        profile = load_hardware(hw)
        np.testing.assert_allclose(fast.predict(rows, profile), reference.predict(rows, profile),
                                   rtol=1e-9)
        whole = estimate_table(traced.at(batch=256), profile).sched.total_s * 1e3
        assert fast.predict_archs([arch], profile, batch=256)[0] == pytest.approx(whole, rel=1e-9)


def test_constant_folded_network_costs_the_launch_only():
    profile = load_hardware("raspberry-pi-4")  # launch_us 5
    fast = NB201Predictor(composer(), program="folded")
    assert fast.predict_archs([ALL["none"]], profile)[0] == pytest.approx(0.005)


def test_predictor_rejects_what_it_cannot_price():
    fast = NB201Predictor(composer())
    row = Row(model=ARCH_1, input=(3, 64, 64), batch=1, dtype="float32", mode="eager", median_ms=1.0)
    with pytest.raises(Exception, match="3x32x32"):
        fast.predict([row], load_hardware("titan-rtx"))
    with pytest.raises(ModelSpecError, match="index_to_arch"):
        fast.predict([row.model_copy(update={"model": "nb201:5", "input": INPUT_SHAPE})],
                     load_hardware("titan-rtx"))


# ----- HELP ------------------------------------------------------------------------------------


def test_help_table_loads():
    from netcut.validation.help_nb201 import DEVICES, arch_of_index, load_help_nb201

    data = load_help_nb201()
    assert len(data.arch_str) == 15_625 and len(data.latency_ms) == 27
    assert all(len(v) == 15_625 for v in data.latency_ms.values())
    assert sorted(data.reference.tolist()) == [9, 55, 431, 1462, 6196, 8636, 9881, 11982, 13479, 14451]
    assert len(data.held_out) == 15_615 and not set(data.held_out) & set(data.reference)
    assert arch_of_index(1) == ARCH_1
    simulated = {d.column for d in DEVICES if not d.measured}
    assert simulated == {"eyeriss", "fpga"}
    assert all(d.profile is None for d in DEVICES if not d.measured)
    assert {d.column for d in DEVICES} == set(data.latency_ms)
    for device in DEVICES:
        if device.profile:
            load_hardware(device.profile)  # every measured column has a shipped profile


def test_zero_shot_ranks_a_sample_of_networks():
    """Datasheet-only profiles against HELP's measurements on 600 random networks: this can fail
    (FLOPs alone rank the host-bound GPU column at about 0.8)."""
    from netcut.validation.help_nb201 import load_help_nb201

    data = load_help_nb201()
    sample = np.random.default_rng(0).choice(data.held_out, 600, replace=False)
    archs = [data.arch_str[i] for i in sample]
    fast = NB201Predictor(composer())
    flops = composer().matrix_flops(archs)
    for column, hw in (("titan_rtx_1", "titan-rtx"), ("gold_6226", "xeon-gold-6226")):
        measured = data.latency_ms[column][sample]
        predicted = fast.predict_archs(archs, datasheet_only(load_hardware(hw)))
        rho = spearmanr(measured, predicted).statistic
        assert rho >= 0.93, (column, rho)
        assert rho > spearmanr(measured, flops).statistic + 0.05, column


def test_validation_summary_and_renderers():
    from netcut.validation.help_nb201 import (nb201_markdown, nb201_png, nb201_predictor,
                                              nb201_summary, nb201_validation)

    predictor = nb201_predictor(composer=composer())
    result = nb201_validation(["titan_rtx_32", "eyeriss"], predictor=predictor)
    summary = nb201_summary(result)
    rows = {r["column"]: r for r in summary["devices"]}
    gpu = rows["titan_rtx_32"]
    assert gpu["n"] == 15_615 and gpu["measured"]
    assert gpu["zero_shot"]["spearman"] > 0.9 and gpu["calibrated"]["spearman"] > 0.9
    assert gpu["calibrated"]["mape"] < 0.25 and gpu["calibration"]["params"]
    assert not rows["eyeriss"]["measured"] and "zero_shot" not in rows["eyeriss"]
    assert summary["n_measured_devices"] == 1  # simulated columns never enter an average
    assert summary["means_measured"]["zero_shot"]["spearman"] == gpu["zero_shot"]["spearman"]
    text = nb201_markdown(summary, "nb201.png")
    assert text.startswith("## NAS-Bench-201") and "eyeriss (simulated)" in text
    assert "![Spearman per device](nb201.png)" in text
    assert nb201_png(summary).startswith(b"\x89PNG")
