"""Trimmed networks: real runnable prefixes with the source's weights, a new head,
checked output shapes, save/load round trips and clear errors."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from netcut import InvalidInputError, ModelSpecError, TraceError
from netcut.models import (build_on_meta, default_input_shape, resolve_model,
                           torchvision_classifiers)
from netcut.planner import GlobalPool, TrimmedNet, cut_points, trim
from netcut.tracing import trace

SMALL = (3, 64, 64)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The forward passes here are tiny: with pytest-xdist, one thread per worker
    keeps the workers from oversubscribing the cores (several times faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_vit() -> nn.Module:
    """torchvision's ViT at toy size: 4x4 patches of 32x32 -> 16 tokens + class token."""
    return VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2,
                             hidden_dim=32, mlp_dim=64, num_classes=5)


def tiny_swin() -> nn.Module:
    """torchvision's Swin at toy size (channels-last stages)."""
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1, 1], num_heads=[2, 2, 2],
                           window_size=[4, 4], num_classes=5)


def outputs_of(model: nn.Module, path: str, x: torch.Tensor) -> torch.Tensor:
    """What module ``path`` of ``model`` gives for ``x`` (its last call, for a module
    run twice such as ResNet's relu), read with a forward hook."""
    seen = []
    handle = model.get_submodule(path).register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[-1]


def module_at(model: nn.Module, cut) -> str:
    """The module whose output is the cut: the row's own module, else the block."""
    names = dict(model.named_modules())
    return cut.node if cut.node in names else cut.name


# ----- real forward passes on the CPU -------------------------------------------------

CPU_MODELS = {  # name: (builder, input); weights=None, small inputs, where the model allows
    "resnet18": (lambda: tvm.resnet18(weights=None), SMALL),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(weights=None), SMALL),
    "densenet121": (lambda: tvm.densenet121(weights=None), SMALL),
    "googlenet": (lambda: tvm.googlenet(weights=None, aux_logits=False, init_weights=False), SMALL),
    "squeezenet1_1": (lambda: tvm.squeezenet1_1(weights=None), SMALL),
    "shufflenet_v2_x0_5": (lambda: tvm.shufflenet_v2_x0_5(weights=None), SMALL),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(weights=None), SMALL),
    "convnext_tiny": (lambda: tvm.convnext_tiny(weights=None), SMALL),
    "regnet_y_400mf": (lambda: tvm.regnet_y_400mf(weights=None), SMALL),
    "inception_v3": (lambda: tvm.inception_v3(weights=None, aux_logits=False,
                                              init_weights=False), (3, 75, 75)),
    "tiny_vit": (tiny_vit, (3, 32, 32)),
    "tiny_swin": (tiny_swin, (3, 32, 32)),
}


@pytest.mark.parametrize("name", sorted(CPU_MODELS))
def test_trn_prefix_computes_what_the_source_computes(name):
    builder, shape = CPU_MODELS[name]
    torch.manual_seed(0)
    source = builder().eval()
    # plan on a meta twin (free), trim the real model: rows are matched by op name
    table = trace(build_on_meta(builder), shape)
    cuts = cut_points(table)
    middle = cuts[len(cuts) // 2]
    trn = trim(source, middle.name, 7, input_shape=shape, table=table)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        features = trn.features(x)
        out = trn(x)
    assert out.shape == (2, 7)
    assert features.shape == (2, *middle.shape[1:])
    expected = outputs_of(source, module_at(source, middle), x)
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    # pooled as documented: class token, else the mean over every spatial axis
    if middle.layout == "NLC":
        pooled = expected[:, 0]
    else:
        pooled = expected.mean(dim=(1, 2) if middle.layout == "NHWC" else (2, 3))
    torch.testing.assert_close(trn.pool(features), pooled)


def test_trn_keeps_the_source_weights_as_its_own_copy():
    torch.manual_seed(0)
    source = tvm.resnet18(weights=None).train()
    before = source.bn1.running_mean.clone()
    trn = trim(source, "layer2.0", 3, input_shape=SMALL)
    kept = trn.features.get_submodule("layer1.0.conv1").weight
    assert torch.equal(kept, source.layer1[0].conv1.weight)
    assert kept.data_ptr() != source.layer1[0].conv1.weight.data_ptr()
    with torch.no_grad():  # fine-tuning the TRN never changes the source, and back
        source.layer1[0].conv1.weight.zero_()
    assert kept.abs().sum() > 0
    # the shape check ran in eval mode: no batch-norm statistics were updated
    assert torch.equal(source.bn1.running_mean, before)
    assert torch.equal(trn.features.bn1.running_mean, before)
    assert trn.training and source.training  # the TRN comes back in the source's mode
    # params: everything up to layer2.0, plus the new Linear(128, 3)
    cut = trn.cut
    assert sum(p.numel() for p in trn.features.parameters()) == cut.params_kept
    assert sum(p.numel() for p in trn.head.parameters()) == 128 * 3 + 3
    assert not hasattr(trn.features, "layer3") and not hasattr(trn.features, "fc")


def test_state_dict_round_trip_into_a_fresh_trn():
    torch.manual_seed(0)
    trn = trim("resnet18", "layer3.0", 5, input_shape=SMALL).eval()
    buffer = io.BytesIO()
    torch.save(trn.state_dict(), buffer)
    torch.manual_seed(1)  # a differently initialised twin
    fresh = trim("resnet18", "layer3.0", 5, input_shape=SMALL).eval()
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        assert not torch.equal(fresh(x), trn(x))
        buffer.seek(0)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        assert torch.equal(fresh(x), trn(x))


def test_whole_trn_pickles():
    torch.manual_seed(0)
    trn = trim("mobilenet_v3_small", "features.6", 4, head="mlp", hidden=32,
               input_shape=SMALL).eval()
    buffer = io.BytesIO()
    torch.save(trn, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)  # a module pickle is code, not weights
    assert isinstance(loaded, TrimmedNet) and loaded.cut == trn.cut
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        assert torch.equal(loaded(x), trn(x))


def test_mlp_head_and_token_pooling():
    torch.manual_seed(0)
    trn = trim(tiny_vit(), "encoder.layers.encoder_layer_1", 6, head="mlp", hidden=24,
               dropout=0.1, input_shape=(3, 32, 32), token_pool="mean")
    linear1, relu, dropout, linear2 = trn.head
    assert (linear1.in_features, linear1.out_features) == (32, 24)
    assert isinstance(relu, nn.ReLU) and dropout.p == 0.1
    assert (linear2.in_features, linear2.out_features) == (24, 6)
    assert isinstance(trn.pool, GlobalPool) and trn.pool.token_pool == "mean"
    tokens = torch.randn(2, 17, 32)
    torch.testing.assert_close(trn.pool(tokens), tokens.mean(dim=1))


def test_stochastic_depth_still_follows_train_and_eval():
    from torchvision.ops import StochasticDepth

    trn = trim(tvm.convnext_tiny(weights=None, stochastic_depth_prob=0.5), "features.3.0", 2,
               input_shape=SMALL)
    depth = [m for m in trn.features.modules() if isinstance(m, StochasticDepth)]
    assert depth, "StochasticDepth was traced through (and frozen to eval)"
    trn.eval()
    assert not any(m.training for m in depth)


# ----- every family, on meta (shapes only, nothing computed) ---------------------------

#: one per torchvision model family not run on the CPU above (densenet121 and
#: inception_v3 again at full size), at their default input sizes
FAMILIES = ["alexnet", "densenet121", "efficientnet_v2_s", "inception_v3", "maxvit_t",
            "mnasnet0_5", "mobilenet_v2", "resnet50", "squeezenet1_0", "swin_t", "swin_v2_t",
            "vgg11_bn", "vit_b_16"]


@pytest.mark.parametrize("spec", [f for f in FAMILIES if f in torchvision_classifiers()])
def test_meta_trn_at_first_middle_and_last_cut(spec):
    model, _ = resolve_model(spec)  # parameters on meta: the TRN is built and checked free
    shape = default_input_shape(spec)
    table = trace(model, shape)
    cuts = cut_points(table)
    for cut in (cuts[0], cuts[len(cuts) // 2], cuts[-1]):
        trn = trim(model, cut, 10, input_shape=shape, table=table)
        out = trn(torch.empty(2, *shape, device="meta"))
        assert out.shape == (2, 10) and out.device.type == "meta"
        assert trn.head.in_features == cut.channels


# ----- errors -------------------------------------------------------------------------

def test_bad_cut_names_fail_with_a_suggestion():
    model, _ = resolve_model("resnet18")
    with pytest.raises(InvalidInputError, match=r"did you mean layer2\.1"):
        trim(model, "layer2.l", 10)
    with pytest.raises(InvalidInputError, match="classifier head"):
        trim(model, "fc", 10)


def test_bad_arguments_are_input_errors():
    model, _ = resolve_model("resnet18")
    with pytest.raises(InvalidInputError, match="num_classes"):
        trim(model, "layer1.0", 0)
    with pytest.raises(InvalidInputError, match="did you mean 'mlp'"):
        trim(model, "layer1.0", 10, head="mpl")
    with pytest.raises(InvalidInputError, match="token_pool"):
        trim(model, "layer1.0", 10, token_pool="max")
    with pytest.raises(ModelSpecError, match="did you mean resnet18"):
        trim("resnet81", "layer1.0", 10)
    table = trace(model, SMALL)
    with pytest.raises(InvalidInputError, match="traced at input"):
        trim(model, "layer1.0", 10, input_shape="3x224x224", table=table)


def test_a_head_with_the_wrong_output_is_refused_at_construction():
    model, _ = resolve_model("resnet18")
    with pytest.raises(InvalidInputError, match=r"not \[2, 10\]"):
        trim(model, "layer1.0", 10, head=nn.Linear(64, 9, device="meta"))
    with pytest.raises(InvalidInputError, match=r"does not take the pooled features \[2, 64\]"):
        trim(model, "layer1.0", 10, head=nn.Linear(65, 10, device="meta"))


class DataDependent(nn.Module):
    """fx cannot trace Python control flow on tensor values."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            x = x.relu()
        return self.fc(x.mean(dim=(2, 3)))


def test_a_model_fx_cannot_trace_is_a_trace_error():
    with pytest.raises(TraceError, match="cannot trim DataDependent.*torch.fx"):
        trim(DataDependent(), "conv", 3, input_shape=(3, 16, 16))
