"""Scaling a profile by calibration-parameter names (`scale_profile`, `predict --scale`)."""

from __future__ import annotations

import json
import math

import pytest

from netcut import load_hardware
from netcut.calibrate.scale import parse_scales, scale_profile
from netcut.errors import InvalidInputError


def test_dispatch_scales_every_eager_host_cost_and_nothing_else():
    base = load_hardware("jetson-xavier-agx")
    moved = scale_profile(base, {"dispatch": 2.0})
    eager, eager0 = moved.overhead["eager"], base.overhead["eager"]
    assert eager.dispatch_us["default"] == pytest.approx(2 * eager0.dispatch_us["default"])
    assert eager.dispatch_us["view"] == pytest.approx(2 * eager0.dispatch_us["view"])
    assert eager.enqueue_us == pytest.approx(2 * eager0.enqueue_us)
    assert eager.kernel_us == eager0.kernel_us and eager.launch_us == eager0.launch_us
    # a fused engine's per-kernel host time is not PyTorch's dispatch
    assert moved.overhead["fused"].dispatch_us["default"] == base.overhead["fused"].dispatch_us["default"]
    for kind, op in (("compute", "conv"), ("compute", "matmul"), ("memory", "elementwise")):
        assert moved.efficiency.fraction(kind, op, "float16") == base.efficiency.fraction(kind, op, "float16")
    assert "scaled x2" in moved.sources["overhead.eager.enqueue_us"]


def test_a_fraction_never_passes_one():
    base = load_hardware("jetson-xavier-agx")
    moved = scale_profile(base, {"compute": 10.0})
    assert moved.efficiency.fraction("compute", "conv", "float16") == 1.0
    assert moved.efficiency.fraction("compute", "conv_depthwise", "float16") == pytest.approx(1.0)
    half = scale_profile(base, {"compute": 0.5})
    assert half.efficiency.fraction("compute", "conv", "float16") == pytest.approx(
        0.5 * base.efficiency.fraction("compute", "conv", "float16"))


def test_scaling_moves_the_prediction_the_right_way():
    from netcut import predict

    base = load_hardware("jetson-xavier-agx")
    slow_host = scale_profile(base, {"dispatch": 2.0})
    a = predict("torchvision:mobilenet_v2", base, dtype="float16").total_ms
    b = predict("torchvision:mobilenet_v2", slow_host, dtype="float16").total_ms
    assert b > 1.5 * a  # batch 1 on a Jetson is host-bound: the total follows dispatch


def test_empty_scales_return_the_profile_itself():
    base = load_hardware("h100-sxm")
    assert scale_profile(base, {}) is base


@pytest.mark.parametrize("hw, scales, message", [
    ("h100-sxm", {"dispach": 2.0}, "unknown parameter"),
    ("epyc-genoa-2c", {"kernel": 2.0}, "GPU profiles only"),
    ("h100-sxm", {"dispatch": 0.0}, "positive, finite"),
    ("h100-sxm", {"dispatch": -1.0}, "positive, finite"),
    ("h100-sxm", {"dispatch": math.nan}, "positive, finite"),
    ("h100-sxm", {"dispatch": math.inf}, "positive, finite"),
    ("h100-sxm", {"network": 2.0}, "has no numbers"),  # only some CPU profiles list it
])
def test_bad_scales_are_one_clear_error(hw, scales, message):
    with pytest.raises(InvalidInputError, match=message):
        scale_profile(load_hardware(hw), scales)


def test_parse_scales():
    assert parse_scales(["dispatch=1.5", " compute = 0.8"]) == {"dispatch": 1.5, "compute": 0.8}
    assert parse_scales([]) == {}
    for bad, message in (("dispatch", "NAME=FACTOR"), ("=2", "NAME=FACTOR"),
                         ("dispatch=fast", "not a number")):
        with pytest.raises(InvalidInputError, match=message):
            parse_scales([bad])
    with pytest.raises(InvalidInputError, match="given twice"):
        parse_scales(["dispatch=1", "dispatch=2"])


def test_cli_predict_scale(cli):
    args = ("predict", "mobilenet_v2", "--hw", "jetson-xavier-agx", "--dtype", "float16", "--json")
    code, out, err = cli(*args)
    assert code == 0, err
    plain = json.loads(out)
    code, out, err = cli(*args, "--scale", "dispatch=2")
    assert code == 0, err
    scaled = json.loads(out)
    assert scaled["scales"] == {"dispatch": 2.0} and "scales" not in plain
    assert scaled["total_ms"] > 1.5 * plain["total_ms"]
    code, out, err = cli("predict", "mobilenet_v2", "--hw", "epyc-genoa-2c", "--scale", "kernel=2")
    assert code == 2 and out == "" and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_a_scaled_calibrated_profile_shows_no_interval(tmp_path):
    """The stored interval was measured for the fitted numbers, not for moved ones."""
    from netcut import predict
    from netcut.calibrate import Calibrator
    from netcut.measurements import Row

    base = load_hardware("jetson-nano")
    rows = [Row(model=m, input=(3, 224, 224), batch=1, dtype="float16", mode="eager", median_ms=ms)
            for m, ms in (("resnet18", 35.0), ("resnet50", 82.0), ("squeezenet1_1", 14.0))]
    fitted = Calibrator(base, params=["dispatch"], cross_validate=False).fit(rows).profile_
    assert predict("torchvision:resnet18", fitted, dtype="float16").interval_ms is not None
    moved = scale_profile(fitted, {"dispatch": 1.5})
    assert predict("torchvision:resnet18", moved, dtype="float16").interval_ms is None
    assert moved.calibration["scaled_after_fit"] == {"dispatch": 1.5}
    assert moved.calibration["models"] == fitted.calibration["models"]
