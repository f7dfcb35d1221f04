"""The planner: one trace per network, feasibility, proposals, Pareto, reports, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from netcut.errors import InvalidInputError
from netcut.estimate import estimate_table
from netcut.hardware import load_hardware
from netcut.planner.plan import parse_time_ms, plan, price_network
from netcut.planner.cuts import cut_points
from netcut.tracing import trace

MODELS = ["resnet18", "mobilenet_v3_small"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NETCUT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def two_device_plan(tmp_path_factory):
    os.environ["NETCUT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return plan(MODELS, ["jetson-orin-nano", "raspberry-pi-4"], 10.0)


def test_trn_latency_is_the_prefix_schedule_plus_its_head():
    # a TRN's predicted latency must equal estimating the TRN as its own network:
    # prefix rows (same schedule) followed by the global pool and the new linear head
    import torch.nn as nn

    from netcut.planner.trim import GlobalPool

    table = trace("resnet18", (3, 224, 224))
    cuts = cut_points(table)
    profile = load_hardware("jetson-orin-nano")
    _, latency = price_network(table, cuts, profile, 1, "float32", None, 10)
    assert len(latency) == len(cuts)
    cut = cuts[3]
    prefix = table.at()
    stop = cut.row_index + 1
    head = trace(nn.Sequential(GlobalPool(cut.layout), nn.Linear(cut.channels, 10)), cut.shape[1:])
    whole = estimate_table(prefix, profile)
    # the prefix ends where the whole network's schedule has reached row `stop - 1`
    head_est = estimate_table(head, profile)
    host_left = whole.sched.host_end[stop - 1]
    device_left = whole.sched.device_end[stop - 1]
    expected = device_left * 1e3
    for h, d in zip(head_est.costs.host_s, head_est.costs.device_s):
        host_left += h
        device_left = max(device_left, host_left) + d
    expected = max(host_left, device_left) * 1e3
    assert latency[3] == pytest.approx(expected, rel=1e-12)
    assert np.all(np.diff(latency) > 0)  # deeper cuts cost more


@pytest.mark.parametrize("model, shape", [("resnet18", (3, 224, 224)), ("vit_b_16", (3, 224, 224)),
                                          ("swin_t", (3, 224, 224))])
def test_written_out_heads_equal_traced_heads(model, shape):
    import torch.nn as nn

    from netcut.planner.plan import head_table
    from netcut.planner.trim import GlobalPool

    cuts = cut_points(trace(model, shape))[::3]
    heads, spans = head_table(cuts, 7)
    for cut, span in zip(cuts, spans):
        real = trace(nn.Sequential(GlobalPool(cut.layout), nn.Linear(cut.channels, 7)), cut.shape[1:])
        assert heads.ops[span] == real.ops
        for column in ("op_class_idx", "flops1", "act_read1", "weight_read", "act_write1",
                       "params", "kernels", "batch_scaled"):
            np.testing.assert_array_equal(getattr(heads, column)[span], getattr(real, column),
                                          err_msg=f"{model} {cut.name} {column}")


def test_feasibility_proposals_and_pareto(two_device_plan):
    p = two_device_plan
    assert set(p.networks) == set(MODELS) and p.hardware == ["jetson-orin-nano", "raspberry-pi-4"]
    for c in p.candidates:
        assert p.is_feasible(c) == (c.latency_ms <= 10.0)
    for (network, hw), group in p._groups().items():
        ok = [c for c in group if c.latency_ms <= 10.0]
        props = [c for c in p.proposals() if (c.network, c.hardware) == (network, hw)]
        if ok:
            deepest = max(ok, key=lambda c: c.cut_index)
            assert props[0] == deepest and len(props) == min(3, len(ok))
            assert all(c.cut_index < deepest.cut_index for c in props[1:])
        else:
            assert props == []
    front = p.pareto("jetson-orin-nano")
    lat = [c.latency_ms for c in front]
    depth = [c.depth_fraction for c in front]
    assert lat == sorted(lat) and depth == sorted(depth)
    for c in p.feasible():  # nothing feasible dominates a frontier point
        if c.hardware == "jetson-orin-nano":
            assert not any(c.latency_ms < f.latency_ms and c.depth_fraction > f.depth_fraction
                           for f in front)


def test_new_deadline_reprices_nothing(two_device_plan):
    tight = two_device_plan.with_deadline(0.01)
    assert tight.candidates is two_device_plan.candidates
    assert tight.feasible() == [] and tight.proposals() == []
    fastest = tight.fastest("raspberry-pi-4")
    assert fastest.upper_ms == min(c.upper_ms for c in tight.candidates
                                   if c.hardware == "raspberry-pi-4")
    loose = two_device_plan.with_deadline(1e6)
    assert len(loose.off_the_shelf()) == len(MODELS) * 2


def test_matrix_gives_deepest_cut_and_slack(two_device_plan):
    m = two_device_plan.matrix()
    for network in MODELS:
        for hw in two_device_plan.hardware:
            cell = m[network][hw]
            group = [c for c in two_device_plan.candidates if (c.network, c.hardware) == (network, hw)]
            ok = [c for c in group if c.latency_ms <= 10.0]
            if ok:
                best = max(ok, key=lambda c: c.cut_index)
                assert cell["cut"] == best.cut
                assert cell["slack_ms"] == pytest.approx(10.0 - best.latency_ms)
            else:
                assert cell["cut"] is None


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("0.5s", 500.0), ("800us", 0.8), ("7", 7.0),
                                      (" 2 ms ", 2.0)])
def test_deadline_parsing(text, ms):
    assert parse_time_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("deadline", [0, -5, "-2ms", "soon", float("nan"), "ms"])
def test_bad_deadlines_are_refused(deadline):
    with pytest.raises(InvalidInputError):
        plan(["resnet18"], "jetson-orin-nano", deadline)


def test_confidence_on_an_uncalibrated_profile_warns_and_uses_point_predictions():
    with pytest.warns(UserWarning, match="not calibrated"):
        p = plan(["resnet18"], "jetson-orin-nano", 10.0, confidence=0.9)
    assert all(c.upper_ms == c.latency_ms for c in p.candidates)


def test_calibrated_profile_judges_the_upper_bound():
    from scipy.stats import norm

    base = load_hardware("jetson-orin-nano")
    calibrated = base.model_copy(update={"calibration": {"log_residual_sd": 0.2}})
    p = plan(["resnet18"], calibrated, 10.0, confidence=0.9)
    factor = np.exp(norm.ppf(0.9) * 0.2)  # one-sided 90% bound of a log-normal error
    for c in p.candidates:
        assert c.upper_ms == pytest.approx(c.latency_ms * factor)


def test_table_cache_makes_the_second_plan_skip_tracing(monkeypatch):
    import netcut.tracing as tracing

    plan(["resnet18"], "jetson-orin-nano", 10.0)
    calls = []
    real = tracing.trace
    monkeypatch.setattr(tracing, "trace", lambda *a, **k: calls.append(a) or real(*a, **k))
    plan(["resnet18"], "jetson-orin-nano", 10.0)
    assert calls == []


def test_corrupt_cache_file_is_retraced(tmp_path, monkeypatch):
    from netcut.tracing import cache

    monkeypatch.setenv("NETCUT_CACHE_DIR", str(tmp_path / "c"))
    first = cache.trace_cached("resnet18", (3, 224, 224))
    [file] = (tmp_path / "c" / "tables").glob("*.pkl")
    file.write_bytes(b"not a pickle")
    again = cache.trace_cached("resnet18", (3, 224, 224))
    assert again.names == first.names


def test_report_files(two_device_plan, tmp_path):
    from netcut.planner.report import write_report

    written = write_report(two_device_plan, tmp_path / "r.html", command="netcut plan ...")
    html = written["html"].read_text()
    md = written["md"].read_text()
    data = json.loads(written["json"].read_text())
    assert html.count("data:image/png;base64,") == 4  # two plots per device, embedded
    for hw in two_device_plan.hardware:
        assert hw in html and f"## {hw}" in md
    assert data["counts"]["candidates"] == len(two_device_plan.candidates)
    for name in ("depth-jetson-orin-nano.png", "pareto-raspberry-pi-4.png"):
        png = tmp_path / "r_files" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"r_files/{name}" in md


def test_report_into_missing_folder_is_a_clean_error(two_device_plan, tmp_path):
    from netcut.planner.report import write_report

    with pytest.raises(InvalidInputError, match="does not exist"):
        write_report(two_device_plan, tmp_path / "nope" / "r.html")
    assert not (tmp_path / "nope").exists()


def test_cli_plan_json(cli, tmp_path):
    code, out, err = cli("plan", "--hw", "jetson-orin-nano", "--deadline", "10ms", "--models",
                         "resnet18", "--report", str(tmp_path / "p.html"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["deadline_ms"] == 10.0 and data["networks"] == ["resnet18"]
    assert (tmp_path / "p.html").is_file() and (tmp_path / "p.md").is_file()


def test_cli_runners_up(cli):
    code, out, err = cli("plan", "--hw", "jetson-orin-nano", "--deadline", "1000ms", "--models",
                         "resnet18", "--no-report", "--runners-up", "0", "--json")
    assert code == 0, err
    assert [c["cut"] for c in json.loads(out)["proposals"]] == ["layer4.1"]


def test_cli_nothing_feasible_is_an_answer(cli, tmp_path):
    code, out, err = cli("plan", "--hw", "raspberry-pi-4", "--deadline", "0.001ms", "--models",
                         "resnet18", "--no-report")
    assert code == 0, err
    assert "Nothing meets" in out and "Fastest" in out


@pytest.mark.parametrize("args, needle", [
    (["--deadline", "-3ms", "--models", "resnet18"], "deadline"),
    (["--deadline", "soon", "--models", "resnet18"], "not a time"),
    (["--deadline", "10ms", "--models", "resnet1800"], "resnet1800"),
    (["--deadline", "10ms", "--models", "resnet18", "--report", "/nonexistent/dir/r.html"],
     "does not exist"),
])
def test_cli_plan_errors(cli, args, needle):
    code, out, err = cli("plan", "--hw", "jetson-orin-nano", *args)
    assert code == 2 and err.startswith("error:") and needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_unknown_device_suggests(cli):
    code, out, err = cli("plan", "--hw", "jetson-orin-nan", "--deadline", "10ms", "--models",
                         "resnet18", "--no-report")
    assert code == 2 and "jetson-orin-nano" in err


def test_preact_plan_proposes_the_residual_sum_before_the_blocks_relu():
    # the same deadline, proposals from block cuts and from preact cuts: resnet18's
    # deepest feasible block cut ends in its ReLU, the preact one is the sum before it
    block = plan(["resnet18"], "epyc-milan-2c", 1.2, input_shape=(3, 32, 32), runners_up=0)
    pre = plan(["resnet18"], "epyc-milan-2c", 1.2, input_shape=(3, 32, 32), runners_up=0,
               granularity="preact")
    (b,), (p,) = block.proposals(), pre.proposals()
    assert p.cut.startswith(f"{b.cut}.add")  # layer3.0 -> layer3.0.add_4
    assert p.latency_ms <= b.latency_ms <= 1.2
