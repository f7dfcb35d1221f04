"""Every torchvision classifier: traced by torch.fx, priced, and its FLOPs cross-checked
against torch.utils.flop_counter (all models, exactly) and fvcore (a cheap subset).

Counting convention: a multiply-add is 2 FLOPs, as in torch.utils.flop_counter; fvcore
counts 1 per multiply-add, so ours == 2 * fvcore.
"""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netcut import estimate_table, trace
from netcut.models import default_input_shape, resolve_model, torchvision_classifiers

ALL_MODELS = torchvision_classifiers()
CPU_PROFILE = "epyc-milan-2c"


@functools.lru_cache(maxsize=None)
def _traced(name: str):
    """(table, flop_counter total) of one model; the meta model is built once for both."""
    model, _ = resolve_model(name)
    shape = default_input_shape(name)
    table = trace(model, shape)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.empty((1, *shape), device="meta"))
    return table, counter.get_total_flops()


def test_registry_is_the_whole_classifier_zoo():
    # torchvision 0.16+ registers 80 classification models (quantized ones excluded)
    assert len(ALL_MODELS) >= 80
    assert {"resnet50", "vit_b_16", "swin_v2_t", "maxvit_t", "inception_v3"} <= set(ALL_MODELS)
    assert default_input_shape("inception_v3") == (3, 299, 299)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_zoo_model(name):
    table, reference = _traced(name)
    assert table.tracer == "fx", table.notes
    assert table.unsupported() == {}
    assert len(table) > 0 and table.input_shape == default_input_shape(name)
    cuts = table.cut_indices()
    assert cuts.size and cuts[0] < len(table) - 1, "no legal cut before the last row"
    assert table.matrix_flops() == reference, "matrix FLOPs differ from torch.utils.flop_counter"
    for profile in ("h100-sxm", CPU_PROFILE):
        total = estimate_table(table, profile).total_ms
        assert math.isfinite(total) and total > 0, profile


# fvcore runs the model for real (jit trace), so only models that are cheap on 2 CPU cores
FVCORE_SUBSET = [
    "resnet18", "mobilenet_v3_small", "efficientnet_b0", "densenet121", "squeezenet1_1",
    "shufflenet_v2_x1_0", "googlenet", "swin_t", "maxvit_t", "vit_b_32", "regnet_y_400mf",
    "convnext_tiny",
]
FVCORE_MATRIX_OPS = ("conv", "linear", "matmul", "einsum", "bmm", "addmm")


@pytest.mark.parametrize("name", FVCORE_SUBSET)
def test_matrix_flops_match_fvcore(name):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    table, _ = _traced(name)
    model, _ = resolve_model(name)
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.zero_()  # to_empty leaves garbage; zeros keep every op finite
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jit TracerWarnings
            analysis = fvcore_nn.FlopCountAnalysis(
                model, torch.zeros((1, *default_input_shape(name))))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            by_operator = analysis.by_operator()
            unsupported = analysis.unsupported_ops()
    fvcore_macs = sum(by_operator.get(op, 0) for op in FVCORE_MATRIX_OPS)
    ours = table.matrix_flops()
    if "aten::_native_multi_head_attention" in unsupported:
        # ViT: PyTorch's fused nn.MultiheadAttention kernel is invisible to fvcore (listed
        # as unsupported, counted 0), so compare without our multihead_attention rows.
        ours -= sum(r.flops for r in table if r.op == "multihead_attention")
        assert ours < table.matrix_flops()  # there were such rows to take out
    assert fvcore_macs > 0
    # maxvit's einsum counts come back from fvcore as floats: allow 1e-6 relative
    assert ours == pytest.approx(2 * fvcore_macs, rel=1e-6)


VARIANTS = ("resnet10", "resnet24", "convnext_pico", "convnext_nano",
            "mobilenet_v3_large_075", "mobilenet_v3_small_075")


@pytest.mark.parametrize("name", VARIANTS)
def test_family_variants_trace_and_count_like_torch(name):
    # the development networks of calibration/data/cpu-xeon-gnr-2c-dev3/: built from
    # torchvision's classes, resolved by spec, and none of them a registered classifier
    spec = f"netcut.zoo.variants:{name}"
    table, counted = _traced(spec)
    assert name not in ALL_MODELS
    assert table.matrix_flops() == counted  # torch's counter counts the matrix ops only
    assert table.cut_legal.sum() >= 5
