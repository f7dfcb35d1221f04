"""`netcut validate`: the summary arithmetic, the writer and the command.

The writer is driven by a small synthetic validation whose errors are chosen so
every metric can be worked out by hand (the derivations are in the comments).
The real H100 leave-models-out run (minutes) is not run here; the Jetson part
(seconds) is, through the CLI.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from netcut.errors import InvalidInputError
from netcut.measurements import Cut, Row
from netcut.validation.report import (
    JETSON_CSV,
    Scored,
    Target,
    Validation,
    shipped_external,
    trimmed_vs_whole,
)
from netcut.validation.writer import render_markdown, write_report

CONTEXT = {"date": "2000-01-01 00:00 UTC", "machine": "test machine", "command": "netcut validate"}


def _row(model, mode, batch, measured, k=None):
    cut = None if k is None else Cut(last_block=f"block{k}", k=k, n_blocks=3)
    return Row(model=model, input=(3, 224, 224), batch=batch, dtype="float32", mode=mode,
               cut=cut, median_ms=measured)


# (row, leave-models-out prediction, datasheet prediction); APE = |pred / meas - 1|
SYNTHETIC = [
    # GPU-bound: fit APEs 0.05, 0.15, 0, 0.08; datasheet APEs 0.2, 0, 0.25, 0.35
    (_row("a", "graph", 1, 1.0), 1.05, 1.2),
    (_row("a", "eager", 64, 2.0), 2.3, 2.0),
    (_row("b", "graph", 1, 4.0), 4.0, 3.0),
    (_row("b", "eager", 64, 10.0), 10.8, 6.5),
    # host-bound (eager b1): fit APEs 0.05, 0.2, 0, 0, 0.3, 0.05, 0, 0.2; datasheet all 0.5
    (_row("a", "eager", 1, 2.0), 2.1, 3.0),
    (_row("a", "eager", 1, 0.5, k=1), 0.6, 0.75),
    (_row("a", "eager", 1, 1.0, k=2), 1.0, 1.5),
    (_row("a", "eager", 1, 2.2, k=3), 2.2, 3.3),
    (_row("b", "eager", 1, 4.0), 5.2, 6.0),
    (_row("b", "eager", 1, 1.0, k=1), 1.05, 1.5),
    (_row("b", "eager", 1, 2.0, k=2), 2.0, 3.0),
    (_row("b", "eager", 1, 3.0, k=3), 3.6, 4.5),
]
JETSON = [
    # APEs: nano eager 0.25 and 0.05, nano fused 1.0, xavier eager 0.05
    {"device": "jetson-nano", "model": "resnet18", "mode": "eager", "measured_ms": 40.0, "predicted_ms": 30.0},
    {"device": "jetson-nano", "model": "resnet50", "mode": "eager", "measured_ms": 80.0, "predicted_ms": 84.0},
    {"device": "jetson-nano", "model": "resnet18", "mode": "fused", "measured_ms": 10.0, "predicted_ms": 20.0},
    {"device": "jetson-xavier-agx", "model": "resnet18", "mode": "eager", "measured_ms": 8.0, "predicted_ms": 8.4},
]


def synthetic_validation(with_jetson: bool = False) -> Validation:
    rows = [r for r, _, _ in SYNTHETIC]
    result = {
        "lomo": Scored("fit", rows, np.array([f for _, f, _ in SYNTHETIC])),
        "datasheet": Scored("datasheet", rows, np.array([d for _, _, d in SYNTHETIC])),
        "repeatability": {"float32 b1": 0.04, "float32 b64": 0.01},
        "folds": {"a": {"graph": 1, "eager": 5}, "b": {"graph": 1, "eager": 6}},
        "files": {"h100-graph": "g.json", "h100-eager": "e.json"},
        "profile": {"name": "h100-sxm", "file": "h100-sxm.yaml", "sha256": "0123456789ab"},
    }
    return Validation(h100=result, jetson=list(JETSON) if with_jetson else None)


def _table_row(markdown: str, *starts: str) -> list[str]:
    """The cells of the one markdown table row whose first cells are ``starts``."""
    hits = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:len(starts)] == list(starts):
            hits.append(cells)
    assert len(hits) == 1, (starts, hits)
    return hits[0]


def test_target_checks_both_ways():
    assert Target("mape", "<=", 0.10).check({"mape": 0.07})["met"] is True
    assert Target("mape", "<=", 0.10).check({"mape": 0.13})["met"] is False
    assert Target("within_10", ">=", 0.80).check({"within_10": 0.80})["met"] is True
    assert Target("within_10", ">=", 0.80).check({"within_10": 0.75})["met"] is False
    assert Target("mape", "<=", 0.10).check({"mape": math.nan})["met"] is False  # no rows: not met


def test_h100_summary_by_hand():
    h = synthetic_validation().summary()["h100"]
    gpu, host = h["regimes"]["gpu_bound"], h["regimes"]["host_bound"]
    # GPU-bound fit: (0.05 + 0.15 + 0 + 0.08) / 4 = 0.07; within ±10%: 3 of 4
    assert gpu["fit"]["n"] == 4
    assert gpu["fit"]["mape"] == pytest.approx(0.07)
    assert gpu["fit"]["within_10"] == pytest.approx(0.75)
    assert [c["met"] for c in gpu["fit"]["targets"]] == [True, False]  # MAPE met, share not
    assert gpu["fit"]["met"] is False
    # GPU-bound datasheet: (0.2 + 0 + 0.25 + 0.35) / 4 = 0.2; within: 1 of 4
    assert gpu["datasheet"]["mape"] == pytest.approx(0.20)
    assert gpu["datasheet"]["within_10"] == pytest.approx(0.25)
    # host-bound fit: (0.05 + 0.2 + 0 + 0 + 0.3 + 0.05 + 0 + 0.2) / 8 = 0.1 <= 0.2: met
    assert host["fit"]["n"] == 8
    assert host["fit"]["mape"] == pytest.approx(0.10)
    assert host["fit"]["met"] is True
    # host-bound datasheet: every prediction 1.5x: 0.5 > 0.2, not met
    assert host["datasheet"]["mape"] == pytest.approx(0.50)
    assert host["datasheet"]["met"] is False
    # repeatability sits beside the eager error of its (dtype, batch)
    b1 = next(e for e in h["eager_by_dtype_batch"] if e["batch"] == 1)
    assert b1["repeatability"] == 0.04 and b1["fit"]["n"] == 8
    # cut order: both models' trimmed predictions rise with measured time: rho = 1
    assert h["cut_order_spearman"]["fit"] == {"groups": 2, "undefined": 0, "median": 1.0,
                                               "min": 1.0, "share_ge_0.95": 1.0}
    # calibration rows: a's fold 1 + 5 = 6, b's 1 + 6 = 7
    assert (h["folds"]["calibration_rows_min"], h["folds"]["calibration_rows_max"]) == (6, 7)


def test_trimmed_vs_whole_by_hand():
    c = trimmed_vs_whole([r for r, _, _ in SYNTHETIC])
    # deepest trimmed (k=3) / whole: a 2.2 / 2.0 = 1.1, b 3.0 / 4.0 = 0.75
    assert [g["ratio"] for g in c["groups"]] == pytest.approx([1.1, 0.75])
    assert c["median"] == pytest.approx((1.1 + 0.75) / 2)
    assert (c["min"], c["max"]) == pytest.approx((0.75, 1.1))
    assert c["above_1"] == 1 and c["n"] == 2


def test_markdown_tables_carry_the_computed_numbers():
    v = synthetic_validation(with_jetson=True)
    text = render_markdown(v.summary(), CONTEXT, {"h100-sxm": "validation/h100-sxm.png"})
    from netcut.validation.report import REGIMES

    row = _table_row(text, "GPU-bound", REGIMES["gpu_bound"], "leave-models-out fit")
    assert row[3:5] == ["4", "7.0%"] and row[6] == "75%"
    assert row[7] == "MAPE ≤ 10%: **met**; within ±10% ≥ 80%: **not met**"
    row = _table_row(text, "host-bound", REGIMES["host_bound"], "datasheet-only")
    assert row[3:5] == ["8", "50.0%"] and row[7] == "MAPE ≤ 20%: **not met**"
    # Jetson nano eager: APEs |30/40 - 1| = 0.25 and |84/80 - 1| = 0.05 -> MAPE 15.0%, met
    row = _table_row(text, "jetson-nano", "eager", "datasheet-only", "2")  # the summary table
    assert row[4] == "15.0%" and row[6] == "MAPE ≤ 25%: **met**"
    from netcut.validation.report import JETSON_COLUMNS

    row = _table_row(text, "jetson-nano", "eager", "datasheet-only", JETSON_COLUMNS["eager"])  # its section
    assert row[4:6] == ["2", "15.0%"] and row[8] == "MAPE ≤ 25%: **met**"
    # nano fused: |20/10 - 1| = 1.0 -> 100.0%, not met
    row = _table_row(text, "jetson-nano", "fused", "datasheet-only", "1")
    assert row[4] == "100.0%" and row[6] == "MAPE ≤ 25%: **not met**"
    # the summary table repeats the H100 regime numbers
    row = _table_row(text, "h100-sxm", "host-bound", "leave-models-out fit")
    assert row[3:5] == ["8", "10.0%"] and row[6] == "MAPE ≤ 20%: **met**"
    # the header names the data, the profile hash, the fold sizes and the command
    for needle in ("`g.json`", "`0123456789ab`", "6–7 rows", "`netcut validate`", CONTEXT["date"]):
        assert needle in text
    assert "](validation/h100-sxm.png)" in text


def test_write_report_writes_markdown_and_plots(tmp_path):
    written = write_report(tmp_path, synthetic_validation(with_jetson=True), CONTEXT)
    md = tmp_path / "validation.md"
    assert written[-1] == md and md.read_text(encoding="utf-8").startswith("# Validation")
    pngs = sorted(p.name for p in (tmp_path / "validation").iterdir())
    assert pngs == ["h100-sxm.png", "jetson-nano.png", "jetson-xavier-agx.png"]
    for name in pngs:
        data = (tmp_path / "validation" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
        assert f"](validation/{name})" in md.read_text(encoding="utf-8")
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_partial_run_is_named_by_its_parts():
    from netcut.validation.writer import report_name

    assert report_name() == "validation.md"
    assert report_name(("cpu",)) == "validation-cpu.md"
    assert report_name(("h100", "cpu")) == "validation-h100-cpu.md"


def test_unwritable_output_is_a_clean_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidInputError, match="cannot write to"):
        write_report(blocker / "reports", synthetic_validation(), CONTEXT)
    assert blocker.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_failed_replace_keeps_the_old_report(tmp_path, monkeypatch):
    import netcut.files as files

    (tmp_path / "validation.md").write_text("old report")
    real_replace = files.os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".md"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(InvalidInputError, match="No space left"):
        write_report(tmp_path, synthetic_validation(), CONTEXT)
    assert (tmp_path / "validation.md").read_text() == "old report"
    assert not list(tmp_path.rglob("*.tmp"))


def test_jetson_data_is_shipped_with_its_licence():
    csv_path = shipped_external(JETSON_CSV)
    assert csv_path.is_file() and (csv_path.parent / "LICENSE.torch2trt.md").is_file()


def test_cli_validate_jetson_json(cli, tmp_path):
    code, out, err = cli("validate", "--only", "jetson", "--json", "--out", str(tmp_path))
    assert code == 0, err
    payload = json.loads(out)
    assert set(payload) == {"jetson", "fewshot"} and set(payload["fewshot"]) == {"jetson"}
    for case in payload["fewshot"]["jetson"]:  # 3-shot: fitted on 3 rows, judged on the rest
        assert case["calibration_rows"] == 3 and case["calibrated"]["n"] == len(case["points"]) > 10
        assert not set(case["calibration_models"]) & set(case["held_out_models"])
    jetson = payload["jetson"]
    assert set(jetson) == {"data", "profiles", "targets", "groups", "by_model", "era"}
    groups = {(g["device"], g["mode"], g["profile"]) for g in jetson["groups"]}
    assert groups == {(d, m, "datasheet") for d in ("jetson-nano", "jetson-xavier-agx")
                      for m in ("eager", "fused")} | {
        ("jetson-nano", "eager", "era"), ("jetson-xavier-agx", "eager", "era")}
    for g in jetson["groups"]:
        assert g["n"] > 0 and math.isfinite(g["mape"]) and g["mape"] >= 0
        assert g["met"] == (g["mape"] <= 0.25)
    # the PyTorch 1.x rows are the same eager rows, priced with dispatch x the HELP median
    era, rows = jetson["era"], jetson["by_model"]
    # 18 Nano + 29 Xavier networks, each an eager and a TensorRT row; the eager ones priced twice
    assert jetson["data"]["rows"] == 2 * 47 and jetson["data"]["priced"] == 3 * 47 == len(rows)
    assert era["min"] <= era["median"] <= era["max"] and len(era["per_column"]) == 5
    for device in ("jetson-nano", "jetson-xavier-agx"):
        plain = {r["model"]: r for r in rows if (r["device"], r["mode"], r["profile"]) == (device, "eager", "datasheet")}
        moved = {r["model"]: r for r in rows if (r["device"], r["profile"]) == (device, "era")}
        assert set(plain) == set(moved)
        for model, r in moved.items():
            assert r["measured_ms"] == plain[model]["measured_ms"]
            assert r["predicted_at_min_scale_ms"] <= r["predicted_ms"] <= r["predicted_at_max_scale_ms"]
            assert r["predicted_ms"] >= plain[model]["predicted_ms"]  # a costlier host never speeds up
    assert not (tmp_path / "validation.md").exists()  # a partial run never takes the full name
    partial = (tmp_path / "validation-jetson.md").read_text(encoding="utf-8")
    assert (tmp_path / "validation" / "jetson-nano.png").stat().st_size > 0
    assert (tmp_path / "validation" / "jetson-nano-eager-3shot.png").stat().st_size > 0
    assert "## Jetson: 3-shot calibration" in partial and "## H100" not in partial
    assert "| jetson-xavier-agx | eager | datasheet + PyTorch 1.x dispatch (HELP) |" in partial
    assert f"×{era['median']:.2f}" in partial and "Disclosure" in partial


def test_cli_validate_rejects_an_unknown_part(cli, tmp_path):
    out_dir = tmp_path / "reports"
    code, out, err = cli("validate", "--only", "nonsense", "--out", str(out_dir))
    assert code == 2 and out == ""
    assert err.startswith("error:") and "nonsense" in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists()  # refused before any work


def test_cli_validate_cpu_without_measurements_is_a_clear_error(cli, tmp_path, monkeypatch):
    import netcut.validation.this_cpu as this_cpu

    monkeypatch.setattr(this_cpu, "cpu_data_dir", lambda name=None: tmp_path / "none-here")
    code, out, err = cli("validate", "--only", "cpu", "--out", str(tmp_path / "reports"))
    assert code == 2 and "no measurement files" in err and "measure_this_cpu.sh" in err


@pytest.mark.parametrize("model, cut", [
    ("vit_b_16", "encoder.layers.encoder_layer_0"),  # token sequence: the class token is read
    ("regnet_x_400mf", "stem"),  # a cut point's own name, no ResNet ``layer1`` to count from
])
def test_cut_rows_are_priced_as_the_trimmed_network_netcut_measure_times(model, cut):
    """A measured cut row is the TRN that ``netcut measure --cuts`` built with ``trim``:
    the validation's prefix-plus-head shortcut must price it exactly as tracing it does."""
    from netcut import estimate_table, load_hardware, trace, trim
    from netcut.validation.predictor import RowPredictor

    profile = load_hardware("epyc-milan-2c")
    row = Row(model=model, input=(3, 224, 224), batch=1, dtype="float32", mode="eager",
              cut=Cut(last_block=cut), median_ms=1.0)
    shortcut = RowPredictor().predict([row], profile)[0]
    trn = trim(model, cut, num_classes=10)
    traced = estimate_table(trace(trn, (3, 224, 224)), profile).total_ms
    assert shortcut == pytest.approx(traced, rel=1e-6)


def test_a_measured_cut_name_is_read_as_the_cut_its_recorded_shape_says():
    """``conv1`` names two cuts of a ResNet: the end of the conv1 block (the shared data's
    reading) and netcut's cut point after the stem's max-pool (what ``netcut measure
    --cuts`` writes, with channels and spatial size). The recorded shape decides."""
    from netcut import estimate_table, load_hardware, trace, trim
    from netcut.validation.predictor import RowPredictor, cut_row_index

    table = trace("torchvision:resnet18", (3, 224, 224))
    assert table.names[cut_row_index(table, "conv1")] == "conv1"
    assert table.names[cut_row_index(table, "conv1", (64, 56, 56))] == "maxpool"
    profile = load_hardware("epyc-milan-2c")
    measured = Row(model="resnet18", input=(3, 224, 224), batch=1, dtype="float32", mode="eager",
                   cut=Cut(last_block="conv1", k=1, channels=64, spatial=(56, 56)), median_ms=1.0)
    traced = estimate_table(trace(trim("resnet18", "conv1", num_classes=10), (3, 224, 224)),
                            profile).total_ms
    assert RowPredictor().predict([measured], profile)[0] == pytest.approx(traced, rel=1e-6)


def test_regime_of_eager_batch_64_follows_its_cuda_graph_twin():
    """Batch 64 is GPU-bound only where the measurements say so: an eager run far
    slower than the CUDA-graph run of the same network is waiting on the host."""
    from netcut.validation.report import HOST_GAP, regimes_of

    def row(mode, batch, ms, model="m"):
        return Row(model=model, input=(3, 8, 8), batch=batch, dtype="float32", mode=mode, median_ms=ms)

    rows = [row("graph", 64, 10.0), row("eager", 64, 10.0 * HOST_GAP * 0.99),
            row("graph", 64, 10.0, "n"), row("eager", 64, 10.0 * HOST_GAP * 1.01, "n"),
            row("eager", 64, 50.0, "no-twin"), row("eager", 1, 1.0), row("graph", 1, 1.0)]
    assert regimes_of(rows) == ["gpu_bound", "gpu_bound", "gpu_bound", "host_bound",
                                "gpu_bound", "host_bound", "gpu_bound"]


def test_cli_validate_h200_judges_both_profiles_on_every_row(cli, tmp_path):
    """The H200 rows measured here are predicted, never fitted: both profiles are judged
    on all of them, split by regime with the H100 rule, beside their repeatability."""
    from netcut.measurements import load_measurements, shipped_measurements

    code, out, err = cli("validate", "--only", "h200", "--json", "--out", str(tmp_path))
    assert code == 0, err
    h = json.loads(out)["h200"]
    shipped = sum(len(load_measurements(shipped_measurements(f"h200/h200-{m}")).rows)
                  for m in ("graph", "eager"))
    assert h["data"]["rows"] == shipped and len(h["data"]["models"]) == 11
    for key in ("datasheet", "moved"):
        n = sum(entry[key]["n"] for entry in h["regimes"].values())
        assert n == shipped  # every row in exactly one regime
        gpu = h["regimes"]["gpu_bound"][key]
        assert gpu["whole"]["n"] + gpu["trimmed"]["n"] == gpu["n"]
        assert gpu["met"] == (gpu["mape"] <= 0.10 and gpu["within_10"] >= 0.80)
    # graph replays repeat within a few per cent; eager batch-1 rows do not
    assert h["repeatability"]["graph"]["float32 b64"] < 0.02
    assert h["repeatability"]["eager"]["float32 b1"] > h["repeatability"]["graph"]["float32 b1"]
    text = (tmp_path / "validation-h200.md").read_text(encoding="utf-8")
    assert "## H200: measured here" in text and (tmp_path / "validation" / "h200.png").stat().st_size > 0
    cases = json.loads(out)["fewshot"]["h200"]  # netcut calibrate's workflow, 3 networks
    assert [c["key"] for c in cases] == ["h200-graph-3shot", "h200-eager-3shot"]
    for c in cases:
        assert len(c["calibration_models"]) == 3 and len(c["held_out_models"]) == 8
        assert not set(c["calibration_models"]) & set(c["held_out_models"])
        assert c["calibrated"]["n"] == len(c["points"]) > 100


def test_moved_profile_keeps_the_fit_and_takes_the_target_memory():
    from netcut.hardware import load_hardware
    from netcut.validation.h200 import moved_profile

    h100, h200 = load_hardware("h100-sxm"), load_hardware("h200")
    moved = moved_profile(h100, h200)
    assert moved.memory.bandwidth_gbs == 4800 and moved.efficiency == h100.efficiency
    assert moved.overhead == h100.overhead and moved.compute == h100.compute


def test_gpu_fit_keeps_the_fixed_terms_and_lowers_the_error_it_fits():
    """fit_gpu_profile on two networks' H100 rows: the FIXED matmul terms and the
    unidentified grouped-conv term stay as set, and the fitted profile predicts its own
    training rows better than the datasheet-only start."""
    from netcut.hardware import load_hardware
    from netcut.hardware.defaults import datasheet_only
    from netcut.measurements import load_measurements, shipped_measurements
    from netcut.validation.fit import DEVICE_PARAMS, FIXED, HOST_PARAMS, fit_gpu_profile
    from netcut.validation.predictor import RowPredictor

    keep = ("resnet18", "mobilenet_v2")
    graph = [r for r in load_measurements(shipped_measurements("h100-graph")).rows if r.model in keep]
    eager = [r for r in load_measurements(shipped_measurements("h100-eager")).rows
             if r.model in keep and r.cut is None]
    base = load_hardware("h100-sxm")
    fitted, values = fit_gpu_profile(base, graph, eager)
    assert {p.name for p in DEVICE_PARAMS + HOST_PARAMS} | set(FIXED) <= set(values)
    assert fitted.efficiency.fraction("compute", "matmul", "float32") == FIXED["efficiency.compute.matmul"]
    assert fitted.efficiency.fraction("compute", "matmul", "float16") == 0.77
    assert fitted.efficiency.fraction("compute", "conv_grouped", "float32") == 0.2  # generic
    predictor = RowPredictor()
    rows = graph + eager
    measured = np.array([r.median_ms for r in rows])

    def mape(profile):
        return float(np.mean(np.abs(predictor.predict(rows, profile) / measured - 1)))

    assert mape(fitted) < mape(datasheet_only(base))
