"""Few-shot validation cases: what the fit may see, and the timm/Jetson data mapping."""

import pytest

from netcut import load_hardware
from netcut.measurements import Row
from netcut.validation.fewshot import FewShotCase, run_case, summarize
from netcut.validation.jetson_fewshot import CALIBRATION_MODELS as JETSON_SPLIT, jetson_cases
from netcut.validation.timm_cpu import CALIBRATION_MODELS, SAME_ARCHITECTURE, timm_rows

SHAPE = (3, 224, 224)


def _row(model, ms):
    return Row(model=model, input=SHAPE, batch=1, dtype="float32", mode="eager", median_ms=ms)


def test_held_out_rows_never_reach_the_fit():
    base = load_hardware("epyc-milan-2c")
    train = [_row("resnet18", 30.0), _row("squeezenet1_0", 9.0), _row("mobilenet_v3_small", 6.0)]
    case = FewShotCase("t", "test", base, train + [_row("alexnet", 20.0)],
                       ("resnet18", "squeezenet1_0", "mobilenet_v3_small"))
    absurd = FewShotCase("t", "test", base, train + [_row("alexnet", 2e4)], case.calibration_models)
    a, b = run_case(case), run_case(absurd)
    assert a.calibrated_ms == pytest.approx(b.calibrated_ms, rel=1e-12)  # same fit either way
    s = summarize(b)
    assert s["held_out_models"] == ["alexnet"] and s["calibration_rows"] == 3
    assert s["calibrated"]["mape"] > 0.99  # judged on the held-out row's (absurd) value
    # the stored 90% interval cannot hold a row 1000x off what it predicts
    assert s["interval"] == {"level": 0.9, "held_out_coverage": 0.0}


def test_interval_coverage_counts_held_out_rows_inside_the_stored_interval():
    """A row is inside when measured lies within prediction x exp(-/+ 1.645 x log-sd)."""
    import numpy as np

    from netcut.estimate import interval_bounds
    from netcut.validation.fewshot import FewShotResult

    case = FewShotCase("t", "test", load_hardware("epyc-milan-2c"), [], ("a",))
    predicted = np.array([10.0, 20.0, 30.0, 40.0])
    # log-sd 0.1 at 90%: x exp(-/+0.1645) = x 0.848 .. 1.179, so 8.48 .. 11.79 around 10
    low, high = interval_bounds(predicted, 0.1, 0.9)
    assert (low[0], high[0]) == (pytest.approx(8.483, abs=1e-3), pytest.approx(11.788, abs=1e-3))
    measured = np.array([8.0, 18.0, 35.0, 50.0])  # 18 and 35 inside, 8 and 50 outside
    rows = [_row(m, 1.0) for m in "wxyz"]
    result = FewShotResult(case=case, held_out=rows, measured=measured, datasheet_ms=predicted,
                           calibrated_ms=predicted, calibration={
                               "log_residual_sd": 0.1, "params": {},
                               "leave_models_out": {"n": 0, "mape": None, "within_10": None}})
    assert summarize(result)["interval"]["held_out_coverage"] == 0.5


def test_a_calibration_model_without_rows_is_refused():
    base = load_hardware("epyc-milan-2c")
    with pytest.raises(ValueError, match="without rows"):
        run_case(FewShotCase("t", "test", base, [_row("resnet18", 30.0)], ("resnet18", "vgg11")))


@pytest.mark.parametrize("device", ["i9-10940x", "i7-12700h"])
def test_timm_rows_map_only_same_architectures(device):
    rows = timm_rows(device)
    models = {r.model for r in rows}
    assert set(CALIBRATION_MODELS) <= models and len(rows) > 80
    assert models <= set(SAME_ARCHITECTURE.values())
    # transformers only at the size their position embeddings/windows were built for
    assert all(r.input == SHAPE for r in rows if r.model.startswith(("vit_", "swin_")))
    r50 = [r for r in rows if r.model == "resnet50" and r.input == SHAPE]
    assert len(r50) == 1 and r50[0].median_ms == {"i9-10940x": 14.865, "i7-12700h": 32.78}[device]


def test_jetson_cases_one_per_device_and_mode():
    cases = jetson_cases()
    assert {c.key for c in cases} == {f"{d}-{m}-3shot" for d in ("jetson-nano", "jetson-xavier-agx")
                                     for m in ("eager", "fused")}
    for c in cases:
        assert {r.model for r in c.rows} >= set(JETSON_SPLIT)
        assert {r.mode for r in c.rows} == {c.key.split("-")[-2]}


def test_cpu_repeatability_compares_the_rows_measured_twice(tmp_path):
    """The repeat folder's rows are matched to the first run by key; a row measured
    once only, or a repeat file of another network, does not count."""
    import json

    from netcut.measurements import SCHEMA_NAME, SCHEMA_VERSION
    from netcut.validation.this_cpu import repeatability

    first = [_row("a", 10.0), _row("b", 20.0), _row("c", 30.0)]
    again = tmp_path / "cpu-repeat"
    assert repeatability(first, again) == ""  # no folder: no claim
    again.mkdir()
    for name, rows in (("a", [_row("a", 10.5)]), ("b", [_row("b", 15.0)]), ("z", [_row("z", 1.0)])):
        (again / f"{name}.json").write_text(json.dumps({
            "schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "device": "t", "source": "test",
            "protocol": "test", "environment": {},
            "rows": [r.model_dump(mode="json", exclude_none=True) for r in rows]}))
    text = repeatability(first, again)
    # |10.5/10 - 1| = 5%, |15/20 - 1| = 25%: median and mean 15%, one of two within 10%
    assert "2 rows of 2 networks" in text and "median 15.0%, mean 15.0%" in text
    assert "50% within" in text


def test_cpu_repeatability_divides_out_the_uniform_shift_and_reads_minimums(tmp_path):
    """Run 2 twice as slow on every row repeats perfectly once the shift is divided
    out; judged on minimums, the rows' fastest calls are what is compared."""
    import json

    from netcut.measurements import SCHEMA_NAME, SCHEMA_VERSION
    from netcut.validation.this_cpu import repeatability

    first = [_row("a", 10.0), _row("b", 20.0), _row("c", 30.0)]
    again = tmp_path / "cpu-repeat"
    again.mkdir()
    # medians 2x; minimums: a 2x, b 2x, c 2.6x (held-out shift = median = 2x)
    rows = [_row(m, 2 * v).model_copy(update={"min_ms": k * v})
            for (m, v), k in zip((("a", 10.0), ("b", 20.0), ("c", 30.0)), (2.0, 2.0, 2.6))]
    (again / "x.json").write_text(json.dumps({
        "schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "device": "t", "source": "test",
        "protocol": "test", "environment": {},
        "rows": [r.model_dump(mode="json", exclude_none=True) for r in rows]}))
    text = repeatability(first, again)
    assert "uniformly ×2.000" in text and "3 held-out rows still differ by MAPE 0.0%, 100% within" in text
    # a case judged on minimums passes its rows with each minimum as the row's time
    text = repeatability(first, again, "min")
    # minimums 20, 40, 78 against 10, 20, 30: ratios 2, 2, 2.6 -> shift 2, |1.3 - 1| = 30% on c
    assert "uniformly ×2.000" in text and "MAPE 10.0%, 67% within" in text


def test_cpu_repeatability_names_how_far_each_calibration_network_moved(tmp_path):
    """Beside the rows, the note gives the range of each network's own shift (after the
    uniform one), calibration networks apart: what a 5-shot fit inherits."""
    import json

    from netcut.measurements import SCHEMA_NAME, SCHEMA_VERSION
    from netcut.validation.this_cpu import CALIBRATION_MODELS, repeatability

    cal = CALIBRATION_MODELS[0]
    first = [_row(cal, 10.0), _row("held_a", 20.0), _row("held_b", 30.0)]
    again = tmp_path / "cpu-repeat"
    again.mkdir()
    # held-out ratios 1.0 and 1.1 -> uniform shift 1.05; calibration network 1.05 x 1.05
    rows = [_row(cal, 10.0 * 1.05 * 1.05), _row("held_a", 20.0), _row("held_b", 33.0)]
    (again / "x.json").write_text(json.dumps({
        "schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "device": "t", "source": "test",
        "protocol": "test", "environment": {},
        "rows": [r.model_dump(mode="json", exclude_none=True) for r in rows]}))
    text = repeatability(first, again)
    assert "uniformly ×1.050" in text
    assert "calibration networks by ×1.050-1.050 and the held-out ones by ×0.952-1.048" in text
