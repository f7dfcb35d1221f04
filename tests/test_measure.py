"""netcut measure: the timing protocol, the written file, interruption, bad input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from netcut.measure import environment, time_forward
from netcut.measure.environment import cpu_identity
from netcut.measurements import load_measurements


class Sleeper(torch.nn.Module):
    """Sleeps a known, growing time per call: the timing stats can be computed by hand."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(0.002 * self.calls)
        return x


def test_protocol_statistics_and_warmup():
    m = Sleeper()
    t = time_forward(m, torch.zeros(1), warmup=2, repeats=5)
    assert m.calls == 7  # 2 warm-up + 5 timed
    # timed calls sleep 6, 8, 10, 12, 14 ms: median 10, min 6 (sleep only adds time)
    assert t.n == 5
    assert 10.0 <= t.median_ms < 10.0 + 5.0
    assert 6.0 <= t.min_ms < t.median_ms <= t.p90_ms


def test_environment_records_what_latency_depends_on():
    env = environment("cpu")
    for key in ("torch", "torchvision", "cpu", "threads", "cudnn_benchmark", "allow_tf32_conv",
                "allow_tf32_matmul", "timestamp", "cpu_id"):
        assert key in env


def test_cpu_identity_tells_zen3_from_zen4_guests_with_the_same_name():
    block = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n"
             "model name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu avx2 fma {extra}\n\n"
             "processor\t: 1\nmodel\t\t: 99\n")
    zen3 = cpu_identity(block.format(model=1, extra=""))
    zen4 = cpu_identity(block.format(model=17, extra="avx512f avx512_bf16"))
    assert (zen3["vendor"], zen3["family"], zen3["model"]) == ("AuthenticAMD", 25, 1)
    assert zen4["model"] == 17  # the first processor's block, not the last
    assert zen3["isa"] == ["avx2", "fma"]
    assert zen4["isa"] == ["avx2", "fma", "avx512f", "avx512_bf16"]
    assert cpu_identity("")["isa"] == []


def test_cli_measure_writes_a_valid_file_with_cuts(cli, tmp_path):
    out = tmp_path / "m.json"
    code, stdout, err = cli("measure", "resnet18", "--input", "3x32x32", "--cuts", "--repeats", "2",
                            "--warmup", "0", "--out", str(out), "--json")
    assert code == 0, err
    parsed = load_measurements(out)  # the shared schema's own validation
    names = [r.cut.last_block if r.cut else "whole" for r in parsed.rows]
    assert names == ["whole", "conv1", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
                     "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    assert all(r.n == 2 and r.min_ms <= r.median_ms <= r.p90_ms for r in parsed.rows)
    assert parsed.environment["threads"] >= 1 and "2 timed calls" in parsed.protocol
    assert len(json.loads(stdout)) == 10
    memory = parsed.environment["memory"]  # --keep-memory is the default
    if memory.get("allocator") == "glibc":
        assert memory["pinned"] is True and memory["mmap_threshold"] == 32 * 2**20


def test_cli_measure_records_an_allocator_left_alone(cli, tmp_path):
    out = tmp_path / "m.json"
    code, _, err = cli("measure", "resnet18", "--input", "3x32x32", "--repeats", "1", "--warmup", "0",
                       "--no-keep-memory", "--out", str(out))
    assert code == 0, err
    assert load_measurements(out).environment["memory"] == {"pinned": False}


def test_keep_freed_memory_pins_glibc_thresholds_or_says_it_did_not():
    import platform

    from netcut.measure.allocator import keep_freed_memory

    done = keep_freed_memory()
    assert set(done) >= {"allocator", "pinned"}
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        # glibc accepts both values (mallopt returns 1); a refused value would read False
        assert done == {"allocator": "glibc", "pinned": True, "mmap_threshold": 32 * 2**20,
                        "trim_threshold": 256 * 2**20}
    else:
        assert done["pinned"] is False


def test_ctrl_c_keeps_finished_rows(cli, tmp_path, monkeypatch):
    import netcut.measure.runner as runner

    real, calls = runner.time_forward, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "time_forward", flaky)
    out = tmp_path / "m.json"
    code, _, err = cli("measure", "resnet18", "--input", "3x32x32", "--cuts", "--repeats", "1",
                       "--warmup", "0", "--out", str(out))
    assert code == 130 and "2 finished rows kept" in err
    assert len(load_measurements(out).rows) == 2


def test_rounds_interleave_the_networks(monkeypatch):
    """--rounds visits every network once per round (full warm-up on the first visit,
    one warm-up call after) and a row's statistics cover all its rounds' calls."""
    import netcut.measure.runner as runner

    visits, real = [], runner.time_samples

    def spy(net, x, warmup, repeats, mode):
        visits.append((id(net), warmup, repeats))
        return real(net, x, warmup, repeats, mode)

    monkeypatch.setattr(runner, "time_samples", spy)
    rows = runner.measure("resnet18", input_shape="3x32x32", cuts=True, warmup=2, repeats=7,
                          rounds=3)
    nets = list(dict.fromkeys(v[0] for v in visits))
    assert len(rows) == len(nets) == 10 and len(visits) == 30
    assert [v[0] for v in visits] == nets * 3  # round-robin, not one network at a time
    assert [v[1] for v in visits] == [2] * 10 + [1] * 20 and {v[2] for v in visits} == {2}
    assert all(r.n == 6 for r in rows)  # 3 rounds x (7 // 3) calls


@pytest.mark.parametrize("args, needle", [
    (["--rounds", "0"], "rounds"),
    (["--rounds", "5", "--repeats", "2"], "rounds"),
    (["--device", "tpu"], "cpu or cuda"),
    (["--out", "/nonexistent/dir/m.json"], "does not exist"),
    (["--threads", "0"], "threads"),
])
def test_cli_measure_errors(cli, tmp_path, args, needle):
    base = ["measure", "resnet18", "--input", "3x32x32"]
    if "--repeats" not in args:
        base += ["--repeats", "1"]
    if "--out" not in args:
        base += ["--out", str(tmp_path / "m.json")]
    code, _, err = cli(*base, *args)
    assert code == 2 and err.startswith("error:") and needle in err
    assert not (tmp_path / "m.json").exists()


def test_graph_mode_needs_cuda(cli, tmp_path):
    out = tmp_path / "m.json"
    code, _, err = cli("measure", "resnet18", "--input", "3x32x32", "--mode", "graph", "--out", str(out))
    assert code == 2 and "--device cuda" in err and not out.exists()
    code, _, err = cli("measure", "resnet18", "--input", "3x32x32", "--mode", "compiled", "--out", str(out))
    assert code == 2 and "eager or graph" in err and not out.exists()
    with pytest.raises(ValueError, match="CUDA"):
        time_forward(torch.nn.Identity(), torch.zeros(1), 0, 1, mode="graph")


def test_header_records_the_mode_and_cudnn_setting():
    from netcut.measure import file_header

    graph = file_header("cpu", warmup=3, repeats=7, mode="graph", cudnn_benchmark=False)
    assert "Graph mode" in graph["protocol"] and "7 timed calls" in graph["protocol"]
    assert graph["environment"]["cudnn_benchmark"] is False
    eager = file_header("cpu", warmup=3, repeats=8, rounds=2)
    assert "Graph mode" not in eager["protocol"] and "2 rounds" in eager["protocol"]


def test_cli_no_cudnn_benchmark_is_recorded_and_restored(cli, tmp_path):
    before = torch.backends.cudnn.benchmark
    out = tmp_path / "m.json"
    code, _, err = cli("measure", "resnet18", "--input", "3x32x32", "--repeats", "1", "--warmup", "0",
                       "--no-cudnn-benchmark", "--out", str(out))
    assert code == 0, err
    assert load_measurements(out).environment["cudnn_benchmark"] is False
    assert torch.backends.cudnn.benchmark == before  # the run's setting does not leak


def test_python_dash_m_netcut_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "netcut", "hw", "list", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert any(p["name"] == "h200" for p in json.loads(done.stdout))


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_cuda_without_gpu_is_a_clear_error(cli, tmp_path):
    code, _, err = cli("measure", "resnet18", "--device", "cuda", "--out", str(tmp_path / "m.json"))
    assert code == 2 and "no CUDA GPU" in err


def test_cli_per_layer_times_every_leaf_call(cli, tmp_path):
    from netcut.measurements import load_layer_measurements

    out = tmp_path / "m.json"
    code, stdout, err = cli("measure", "resnet18", "--input", "3x32x32", "--per-layer", "--repeats", "2",
                            "--warmup", "0", "--out", str(out), "--json")
    assert code == 0, err
    layers = load_layer_measurements(tmp_path / "m.layers.json")
    # resnet18: 21 modules that run once, plus each block's relu called twice (8 blocks)
    import torchvision

    leaves = [n for n, m in torchvision.models.resnet18().named_modules() if n and not list(m.children())]
    assert len(layers.rows) == len(leaves) + 8
    relu = [r for r in layers.rows if r.name == "layer1.0.relu"]
    assert [r.call for r in relu] == [0, 1]
    conv1 = layers.rows[0]
    assert (conv1.name, conv1.type, conv1.in_shape, conv1.out_shape) == ("conv1", "Conv2d", (1, 3, 32, 32), (1, 64, 16, 16))
    assert "isolated timing" in layers.protocol and len(json.loads(stdout)["layers"]) == len(layers.rows)


def test_per_layer_times_self_attention_as_one_layer_with_its_keywords():
    """``nn.MultiheadAttention`` reads its ``out_proj`` weights without calling it: it is
    timed as one layer, called as the network called it (same tensor for query, key
    and value, ``need_weights=False``), and its child is not listed."""
    import torch.nn as nn

    from netcut.measure.layers import leaf_calls, measure_layers

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(16)
            self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
            self.mlp = nn.Linear(16, 16)

        def forward(self, x):
            y = self.norm(x)
            y, _ = self.attention(y, y, y, need_weights=False)
            return self.mlp(x + y)

    x = torch.randn(1, 5, 16)
    calls = leaf_calls(Block().eval(), x)
    assert [c.name for c in calls] == ["norm", "attention", "mlp"]
    attention = calls[1]
    assert attention.args[0] is attention.args[1] is attention.args[2]
    assert attention.kwargs == {"need_weights": False} and attention.out_shape == (1, 5, 16)
    rows = measure_layers(Block().eval(), x, "block", "float32", warmup=0, repeats=2)
    assert [(r.name, r.type) for r in rows] == [
        ("norm", "LayerNorm"), ("attention", "MultiheadAttention"), ("mlp", "Linear")]
    assert rows[1].in_shape == (1, 5, 16) and rows[1].out_shape == (1, 5, 16)


def test_layer_files_are_validated(tmp_path):
    from netcut.errors import MeasurementError
    from netcut.measurements import load_layer_measurements, shipped_measurements

    shipped = load_layer_measurements(shipped_measurements("h100-eager-layers"))
    assert len(shipped.rows) == 6156  # calls numbered in file order where the file has none
    assert {r.call for r in shipped.rows if r.name == "layer1.0.relu" and r.model == "resnet18"} == {0, 1}
    bad = json.loads(shipped_measurements("h100-eager-layers").read_text())
    bad["rows"] = bad["rows"][:3]
    bad["rows"][2]["median_ms"] = float("inf")
    path = tmp_path / "bad.layers.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(MeasurementError, match=r"bad.layers.json: row 2 median_ms = inf: Value error, must be a finite"):
        load_layer_measurements(path)


def _sweep_file(path, medians, *, protocol="p", stamp="t"):
    from netcut.measurements import SCHEMA_NAME, SCHEMA_VERSION

    rows = [{"model": "m", "input": [3, 8, 8], "batch": 1, "dtype": "float32", "mode": "eager",
             **({"cut": {"last_block": cut}} if cut else {}),
             "median_ms": ms, "min_ms": ms * 0.9, "p90_ms": ms * 1.1, "n": 5}
            for cut, ms in medians.items()]
    path.write_text(json.dumps({"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "device": "d",
                                "source": "test", "protocol": protocol,
                                "environment": {"timestamp": stamp}, "rows": rows}))
    return path


def test_merged_sweeps_keep_each_rows_median_over_the_sweeps(tmp_path):
    from netcut.measure.sweeps import merge_sweeps
    from netcut.measurements import MeasurementFile

    paths = [_sweep_file(tmp_path / f"s{i}.json", {None: whole, "layer1": cut}, stamp=f"t{i}")
             for i, (whole, cut) in enumerate([(10.0, 2.0), (14.0, 2.2), (11.0, 9.0)])]
    merged = merge_sweeps(paths)
    parsed = MeasurementFile.model_validate(merged)  # still the shared schema
    whole, cut = parsed.rows
    assert whole.median_ms == 11.0 and cut.median_ms == 2.2  # one slow sweep does not move it
    assert whole.min_ms == pytest.approx(9.0) and cut.p90_ms == pytest.approx(2.42)
    assert whole.n == 15
    assert "Merged from 3 sweeps" in parsed.protocol and parsed.environment["sweeps"] == ["t0", "t1", "t2"]


def test_sweeps_that_do_not_match_are_refused(tmp_path):
    from netcut.errors import MeasurementError
    from netcut.measure.sweeps import merge_sweeps

    a = _sweep_file(tmp_path / "a.json", {None: 1.0, "layer1": 0.5})
    b = _sweep_file(tmp_path / "b.json", {None: 1.0})
    c = _sweep_file(tmp_path / "c.json", {None: 1.0, "layer1": 0.5}, protocol="other")
    with pytest.raises(MeasurementError, match="b.json: not the same rows"):
        merge_sweeps([a, b])
    with pytest.raises(MeasurementError, match="c.json: measured with another protocol"):
        merge_sweeps([a, c])
    with pytest.raises(MeasurementError, match="at least 2"):
        merge_sweeps([a])


def _script(name: str):
    """scripts/NAME.py as a module (scripts/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _microbench():
    return _script("cpu_microbench")


def test_cpu_microbench_conv_scan_counts_what_it_times(monkeypatch):
    """scripts/cpu_microbench.py --conv-scan: every (in, out) pair of each setting, with
    the FLOPs, inputs, outputs and positions the per-element fit reads."""
    bench = _microbench()
    monkeypatch.setattr(bench, "CONV_SCAN", ((3, 2, 4, (2, 3)),))
    rows = bench._conv_scan(1)
    assert [(r["cin"], r["cout"]) for r in rows] == [(2, 2), (2, 3), (3, 2), (3, 3)]
    r = rows[1]  # 3x3 stride 2, 2 -> 3 channels, 8x8 in, 4x4 out
    assert r["flops"] == 2 * 2 * 9 * 3 * 16 and r["inputs"] == 2 * 64
    assert (r["outputs"], r["positions"]) == (3 * 16, 16) and r["ms"] > 0


def test_cpu_microbench_grouped_scan_counts_what_it_times(monkeypatch):
    """scripts/cpu_microbench.py --grouped-scan: every group width at each stage shape,
    with the grouped conv's FLOPs (2 x channels x group width x 9 taps x positions)."""
    bench = _microbench()
    monkeypatch.setattr(bench, "GROUPED_SCAN", ((8, 4),))
    monkeypatch.setattr(bench, "GROUP_WIDTHS", (2, 4))
    rows = bench._grouped_scan(1)
    assert [r["group_width"] for r in rows] == [2, 4]
    assert rows[0]["flops"] == 2 * 8 * 2 * 9 * 16 and rows[1]["flops"] == 2 * rows[0]["flops"]
    assert all(r["ms"] > 0 for r in rows)


def test_cpu_microbench_occupancy_scan_and_fit(monkeypatch):
    """scripts/cpu_microbench.py --occupancy-scan: every (channels, size) of the grid under
    the input cap, with the 3x3 conv's FLOPs and outputs; the fit recovers the occupancy
    term from times made with a known one."""
    bench = _microbench()
    monkeypatch.setattr(bench, "OCCUPANCY_CHANNELS", (2, 4))
    monkeypatch.setattr(bench, "OCCUPANCY_SIZES", (8, 4))
    monkeypatch.setattr(bench, "OCCUPANCY_MAX_INPUT", 2 * 8 * 8)  # drops 4 channels @ 8x8
    rows = bench._occupancy_scan(1)
    assert [(r["channels"], r["size"]) for r in rows] == [(2, 8), (2, 4), (4, 4)]
    assert rows[1]["flops"] == 2 * 2 * 2 * 9 * 16 and rows[1]["outputs"] == 2 * 16
    assert all(r["ms"] > 0 for r in rows)
    # 100 GFLOP/s and s = 5,000 outputs: ms = FLOPs / 1e8 x (1 + 5000 / outputs)
    synthetic = [{"flops": f, "outputs": o, "ms": f / 1e8 * (1 + 5000 / o)}
                 for f, o in ((2e8, 2e5), (5e7, 5e4), (2.5e7, 1.25e4), (1e7, 3e3))]
    fit = bench.occupancy_fit(synthetic)
    assert fit["saturation_outputs"] == pytest.approx(5000, rel=1e-9)
    assert fit["gflops_per_s_at_many_outputs"] == pytest.approx(100, rel=1e-9)
    assert fit["mape"] < 1e-9


def test_cpu_microbench_attention_scan_counts_what_netcut_prices(monkeypatch):
    """scripts/cpu_microbench.py --attention-scan: each block's FLOPs are netcut's count
    for one self-attention row: the q/k/v and output projections (4 x 2 x tokens x
    width^2) and the two products over the tokens (2 x 2 x tokens^2 x width)."""
    bench = _microbench()
    monkeypatch.setattr(bench, "ATTENTION_SCAN", ((5, 16, 2),))
    (row,) = bench._attention_scan(1)
    assert (row["tokens"], row["width"], row["heads"]) == (5, 16, 2) and row["ms"] > 0
    assert row["flops"] == 4 * 2 * 5 * 16 * 16 + 2 * 2 * 5 * 5 * 16


def test_cpu_microbench_alignment_scan_times_each_count_beside_the_padded_one(monkeypatch):
    """scripts/cpu_microbench.py --alignment-scan: each count off a multiple of 16 and the
    next multiple, as a 1x1, a 3x3 and a depthwise 3x3 conv."""
    bench = _microbench()
    monkeypatch.setattr(bench, "ALIGNMENT_GRID", ((4, (18,)),))
    rows = bench._alignment_scan(1)
    assert [(r["conv"], r["channels"]) for r in rows] == [
        ("1x1", 18), ("3x3", 18), ("depthwise 3x3", 18), ("1x1", 32), ("3x3", 32), ("depthwise 3x3", 32)]
    assert [r["groups"] for r in rows] == [1, 1, 18, 1, 1, 32]
    assert all(r["ms"] > 0 and r["size"] == 4 for r in rows)


def test_cpu_microbench_depthwise_scan_and_fit(monkeypatch):
    """scripts/cpu_microbench.py --depthwise-scan: stride-2 rows read 4x their outputs;
    the fit recovers a fixed cost and per-element rates from times made with them."""
    bench = _microbench()
    monkeypatch.setattr(bench, "DEPTHWISE_GRID", ((3, 2, 4, (8,)), (5, 1, 4, (16,))))
    rows = bench._depthwise_scan(1)
    assert rows[0]["inputs"] == 8 * 8 * 8 and rows[0]["outputs"] == 8 * 16
    assert rows[1]["flops"] == 2 * 25 * 16 * 16 and all(r["ms"] > 0 for r in rows)
    # 50 us + 0.3 ns per input + 0.1 ns per output + FLOPs at 200 GFLOP/s
    shapes = [(1e5, 1e5, 2e6), (4e5, 1e5, 1.8e6), (2e5, 2e5, 1e7), (5e4, 5e4, 5e5), (8e5, 2e5, 3e6)]
    synthetic = [{"inputs": i, "outputs": o, "flops": f, "ms": 0.05 + 3e-7 * i + 1e-7 * o + f / 2e8}
                 for i, o, f in shapes]
    fit = bench.depthwise_fit(synthetic)
    assert fit["fixed_us"] == pytest.approx(50, rel=1e-6)
    assert (fit["ns_per_input"], fit["ns_per_output"]) == (pytest.approx(0.3, rel=1e-6), pytest.approx(0.1, rel=1e-6))
    assert fit["gflops_per_s"] == pytest.approx(200, rel=1e-6) and fit["mape"] < 1e-9


def test_cpu_microbench_conv_path_scan_names_the_kernel_either_side_of_the_threshold(monkeypatch):
    """scripts/cpu_microbench.py --conv-path-scan: each pair straddles PyTorch's 20480-element
    threshold, and the profiler sees im2col + GEMM below it and oneDNN above (the rule
    netcut.estimate.roofline.onednn_convs prices); the fit reports the tiny oneDNN conv."""
    bench = _microbench()
    monkeypatch.setattr(bench, "CONV_PATH_PAIRS", ((104, 105, 8, 1, 14), (408, 418, 8, 3, 7)))
    rows = bench._conv_path_scan(1)
    assert [r["inputs"] for r in rows] == [20384, 20580, 19992, 20482]
    assert [r["backend"] for r in rows] == ["_slow_conv2d_forward", "mkldnn_convolution"] * 2
    fit = bench.conv_path_fit(rows, {"conv": 8.0, "conv_onednn": 67.0})
    assert fit["onednn_conv_us"] == 67.0 and fit["backends_as_expected"]
    assert fit["pair_steps_us"] == pytest.approx([(rows[1]["ms"] - rows[0]["ms"]) * 1e3,
                                                  (rows[3]["ms"] - rows[2]["ms"]) * 1e3])


def test_cpu_microbench_chain_scan_times_each_op_alone_and_the_chain_whole(monkeypatch):
    """scripts/cpu_microbench.py --chain-scan: every op of a chain is its own module (so a
    conv's weights are its own), and the extra per op is the chain's time less the sum of
    its ops timed alone, over the ops."""
    bench = _microbench()
    monkeypatch.setattr(bench, "CHAIN_SHAPES", ((8, 4),))
    monkeypatch.setattr(bench, "CHAIN_REPEATS", 2)
    rows = bench._chain_scan(2)
    assert [r["pattern"] for r in rows] == ["bn-relu", "conv1x1-bn-relu"]
    conv = rows[1]
    assert conv["ops"] == 6 and set(conv["alone_ms"]) == {"conv1x1", "bn", "relu"}
    assert conv["weights_mib_per_conv"] == 8 * 8 * 4 / 2**20 and rows[0]["weights_mib_per_conv"] == 0.0
    assert conv["extra_us_per_op"] == pytest.approx(
        (conv["chain_ms"] - sum(conv["alone_ms"].values())) * 1e3 / 6)


def test_cpu_microbench_weight_stream_scan_and_the_usable_cache(monkeypatch):
    """scripts/cpu_microbench.py --weight-stream-scan: chains of 4 MiB linears; the usable
    cache is the most weights streamed closer to the cache copy rate than to DRAM's."""
    bench = _microbench()
    monkeypatch.setattr(bench, "WEIGHT_STREAM_LAYERS", (1, 2))
    rows = bench._weight_stream_scan(1)
    assert [r["weights_mib"] for r in rows] == [4.0, 8.0]
    assert all(r["gb_per_s"] == pytest.approx(r["weights_mib"] * 2**20 / r["ms"] / 1e6) for r in rows)
    scan = [{"weights_mib": mib, "gb_per_s": rate} for mib, rate in ((16, 50), (64, 48), (96, 33), (128, 28))]
    assert bench.usable_cache_mib(scan, cache_gbs=56, dram_gbs=27) == 64  # 48 >= 41.5 > 33
    assert bench.usable_cache_mib(scan, cache_gbs=200, dram_gbs=27) == 0.0  # nothing that fast


def test_cpu_microbench_pointwise_scan_and_fit(monkeypatch):
    """scripts/cpu_microbench.py --pointwise-scan: every (in, out) pair at each size whose
    input oneDNN takes (the profiler names its kernel), none it would not; the fit
    recovers per-element rates and a FLOP rate from times made with them after a given
    fixed cost."""
    bench = _microbench()
    monkeypatch.setattr(bench, "POINTWISE_GRID", ((40, (16, 32)), (8, (16,))))  # 16 @ 8x8: GEMM path
    rows = bench._pointwise_scan(1)
    assert [(r["cin"], r["cout"], r["size"]) for r in rows] == [(16, 16, 40), (16, 32, 40), (32, 16, 40), (32, 32, 40)]
    assert {r["backend"] for r in rows} == {"mkldnn_convolution"} and all(r["ms"] > 0 for r in rows)
    assert rows[1]["flops"] == 2 * 16 * 32 * 1600 and (rows[1]["inputs"], rows[1]["outputs"]) == (16 * 1600, 32 * 1600)
    # 60 us + 0.2 ns per input + 0.15 ns per output + FLOPs at 300 GFLOP/s
    shapes = [(1e5, 1e5, 1e7), (4e5, 1e5, 4e7), (1e5, 4e5, 4e7), (8e5, 8e5, 3e8), (5e4, 8e5, 2e7)]
    synthetic = [{"inputs": i, "outputs": o, "flops": f, "ms": 0.06 + 2e-7 * i + 1.5e-7 * o + f / 3e8}
                 for i, o, f in shapes]
    fit = bench.pointwise_fit(synthetic, 60.0)
    assert (fit["ns_per_input"], fit["ns_per_output"]) == (pytest.approx(0.2, rel=1e-6), pytest.approx(0.15, rel=1e-6))
    assert fit["gflops_per_s"] == pytest.approx(300, rel=1e-6) and fit["mape"] < 1e-9


def test_cpu_microbench_primitive_scan_times_the_convs_together_and_alone(monkeypatch):
    """scripts/cpu_microbench.py --primitive-scan: K convs of one shape, then K of as many
    shapes, each set called in turn and each conv alone; the extra per conv is the
    difference over K."""
    bench = _microbench()
    monkeypatch.setattr(bench, "PRIMITIVE_COUNTS", (3,))
    rows = bench._primitive_scan(2)
    assert [(r["convs"], r["distinct_shapes"]) for r in rows] == [(3, False), (3, True)]
    for r in rows:
        assert r["together_ms"] > 0 and r["alone_ms"] > 0
        assert r["extra_us_per_conv"] == pytest.approx((r["together_ms"] - r["alone_ms"]) * 1e3 / 3)


def test_cpu_profile_numbers_prices_1x1_convs_from_the_pointwise_scan():
    """scripts/cpu_profile_numbers.py --pointwise refits the scan after the profile's own
    oneDNN fixed cost: conv_pointwise is the fit's FLOP rate over the peak, and the
    per-element times are per core (x the effective cores). Without it, nothing changes."""
    import json
    from pathlib import Path

    numbers = _script("cpu_profile_numbers")
    data = Path(__file__).resolve().parents[1] / "calibration" / "data"

    def load(name):
        return json.loads((data / f"cpu-xeon-gnr-2c-{name}.json").read_text())

    common = dict(micro=load("micro-keepmem"), grouped=None, occupancy=load("occupancy-scan"),
                  peak_per_core=256.0, conv_paths=load("conv-path-scan"))
    scan = load("pointwise-scan")
    fit = _microbench().pointwise_fit(scan["pointwise_scan"], 67.5)  # the conv-path scan's fixed cost
    derived = numbers.derive(**common, pointwise=scan)
    assert derived["efficiency"]["compute"]["conv_pointwise"] == round(fit["gflops_per_s"] / (256 * 1.85), 2)
    assert derived["pointwise_input_ns_per_core"] == round(fit["ns_per_input"] * 1.85, 2)
    assert derived["pointwise_output_ns_per_core"] == round(fit["ns_per_output"] * 1.85, 2)
    plain = numbers.derive(**common)
    assert "pointwise_input_ns_per_core" not in plain
    from netcut import load_hardware  # the shipped profile: the micro-benchmarks' 1x1 convs

    shipped = load_hardware("xeon-gnr-2c").efficiency.compute["conv_pointwise"]
    assert plain["efficiency"]["compute"]["conv_pointwise"] == shipped


def test_misaligned_factor_is_the_median_time_over_the_next_multiple():
    """scripts/cpu_profile_numbers.py --alignment: per kind, time(C) / time(next multiple
    of 16) at the same size, median over the scan; counts on a multiple give no ratio."""
    numbers = _script("cpu_profile_numbers")
    scan = [{"conv": "1x1", "size": 56, "channels": c, "ms": ms}
            for c, ms in ((24, 1.2), (32, 1.0), (40, 1.5), (48, 1.0), (58, 1.3), (64, 1.0))]
    scan += [{"conv": "depthwise 3x3", "size": 7, "channels": 232, "ms": 2.0},
             {"conv": "depthwise 3x3", "size": 7, "channels": 240, "ms": 1.6},
             {"conv": "3x3", "size": 14, "channels": 80, "ms": 1.0}]  # no neighbour: no ratio
    assert numbers.misaligned_factor(scan) == {"conv_pointwise": 1.3, "conv_depthwise": 1.25}


def test_cpu_microbench_pool_scan_and_fit(monkeypatch):
    """scripts/cpu_microbench.py --pool-scan: a 3x3 pool at stride 1 has as many outputs
    as inputs, at stride 2 a quarter; the fit recovers both rates from times made with them."""
    bench = _microbench()
    monkeypatch.setattr(bench, "POOL_GRID", ((3, 1, 8, 8), (3, 2, 8, 8), (2, 2, 8, 8)))
    rows = bench._pool_scan(1)
    assert [r["outputs"] for r in rows] == [8 * 64, 8 * 16, 8 * 16]
    assert [r["window_elements"] for r in rows] == [8 * 64 * 9, 8 * 16 * 9, 8 * 16 * 4]
    assert all(r["inputs"] == 8 * 64 and r["ms"] > 0 for r in rows)
    # 1.2 ns per window element + 1.0 per input
    synthetic = [{**r, "ms": (1.2 * r["window_elements"] + 1.0 * r["inputs"]) * 1e-6} for r in rows]
    fit = bench.pool_fit(synthetic)
    assert fit["ns_per_window_element"] == pytest.approx(1.2, rel=1e-6)
    assert fit["ns_per_input"] == pytest.approx(1.0, rel=1e-6) and fit["mape"] < 1e-9
    assert fit["mape_window_elements_only"] > 0.05  # one rate per window element cannot fit it


def test_the_shipped_xeon_gnr_profile_holds_what_its_micro_benchmarks_give():
    """scripts/cpu_profile_numbers.py derives, from the committed micro-benchmark files,
    exactly the efficiencies, per-op costs, bandwidths and occupancy term that
    hwmodels/xeon-gnr-2c.yaml ships: its numbers are regenerated, not typed in."""
    import json
    from pathlib import Path

    from netcut import load_hardware

    numbers = _script("cpu_profile_numbers")
    data = Path(__file__).resolve().parents[1] / "calibration" / "data"

    def load(name):
        return json.loads((data / f"cpu-xeon-gnr-2c-{name}.json").read_text())

    derived = numbers.derive(load("micro-keepmem"), load("grouped-scan"), load("occupancy-scan"), 256.0,
                             attention=load("attention-scan"), pool=load("pool-scan"),
                             depthwise=load("depthwise-scan"), conv_paths=load("conv-path-scan"),
                             alignment=load("alignment-scan"), weight_stream=load("weight-stream-scan"),
                             in_network=load("leaves-in-patterns"), activations=load("activation-scan"))
    profile = load_hardware("xeon-gnr-2c")
    for cls, value in derived["efficiency"]["compute"].items():
        assert profile.efficiency.compute[cls] == value, cls
    for cls, value in derived["efficiency"]["memory"].items():
        assert profile.efficiency.memory[cls] == value, cls
    assert dict(profile.overhead["eager"].dispatch_us) == derived["dispatch_us"]
    for field, value in derived["memory"].items():
        assert getattr(profile.memory, field) == value, field
    assert profile.compute.saturation_outputs_per_core == derived["saturation_outputs_per_core"]
    assert profile.compute.pool_input_ns_per_core == derived["pool_input_ns_per_core"]
    assert profile.compute.depthwise_input_ns_per_core == derived["depthwise_input_ns_per_core"]
    assert profile.compute.depthwise_output_ns_per_core == derived["depthwise_output_ns_per_core"]
    assert profile.overhead["eager"].onednn_conv_us == derived["onednn_conv_us"]
    assert dict(profile.compute.misaligned_factor) == derived["misaligned_factor"]
    assert dict(profile.compute.misaligned_ns_per_element_per_core) == derived["misaligned_ns_per_element_per_core"]
    assert profile.memory.usable_cache_mib == derived["usable_cache_mib"]
    assert dict(profile.compute.activation_ns_per_element_per_core) == derived["activation_ns_per_element_per_core"]
    assert profile.overhead["eager"].in_network.model_dump() == derived["in_network"]
    assert profile.memory.network_bandwidth_gbs_per_core is None  # in_network replaced it
    assert profile.compute.peak_gflops_per_core["avx512"]["float32"] == 256.0


def test_resnet_blocks_in_network_times_every_block_inside_and_alone(capsys):
    """scripts/resnet_blocks_in_network.py: one row per residual block, the prefix
    difference and the block alone; anything but a ResNet is one clear error."""
    blocks = _script("resnet_blocks_in_network")
    rows = blocks.blocks_in_network("resnet18", 1)
    assert [r["block"] for r in rows] == [f"layer{s}.{i}" for s in (1, 2, 3, 4) for i in (0, 1)]
    assert all(r["alone_ms"] > 0 and r["extra_ms"] == pytest.approx(r["in_network_ms"] - r["alone_ms"])
               for r in rows)
    assert rows[-1]["weights_mib"] == pytest.approx(2 * 512 * 512 * 9 * 4 / 2**20, rel=0.01)  # + BN
    assert blocks.main(["mobilenet_v2"]) == 2
    assert "give a torchvision ResNet" in capsys.readouterr().err


def test_leaves_in_network_times_every_leaf_call_inside_and_alone(capsys):
    """scripts/leaves_in_network.py: one row per leaf call (a block's ReLU twice), inside
    and alone, with the bytes it moved; the per-kind table sums the rows; an unknown
    model is one clear error."""
    leaves = _script("leaves_in_network")
    result = leaves.leaves_in_network("resnet18", 1)
    rows = {(r["leaf"], r["call"]): r for r in result["leaves"]}
    assert ("layer1.0.relu", 1) in rows and ("layer1.0.relu", 2) not in rows
    assert rows[("conv1", 0)]["kind"] == "kxk" and rows[("layer2.0.downsample.0", 0)]["kind"] == "1x1"
    assert rows[("conv1", 0)]["in_bytes"] == 3 * 224 * 224 * 4
    assert rows[("conv1", 0)]["out_bytes"] == 64 * 112 * 112 * 4
    assert rows[("conv1", 0)]["weight_bytes"] == 64 * 3 * 49 * 4
    assert all(r["inside_ms"] > 0 and r["alone_ms"] > 0 for r in rows.values())
    kinds = {k["kind"]: k for k in leaves.by_kind(result)}
    assert kinds["ReLU"]["ops"] == sum(r["kind"] == "ReLU" for r in rows.values()) == 17
    assert kinds["kxk"]["inside_ms"] == pytest.approx(sum(r["inside_ms"] for r in rows.values() if r["kind"] == "kxk"))
    assert leaves.beyond_leaves_ms(result) == pytest.approx(
        result["pass_ms"] - sum(r["inside_ms"] for r in rows.values()))
    chain = leaves.leaves_in_network("chain-bn-relu", 1)
    assert [r["kind"] for r in chain["leaves"]] == ["BatchNorm2d", "ReLU"] * 4
    assert chain["leaves"][0]["in_bytes"] == 64 * 56 * 56 * 4 and chain["leaves"][0]["weight_bytes"] == 2 * 64 * 4
    assert leaves.main(["not_a_net"]) == 2
    assert "not_a_net: not a torchvision.models builder" in capsys.readouterr().err


def test_the_in_network_fit_recovers_known_costs_from_synthetic_leaf_calls():
    """leaves_in_network.in_network_terms: leaf calls whose extra time follows known
    per-call and per-MB costs (by kind and by what ran before) give those costs back;
    the first leaf of a chain (it pays the pass's start) and views are left out."""
    leaves = _script("leaves_in_network")
    truth = {"conv_us": 11.0, "grouped_conv_us": 19.0, "after_conv_us": 21.0, "other_us": 6.0,
             "weights_us_per_mb": 17.0, "after_conv_us_per_mb": 9.0, "other_us_per_mb": 3.0}
    rng = np.random.default_rng(0)
    networks = []
    for n in range(6):
        calls, previous = [], None
        for i, kind in enumerate(["kxk", "BatchNorm2d", "ReLU", "depthwise", "BatchNorm2d", "Flatten",
                                  "1x1", "ReLU", "grouped", "ReLU", "Linear"] * 2):
            mb_in, mb_w = rng.uniform(0.05, 4.0), rng.uniform(0.0, 3.0) * (kind not in ("ReLU", "Flatten"))
            conv = kind in ("kxk", "1x1", "depthwise", "grouped")
            after = not conv and previous in ("kxk", "1x1", "depthwise", "grouped")
            us = (truth["conv_us"] * (kind in ("kxk", "1x1")) + truth["grouped_conv_us"] * (kind in ("depthwise", "grouped"))
                  + truth["weights_us_per_mb"] * mb_w
                  + after * (truth["after_conv_us"] + truth["after_conv_us_per_mb"] * mb_in)
                  + (not conv and not after) * (truth["other_us"] + truth["other_us_per_mb"] * mb_in))
            if i == 0 or kind == "Flatten":
                us = 500.0  # the stem's pass start, a view's noise: neither may be fitted
            calls.append({"kind": kind, "in_bytes": mb_in * 1e6, "weight_bytes": mb_w * 1e6,
                          "inside_ms": 1.0 + us / 1e3, "alone_ms": 1.0})
            if kind != "Flatten":
                previous = kind
        networks.append({"model": f"chain-{n}", "pass_ms": 30.0, "pass_with_hooks_ms": 31.0, "leaves": calls})
    assert leaves.in_network_terms(networks) == pytest.approx(truth, abs=0.051)
    merged = leaves.merge_runs([networks[0], {**networks[0], "leaves": [
        {**c, "inside_ms": c["inside_ms"] + 0.004} for c in networks[0]["leaves"]]}])
    assert merged["leaves"][1]["extra_ms"] == pytest.approx(networks[0]["leaves"][1]["inside_ms"] - 1.0 + 0.002)



def test_leaves_in_network_patterns_give_the_in_network_fit_and_runs_merge(capsys):
    """``patterns --json``: every generic chain, and the in-network costs fitted to them
    (the profile's seven fields, none negative); ``--runs 2`` keeps per-call medians and
    each call's median difference."""
    leaves = _script("leaves_in_network")
    assert leaves.main(["patterns", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [n["model"] for n in out["networks"]] == list(leaves.PATTERNS)
    assert set(out["in_network"]) == {"conv_us", "grouped_conv_us", "after_conv_us", "other_us",
                                      "weights_us_per_mb", "after_conv_us_per_mb", "other_us_per_mb"}
    assert all(v >= 0 for v in out["in_network"].values())
    assert leaves.main(["chain-bn-relu", "--repeats", "1", "--runs", "2", "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    chain = merged["networks"][0]
    assert chain["runs"] == 2 and all("extra_ms" in leaf for leaf in chain["leaves"])
    assert "in_network" not in merged  # fitted only over the generic patterns


def test_dev_set_score_calibrates_on_the_five_and_scores_the_other_networks(capsys, tmp_path):
    """scripts/dev_set_score.py: for row medians and minimums, the development networks'
    rows (none a calibration network) scored datasheet-only and calibrated, with the
    fit's scales; ``--set`` changes the profile first; a malformed one is one clear error."""
    from netcut.validation.this_cpu import CALIBRATION_MODELS

    dev = _script("dev_set_score")
    assert dev.main(["--set", "overhead.eager.launch_us=95", "--per-network", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["statistic"] for r in results] == ["median", "min"]
    for r in results:
        assert r["rows"] == sum(n["rows"] for n in r["networks"].values()) > 100
        assert not set(r["networks"]) & set(CALIBRATION_MODELS)
        assert 0 < r["dev_calibrated"]["mape"] < 1 and "compute" in r["scales"]
    profile = dev.with_settings("xeon-gnr-2c", ["overhead.eager.launch_us=95"], tmp_path)
    assert "launch_us: 95.0" in profile.read_text()
    with pytest.raises(SystemExit, match="give path=value"):
        dev.with_settings("xeon-gnr-2c", ["launch_us"], tmp_path)


def test_misaligned_cost_per_element_is_the_extra_time_over_the_elements_moved():
    """cpu_profile_numbers.misaligned_ns_per_element: per kind, the median over the scan of
    (time(C) - time(next multiple of 16)) / (2 x C x size^2), in ns; aligned counts and
    counts without a neighbour are skipped."""
    numbers = _script("cpu_profile_numbers")
    scan = [{"conv": "1x1", "size": 56, "channels": 24, "ms": 0.1 + 2 * 24 * 3136 * 0.3e-6},
            {"conv": "1x1", "size": 56, "channels": 32, "ms": 0.1},
            {"conv": "1x1", "size": 7, "channels": 232, "ms": 0.05 + 2 * 232 * 49 * 0.2e-6},
            {"conv": "1x1", "size": 7, "channels": 240, "ms": 0.05},
            {"conv": "1x1", "size": 7, "channels": 456, "ms": 0.2 + 2 * 456 * 49 * 0.4e-6},
            {"conv": "1x1", "size": 7, "channels": 464, "ms": 0.2},
            {"conv": "depthwise 3x3", "size": 14, "channels": 40, "ms": 0.3},  # no 48 beside it
            {"conv": "depthwise 3x3", "size": 14, "channels": 64, "ms": 0.2}]
    assert numbers.misaligned_ns_per_element(scan) == pytest.approx({"conv_pointwise": 0.3})
