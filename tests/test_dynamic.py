"""Dynamic networks: shared weights across exits, exact channel permutation, real
width slices, switchable batch norm, budgeted selection with online correction,
clear errors, TorchScript export. Small inputs (3x64x64), random weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from torch.utils._python_dispatch import TorchDispatchMode

from netcut import InvalidInputError, predict
from netcut.dynamic import (DynamicNet, LatencyCorrector, SlimBatchNorm2d, build,
                            export, load, recalibrate_bn)
from netcut.dynamic.channels import importance
from netcut.dynamic.pricing import Candidate, pareto, spread
from netcut.models import build_on_meta
from netcut.planner import trim
from netcut.tracing import trace

SMALL = (3, 64, 64)
HW = "epyc-milan-2c"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return tvm.resnet18().eval()


@pytest.fixture(scope="module")
def resnet():
    """resnet18, exits layer2.1 and layer4.1, widths 1 and 0.5: four sub-nets, unpriced."""
    source = resnet18()
    net = build(source, SMALL, exits=["layer2.1", "layer4.1"], widths=(1.0, 0.5), num_classes=5)
    return source, net.eval()


@pytest.fixture(scope="module")
def priced():
    """resnet18 priced on this machine's profile, spread over 1.5-6 ms."""
    net = build(resnet18(), SMALL, exits=["layer1.1", "layer2.1", "layer3.1", "layer4.1"],
                widths=(1.0, 0.5, 0.25), num_classes=5, hardware=HW, budgets_ms=(1.5, 6.0),
                max_subnets=5)
    return net.eval()


def subnet_at(net: DynamicNet, exit: str, width: str):
    return next(s for s in net.subnets if s.exit == exit and s.width == width)


# ----- depth: exits share one prefix --------------------------------------------------------

def test_exits_share_one_set_of_weights(resnet):
    source, net = resnet
    shallow, deep = subnet_at(net, "layer2.1", "1"), subnet_at(net, "layer4.1", "1")
    seen = {}

    def record(module, args):
        seen.setdefault(net.active.name, []).append((id(module), module.weight.data_ptr()))

    handle = net.stages[0].get_submodule("layer1.0.conv1").register_forward_pre_hook(record)
    try:
        with torch.no_grad():
            net(torch.randn(1, *SMALL), subnet=shallow.id)
            net(torch.randn(1, *SMALL), subnet=deep.id)
    finally:
        handle.remove()
    assert seen[shallow.name] == seen[deep.name]  # one module, one tensor, both exits
    # no copies between exits: the parameters are the backbone's up to layer4.1 plus two heads
    kept = sum(p.numel() for n, p in source.named_parameters() if not n.startswith("fc."))
    heads = (128 * 5 + 5) + (512 * 5 + 5)
    assert sum(p.numel() for p in net.parameters()) == kept + heads
    # ... and they are the network's own copy, not the source's tensors
    source_ptrs = {p.data_ptr() for p in source.parameters()}
    assert not source_ptrs & {p.data_ptr() for p in net.parameters()}
    assert len(net.forward_exits(torch.randn(2, *SMALL))) == 2


@pytest.mark.parametrize("factory, exit", [(tvm.resnet18, "layer4.1"),
                                           (tvm.mobilenet_v3_small, "features.12")])
def test_full_width_is_the_source_prefix_plus_head(factory, exit):
    """Permuting channels by importance leaves the full-width function unchanged. In
    float64 the only difference is the order of the consumer convs' sums (~1e-16)."""
    torch.manual_seed(0)
    source = factory().double().eval()
    for m in source.modules():  # non-trivial statistics, so a mismatched permutation shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    net = build(source, SMALL, exits=[exit], widths=(1.0, 0.5), num_classes=4).eval()
    full = subnet_at(net, exit, "1")
    # (the table from a float32 twin on meta: netcut.trace propagates float32 samples)
    trn = trim(source, exit, 4, table=trace(build_on_meta(factory), SMALL)).eval()
    trn.head.load_state_dict(net.heads[0].fc.state_dict())
    x = torch.randn(2, *SMALL, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x, subnet=full.id), trn(x), rtol=0, atol=1e-12)
    # the permutation did happen: each group's channels are in falling importance (the
    # producers' filter L1 norms, each over its mean: a squeeze-excitation's fc2 counts too)
    modules = dict(net.stages[0].named_modules())
    moved = 0
    for group in net.groups:
        score = importance(modules, group)
        assert torch.all(score[:-1] >= score[1:])
        conv = modules[group.producers[0]]
        moved += not torch.equal(conv.weight, source.get_submodule(group.producers[0]).weight)
    assert moved > 0


# ----- width: real slices ---------------------------------------------------------------------

def test_narrow_widths_are_slices(resnet):
    _, net = resnet
    full, half = subnet_at(net, "layer4.1", "1"), subnet_at(net, "layer4.1", "0.5")
    # resnet18 BasicBlocks: conv1 (out) and conv2 (in) lose half the inner channels
    assert net.num_parameters(half.id) < net.num_parameters(full.id)
    assert half.params == net.num_parameters(half.id) and half.flops < full.flops
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        out = net(x, subnet=half.id)
        assert out.shape == (2, 5)
        # the slice path computes what a static copy of the same sub-net computes
        torch.testing.assert_close(out, net.static(half.id, share=False).eval()(x))
    static = net.static(half.id, share=True)
    conv = net.stages[0].get_submodule("layer1.0.conv1")
    sliced = static.stages[0].get_submodule("layer1.0.conv1").weight
    assert sliced.shape == (32, 64, 3, 3)
    assert sliced.untyped_storage().data_ptr() == conv.weight.untyped_storage().data_ptr()


def test_mobilenet_groups_cover_inverted_residuals():
    torch.manual_seed(0)
    net = build(tvm.mobilenet_v3_small().eval(), SMALL, exits=["features.12"],
                widths=(1.0, 0.5, 0.25), num_classes=3).eval()
    names = {g.name: g for g in net.groups}
    expand = names["features.4.block.0.0"]  # 96 expanded channels, with squeeze-excitation
    assert expand.channels == 96
    assert expand.producers == ("features.4.block.0.0", "features.4.block.2.fc2")
    assert expand.consumers == ("features.4.block.2.fc1", "features.4.block.3.0")
    assert expand.depthwise == ("features.4.block.1.0",)
    sizes = [net.num_parameters(s.id) for s in sorted(net.subnets, key=lambda s: s.flops)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    with torch.no_grad():
        for s in net.subnets:
            assert net(torch.randn(2, *SMALL), subnet=s.id).shape == (2, 3)


# ----- switching allocates nothing ------------------------------------------------------------

class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def test_switching_copies_and_allocates_nothing(resnet):
    _, net = resnet
    tensors = list(net.parameters()) + list(net.buffers())
    before = [t.data_ptr() for t in tensors]
    with _Ops() as ops:
        for s in list(net.subnets) * 2:
            net.activate(s.id)
            net.activate(s.name)
    assert ops.ops == []  # not one tensor operation
    with torch.no_grad():
        for s in net.subnets:
            net(torch.randn(1, *SMALL), subnet=s.id)
    assert [t.data_ptr() for t in tensors] == before


# ----- switchable batch norm --------------------------------------------------------------------

def test_recalibration_gives_each_width_its_statistics(resnet):
    source, net = resnet
    norm = net.stages[0].get_submodule("layer1.0.bn2")  # full channels, after a sliced conv
    # sliced channels whose input differs by width (layer1.0.bn1's input, the stem's
    # output, is the same at every width, and so are its statistics)
    inner = net.stages[0].get_submodule("layer1.1.bn1")
    assert isinstance(norm, SlimBatchNorm2d) and norm.running_mean.shape == (2, 64)
    assert torch.equal(norm.running_mean[0], norm.running_mean[1])  # both start as the source's
    torch.manual_seed(1)
    loader = [(torch.randn(4, *SMALL) * 2 + 1, torch.zeros(4)) for _ in range(3)]
    momentum, training = norm.momentum, net.training
    used = recalibrate_bn(net, loader, batches=2)
    assert used == {"1": 2, "0.5": 2}
    assert norm.num_batches_tracked.tolist() == [2, 2]
    assert not torch.allclose(norm.running_mean[0], norm.running_mean[1])
    assert not torch.allclose(inner.running_var[0, :32], inner.running_var[1, :32])
    assert norm.momentum == momentum and net.training == training
    with pytest.raises(InvalidInputError, match="no batches"):
        recalibrate_bn(net, [], batches=2)


# ----- choosing by budget ------------------------------------------------------------------------

def test_pricing_matches_tracing_the_sliced_subnet(priced):
    """A width sub-net's price (one schedule per width + each exit's head) equals
    tracing its static twin on meta and pricing that whole."""
    for s in priced.subnets:
        whole = predict(priced.static(s.id, device="meta"), HW, input_shape=SMALL).total_ms
        assert s.predicted_ms == pytest.approx(whole, rel=1e-6)


def test_select_obeys_the_budget(priced):
    subnets = priced.subnets
    assert 2 <= len(subnets) <= 5
    assert [s.predicted_ms for s in subnets] == sorted(s.predicted_ms for s in subnets)
    for budget in (1.5, 2.0, 3.0, 4.5, 6.0, 50.0):
        choice = priced.select(budget)
        fitting = [s for s in subnets if s.predicted_ms <= budget]
        if fitting:  # the most capable (FLOPs until accuracy is known) that fits
            assert choice.fits and choice.expected_ms <= budget
            assert subnets[choice.subnet].flops == max(s.flops for s in fitting)
    fastest = subnets[0]
    tiny = fastest.predicted_ms / 10
    choice = priced.select(tiny)
    assert choice.subnet == fastest.id and not choice.fits
    priced.auto_observe = False
    try:
        out = priced(torch.randn(1, *SMALL), budget_ms=tiny)  # runs the fastest, never raises
    finally:
        priced.auto_observe = True
    assert out.shape == (1, 5)
    decision = priced.last_decision
    assert decision.subnet == fastest.id and not decision.fits and decision.missed


def test_accuracy_replaces_flops_as_the_ranking(priced):
    ids = [s.id for s in priced.subnets]
    budget = priced.subnets[-1].predicted_ms * 2  # everything fits
    assert priced.select(budget).subnet == ids[-1]
    priced.set_accuracies({i: 0.5 for i in ids} | {ids[0]: 0.9})
    try:
        assert priced.select(budget).subnet == ids[0]
    finally:
        priced.set_accuracies({i: None for i in ids})


def test_slow_observation_moves_the_choice(priced):
    subnets = priced.subnets
    big = subnets[-1]
    budget = big.predicted_ms * 1.05
    priced.corrector.reset()
    assert priced.select(budget).subnet == big.id
    priced.observe(big.id, big.predicted_ms * 3)  # the device runs it 3x slower
    try:
        choice = priced.select(budget)
        assert choice.subnet != big.id and choice.fits
        # the first measurement sets the ratio outright, and is the prior of the others
        assert priced.expected_ms(big.id) == pytest.approx(big.predicted_ms * 3)
        assert priced.corrector.factor(subnets[0].id) == pytest.approx(3.0)
        # once calibrated, a sub-net running 2x slower than expected moves the device
        # drift: 2 ** alpha = 2 ** 0.3 for every sub-net that has not run since
        priced.observe(subnets[0].id, subnets[0].predicted_ms * 3)
        priced.observe(subnets[0].id, subnets[0].predicted_ms * 6)
        assert priced.corrector.factor(big.id) == pytest.approx(3 * 2 ** 0.3)
    finally:
        priced.corrector.reset()


def test_corrector_arithmetic():
    c = LatencyCorrector(2, alpha=0.5, shared=False)
    c.update(0, 2.0, 4.0)  # first: ratio = 4 / 2 = 2
    assert c.factor(0) == 2.0 and c.factor(1) == 1.0
    c.update(0, 2.0, 2.0)  # then EWMA: 0.5 * 2 + 0.5 * (2 / 2) = 1.5
    assert c.factor(0) == 1.5
    s = LatencyCorrector(3, alpha=0.5, shared=True, bias_alpha=0.25)
    s.update(0, 1.0, 4.0)  # first run of 0: bias b0 = 4 / s = 4, the prior of unseen ones
    assert s.factor(0) == 4.0 and s.factor(1) == 4.0 and s.drift_ == 1.0
    s.update(1, 1.0, 1.0)  # first run of 1: b1 = 1; prior = geometric mean(4, 1) = 2
    assert s.factor(1) == 1.0 and s.factor(2) == pytest.approx(2.0)
    s.update(0, 1.0, 8.0)  # 0 again, 2x slower than its expected 4: the device factor
    assert s.drift_ == pytest.approx(2 ** 0.5)  # s = (8 / 4) ** 0.5, and slowly the bias:
    b0 = 4 * (8 / (4 * 2 ** 0.5)) ** 0.25  # b0 * (8 / (b0 * s)) ** 0.25 = 4 * 2 ** 0.125
    assert s.factor(0) == pytest.approx(b0 * 2 ** 0.5)
    assert s.factor(1) == pytest.approx(2 ** 0.5)  # 1 did not run: the device moved it
    assert s.factor(2) == pytest.approx((4 * 2 ** 0.125) ** 0.5 * 2 ** 0.5)  # never ran
    assert s.sd_ == pytest.approx(0.5 ** 0.5 * math.log(2))  # one surprise of 2, rate 0.5
    s.frozen = True
    s.update(1, 1.0, 100.0)
    assert s.factor(1) == pytest.approx(2 ** 0.5)


def test_pareto_and_spread_keep_the_useful_candidates():
    def c(ms, flops):
        return Candidate(0, 0, ms, flops, 0)

    cands = [c(1, 10), c(2, 30), c(2.5, 20), c(3, 40), c(5, 80), c(9, 90), c(20, 200)]
    front = pareto(cands)
    assert [x.latency_ms for x in front] == [1, 2, 3, 5, 9, 20]  # 2.5 ms is slower and smaller than 2 ms
    # budgets 2..9 ms, three places: the fastest (always), the best under each of
    # geomspace(2, 9, 2) = (2, 9) ms -> 2 ms and 9 ms; 20 ms never fits a budget
    kept = spread(front, [2.0, 9.0], 3)
    assert [x.latency_ms for x in kept] == [1, 2, 9]
    # five places: room left is filled by the farthest in log latency (5 ms, then 3 ms)
    assert [x.latency_ms for x in spread(front, [2.0, 9.0], 5)] == [1, 2, 3, 5, 9]
    assert [x.latency_ms for x in spread(front, [4.0, 9.0], 1)] == [3]


# ----- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [0, 1.5, -0.5, float("nan")])
def test_bad_width_ratio(ratio):
    with pytest.raises(InvalidInputError, match=r"width ratio .* all sliceable layers"):
        build(resnet18(), SMALL, widths=(1.0, ratio), num_classes=3)


def test_bad_per_layer_ratio_and_pattern():
    with pytest.raises(InvalidInputError, match=r"width ratio 0 for layer 'layer4\.\*'"):
        build(resnet18(), SMALL, widths=[{"layer4.*": 0}], num_classes=3)
    with pytest.raises(InvalidInputError, match=r"'layer9\.\*' matches no sliceable layer"):
        build(resnet18(), SMALL, exits=["layer4.1"], widths=[{"layer9.*": 0.5}], num_classes=3)


class Residual(nn.Module):
    """Every conv output reaches the residual add: nothing can be sliced."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        return x + self.conv(x)


def test_unsliceable_backbone():
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    with pytest.raises(InvalidInputError, match="Sequential has no Conv2d layer"):
        build(mlp, (16,), widths=(1.0, 0.5), num_classes=3)
    with pytest.raises(InvalidInputError, match="no sliceable channels.*stem: the residual add"):
        build(Residual(), (3, 16, 16), widths=(0.5,), num_classes=3)


def test_unknown_subnet_and_bad_budget(resnet):
    _, net = resnet
    with pytest.raises(InvalidInputError, match="unknown sub-net 99"):
        net.activate(99)
    with pytest.raises(InvalidInputError, match="unknown sub-net 'nope'"):
        net(torch.randn(1, *SMALL), subnet="nope")
    with pytest.raises(InvalidInputError, match="positive number of ms"):
        net.select(-1.0)
    with pytest.raises(InvalidInputError, match="no latency to go by"):
        net.select(5.0)  # built without hardware and never measured
    with pytest.raises(InvalidInputError, match="budgets_ms needs hardware"):
        build(resnet18(), SMALL, budgets_ms=(1, 2), num_classes=3)


# ----- persistence and export --------------------------------------------------------------------

def test_state_dict_round_trip_keeps_metadata(priced):
    priced.set_accuracy(0, 0.42)
    try:
        state = priced.state_dict()
        twin = build(resnet18(), SMALL, exits=["layer1.1", "layer2.1", "layer3.1", "layer4.1"],
                     widths=(1.0, 0.5, 0.25), num_classes=5, hardware=HW, budgets_ms=(1.5, 6.0),
                     max_subnets=5).eval()
        twin.load_state_dict(state)
        assert twin.subnets[0].accuracy == 0.42
        x = torch.randn(1, *SMALL)
        with torch.no_grad():
            for s in priced.subnets:
                torch.testing.assert_close(twin(x, subnet=s.id), priced(x, subnet=s.id))
    finally:
        priced.set_accuracy(0, None)


def test_torchscript_round_trip(priced, tmp_path):
    manifest = export(priced, tmp_path / "dyn")
    data = json.loads(manifest.read_text())
    assert [s["name"] for s in data["subnets"]] == [s.name for s in priced.subnets]
    weights = sum(p.numel() * p.element_size() for p in priced.parameters())
    assert data["bytes"] < 1.2 * weights  # every sub-net's weights stored once
    runtime = load(tmp_path / "dyn")
    x = torch.randn(1, *SMALL)
    with torch.no_grad():
        for s in priced.subnets:
            torch.testing.assert_close(runtime(x, subnet=s.id), priced(x, subnet=s.id))
        _, decision = runtime.run(x, priced.subnets[-1].predicted_ms * 10)
    assert decision.subnet == priced.select(priced.subnets[-1].predicted_ms * 10).subnet
    with pytest.raises(InvalidInputError, match="unknown sub-net"):
        runtime(x, subnet=len(priced.subnets))
    (tmp_path / "dyn" / "dynamic.ts").write_bytes(b"corrupt")
    with pytest.raises(InvalidInputError, match="SHA-256 differs"):
        load(tmp_path / "dyn")
    with pytest.raises(InvalidInputError, match="no manifest.json"):
        load(tmp_path)


def test_cli_build_show_run(tmp_path, monkeypatch):
    import io

    from rich.console import Console
    from typer.testing import CliRunner

    from netcut.cli import main as cli_main
    from netcut.dynamic.cli import dynamic_app

    def invoke(*args):
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(cli_main, "out", Console(file=out, width=200, soft_wrap=True))
        monkeypatch.setattr(cli_main, "err", Console(file=err, width=200, soft_wrap=True))
        result = CliRunner().invoke(dynamic_app, list(args), catch_exceptions=False)
        return result.exit_code, out.getvalue()

    folder = tmp_path / "dyn"
    code, out = invoke("build", "resnet18", "--input", "3x32x32", "--num-classes", "4",
                       "--exits", "layer2.1,layer4.1", "--widths", "1,0.5", "--hw", HW,
                       "--out", str(folder), "--json")
    assert code == 0
    built = json.loads(out)
    assert len(built["subnets"]) >= 2 and (folder / "net.pt").is_file()
    code, out = invoke("show", str(folder), "--json")
    assert code == 0 and len(json.loads(out)["subnets"]) == len(built["subnets"])
    code, out = invoke("run", str(folder), "--budgets", "0.01ms,1000ms", "--frames", "4", "--json")
    ran = json.loads(out)
    assert code == 0 and ran["frames"] == 4
    assert ran["per_budget"][0]["miss_rate"] == 1.0  # 10 us: nothing fits, the fastest runs
    assert ran["per_budget"][1]["miss_rate"] == 0.0
    with pytest.raises(InvalidInputError, match="width ratio 2.0"):
        invoke("build", "resnet18", "--num-classes", "4", "--widths", "1,2", "--out", str(folder))


# ----- training (Lightning): single-path against multi-path; the report ---------------------

TINY = (3, 32, 32)
TRAIN_EXITS = ["layer1.1", "layer2.1"]
TRAIN_WIDTHS = (1.0, 0.5, 0.25)


def _image_folder(root, per_class: int = 16, seed: int = 0):
    """Two classes of 32x32 images told apart by which half is bright, plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            img[(slice(0, 16) if c == 0 else slice(16, 32))] += 140
            Image.fromarray(img).save(root / f"c{c}" / f"{i}.png")
    return root


def _cli_run(*args):
    """The whole ``netcut`` command in-process: (exit code, stdout, stderr)."""
    import io

    from rich.console import Console

    from netcut.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    saved = cli_main.out, cli_main.err
    cli_main.out = Console(file=out, width=200, soft_wrap=True)
    cli_main.err = Console(file=err, width=200, soft_wrap=True)
    try:
        code = cli_main.main(list(args))
    finally:
        cli_main.out, cli_main.err = saved
    return code, out.getvalue(), err.getvalue()


def _built_folder(folder):
    """What ``netcut dynamic build`` writes (net.pt, dynamic.ts, manifest.json) for
    resnet18 at 3x32x32, exits layer1.1/layer2.1, widths 1/0.5/0.25: six sub-nets."""
    import io

    net = build(resnet18(), TINY, exits=TRAIN_EXITS, widths=TRAIN_WIDTHS, num_classes=2)
    export(net, folder)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    (folder / "net.pt").write_bytes(buffer.getvalue())
    return net


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``netcut dynamic train --method both`` on a tiny two-class folder."""
    base = tmp_path_factory.mktemp("dyntrain")
    data = _image_folder(base / "data")
    folder = base / "dyn"
    before = _built_folder(folder)
    code, out, err = _cli_run("dynamic", "train", str(folder), "--data", str(data), "--method",
                              "both", "--epochs", "2", "--batch-size", "8", "--workers", "0",
                              "--val-fraction", "0.25", "--json")
    assert code == 0, err
    return folder, data, before, json.loads(out)


def _val_loader(data):
    from netcut.retrain.data import ImageFolderDataModule

    dm = ImageFolderDataModule(data, TINY, batch_size=8, num_workers=0, val_fraction=0.25)
    dm.setup("fit")
    return dm.val_dataloader(), len(dm.val_set), len(dm.train_set)


def test_train_both_methods_record_accuracy_on_held_out_data(trained):
    from netcut.dynamic.train import evaluate

    folder, data, before, result = trained
    names = [s.name for s in before.subnets]
    loader, n_val, n_train = _val_loader(data)
    single, multi = result["results"]["single"], result["results"]["multi"]
    for r in (single, multi):
        assert sorted(r["accuracies"]) == sorted(names)
        assert r["eval_images"] == n_val  # measured on the validation split only
    # the manifest holds the deployed (single-path) accuracies and both results
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {s["name"]: s["accuracy"] for s in manifest["subnets"]} == single["accuracies"]
    assert manifest["training"]["results"]["multi"]["accuracies"] == multi["accuracies"]
    # the trained weights went back to net.pt: re-measuring them gives the recorded accuracy
    net = torch.load(folder / "net.pt", weights_only=False)
    changed = [not torch.equal(a, b) for a, b in zip(before.parameters(), net.parameters())]
    assert all(changed)
    for s in net.subnets:
        assert evaluate(net, loader, subnet=s.id)[0] == pytest.approx(single["accuracies"][s.name])
        assert s.accuracy == pytest.approx(single["accuracies"][s.name])
    # the separately trained copies went to multipath.pt and measure the same
    copies = torch.load(folder / "multipath.pt", weights_only=False)
    for name, copy in copies.items():
        assert evaluate(copy, loader)[0] == pytest.approx(multi["accuracies"][name])
    # the two classes differ in which half is bright: the deepest full-width sub-net learns it
    deepest = max(net.subnets, key=lambda s: s.flops).name
    assert single["accuracies"][deepest] > 0.5 and multi["accuracies"][deepest] > 0.5
    # the exported artifact holds the trained weights too
    rt = load(folder)
    x = next(iter(loader))[0]
    with torch.no_grad():
        for s in net.subnets:
            torch.testing.assert_close(rt(x, subnet=s.id), net.eval()(x, subnet=s.id),
                                       atol=1e-4, rtol=1e-4)


def test_single_path_costs_one_round(trained):
    folder, data, before, result = trained
    single, multi = result["results"]["single"], result["results"]["multi"]
    _, _, n_train = _val_loader(data)
    per_epoch = n_train // 8  # drop_last
    n = len(before.subnets)
    assert multi["steps"] == n * 2 * per_epoch  # every sub-net its own 2 epochs
    assert single["steps"] == 2 * per_epoch  # 2 epochs in all
    # default sampling, sandwich: the full width every step, the two others in turn, every
    # exit of a width in the same pass
    assert single["sampling"] == "sandwich" and single["steps"] % 2 == 0
    for s in before.subnets:
        full = s.width == "1"
        assert single["updates"][s.name] == (single["steps"] if full else single["steps"] // 2)
    # (which is quicker by the clock is benchmarks/dynamic_train.py's to measure, not a test's)
    assert single["wall_s"] > 0 and multi["wall_s"] > 0
    assert result["wall_ratio_multi_over_single"] == pytest.approx(multi["wall_s"] / single["wall_s"])


def test_sandwich_sampling_trains_the_widest_every_step():
    from netcut.dynamic.train import DynamicClassifier

    net = build(resnet18(), TINY, exits=["layer1.1"], widths=(1.0, 0.75, 0.5), num_classes=2)
    widest = max(range(len(net.widths)), key=lambda k: sum(net.widths[k].channels))
    sandwich = DynamicClassifier(net, sampling="sandwich")
    picks = [sandwich.widths_for_step(step) for step in range(6)]
    assert all(p[0] == widest and len(p) == 2 and p[1] != widest for p in picks)
    assert {p[1] for p in picks} == set(range(3)) - {widest}
    cycle = DynamicClassifier(net, sampling="cycle")
    assert sorted(k for step in range(3) for k in cycle.widths_for_step(step)) == [0, 1, 2]
    with pytest.raises(InvalidInputError, match="sampling 'bogus'"):
        DynamicClassifier(net, sampling="bogus")


def test_multi_path_alone_exports_its_copies(tmp_path):
    data = _image_folder(tmp_path / "data", per_class=8)
    folder = tmp_path / "dyn"
    _built_folder(folder)
    code, out, err = _cli_run("dynamic", "train", str(folder), "--data", str(data), "--method",
                              "multi", "--epochs", "1", "--batch-size", "8", "--workers", "0",
                              "--json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result["results"]) == ["multi"] and result["deployed"] == "multi"
    copies = torch.load(folder / "multipath.pt", weights_only=False)
    rt = load(folder)
    x = torch.randn(2, *TINY)
    with torch.no_grad():
        for i, name in enumerate(rt.names):
            torch.testing.assert_close(rt(x, subnet=i), copies[name].eval()(x), atol=1e-4, rtol=1e-4)
    assert [s["accuracy"] for s in rt.subnets] == [result["results"]["multi"]["accuracies"][n]
                                                   for n in rt.names]


def test_report_has_a_row_per_subnet_and_the_plot(trained, tmp_path):
    folder = trained[0]
    out = tmp_path / "report"
    code, stdout, err = _cli_run("dynamic", "report", str(folder), "--hw", HW,
                                 "--hw", "jetson-orin-nano", "--frames", "12", "--out", str(out),
                                 "--json")
    assert code == 0, err
    report = json.loads(stdout)
    names = [s["name"] for s in report["subnets"]]
    assert report["devices"] == [HW, "jetson-orin-nano"]
    for row in report["subnets"]:
        assert all(row["predicted_ms"][d] > 0 for d in report["devices"])
        assert row["accuracy"] is not None and row["accuracy_multi"] is not None
    assert len(report["trace"]["decisions"]) == 12
    assert sum(report["trace"]["frames_per_subnet"].values()) == 12
    png = (out / "budget-trace.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    html_text = (out / "report.html").read_text()
    import base64

    assert base64.b64encode(png).decode() in html_text  # the plot embedded
    md = (out / "report.md").read_text()
    assert "](budget-trace.png)" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[1] for line in table] == names  # one row per sub-net
    for name in names:
        assert html_text.count(f"<td>{name}</td>") == 1
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["subnets"] == report["subnets"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_train_and_report_bad_input(trained, tmp_path):
    folder, data = trained[0], trained[1]
    manifest = (folder / "manifest.json").read_text()
    (tmp_path / "empty").mkdir()
    cases = [
        (("--method", "bogus"), "--method 'bogus': allowed single, multi, both"),
        (("--data-empty",), "no class folders in"),
        (("--sampling", "bogus"), "--sampling 'bogus'"),
        (("--epochs", "0"), "--epochs must be at least 1"),
    ]
    for extra, message in cases:
        where = str(tmp_path / "empty") if extra == ("--data-empty",) else str(data)
        args = [a for a in extra if a != "--data-empty"]
        code, out, err = _cli_run("dynamic", "train", str(folder), "--data", where, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
        assert message in lines[0] and "Traceback" not in err
    three = tmp_path / "three"
    for c in range(3):
        (three / f"k{c}").mkdir(parents=True)
        for i in range(2):
            (three / f"k{c}" / f"{i}.png").write_bytes((data / "c0" / f"{i}.png").read_bytes())
    code, out, err = _cli_run("dynamic", "train", str(folder), "--data", str(three), "--workers", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has 3 classes, the dynamic network's heads have 2" in err
    assert (folder / "manifest.json").read_text() == manifest  # nothing written
    code, out, err = _cli_run("dynamic", "train", str(tmp_path), "--data", str(data))
    assert code == 2 and "no manifest.json" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli_run("dynamic", "report", str(tmp_path / "nowhere"))
    assert code == 2 and "no manifest.json" in err and len(err.strip().splitlines()) == 1
