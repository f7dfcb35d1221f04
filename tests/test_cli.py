"""The `netcut` command, run in-process through the `cli` fixture (conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import netcut

HWMODELS = Path(__file__).resolve().parents[1] / "hwmodels"


def test_predict_json_matches_the_api(cli):
    code, out, err = cli("predict", "resnet18", "--hw", "h100-sxm", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["model"] == "resnet18" and payload["hardware"] == "h100-sxm"
    assert payload["total_ms"] > 0
    assert payload["total_ms"] == pytest.approx(netcut.predict("resnet18", "h100-sxm").total_ms,
                                                rel=1e-12)
    assert payload["input_shape"] == [1, 3, 224, 224] and payload["tracer"] == "fx"
    assert "layers" not in payload


def test_predict_per_layer_json(cli):
    code, out, err = cli("predict", "resnet18", "--hw", "h100-sxm", "--per-layer", "--json")
    assert code == 0, err
    payload = json.loads(out)
    layers = payload["layers"]
    assert len(layers) == payload["rows"] == len(netcut.trace("resnet18"))
    assert [r["index"] for r in layers] == list(range(len(layers)))
    assert {"name", "op", "flops", "latency_ms", "end_ms", "bound", "cut_legal"} <= set(layers[0])
    assert sum(r["cut_legal"] for r in layers) == payload["legal_cuts"]


def test_predict_writes_a_trace(cli, tmp_path):
    path = tmp_path / "out.json"
    code, out, err = cli("predict", "resnet18", "--hw", "h100-sxm", "--trace", str(path))
    assert code == 0, err
    trace = json.loads(path.read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(spans) > 0
    assert str(path) in err  # where it went is reported on stderr
    assert "resnet18" in out  # the human-readable table still goes to stdout


def test_predict_human_output(cli):
    code, out, err = cli("predict", "resnet18", "--hw", "h100-sxm")
    assert code == 0 and err == ""
    assert "layer1" in out and "latency" in out


def test_hw_list_json(cli):
    code, out, err = cli("hw", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [p["name"] for p in listed] == netcut.list_hardware()
    assert {p["kind"] for p in listed} == {"gpu", "cpu"}


def test_hw_show_json(cli):
    code, out, err = cli("hw", "show", "h100-sxm", "--json")
    assert code == 0, err
    profile = json.loads(out)
    assert profile["compute"]["sms"] == 132
    assert profile["memory"]["bandwidth_gbs"] == 3350


def test_hw_check_good_file(cli, tmp_path):
    good = tmp_path / "good.yaml"
    shutil.copy(HWMODELS / "h100-sxm.yaml", good)
    code, out, err = cli("hw", "check", str(good), "--json")
    assert code == 0, err
    assert json.loads(out) == [{"file": str(good), "ok": True, "name": "h100-sxm"}]


def test_hw_check_broken_file(cli, tmp_path):
    good = tmp_path / "good.yaml"
    shutil.copy(HWMODELS / "h100-sxm.yaml", good)
    broken = tmp_path / "broken.yaml"
    broken.write_text(good.read_text().replace("bandwidth_gbs: 3350", "bandwidth_gbs: -1"))
    code, out, err = cli("hw", "check", str(good), str(broken))
    assert code == 2
    assert str(broken) in err and "memory.bandwidth_gbs" in err
    assert str(good) in out and str(good) not in err  # the good one is still reported ok


ERROR_CASES = {
    "unknown_model": (["predict", "resnet5", "--hw", "h100-sxm"], "resnet50"),
    "unknown_hardware": (["predict", "resnet18", "--hw", "h100"], "h100-sxm"),
    "batch_0": (["predict", "resnet18", "--hw", "h100-sxm", "--batch", "0"], "batch"),
    "dtype_fp64": (["predict", "resnet18", "--hw", "h100-sxm", "--dtype", "fp64"], "fp64"),
    "input_3x": (["predict", "resnet18", "--hw", "h100-sxm", "--input", "3x"], "'3x'"),
    "threads_on_gpu": (["predict", "resnet18", "--hw", "h100-sxm", "--threads", "2"], "CPU"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_errors_are_one_line(cli, capsys, case):
    args, mentions = ERROR_CASES[case]
    code, out, err = cli(*args)
    stray = capsys.readouterr()  # anything written around the CLI's consoles
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert mentions in lines[0]
    everything = out + err + stray.out + stray.err
    assert "Traceback" not in everything


def test_wrong_image_size_prints_no_traceback(cli, capsys):
    # torch.fx ShapeProp prints a traceback (traceback.print_exc) before re-raising
    code, out, err = cli("predict", "vit_b_16", "--hw", "h100-sxm", "--input", "3x100x100")
    stray = capsys.readouterr()
    assert code == 2 and err.startswith("error:") and "vit_b_16" in err
    assert "Traceback" not in stray.err + stray.out


def test_threads_override(cli):
    code, out, err = cli("predict", "resnet18", "--hw", "epyc-milan-2c", "--threads", "1", "--json")
    assert code == 0, err
    one = json.loads(out)["total_ms"]
    code, out, err = cli("predict", "resnet18", "--hw", "epyc-milan-2c", "--json")
    assert code == 0, err
    two = json.loads(out)["total_ms"]  # the profile's default: 2 cores
    # compute-bound rows scale by effective cores 1 + (2 - 1) * 0.85 = 1.85: clearly slower
    assert one > 1.3 * two
    code, out, err = cli("predict", "resnet18", "--hw", "epyc-milan-2c", "--threads", "3")
    assert code == 2 and "outside 1..2" in err  # max_cores is 2


def test_help_exits_zero(cli, capsys):
    code, _, _ = cli("--help")
    help_text = capsys.readouterr().out  # click/typer print help themselves, to stdout
    assert code == 0 and "predict" in help_text and "hw" in help_text
