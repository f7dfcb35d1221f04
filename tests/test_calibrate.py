"""Calibrator: recovers known parameters from synthetic rows, refuses what it cannot
fit, and writes a profile whose interval `netcut predict` shows."""

import json

import numpy as np
import pytest

from netcut import load_hardware
from netcut.calibrate import CATALOGUE, Calibrator
from netcut.calibrate.calibrator import _Problem
from netcut.calibrate.yaml_out import profile_yaml
from netcut.errors import InvalidInputError
from netcut.hardware import parse_profile
from netcut.measurements import SCHEMA_NAME, SCHEMA_VERSION, Cut, Row
from netcut.opclasses import OP_CLASSES
from netcut.planner.cuts import cut_points
from netcut.tracing.cache import trace_cached
from netcut.validation.predictor import RowPredictor

MODELS = ("resnet18", "mobilenet_v3_small", "squeezenet1_0")
SHAPE = (3, 224, 224)
PREDICTOR = RowPredictor()


def _rows(models=MODELS, mode="eager", batch=1):
    rows = []
    for m in models:
        rows.append(Row(model=m, input=SHAPE, batch=batch, dtype="float32", mode=mode, median_ms=1.0))
        for cp in cut_points(trace_cached(m, SHAPE)):
            rows.append(Row(model=m, input=SHAPE, batch=batch, dtype="float32", mode=mode,
                            median_ms=1.0, cut=Cut(last_block=cp.name)))
    return rows


def _measured_on(profile, truth: dict, rows, noise=0.0, seed=0):
    """Rows 'measured' on ``profile`` with the catalogue scales in ``truth`` applied."""
    params = [p for p in CATALOGUE if p.name in truth]
    problem = _Problem(profile, params, rows, PREDICTOR, ["float32"])
    ms = problem.predict(np.array([truth[p.name] for p in params]))
    ms = ms * np.exp(np.random.default_rng(seed).normal(0, noise, len(ms))) if noise else ms
    return [r.model_copy(update={"median_ms": float(v)}) for r, v in zip(rows, ms)], problem.profile(
        np.array([truth[p.name] for p in params]))


@pytest.fixture(scope="module")
def cpu():
    return load_hardware("epyc-milan-2c")


@pytest.fixture(scope="module")
def recovered(cpu):
    truth = {"compute": 0.6, "dispatch": 2.0, "memory": 0.8}
    rows, true_profile = _measured_on(cpu, truth, _rows())
    return Calibrator(cpu).fit(rows), true_profile, rows


def test_recovers_known_cpu_parameters_exactly(recovered):
    cal, true_profile, _ = recovered
    got, want = cal.profile_, true_profile
    for kind in ("compute", "memory"):
        for c in OP_CLASSES:
            assert got.efficiency.fraction(kind, c, "float32") == pytest.approx(
                want.efficiency.fraction(kind, c, "float32"), rel=1e-3), (kind, c)
    assert got.overhead["eager"].dispatch_us["default"] == pytest.approx(
        want.overhead["eager"].dispatch_us["default"], rel=1e-3)
    assert np.abs(np.exp(cal.results_.log_residuals) - 1).max() < 1e-6
    # a fold that kept the memory-bound network (mobilenet) predicts the others
    # exactly; leaving it out leaves two dense convnets that cannot tell memory
    # from compute efficiency, and the error on it says so
    folds = cal.results_.cv["per_model"]
    assert folds["resnet18"]["mape"] < 1e-4 and folds["squeezenet1_0"]["mape"] < 1e-4
    assert "memory" not in folds["mobilenet_v3_small"]["params"]
    assert folds["mobilenet_v3_small"]["mape"] > 0.01  # 3.5% (torch 2.14), vs < 1e-4 above


def test_sklearn_contract_and_record(recovered, cpu):
    cal, _, rows = recovered
    assert isinstance(cal, Calibrator) and cal.base is cpu
    record = cal.profile_.calibration
    assert record["base_profile"] == cpu.name and record["n_rows"] == len(rows)
    assert record["interval_from"] == "leave-models-out"
    assert cal.profile_.name == f"{cpu.name}-calibrated"
    res = cal.results_
    assert set(res.params) == set(res.param_names)
    assert res.covariance.shape == (len(res.param_names),) * 2
    assert set(res.cv["per_model"]) == set(MODELS)
    # the overhead scale on a CPU is linear: fitted by statsmodels WLS
    assert res.params["dispatch"]["method"].startswith("statsmodels WLS")
    np.testing.assert_allclose(cal.predict(rows), res.fitted_ms)


def test_noisy_rows_give_an_honest_interval(cpu):
    truth = {"compute": 0.5, "dispatch": 1.5}
    rows, _ = _measured_on(cpu, truth, _rows(), noise=0.05, seed=3)
    cal = Calibrator(cpu, params=["compute", "dispatch"]).fit(rows)
    # the interval comes from models each fold did not see: at least the 5% noise,
    # plus what extrapolating from two networks to a third costs (here ~0.14)
    sd = cal.results_.log_residual_sd
    assert 0.05 < sd < 0.3
    in_sample_sd = np.std(cal.results_.log_residuals)
    assert in_sample_sd < sd  # fitted rows look better than unseen ones
    for name, truth_value in truth.items():
        lo, hi = cal.results_.params[name]["ci95"]
        assert lo < truth_value < hi, name


def test_profile_round_trips_through_yaml(recovered):
    cal = recovered[0]
    text = profile_yaml(cal.profile_, "a test")
    back = parse_profile(text, "roundtrip.yaml")
    rows = recovered[2]
    np.testing.assert_allclose(PREDICTOR.predict(rows, back), PREDICTOR.predict(rows, cal.profile_))
    assert back.calibration["log_residual_sd"] == cal.profile_.calibration["log_residual_sd"]


def test_gpu_eager_dispatch_is_recovered_from_a_few_networks():
    gpu = load_hardware("t4")
    truth = {"compute": 0.7, "dispatch": 1.6}
    rows, true_profile = _measured_on(gpu, truth, _rows(models=("resnet18", "mobilenet_v3_small")))
    cal = Calibrator(gpu, params=["compute", "dispatch"], cross_validate=False).fit(rows)
    assert cal.results_.params["dispatch"]["scale"] == pytest.approx(1.6, rel=1e-3)
    assert cal.results_.params["compute"]["scale"] == pytest.approx(0.7, rel=1e-3)
    assert cal.results_.interval_from.startswith("in-sample")


def test_refuses_fewer_rows_than_parameters(cpu):
    one = _rows(models=("resnet18",))[:1]
    with pytest.raises(InvalidInputError, match="measure 1 more"):
        Calibrator(cpu).fit(one)
    two = _rows(models=("resnet18",))[:2]
    with pytest.raises(InvalidInputError, match="need at least 3 measured rows; got 2 - measure 1 more"):
        Calibrator(cpu, params=["compute", "memory", "dispatch"]).fit(two)


def test_bad_parameters_and_modes(cpu):
    rows = _rows(models=("resnet18",))
    with pytest.raises(InvalidInputError, match="unknown calibration parameter 'bogus'"):
        Calibrator(cpu, params=["bogus"]).fit(rows)
    with pytest.raises(InvalidInputError, match="GPU profiles only"):
        Calibrator(cpu, params=["saturation"]).fit(rows)
    graph = [r.model_copy(update={"mode": "graph"}) for r in rows]
    with pytest.raises(InvalidInputError, match="mode graph, which profile epyc-milan-2c does not describe"):
        Calibrator(cpu).fit(graph)
    with pytest.raises(InvalidInputError, match="no rows"):
        Calibrator(cpu).fit([])


def _write_measurements(path, rows):
    path.write_text(json.dumps({
        "schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "device": "synthetic", "source": "test",
        "protocol": "synthetic", "environment": {},
        "rows": [r.model_dump(mode="json", exclude_none=True) for r in rows]}))


def test_cli_calibrate_then_predict_shows_the_interval(cli, cpu, tmp_path):
    rows, _ = _measured_on(cpu, {"compute": 0.6, "dispatch": 2.0}, _rows(), noise=0.03, seed=1)
    meas = tmp_path / "mine.json"
    _write_measurements(meas, rows)
    out = tmp_path / "mine.yaml"
    code, stdout, err = cli("calibrate", "--hw", "epyc-milan-2c", "-m", str(meas), "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["leave_models_out"]["n"] == len(rows)
    # the base profile, not fitted to these rows, is the figure to beat: rows made with
    # compute x0.6 and dispatch x2 put it far off, the fit close
    base = summary["uncalibrated"]
    assert base["n"] == len(rows) and base["mape"] > 0.2 > summary["leave_models_out"]["mape"]
    assert out.exists() and "netcut calibrate" in out.read_text()
    code, stdout, err = cli("predict", "resnet50", "--hw", str(out), "--json")
    assert code == 0, err
    est = json.loads(stdout)
    lo, hi = est["interval_ms"]
    assert lo < est["total_ms"] < hi and est["calibrated"] and est["interval_level"] == 0.9
    code, stdout, _ = cli("predict", "resnet50", "--hw", "epyc-milan-2c", "--json")
    assert json.loads(stdout)["interval_ms"] is None  # no interval without a calibration
    code, stdout, err = cli("plan", "--hw", str(out), "--deadline", "40ms", "--models", "resnet18",
                            "--confidence", "0.9", "--no-report", "--json")
    assert code == 0, err


def test_calibrate_says_when_the_fit_does_not_beat_the_uncalibrated_profile():
    """The note appears only when models left out are predicted no better than by the
    base profile on the same rows."""
    from netcut.cli.calibrate_cmd import calibration_advice

    def summary(unseen, base):
        return {"base": "xeon-gnr-2c", "leave_models_out": {"n": 40, "mape": unseen},
                "uncalibrated": {"n": 40, "mape": base}}
    assert calibration_advice(summary(0.05, 0.12)) is None
    advice = calibration_advice(summary(0.09, 0.08))
    assert "9.0%" in advice and "uncalibrated xeon-gnr-2c by 8.0%" in advice and "--params compute" in advice
    assert calibration_advice({"base": "x", "leave_models_out": {"n": 0}, "uncalibrated": {"n": 4, "mape": 0.1}}) is None


def test_a_scale_at_a_limit_of_the_fit_is_flagged(cpu, recovered):
    """Rows 100x slower than the profile, fitted with compute alone, push its scale to
    the fit's 1/50 limit, and 100x faster to an efficiency of 1: the summary says so and
    the CLI's note names it. A fit that recovers its truth flags nothing."""
    from netcut.cli.calibrate_cmd import limit_advice

    rows, _ = _measured_on(cpu, {"compute": 1.0}, _rows(models=("resnet18", "squeezenet1_0")))
    slow = [r.model_copy(update={"median_ms": r.median_ms * 100}) for r in rows]
    cal = Calibrator(cpu, params=["compute"], cross_validate=False).fit(slow)
    compute = cal.results_.params["compute"]
    assert compute["scale"] == pytest.approx(1 / 50, rel=1e-3)
    assert compute["at_limit"] == "x1/50, the most a fit may move a number"
    note = limit_advice(cal.results_.summary())
    assert note.startswith("note: compute (x1/50, the most a fit may move a number): the measured "
                           "networks cannot pin it")
    fast = [r.model_copy(update={"median_ms": r.median_ms / 100}) for r in rows]
    capped = Calibrator(cpu, params=["compute"], cross_validate=False).fit(fast).results_.params["compute"]
    assert capped["at_limit"] == "an efficiency of 1"  # the largest compute efficiency reached 1
    good = recovered[0].results_.summary()
    assert limit_advice(good) is None and all(not p.get("at_limit") for p in good["params"].values())


def test_a_scale_the_rows_cannot_pin_on_the_slower_side_is_flagged(cpu):
    """A rate whose estimate went below 1 with a 95% interval reaching x1/50, or a cost
    above 1 with one reaching x50, is where the optimizer stopped, not what the rows say:
    the summary marks it ``unpinned`` and the CLI's note names it. The faster side (a
    term switched off), a pinned scale and a scale fitted on the linear scale are not."""
    from netcut.calibrate import calibrator as C
    from netcut.cli.calibrate_cmd import limit_advice

    rows, _ = _measured_on(cpu, {"compute": 0.7}, _rows())
    by = {p.name: p for p in CATALOGUE}
    problem = C._Problem(cpu, [by["compute"], by["memory"], by["launch"]], rows, PREDICTOR, ["float32"])
    wide, narrow = np.diag([9.0, 9.0, 9.0]), np.diag([1e-4, 1e-4, 1e-4])
    assert C._unpinned(problem, 0, np.array([0.03, 1.0, 1.0]), wide)  # slower side, open
    assert not C._unpinned(problem, 0, np.array([0.03, 1.0, 1.0]), narrow)  # pinned there
    assert not C._unpinned(problem, 1, np.array([1.0, 40.0, 1.0]), wide)  # faster side: a term off
    assert not C._unpinned(problem, 2, np.array([1.0, 1.0, 60.0]), wide)  # linear on a CPU
    h100 = load_hardware("h100-sxm")
    eager = C._Problem(h100, [by["compute"], by["kernel"]], _rows(models=("resnet18", "squeezenet1_0")),
                       PREDICTOR, ["float32"])
    assert not eager.synchronous
    assert C._unpinned(eager, 1, np.array([1.0, 3.0]), np.diag([1e-4, 9.0]))  # a cost, slower side
    assert not C._unpinned(eager, 1, np.array([1.0, 0.3]), np.diag([1e-4, 9.0]))  # cost switched off
    described = C._describe(problem, np.array([0.03, 1.0, 1.0]), wide, {})
    assert described["compute"]["unpinned"] and not described["memory"]["unpinned"]
    summary = {"params": described}
    assert limit_advice(summary).startswith(
        "note: compute (x0.03, its 95% interval reaching the edge of the fit's range): the measured")


def test_cli_bad_measurements_write_nothing(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    out = tmp_path / "never.yaml"
    code, _, err = cli("calibrate", "--hw", "epyc-milan-2c", "-m", str(bad), "--out", str(out))
    assert code == 2 and "bad.json: not valid JSON" in err and "Traceback" not in err
    assert not out.exists()
    code, _, err = cli("calibrate", "--hw", "epyc-milan-2c", "-m", str(bad), "--out", str(tmp_path / "x.txt"))
    assert code == 2 and "a profile is a .yaml file" in err


def test_a_parameter_one_network_alone_leans_on_is_not_fitted(cpu):
    """Only mobilenet_v3_small has depthwise convs: fitting their efficiency to it would
    fit that one network's noise, so auto selection skips it and says why. With a single
    network measured, it is the only one that can inform anything: the rule is off."""
    from netcut.calibrate.calibrator import _select

    pool = [p for p in CATALOGUE if p.name in ("compute", "depthwise")]
    rows, _ = _measured_on(cpu, {"compute": 0.7}, _rows())
    problem, skipped = _select(cpu, pool, rows, PREDICTOR, ["float32"], 6)
    assert [p.name for p in problem.params] == ["compute"]
    assert "only 1 measured network (mobilenet_v3_small)" in skipped["depthwise"]
    alone = [r for r in rows if r.model == "mobilenet_v3_small"]
    problem, skipped = _select(cpu, pool, alone, PREDICTOR, ["float32"], 6)
    assert [p.name for p in problem.params] == ["compute", "depthwise"] and not skipped


def test_the_conv_scale_moves_pointwise_convs_too():
    """Spelling a profile out keeps its ``conv_pointwise`` efficiency, and the ``conv``
    scale moves it with ``conv`` (1x1 and kxk convs are both dense convs)."""
    from netcut.calibrate.edit import spelled_out

    base = load_hardware("xeon-gnr-2c")
    data = spelled_out(base)
    pointwise, kxk = base.efficiency.compute["conv_pointwise"], base.efficiency.compute["conv"]
    assert pointwise != kxk  # the profile lists its own 1x1 efficiency
    assert data["efficiency"]["compute"]["conv_pointwise"] == pointwise
    conv = next(p for p in CATALOGUE if p.name == "conv")
    assert {"efficiency.compute.conv", "efficiency.compute.conv_pointwise"} <= set(conv.paths(data, "cpu"))
    gpu = spelled_out(load_hardware("h100-sxm"))  # unlisted: written out as conv's value
    assert gpu["efficiency"]["compute"]["conv_pointwise"] == gpu["efficiency"]["compute"]["conv"]
    rows, _ = _measured_on(base, {"compute": 1.0, "conv": 1.3}, _rows())
    fitted = Calibrator(base, params=["compute", "conv"]).fit(rows).profile_
    ratio = fitted.efficiency.compute["conv_pointwise"] / fitted.efficiency.compute["conv"]
    assert ratio == pytest.approx(pointwise / kxk, rel=1e-6)
    assert fitted.efficiency.compute["conv"] == pytest.approx(kxk * 1.3, rel=1e-3)


def test_the_network_scale_is_recovered_and_skipped_where_a_profile_has_no_such_term(cpu):
    """``network`` scales ``memory.network_bandwidth_gbs_per_core``: rows priced with it x2
    give it back; on a profile without the field no row depends on it."""
    base = load_hardware("epyc-genoa-2c")
    rows, _ = _measured_on(base, {"compute": 0.9, "network": 2.0}, _rows())
    cal = Calibrator(base, params=["compute", "network"]).fit(rows)
    assert cal.profile_.memory.network_bandwidth_gbs_per_core == pytest.approx(2.0 * 81.3, rel=1e-3)
    assert cpu.memory.network_bandwidth_gbs_per_core is None
    plain = Calibrator(cpu).fit(_measured_on(cpu, {"compute": 0.8}, _rows())[0])
    assert "network" in plain.results_.summary()["skipped"]


def test_the_in_network_scale_moves_every_in_network_cost_together(cpu):
    """``in_network`` scales all of ``overhead.eager.in_network`` by one factor (time is
    linear in it): rows priced with it x1.5 give it back; a profile without the block
    has no row that depends on it."""
    base = load_hardware("xeon-gnr-2c")
    shipped = base.overhead["eager"].in_network.model_dump()
    rows, _ = _measured_on(base, {"compute": 0.9, "in_network": 1.5}, _rows())
    cal = Calibrator(base, params=["compute", "in_network"]).fit(rows)
    fitted = cal.profile_.overhead["eager"].in_network.model_dump()
    assert cal.results_.params["in_network"]["scale"] == pytest.approx(1.5, rel=0.02)
    assert {k: v / shipped[k] for k, v in fitted.items() if shipped[k]} == pytest.approx(
        {k: cal.results_.params["in_network"]["scale"] for k, v in shipped.items() if v}, rel=1e-6)
    plain = Calibrator(cpu).fit(_measured_on(cpu, {"compute": 0.8}, _rows())[0])
    assert "in_network" in plain.results_.summary()["skipped"]


def test_dispatch_leaves_a_cpus_conv_setup_alone_but_not_a_gpus(cpu):
    """On a CPU, ``dispatch`` scales every op's fixed cost except the grouped and
    depthwise convs' library setup (``conv_dispatch`` still covers those); on a GPU the
    host issues every op alike, so it scales them all."""
    from netcut.calibrate.edit import spelled_out

    dispatch = next(p for p in CATALOGUE if p.name == "dispatch")
    conv_dispatch = next(p for p in CATALOGUE if p.name == "conv_dispatch")
    on_cpu = dispatch.paths(spelled_out(cpu), "cpu")
    setup = {"overhead.eager.dispatch_us.conv_grouped", "overhead.eager.dispatch_us.conv_depthwise"}
    assert not setup & set(on_cpu)
    assert {"overhead.eager.dispatch_us.conv", "overhead.eager.dispatch_us.default"} <= set(on_cpu)
    assert setup <= set(conv_dispatch.paths(spelled_out(cpu), "cpu"))
    gpu = load_hardware("h100-sxm")
    assert setup <= set(dispatch.paths(spelled_out(gpu), "gpu"))
    # and the fit obeys it: a CPU profile calibrated with dispatch x3 keeps the setup
    rows, _ = _measured_on(cpu, {"compute": 0.8, "dispatch": 3.0}, _rows())
    fitted = Calibrator(cpu, params=["compute", "dispatch"]).fit(rows).profile_
    before, after = cpu.overhead["eager"].dispatch_us, fitted.overhead["eager"].dispatch_us
    assert after["conv_depthwise"] == pytest.approx(before.get("conv_depthwise", before["default"]))
    assert after["conv"] == pytest.approx(3.0 * before.get("conv", before["default"]), rel=1e-3)


def test_conv_dispatch_scales_onednns_cost_per_conv_and_dispatch_leaves_it():
    """``overhead.eager.onednn_conv_us`` is the conv library's own cost, like the grouped
    and depthwise setup: ``conv_dispatch`` scales it, ``dispatch`` does not."""
    from netcut.calibrate.edit import spelled_out

    gnr = load_hardware("xeon-gnr-2c")
    data = spelled_out(gnr)
    dispatch = next(p for p in CATALOGUE if p.name == "dispatch")
    conv_dispatch = next(p for p in CATALOGUE if p.name == "conv_dispatch")
    assert "overhead.eager.onednn_conv_us" in conv_dispatch.paths(data, "cpu")
    assert "overhead.eager.onednn_conv_us" not in dispatch.paths(data, "cpu")
    # a profile without the entry offers no such path (None is not a number to scale)
    assert "overhead.eager.onednn_conv_us" not in conv_dispatch.paths(spelled_out(load_hardware("epyc-milan-2c")), "cpu")


def test_linear_scales_the_rows_cannot_tell_apart_get_no_interval_and_no_warning():
    """Two linear features that are proportional (a rank-deficient design) have no unique
    covariance: the WLS step returns NaN (no interval) instead of statsmodels'
    SingularMatrixWarning and an arbitrary pseudo-inverse; a full-rank design gets one."""
    import warnings

    from netcut.calibrate.calibrator import _wls_covariance

    rng = np.random.default_rng(1)
    x = rng.uniform(1, 2, size=(12, 1))
    weights = rng.uniform(0.5, 1.5, 12)
    target = 3 * x[:, 0] + rng.normal(0, 0.01, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = _wls_covariance(target, np.hstack([x, 2 * x]), weights, np.array([1.0, 1.0]))
        full = _wls_covariance(target, np.hstack([x, rng.uniform(1, 2, size=(12, 1))]), weights,
                               np.array([3.0, 0.0]))
    assert np.isnan(same).all()
    assert np.isfinite(full).all() and (np.diag(full) > 0).all()
