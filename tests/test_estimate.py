"""The timeline recurrence on synthetic rows, and the Estimate query API on real tables."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

import netcut
from netcut import InvalidInputError, estimate_table, load_hardware, predict, trace
from netcut.estimate.roofline import RowCosts
from netcut.estimate.timeline import schedule


def row_costs(host, device, launch) -> RowCosts:
    device = np.asarray(device, dtype=float)
    zeros = np.zeros_like(device)
    return RowCosts(compute_s=device.copy(), memory_s=zeros, kernel_s=zeros, device_s=device,
                    host_s=np.asarray(host, dtype=float), launch_s=float(launch))


def reference_async(host, device, launch) -> np.ndarray:
    """end[i] = max(end[i-1], host_done[i]) + device[i], as a plain loop."""
    end, previous, host_done = [], 0.0, launch
    for h, d in zip(host, device):
        host_done += h
        previous = max(previous, host_done) + d
        end.append(previous)
    return np.array(end)


# ----- the schedule ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_async_schedule_matches_the_recurrence(seed):
    rng = np.random.default_rng(seed)
    n = 200
    host = rng.uniform(5e-6, 30e-6, n)
    # lognormal device times span both regimes: many rows shorter than a dispatch
    # (host-bound stretches) and some far longer (the device queue builds up)
    device = rng.lognormal(np.log(10e-6), 1.5, n)
    launch = 10e-6
    sched = schedule(row_costs(host, device, launch), asynchronous=True)
    expected = reference_async(host, device, launch)
    np.testing.assert_allclose(sched.device_end, expected, rtol=1e-12, atol=0)
    assert sched.total_s == pytest.approx(expected[-1], rel=1e-12)
    np.testing.assert_allclose(sched.host_end, launch + np.cumsum(host), rtol=1e-12)
    # a kernel starts only once dispatched and once the previous kernel is done
    assert np.all(sched.device_start >= sched.host_end - 1e-15)
    assert np.all(sched.device_start[1:] >= sched.device_end[:-1] - 1e-15)
    # both regimes really occurred: some kernels waited for the host, some for the device
    waited_for_host = np.isclose(sched.device_start, sched.host_end, rtol=1e-12)
    assert waited_for_host.any() and not waited_for_host.all()


def test_host_bound_schedule():
    host = np.full(50, 20e-6)
    device = np.full(50, 1e-6)  # every kernel is done before the next is dispatched
    sched = schedule(row_costs(host, device, 10e-6), asynchronous=True)
    # launch + sum(host) + last device = 10 + 50 * 20 + 1 = 1011 us
    assert sched.total_s == pytest.approx(1011e-6, rel=1e-12)


def test_device_bound_schedule():
    host = np.full(50, 2e-6)
    device = np.full(50, 100e-6)  # the queue never drains
    sched = schedule(row_costs(host, device, 10e-6), asynchronous=True)
    # launch + first host + sum(device) = 10 + 2 + 50 * 100 = 5012 us
    assert sched.total_s == pytest.approx(5012e-6, rel=1e-12)


def test_synchronous_schedule_is_the_plain_sum():
    rng = np.random.default_rng(7)
    host, device = rng.uniform(1e-6, 1e-5, 200), rng.uniform(1e-6, 1e-4, 200)
    sched = schedule(row_costs(host, device, 5e-6), asynchronous=False)
    # launch + sum(host + device), and each row ends where the next starts
    assert sched.total_s == pytest.approx(5e-6 + host.sum() + device.sum(), rel=1e-12)
    np.testing.assert_allclose(sched.device_end, 5e-6 + np.cumsum(host + device), rtol=1e-12)
    np.testing.assert_allclose(sched.host_start[1:], sched.device_end[:-1], rtol=1e-12)


# ----- the Estimate API ------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def traced(spec: str):
    return trace(spec)


@pytest.fixture(scope="module")
def est():
    return estimate_table(traced("resnet18"), "h100-sxm")


def test_estimate_basics(est):
    assert est.hardware == "h100-sxm" and est.kind == "gpu" and est.mode == "eager"
    assert est.batch == 1 and est.dtype == "float32"
    assert est.total_ms > 0
    assert len(est.end_ms) == len(est.row_ms) == len(est.bound) == len(est.table)
    assert set(est.bound) <= {"compute", "memory", "overhead"}
    assert est.total_ms == predict("resnet18", "h100-sxm").total_ms


def test_end_ms_is_non_decreasing(est):
    assert np.all(np.diff(est.end_ms) >= 0)
    assert est.end_ms[-1] == pytest.approx(est.total_ms, rel=1e-12)


def test_row_ms_are_the_steps_of_end_ms(est):
    np.testing.assert_allclose(est.row_ms[1:], np.diff(est.end_ms), rtol=1e-12, atol=1e-15)
    assert np.all(est.row_ms >= 0)


_LAUNCH_BUG = (
    "netcut/estimate/estimate.py Estimate.row_ms starts its diff at launch_s, so the "
    "once-per-pass launch (10 us on h100-sxm) belongs to no row and row_ms / by_block() "
    "sum to total_ms - launch. Fix: np.diff(np.concatenate([[0.0], end]))")


def test_row_ms_sums_to_total(est):
    assert est.row_ms.sum() == pytest.approx(est.total_ms, rel=1e-9)


def test_by_block_sums_to_total(est):
    assert sum(est.by_block().values()) == pytest.approx(est.total_ms, rel=1e-9)


def test_by_block_is_in_network_order(est):
    first_seen = list(dict.fromkeys(est.table.blocks))
    assert list(est.by_block()) == first_seen
    assert sum(est.by_block().values()) == pytest.approx(est.row_ms.sum(), rel=1e-12)


def test_cut_latencies(est):
    cuts = est.cut_latency_ms()
    assert list(cuts) == est.table.cut_indices().tolist()
    values = np.array(list(cuts.values()))
    assert np.all(np.diff(values) >= 0)  # a deeper cut never costs less (a view can be free)
    assert values[-1] == pytest.approx(est.total_ms)  # the last row (fc) is a legal cut


def test_batch_host_bound_eager_vs_graph():
    eager1 = predict("resnet50", "h100-sxm", batch=1, mode="eager").total_ms
    eager16 = predict("resnet50", "h100-sxm", batch=16, mode="eager").total_ms
    graph1 = predict("resnet50", "h100-sxm", batch=1, mode="graph").total_ms
    graph16 = predict("resnet50", "h100-sxm", batch=16, mode="graph").total_ms
    # eager on an H100 is dispatch-bound: 16x the work costs (almost) nothing more
    assert abs(eager16 - eager1) <= 0.10 * eager16
    # without host dispatch the device work shows: batch 16 is clearly slower
    assert graph16 > 1.5 * graph1
    assert graph1 < eager1


def test_batch_as_leading_dimension_of_the_shape():
    a = predict("resnet18", "h100-sxm", input_shape=(4, 3, 224, 224), mode="graph")
    b = predict("resnet18", "h100-sxm", batch=4, mode="graph")
    assert a.batch == b.batch == 4 and a.total_ms == b.total_ms


def test_timeline_is_trace_event_json():
    est = estimate_table(traced("resnet18"), "h100-sxm")
    trace_json = json.loads(json.dumps(est.timeline()))
    events = trace_json["traceEvents"]
    threads = {e["tid"]: e["args"]["name"] for e in events
               if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(threads) == {1, 2}
    assert "host" in threads[1] and "device" in threads[2]
    spans = [e for e in events if e["ph"] == "X"]
    assert {e["tid"] for e in spans} == {1, 2}
    for e in spans:
        assert e["ts"] >= 0 and e["dur"] > 0, e
        assert {"name", "cat", "pid", "tid"} <= set(e)
    # every row has a host dispatch in eager mode (views too: 5 us)
    assert sum(e["tid"] == 1 for e in spans) == len(est.table)


def test_int8_without_a_peak_for_every_class():
    h100 = load_hardware("h100-sxm")
    assert h100.peak_flops("conv", "int8") > 0  # tensor cores have int8 ...
    with pytest.raises(KeyError):
        h100.peak_flops("norm", "int8")  # ... the CUDA cores (batch norm) do not
    with pytest.raises(InvalidInputError, match="int8"):
        predict("resnet18", "h100-sxm", dtype="int8")


def test_unknown_mode_and_bad_batch():
    with pytest.raises(InvalidInputError, match="turbo"):
        predict("resnet18", "h100-sxm", mode="turbo")
    with pytest.raises(InvalidInputError, match="fused"):  # h100-sxm has eager and graph only
        predict("resnet18", "h100-sxm", mode="fused")
    for batch in (0, -1, 1.5, True):
        with pytest.raises(InvalidInputError, match="batch"):
            predict("resnet18", "h100-sxm", batch=batch)


FUSED_PROFILES = [n for n in netcut.list_hardware()
                  if {"graph", "fused"} <= set(load_hardware(n).overhead)]


@pytest.mark.parametrize("profile", FUSED_PROFILES)
def test_fused_not_slower_than_graph(profile):
    for spec in ("resnet18", "mobilenet_v3_small"):
        table = traced(spec)
        fused = estimate_table(table, profile, "fused").total_ms
        graph = estimate_table(table, profile, "graph").total_ms
        assert 0 < fused <= graph, (spec, fused, graph)


def test_some_profiles_have_fused_mode():
    assert "jetson-agx-orin" in FUSED_PROFILES


def test_cpu_schedule_is_synchronous():
    est = estimate_table(traced("resnet18"), "epyc-milan-2c")
    assert not est.sched.asynchronous
    c = est.costs
    # CPU: launch + sum over rows of (dispatch + device time)
    assert est.total_ms == pytest.approx((c.launch_s + (c.host_s + c.device_s).sum()) * 1e3,
                                         rel=1e-12)


# ----- per-dtype efficiency, occupancy, cached vectors -------------------------------

def _one_conv_table(batch=1, dtype="float32"):
    import torch.nn as nn

    # conv 64->64, 3x3, 14x14 output: 2 * 64*14*14 outputs * 64*9 MACs = 14,450,688 FLOPs
    return trace(nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 14, 14)).at(batch=batch, dtype=dtype)


def test_conv_compute_time_with_occupancy_factor():
    from netcut.estimate.roofline import price_rows

    profile = load_hardware("h100-sxm")
    table = _one_conv_table()
    flops = 2 * (64 * 14 * 14) * (64 * 9)
    outputs = 64 * 14 * 14  # 12,544 elements written
    eff = profile.efficiency.fraction("compute", "conv", "float32")
    expected = flops / (494.7e12 * eff) * (1 + profile.saturation_outputs() / outputs)
    costs = price_rows(table, profile, "graph")
    assert table.flops[0] == flops
    assert costs.compute_s[0] == pytest.approx(expected, rel=1e-12)


def test_a_1x1_conv_takes_conv_pointwise_and_a_kxk_conv_takes_conv():
    """A 1x1 dense conv is priced at ``conv_pointwise`` where the profile lists it, and
    at ``conv`` where it does not; a 3x3 conv always at ``conv``."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.efficiency.compute["conv_pointwise"] == 0.46
    assert profile.efficiency.compute["conv"] == 0.68
    compute = profile.compute.model_copy(update={"saturation_outputs_per_core": None})
    profile = profile.model_copy(update={"compute": compute})  # no occupancy term here
    peak = 256.0e9 * (1 + 0.85)  # 2 cores at thread efficiency 0.85: 473.6 GFLOP/s
    pointwise = trace(nn.Conv2d(64, 64, 1, bias=False), (64, 14, 14)).at(batch=1, dtype="float32")
    square = trace(nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 14, 14)).at(batch=1, dtype="float32")
    # 1x1: 2 x 64 x 64 x 196 = 1,605,632 FLOPs at 0.46 x 473.6e9 -> 7.37 us
    assert pointwise.flops[0] == 2 * 64 * 64 * 196
    assert price_rows(pointwise, profile, "eager").compute_s[0] == pytest.approx(
        2 * 64 * 64 * 196 / (0.46 * peak), rel=1e-9)
    # 3x3: 9x the FLOPs (14,450,688) at 0.68 x 473.6e9 -> 44.9 us
    assert price_rows(square, profile, "eager").compute_s[0] == pytest.approx(
        2 * 64 * 64 * 9 * 196 / (0.68 * peak), rel=1e-9)
    compute = dict(profile.efficiency.compute)
    del compute["conv_pointwise"]
    plain = profile.model_copy(update={"efficiency": profile.efficiency.model_copy(update={"compute": compute})})
    assert price_rows(pointwise, plain, "eager").compute_s[0] == pytest.approx(
        2 * 64 * 64 * 196 / (0.68 * peak), rel=1e-9)


def test_a_cpu_conv_with_few_outputs_pays_the_occupancy_term():
    """A CPU profile's ``saturation_outputs_per_core`` slows a conv with n outputs by
    (1 + cores x per_core / n); the thread override scales it; no entry, no term."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.compute.saturation_outputs_per_core == 5650
    assert load_hardware("xeon-gnr-2c", cores=1).saturation_outputs() == 5650
    assert load_hardware("epyc-milan-2c").saturation_outputs() == 0.0
    small = trace(nn.Conv2d(512, 512, 3, padding=1, bias=False), (512, 7, 7)).at(batch=1, dtype="float32")
    # 2 x 512 x 512 x 9 x 49 = 231,211,008 FLOPs at 0.68 x 473.6e9 = 718 us, times
    # (1 + 11,300 / 25,088 outputs) = 1.450: 1.041 ms (the scan timed 1.088 ms)
    flops = 2 * 512 * 512 * 9 * 49
    expected = flops / (0.68 * 256.0e9 * 1.85) * (1 + 2 * 5650 / (512 * 49))
    assert price_rows(small, profile, "eager").compute_s[0] == pytest.approx(expected, rel=1e-9)
    compute = profile.compute.model_copy(update={"saturation_outputs_per_core": None})
    plain = profile.model_copy(update={"compute": compute})
    assert price_rows(small, plain, "eager").compute_s[0] == pytest.approx(
        flops / (0.68 * 256.0e9 * 1.85), rel=1e-9)


def test_a_cpu_op_inside_a_network_moves_its_traffic_once_more():
    """``memory.network_bandwidth_gbs_per_core`` adds each row's whole traffic at that
    bandwidth (times the cores) to its roofline time; a profile without it adds nothing."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("epyc-genoa-2c")
    assert profile.memory.network_bandwidth_gbs_per_core == 81.3
    table = trace(nn.ReLU(), (64, 56, 56)).at(batch=1, dtype="float32")
    costs = price_rows(table, profile, "eager")
    traffic = 2 * 64 * 56 * 56 * 4  # 802,816 bytes read + the same written
    assert table.bytes_read[0] + table.bytes_written[0] == traffic
    # 1,605,632 B at 2 x 81.3 GB/s = 9.9 us on top of the roofline
    extra = traffic / (2 * 81.3e9)
    roof = max(costs.compute_s[0], costs.memory_s[0])
    assert costs.device_s[0] == pytest.approx(roof + extra, rel=1e-9)
    memory = profile.memory.model_copy(update={"network_bandwidth_gbs_per_core": None})
    plain = profile.model_copy(update={"memory": memory})
    assert price_rows(table, plain, "eager").device_s[0] == pytest.approx(roof, rel=1e-9)


def test_channel_block_factor_rounds_each_conv_kind_up_to_whole_blocks():
    """Dense convs round input and output channels, depthwise their channels, grouped
    their outputs; counts below the block (an RGB stem's 3) and non-convs stay as they are."""
    import torch.nn as nn

    from netcut.estimate.roofline import channel_block_factor

    table = trace(nn.Sequential(
        nn.Conv2d(3, 58, 3),                  # stem: 3 stays, 58 -> 64: 64/58
        nn.Conv2d(58, 58, 1),                 # dense: (64/58)^2
        nn.Conv2d(58, 58, 3, groups=58),      # depthwise: 64/58
        nn.Conv2d(58, 64, 1),                 # dense, output on the block: 64/58
        nn.Conv2d(64, 72, 3, groups=4),       # grouped: outputs 72 -> 80: 80/72
        nn.ReLU(),                            # not a conv: 1
        nn.Conv2d(72, 80, 1),                 # 72 -> 80 in, 80 out: 80/72
        nn.Conv2d(80, 96, 1),                 # both on the block: 1
    ), (3, 32, 32))
    expected = [64 / 58, (64 / 58) ** 2, 64 / 58, 64 / 58, 80 / 72, 1.0, 80 / 72, 1.0]
    assert channel_block_factor(table, 16.0) == pytest.approx(expected, rel=1e-12)
    assert channel_block_factor(table, 0.0) == pytest.approx([1.0] * 8)
    assert list(table.out_channels) == [58, 58, 58, 64, 72, 72, 80, 96]


def test_a_cpu_conv_off_the_channel_block_is_priced_as_the_padded_conv():
    """With ``compute.channel_block`` a 58 -> 58 1x1 conv costs the FLOPs of 64 -> 64, plus
    ``misaligned_ns_per_element_per_core`` for each element it reads and writes (on the
    Xeon 6 guest 58 -> 58 at 56x56 took 1.26x as long as 64 -> 64, 0.14 ns more per
    element, calibration/data/cpu-xeon-gnr-2c-alignment-scan.json), or times
    ``misaligned_factor`` for a kind without a per-element cost; a profile without the
    block prices the conv's own FLOPs."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.compute.channel_block == 16
    assert load_hardware("epyc-milan-2c").compute.channel_block is None  # AVX2: not set
    odd = trace(nn.Conv2d(58, 58, 1, bias=False), (58, 56, 56)).at(batch=1, dtype="float32")
    # 2 x 58 x 58 x 3136 = 21,100,288 FLOPs priced as 2 x 64 x 64 x 3136 = 25,690,112
    # at conv_pointwise 0.46 x 473.6 GFLOP/s, times the occupancy term of its own
    # 181,888 outputs (1 + 11,300 / 181,888 = 1.062): 125 us; plus 2 x 181,888 elements
    # x 0.45 ns / 1.85 effective cores off the block: 88 us
    assert odd.flops[0] == 2 * 58 * 58 * 3136
    assert profile.compute.misaligned_ns_per_element_per_core["conv_pointwise"] == 0.45
    padded = 2 * 64 * 64 * 3136 / (0.46 * 473.6e9) * (1 + 11300 / (58 * 3136))
    assert price_rows(odd, profile, "eager").compute_s[0] == pytest.approx(
        padded + 2 * 58 * 3136 * 0.45e-9 / 1.85, rel=1e-9)
    by_factor = profile.model_copy(update={"compute": profile.compute.model_copy(
        update={"misaligned_ns_per_element_per_core": None})})
    assert profile.compute.misaligned_factor["conv_pointwise"] == 1.21
    assert price_rows(odd, by_factor, "eager").compute_s[0] == pytest.approx(padded * 1.21, rel=1e-9)
    compute = profile.compute.model_copy(update={"channel_block": None, "misaligned_factor": None,
                                                 "misaligned_ns_per_element_per_core": None})
    plain = profile.model_copy(update={"compute": compute})
    assert price_rows(odd, plain, "eager").compute_s[0] == pytest.approx(
        padded * (58 / 64) ** 2, rel=1e-9)


def test_a_cpu_activation_with_a_measured_cost_per_element_is_priced_by_it():
    """With ``activation_ns_per_element_per_core`` a GELU's compute time is its outputs x
    the measured ns per core over the effective cores, not 8 nominal FLOPs per element at
    the elementwise efficiency (on the Xeon 6 guest GELU took 0.27 ns per element at 2
    threads, 5x what those FLOPs priced); a ReLU, unlisted, keeps its FLOPs; a profile
    without the field prices every activation by FLOPs."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.compute.activation_ns_per_element_per_core["gelu"] == 0.46
    table = trace(nn.Sequential(nn.GELU(), nn.ReLU()), (64, 56, 56)).at(batch=1, dtype="float32")
    assert list(table.ops) == ["gelu", "relu"]
    elements = 64 * 56 * 56
    costs = price_rows(table, profile, "eager")
    assert costs.compute_s[0] == pytest.approx(elements * 0.46e-9 / 1.85, rel=1e-9)
    by_flops = elements / (0.3 * 473.6e9)  # 1 FLOP per element at the elementwise share
    assert costs.compute_s[1] == pytest.approx(by_flops, rel=1e-9)
    compute = profile.compute.model_copy(update={"activation_ns_per_element_per_core": None})
    plain = price_rows(table, profile.model_copy(update={"compute": compute}), "eager")
    assert plain.compute_s[0] == pytest.approx(8 * by_flops, rel=1e-9)
    assert costs.device_s[0] > plain.device_s[0]  # the math, not the traffic, sets its time now


def test_a_cpu_max_pool_pays_for_its_input_as_well_as_its_windows():
    """With ``compute.pool_input_ns_per_core`` a max-pool costs its window elements at
    the pool_max rate plus each input element once: a 3x3 pool at stride 1 reads one
    input per output, at stride 2 four (on the Xeon 6 guest 11.9 against 13.9 ns per
    output, calibration/data/cpu-xeon-gnr-2c-pool-scan.json). Without the field,
    window elements alone."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    per_core = profile.compute.pool_input_ns_per_core
    assert per_core == 1.88 and profile.effective_cores() == pytest.approx(1.85)
    rate = 0.0018 * 473.6e9  # window elements per second
    for stride, outputs in ((1, 256 * 28 * 28), (2, 256 * 14 * 14)):
        table = trace(nn.MaxPool2d(3, stride, 1), (256, 28, 28)).at(batch=1, dtype="float32")
        assert table.flops[0] == outputs * 9
        priced = price_rows(table, profile, "eager").compute_s[0]
        assert priced == pytest.approx(outputs * 9 / rate + 256 * 28 * 28 * per_core * 1e-9 / 1.85, rel=1e-9)
        compute = profile.compute.model_copy(update={"pool_input_ns_per_core": None})
        plain = profile.model_copy(update={"compute": compute})
        assert price_rows(table, plain, "eager").compute_s[0] == pytest.approx(outputs * 9 / rate, rel=1e-9)
    # an average pool, and every profile without the field, are priced as before
    avg = trace(nn.AvgPool2d(3, 1, 1), (256, 28, 28)).at(batch=1, dtype="float32")
    assert price_rows(avg, profile, "eager").compute_s[0] == pytest.approx(
        256 * 28 * 28 * 9 / (0.0025 * 473.6e9), rel=1e-9)
    assert load_hardware("epyc-genoa-2c").compute.pool_input_ns_per_core is None


def test_dtype_overrides_take_precedence_in_documented_order():
    from netcut.hardware.schema import Efficiency

    eff = Efficiency(compute={"default": 0.5, "conv": 0.4}, memory={"default": 0.7},
                     by_dtype={"float16": {"compute": {"conv": 0.3, "default": 0.2},
                                           "memory": {"default": 0.45}}})
    assert eff.fraction("compute", "conv", "float16") == 0.3      # dtype + class
    assert eff.fraction("compute", "conv", "float32") == 0.4      # class
    assert eff.fraction("compute", "matmul", "float16") == 0.2    # dtype default
    assert eff.fraction("compute", "matmul", "float32") == 0.5    # default
    assert eff.fraction("memory", "norm", "float16") == 0.45


def test_a_copied_profile_does_not_reuse_stale_cached_vectors():
    from netcut.estimate.roofline import price_rows

    profile = load_hardware("h100-sxm")
    table = _one_conv_table(batch=64)
    before = price_rows(table, profile, "graph").device_s[0]  # fills the cache
    faster = profile.model_copy(update={"memory": profile.memory.model_copy(
        update={"bandwidth_gbs": profile.memory.bandwidth_gbs * 10})})
    eff = faster.efficiency.model_copy(update={"compute": {"default": 1.0, "conv": 1.0}})
    faster = faster.model_copy(update={"efficiency": eff})
    assert price_rows(table, faster, "graph").device_s[0] < before


def test_datasheet_only_resets_everything_fitted():
    from netcut.hardware.defaults import GPU_OVERHEAD, datasheet_only

    fitted = load_hardware("h100-sxm")
    plain = datasheet_only(fitted)
    assert plain.compute.saturation_outputs is None
    assert plain.saturation_outputs() == 132 * 2048
    assert plain.efficiency.by_dtype == {}
    assert plain.overhead["eager"].kernel_us == GPU_OVERHEAD["eager"]["kernel_us"]
    assert plain.overhead["eager"].kernel_us_by_dtype == {}


def test_each_extra_kernel_of_an_op_costs_the_host_one_enqueue():
    """An fp16 tensor-core conv in eager mode runs 3 kernels (2 layout transforms):
    its host time is its dispatch plus 2 enqueues; fp32 (1 kernel) is dispatch alone."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("h100-sxm")
    eager = profile.overhead["eager"]
    assert eager.enqueue_us > 0
    table = trace(nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 28, 28))
    half = price_rows(table.at(batch=1, dtype="float16"), profile, "eager")
    full = price_rows(table.at(batch=1, dtype="float32"), profile, "eager")
    dispatch = eager.dispatch_us.get("conv", eager.dispatch_us["default"]) * 1e-6
    assert full.host_s[0] == pytest.approx(dispatch)
    assert half.host_s[0] == pytest.approx(dispatch + 2 * eager.enqueue_us * 1e-6)
    # fused engines enqueue per row already; graph replays have no host per op
    assert price_rows(table.at(batch=1, dtype="float16"), profile, "graph").host_s[0] == 0.0


def test_a_gpu_conv_with_bias_pays_a_separate_pass_over_its_output():
    """PyTorch adds a cuDNN conv's bias in a kernel of its own: one more kernel and
    8 bytes per output element (read + write, float32 width) at the elementwise
    share of bandwidth, in eager and graph mode; a fused engine and CPUs fuse it."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    gpu, cpu = load_hardware("h100-sxm"), load_hardware("xeon-gold-6226")
    with_bias = trace(nn.Conv2d(64, 64, 3, padding=1), (64, 28, 28)).at(batch=16)
    without = trace(nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 28, 28)).at(batch=16)
    assert with_bias.bias_pass.tolist() == [True] and without.bias_pass.tolist() == [False]
    outputs = 16 * 64 * 28 * 28  # 802,816 elements written
    # 802,816 * 8 bytes / (3350 GB/s * elementwise memory efficiency)
    extra = outputs * 8 / (3350e9 * gpu.efficiency.fraction("memory", "elementwise", "float32"))
    for mode in ("eager", "graph"):
        a, b = price_rows(with_bias, gpu, mode), price_rows(without, gpu, mode)
        kernel = gpu.overhead[mode].kernel_us * 1e-6
        assert a.device_s[0] - b.device_s[0] == pytest.approx(extra + kernel, rel=1e-9)
    nano = load_hardware("jetson-nano")  # a profile with a fused (TensorRT-like) mode
    assert (price_rows(with_bias, nano, "fused").device_s[0]
            == pytest.approx(price_rows(without, nano, "fused").device_s[0], rel=1e-9))
    assert (price_rows(with_bias, cpu, "eager").device_s[0]
            == pytest.approx(price_rows(without, cpu, "eager").device_s[0], rel=1e-9))
    # a depthwise conv's bias is fused by ATen's own depthwise kernel
    depthwise = trace(nn.Conv2d(64, 64, 3, padding=1, groups=64), (64, 28, 28))
    assert depthwise.bias_pass.tolist() == [False]


def test_a_half_module_is_priced_in_float16_unless_told_otherwise():
    import torchvision.models as tvm

    half = tvm.resnet18().half()
    assert predict(half, "h100-sxm").total_ms == predict("resnet18", "h100-sxm", dtype="float16").total_ms
    assert predict(half, "h100-sxm", dtype="float32").total_ms == predict("resnet18", "h100-sxm").total_ms


def test_gpu_pooling_is_priced_per_window_element_at_the_float32_rate():
    """A 3x3/2 max-pool on a GPU: 9 window elements per output at the pool efficiency
    of the float32 CUDA-core peak, the same in float16 (measured so on an H200)."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    h200 = load_hardware("h200")
    table = trace(nn.MaxPool2d(3, 2, ceil_mode=True), (64, 112, 112)).at(batch=16)
    outputs = 16 * 64 * 56 * 56  # 3,211,264
    eff = h200.efficiency.fraction("compute", "pool", "float32")
    assert eff == pytest.approx(0.008)
    # 3,211,264 * 9 / (67.0e12 * 0.008) = 53.9 us (measured: 54 us at batch 16)
    expected = outputs * 9 / (67.0e12 * eff)
    full = price_rows(table, h200, "graph")
    half = price_rows(table.at(dtype="float16"), h200, "graph")
    assert full.compute_s[0] == pytest.approx(expected, rel=1e-9)
    assert half.compute_s[0] == pytest.approx(expected, rel=1e-9)
    assert full.compute_s[0] > full.memory_s[0]  # bound by the index work, not bandwidth


def test_half_precision_kernel_counts_follow_the_profiler():
    """On a GPU in eager/graph mode (torch.profiler on an H200): an fp16 3x3 conv on
    tensor cores has 2 layout transforms around it, an fp16 1x1 conv (a GEMM on NCHW)
    has none, and an fp16 BatchNorm is 3 kernels where fp32 is 1."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    gpu = load_hardware("h100-sxm")

    def kernels(module, shape, dtype, profile=gpu, mode="graph"):
        table = trace(module, shape).at(batch=16, dtype=dtype)
        return price_rows(table, profile, mode).kernel_s[0] / (profile.overhead[mode].kernel_us * 1e-6)

    assert kernels(nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 28, 28), "float16") == pytest.approx(3)
    assert kernels(nn.Conv2d(64, 64, 1, bias=False), (64, 28, 28), "float16") == pytest.approx(1)
    assert kernels(nn.BatchNorm2d(64), (64, 28, 28), "float16") == pytest.approx(3)
    assert kernels(nn.BatchNorm2d(64), (64, 28, 28), "float32") == pytest.approx(1)
    nano = load_hardware("jetson-nano")  # a fused engine folds BN away whatever the dtype
    table = trace(nn.BatchNorm2d(64), (64, 28, 28)).at(batch=1, dtype="float16")
    assert price_rows(table, nano, "fused").kernel_s[0] == 0.0


def _with_memory(profile, **fields):
    return profile.model_copy(update={"memory": profile.memory.model_copy(update=fields)})


def test_cpu_cache_bandwidth_prices_resident_activations_and_small_weights_at_cache_speed():
    """With ``cache_bandwidth_gbs_per_core``, a CPU row's activations come from cache
    when they fit in L3, and its weights too when ALL the network's weights fit; weights
    of a network larger than L3 stream from DRAM on every pass."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    base = load_hardware("epyc-genoa-2c")
    assert base.memory.cache_bandwidth_gbs_per_core  # the shipped profile uses it
    dram = base.bandwidth_bytes_per_s()
    cache = base.cache_bandwidth_bytes_per_s()
    assert cache == base.memory.cache_bandwidth_gbs_per_core * base.compute.cores * 1e9 > dram
    eff = base.efficiency.fraction("memory", "elementwise", "float32")

    relu = trace(nn.ReLU(), (64, 56, 56)).at(batch=1)  # 0.8 MB in + 0.8 MB out: fits
    moved = float(relu.bytes_read[0] + relu.bytes_written[0])
    assert price_rows(relu, base, "eager").memory_s[0] == pytest.approx(moved / (cache * eff))
    tiny_l3 = _with_memory(base, l3_cache_mib=0.5)  # the same row no longer fits
    assert price_rows(relu, tiny_l3, "eager").memory_s[0] == pytest.approx(moved / (dram * eff))
    no_cache = _with_memory(base, cache_bandwidth_gbs_per_core=None)  # the old single figure
    assert price_rows(relu, no_cache, "eager").memory_s[0] == pytest.approx(moved / (dram * eff))

    # Linear 4096 -> 4096: 64 MiB of weights > 32 MiB of L3, so they come from DRAM
    big = trace(nn.Linear(4096, 4096, bias=False), (4096,)).at(batch=1)
    weights = 4096 * 4096 * 4.0
    acts = float(big.bytes_read[0] + big.bytes_written[0]) - weights
    eff_mm = base.efficiency.fraction("memory", "matmul", "float32")
    expected = (acts / cache + weights / dram) / eff_mm
    assert price_rows(big, base, "eager").memory_s[0] == pytest.approx(expected)
    small = trace(nn.Linear(512, 512, bias=False), (512,)).at(batch=1)  # 1 MiB: stays cached
    moved = float(small.bytes_read[0] + small.bytes_written[0])
    assert price_rows(small, base, "eager").memory_s[0] == pytest.approx(moved / (cache * eff_mm))


def test_gpu_profiles_get_no_cpu_cache_term():
    from netcut.estimate.roofline import profile_vectors

    gpu = load_hardware("h100-sxm")
    assert profile_vectors(gpu, "float32", "graph").cache_bandwidth == 0.0


def test_onednn_convs_follow_pytorchs_rule_for_which_convs_go_to_onednn():
    """At batch 1 in float32 a dense conv goes to oneDNN above 20480 input elements or
    with 16 taps or more; batch 2 and bf16 always; grouped/depthwise rows are not dense."""
    import torch.nn as nn

    from netcut.estimate.roofline import onednn_convs

    table = trace(nn.Sequential(
        nn.Conv2d(104, 104, 1),               # 104 x 14 x 14 = 20384 inputs: im2col + GEMM
        nn.Conv2d(104, 105, 1),               # 20384 inputs still
        nn.Conv2d(105, 105, 3, padding=1),    # 20580 inputs: oneDNN
        nn.Conv2d(105, 8, 1),                 # oneDNN
        nn.Conv2d(8, 8, 5, padding=2),        # 1568 inputs but a 5x5 kernel: oneDNN
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: its own class
        nn.ReLU(),
    ), (104, 14, 14))
    assert onednn_convs(table).tolist() == [False, False, True, True, True, False, False]
    assert onednn_convs(table.at(batch=2)).tolist() == [True] * 5 + [False, False]
    assert onednn_convs(table.at(dtype="bfloat16")).tolist() == [True] * 5 + [False, False]


def test_a_cpu_onednn_conv_pays_onednn_conv_us_and_a_gemm_conv_dispatch_conv():
    """``overhead.eager.onednn_conv_us`` replaces ``dispatch_us.conv`` for the convs that go
    to oneDNN; without it every dense conv pays ``dispatch_us.conv``."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.overhead["eager"].onednn_conv_us == 67.5
    assert profile.overhead["eager"].dispatch_us["conv"] == 7.8
    table = trace(nn.Sequential(nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 5, padding=2), nn.ReLU()),
                  (16, 8, 8)).at(batch=1, dtype="float32")
    assert price_rows(table, profile, "eager").host_s * 1e6 == pytest.approx([7.8, 67.5, 1.8])
    overhead = profile.overhead["eager"].model_copy(update={"onednn_conv_us": None})
    plain = profile.model_copy(update={"overhead": {"eager": overhead}})
    assert price_rows(table, plain, "eager").host_s * 1e6 == pytest.approx([7.8, 7.8, 1.8])


def test_a_cpu_depthwise_conv_pays_per_element_beside_its_flops():
    """With ``depthwise_input_ns_per_core``/``output`` a depthwise conv costs its FLOPs at
    conv_depthwise plus each input and output element (per core, over the effective cores),
    at the padded channel count off the block; times misaligned_factor there."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    c = profile.compute
    assert (c.depthwise_input_ns_per_core, c.depthwise_output_ns_per_core) == (0.51, 0.22)
    assert profile.efficiency.compute["conv_depthwise"] == 0.53
    peak, cores = 473.6e9, 1.85
    aligned = trace(nn.Conv2d(64, 64, 3, 2, 1, groups=64, bias=False), (64, 56, 56)).at(batch=1, dtype="float32")
    inputs, outputs, flops = 64 * 56 * 56, 64 * 28 * 28, 2 * 9 * 64 * 28 * 28
    assert (aligned.inputs[0], aligned.outputs[0], aligned.flops[0]) == (inputs, outputs, flops)
    moved = (inputs * 0.51 + outputs * 0.22) * 1e-9 / cores
    assert price_rows(aligned, profile, "eager").compute_s[0] == pytest.approx(flops / (0.53 * peak) + moved, rel=1e-9)
    odd = trace(nn.Conv2d(58, 58, 3, 2, 1, groups=58, bias=False), (58, 56, 56)).at(batch=1, dtype="float32")
    # priced as the 64-channel conv above, plus 0.33 ns per core for each element the
    # 58-channel conv reads and writes (off the block)
    assert c.misaligned_ns_per_element_per_core["conv_depthwise"] == 0.33
    assert price_rows(odd, profile, "eager").compute_s[0] == pytest.approx(
        flops / (0.53 * peak) + moved + (58 * 56 * 56 + 58 * 28 * 28) * 0.33e-9 / cores, rel=1e-9)
    compute = c.model_copy(update={"depthwise_input_ns_per_core": None, "depthwise_output_ns_per_core": None})
    flops_only = profile.model_copy(update={"compute": compute})
    assert price_rows(aligned, flops_only, "eager").compute_s[0] == pytest.approx(flops / (0.53 * peak), rel=1e-9)


def test_a_onednn_1x1_conv_pays_per_element_instead_of_the_occupancy_term():
    """With ``pointwise_input_ns_per_core``/``output`` a 1x1 conv PyTorch hands to oneDNN
    costs its FLOPs at conv_pointwise plus each input and output element (per core, over
    the effective cores, at padded channel counts), and no occupancy term; a 1x1 conv on
    the im2col + GEMM path, a 3x3 conv and a profile without the fields are priced as
    before."""
    import torch.nn as nn

    from netcut.estimate.roofline import price_rows

    base = load_hardware("xeon-gnr-2c")
    assert base.compute.pointwise_input_ns_per_core is None  # the shipped profile lists none
    compute = base.compute.model_copy(update={"pointwise_input_ns_per_core": 0.3,
                                              "pointwise_output_ns_per_core": 0.2})
    profile = base.model_copy(update={"compute": compute})
    peak, cores, eff = 473.6e9, 1.85, base.efficiency.compute["conv_pointwise"]
    saturation = base.saturation_outputs()
    onednn = trace(nn.Conv2d(64, 128, 1, bias=False), (64, 28, 28)).at(batch=1, dtype="float32")
    inputs, outputs, flops = 64 * 784, 128 * 784, 2 * 64 * 128 * 784
    moved = (inputs * 0.3 + outputs * 0.2) * 1e-9 / cores
    assert price_rows(onednn, profile, "eager").compute_s[0] == pytest.approx(flops / (eff * peak) + moved, rel=1e-9)
    assert price_rows(onednn, base, "eager").compute_s[0] == pytest.approx(
        flops / (eff * peak) * (1 + saturation / outputs), rel=1e-9)
    # 40 -> 40 channels: 48 in and out move, and the conv is off the block (its own
    # 2 x 40 x 784 elements at misaligned_ns_per_element_per_core, 0.45 for 1x1 convs)
    odd = trace(nn.Conv2d(40, 40, 1, bias=False), (40, 28, 28)).at(batch=1, dtype="float32")
    padded = 48 * 784 * (0.3 + 0.2) * 1e-9 / cores + 2 * 48 * 48 * 784 / (eff * peak)
    assert price_rows(odd, profile, "eager").compute_s[0] == pytest.approx(
        padded + 2 * 40 * 784 * 0.45e-9 / cores, rel=1e-9)
    for module, shape in ((nn.Conv2d(64, 128, 1, bias=False), (64, 14, 14)),  # 12544 inputs: GEMM path
                          (nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 28, 28))):
        table = trace(module, shape).at(batch=1, dtype="float32")
        assert price_rows(table, profile, "eager").compute_s[0] == pytest.approx(
            price_rows(table, base, "eager").compute_s[0], rel=1e-12)


def test_misaligned_factor_needs_a_channel_block():
    """A factor for convs off the block means nothing without the block: one clear error."""
    from netcut.hardware.loader import parse_profile, resolve_profile_path

    text = resolve_profile_path("xeon-gnr-2c").read_text()
    assert "  channel_block: 16\n" in text
    from netcut.errors import HardwareProfileError

    with pytest.raises(HardwareProfileError, match="misaligned_factor and misaligned_ns_per_element_per_core need"):
        parse_profile(text.replace("  channel_block: 16\n", ""), origin="edited.yaml")


def test_weights_beyond_the_usable_cache_stream_from_dram_after_the_compute():
    """With ``memory.usable_cache_mib``, a network whose weights exceed it reads them at the
    DRAM bandwidth, added to the row's roofline and left out of its memory side; a network
    within it is priced as without the field. (The in-network costs still price every
    row's weights: measured on the development set, exempting streamed ones did worse.)"""
    import torch.nn as nn

    from netcut.estimate.in_network import in_network_s
    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.memory.usable_cache_mib == 64 and profile.cache_bytes() == 64 * 2**20
    memory = profile.memory.model_copy(update={"usable_cache_mib": None})
    unset = profile.model_copy(update={"memory": memory})
    dram = profile.bandwidth_bytes_per_s()  # 2 x 13.57 GB/s
    big = trace(nn.Linear(4096, 4096, bias=False), (4096,)).at(batch=1, dtype="float32")  # 64 MiB
    weights = 4096 * 4096 * 4
    assert big.weight_read[0] * 4 == weights
    small = trace(nn.Linear(1024, 1024, bias=False), (1024,)).at(batch=1, dtype="float32")  # 4 MiB
    # within the usable cache the field changes nothing; 64 MiB is not more than 64 MiB
    for table in (small, big):
        assert price_rows(table, profile, "eager").device_s == pytest.approx(
            price_rows(table, unset, "eager").device_s, rel=1e-12)
    # one more layer tips the network over
    two = trace(nn.Sequential(nn.Linear(4096, 4096, bias=False), nn.Linear(4096, 64, bias=False)),
                (4096,)).at(batch=1, dtype="float32")
    costs = price_rows(two, profile, "eager")
    in_network = in_network_s(two, profile.overhead["eager"].in_network.model_dump())
    expected = np.maximum(costs.compute_s, costs.memory_s) + two.weight_read * 4 / dram + in_network
    assert costs.device_s == pytest.approx(expected, rel=1e-9)
    assert costs.memory_s[0] < 1e-6  # its 64 MiB of weights are not in the roofline's memory side
    # 2.47 ms of weights at 27.1 GB/s after 0.12 ms of compute, not hidden under it
    assert costs.device_s[0] - in_network[0] == pytest.approx(weights / dram + costs.compute_s[0], rel=0.01)


def test_in_network_costs_follow_the_op_kind_and_what_ran_before_it():
    """``overhead.eager.in_network`` (CPU): a conv pays its kind's cost per call and its
    weights per MB; the op right after a conv pays ``after_conv``, every other op
    ``other`` (views nothing), each with its input per MB."""
    import torch.nn as nn

    from netcut.estimate.in_network import after_conv_rows, in_network_s

    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.Flatten(),
                          nn.Linear(32 * 8 * 8, 10))
    table = trace(model, (16, 8, 8)).at(batch=1, dtype="float32")
    assert table.ops == ["conv", "batch_norm", "relu", "conv", "view", "linear"]
    assert list(after_conv_rows(table)) == [False, True, False, False, False, True]  # past the view
    terms = {"conv_us": 10.0, "grouped_conv_us": 20.0, "after_conv_us": 30.0, "other_us": 40.0,
             "weights_us_per_mb": 1000.0, "after_conv_us_per_mb": 2000.0, "other_us_per_mb": 3000.0}
    act = 32 * 8 * 8 * 4 / 1e6  # MB each of the 32x8x8 activations
    expected_us = [10 + 1000 * 16 * 32 * 9 * 4 / 1e6,
                   30 + 2000 * act + 1000 * 4 * 32 * 4 / 1e6,  # batchnorm: mean, var, scale, shift
                   40 + 3000 * act,
                   20 + 1000 * 32 * 9 * 4 / 1e6,
                   0.0,
                   30 + 2000 * act + 1000 * (2048 * 10 + 10) * 4 / 1e6]
    assert in_network_s(table, terms) * 1e6 == pytest.approx(expected_us, rel=1e-6)
    assert not in_network_s(table, {}).any()


def test_a_cpu_profile_prices_in_network_costs_only_in_eager_mode_and_only_where_listed():
    """price_rows adds the in-network costs to the device time of a profile that lists
    them; without the block (or outside eager mode) nothing changes."""
    import torch.nn as nn

    from netcut.estimate.in_network import in_network_s
    from netcut.estimate.roofline import price_rows

    profile = load_hardware("xeon-gnr-2c")
    assert profile.overhead["eager"].in_network is not None
    table = trace(nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU()), (3, 32, 32)).at(
        batch=1, dtype="float32")
    eager = profile.overhead["eager"]
    plain = profile.model_copy(update={"overhead": {"eager": eager.model_copy(update={"in_network": None})}})
    extra = price_rows(table, profile, "eager").device_s - price_rows(table, plain, "eager").device_s
    assert extra == pytest.approx(in_network_s(table, eager.in_network.model_dump()), rel=1e-9)
    assert (extra > 0).all()
    assert load_hardware("epyc-genoa-2c").overhead["eager"].in_network is None
