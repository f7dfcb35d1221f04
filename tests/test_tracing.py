"""Tracing whole networks: cut legality, batch/dtype re-pricing, the dispatch fallback,
model specs and the errors bad specs raise."""

from __future__ import annotations

import functools
import re
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import netcut
from netcut import InvalidInputError, ModelSpecError, TraceError
from netcut.models import resolve_model
from netcut.tracing import parse_input_shape, trace


@functools.lru_cache(maxsize=None)
def traced(spec: str):
    """Each zoo model is traced once per test session (tables are not mutated)."""
    return trace(spec)


def rows_of(table, prefix: str) -> list[int]:
    """Indices of the rows that belong to module ``prefix`` (by row name)."""
    return [i for i, n in enumerate(table.names) if n == prefix or n.startswith(prefix + ".")]


def row_named(table, name: str) -> int:
    (index,) = [i for i, n in enumerate(table.names) if n == name]
    return index


def meta_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """torch.utils.flop_counter's total for one forward pass on meta tensors."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


def assert_same_table(a, b):
    assert a.names == b.names and a.ops == b.ops and a.blocks == b.blocks
    assert a.input_shape == b.input_shape and a.out_shapes == b.out_shapes
    for column in ("flops", "bytes_read", "bytes_written", "params", "kernels", "cut_legal",
                   "batch_scaled", "supported", "op_class_idx"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=column)


# ----- cut legality -------------------------------------------------------------------

RESNET18_BLOCKS = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]


def test_resnet18_cuts_between_residual_blocks_only():
    t = traced("resnet18")
    for block in RESNET18_BLOCKS:
        rows = rows_of(t, block)
        # a BasicBlock ends with the residual add and the relu after it
        assert t.ops[rows[-2]] == "add" and t.ops[rows[-1]] == "relu", block
        assert t.cut_legal[rows[-1]], f"cut after {block} should be legal"
        # before the add, the block input (the skip) is live beside the main path
        assert not t.cut_legal[rows[:-2]].any(), f"a cut inside {block} was marked legal"
    assert not t.cut_legal[row_named(t, "layer1.0.conv1")]
    assert not t.cut_legal[row_named(t, "layer1.0.bn2")]
    # legal: the 4 stem rows, add + relu of each of the 8 blocks, avgpool, flatten, fc
    # -> 4 + 8 * 2 + 3 = 23
    assert len(t.cut_indices()) == 23
    np.testing.assert_array_equal(t.cut_indices(), np.flatnonzero(t.cut_legal))


def test_densenet121_cuts_after_dense_blocks_and_transitions():
    t = traced("densenet121")
    for n in range(1, 5):
        rows = rows_of(t, f"features.denseblock{n}")
        assert t.ops[rows[-1]] == "cat"  # the block's output concatenates every layer's
        assert t.cut_legal[rows[-1]], f"cut after denseblock{n} should be legal"
        # inside a dense block the growing list of feature maps stays live
        assert not t.cut_legal[rows[:-1]].any(), f"a cut inside denseblock{n} was marked legal"
    for n in range(1, 4):
        rows = rows_of(t, f"features.transition{n}")
        assert t.cut_legal[rows[-1]], f"cut after transition{n} should be legal"
    for name in ("features.denseblock1.denselayer1.conv1", "features.denseblock1.denselayer1.conv2",
                 "features.denseblock3.denselayer7.conv2"):
        assert not t.cut_legal[row_named(t, name)], name


def test_googlenet_cuts_between_inception_modules():
    t = traced("googlenet")
    for module in ("inception3a", "inception3b", "inception4a", "inception4e", "inception5b"):
        rows = rows_of(t, module)
        assert t.ops[rows[-1]] == "cat" and t.cut_legal[rows[-1]], module
        # the module input feeds four branches: inside, more than one tensor is live
        assert not t.cut_legal[rows[:-1]].any(), f"a cut inside {module} was marked legal"
    branch1 = rows_of(t, "inception3a.branch1")
    assert not t.cut_legal[branch1[-1]]  # after one branch, three are still to run


def test_mobilenet_v3_large_cuts():
    t = traced("mobilenet_v3_large")
    stages = sorted({int(m.group(1)) for n in t.names if (m := re.match(r"features\.(\d+)\.", n))})
    assert stages == list(range(17))
    with_skip = []
    for n in stages:
        rows = rows_of(t, f"features.{n}")
        assert t.cut_legal[rows[-1]], f"cut after features.{n} should be legal"
        if t.ops[rows[-1]] == "add":  # an inverted residual with a skip connection
            with_skip.append(n)
            assert not t.cut_legal[rows[:-1]].any(), f"a cut inside features.{n} was marked legal"
    # torchvision's large config: stride-1 blocks with equal in/out channels
    assert with_skip == [1, 3, 5, 6, 8, 9, 10, 12, 14, 15]
    # squeeze-excitation: the block input waits for the scale, so nothing inside is a cut
    se_rows = [i for i, n in enumerate(t.names)
               if re.fullmatch(r"features\.\d+\.block\.\d+\.(avgpool|fc1|activation|fc2|scale_activation)", n)]
    assert len(se_rows) == 8 * 5  # 8 SE blocks in the large model, 5 rows each
    assert not t.cut_legal[se_rows].any()
    assert not t.cut_legal[row_named(t, "features.4.block.2.fc1")]
    assert t.cut_legal[row_named(t, "features.4.block.2.mul")]  # the SE output is whole again


def test_blocks_are_the_children_of_containers():
    t = traced("resnet18")
    for block in RESNET18_BLOCKS:
        assert {t.blocks[i] for i in rows_of(t, block)} == {block}
    d = traced("densenet121")
    assert {d.blocks[i] for i in rows_of(d, "features.denseblock2")} == {"features.denseblock2"}
    m = traced("mobilenet_v3_large")
    assert {m.blocks[i] for i in rows_of(m, "features.3")} == {"features.3"}


# ----- batch and dtype re-pricing ---------------------------------------------------


class _AtBatch(nn.Module):
    """Runs ``inner`` on x[0]: traced with input (B, C, H, W) this is an fx trace that
    really sees batch B (plus one leading getitem view row, which costs nothing)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x[0])


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_batch_scaling_equals_a_trace_at_that_batch(name):
    model, _ = resolve_model(name)
    at4 = trace(model, (3, 224, 224)).at(batch=4)
    direct = trace(_AtBatch(model), (4, 3, 224, 224))
    assert direct.ops[0] == "view" and direct.flops[0] == 0 and direct.bytes_read[0] == 0
    np.testing.assert_array_equal(at4.flops, direct.flops[1:])
    np.testing.assert_array_equal(at4.bytes_read, direct.bytes_read[1:])
    np.testing.assert_array_equal(at4.bytes_written, direct.bytes_written[1:])
    np.testing.assert_array_equal(at4.cut_legal, direct.cut_legal[1:])
    # the matrix FLOPs at batch 4 are exactly what torch's own counter finds
    assert at4.matrix_flops() == meta_flops(model, (4, 3, 224, 224))


def test_weights_do_not_scale_with_batch():
    t = traced("resnet18")
    t4 = t.at(batch=4)
    assert t4.total_params() == t.total_params() == 11_689_512  # resnet18's parameter count
    np.testing.assert_array_equal(t4.weight_read, t.weight_read)
    fc = t4.row(row_named(t, "fc"))
    # fc at batch 4 in float32: activations 4 x 512 read, weights 1000 x 512 + 1000 bias
    # read once -> (2048 + 513000) * 4 B = 2,060,192 B; writes 4 x 1000 x 4 B = 16,000 B
    assert fc.bytes_read == 2_060_192 and fc.bytes_written == 16_000
    # 4 x 1000 outputs x 512 MACs x 2 = 4,096,000 FLOPs
    assert fc.flops == 4_096_000 and fc.out_shape == (4, 1000)
    assert t.row(row_named(t, "fc")).flops == 1_024_000  # a quarter of that at batch 1


def test_float16_halves_bytes_and_keeps_flops():
    t = traced("resnet18")
    half = t.at(dtype="float16")
    assert half.dtype == "float16" and t.dtype == "float32"  # at() returns a new table
    np.testing.assert_array_equal(half.flops, t.flops)
    np.testing.assert_array_equal(half.bytes_read * 2, t.bytes_read)
    np.testing.assert_array_equal(half.bytes_written * 2, t.bytes_written)
    assert t.at(dtype="fp16").dtype == "float16"  # aliases normalise


# ----- the dispatch fallback -------------------------------------------------------------


class Gated(nn.Module):
    """Data-dependent Python control flow: torch.fx cannot trace this."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        if x.sum() > 0:  # both branches run conv2, so the FLOPs do not depend on the data
            x = self.conv2(x)
        else:
            x = self.conv2(-x)
        return self.fc(torch.flatten(self.pool(x), 1))


def test_dispatch_fallback_traces_control_flow():
    torch.manual_seed(0)
    model = Gated()
    with pytest.raises(TraceError, match="torch.fx"):
        trace(model, (3, 16, 16), tracer="fx")
    t = trace(model, (3, 16, 16))
    assert t.tracer == "dispatch"
    assert any("torch.fx failed" in note for note in t.notes)
    assert t.unsupported() == {}
    # conv1: 8*16*16 = 2048 outputs x 3*3*3 = 27 MACs x 2 = 110,592
    # conv2: 2048 outputs x 8*3*3 = 72 MACs x 2 = 294,912
    # fc:    10 outputs x 8 MACs x 2 = 160             -> 405,664
    assert t.matrix_flops() == 110_592 + 294_912 + 160
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, 16, 16))
    assert t.matrix_flops() == counter.get_total_flops()
    cuts = t.cut_indices()
    assert len(cuts) > 0 and cuts[0] < len(t) - 1
    # the legal cuts are exactly where one activation crosses: conv1's output, the
    # relu (before the scalar test), conv2, pool (an ATen mean), flatten and fc (addmm);
    # not the sum/compare of the test, nor fc's weight transpose
    assert [t.ops[i] for i in cuts] == ["conv", "relu", "conv", "mean", "view", "addmm"]


def test_dispatch_fallback_works_on_a_meta_model(caplog):
    from netcut.models import build_on_meta

    model = build_on_meta(Gated)
    t = trace(model, (3, 16, 16))
    assert t.tracer == "dispatch" and t.matrix_flops() == 405_664  # as above
    assert any("dispatch fallback" in r.getMessage() for r in caplog.records)


def _tensor_state(model: nn.Module) -> dict[str, tuple[str, torch.Tensor | None]]:
    """Each parameter's and buffer's device, and a copy of its values where it has any."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return {name: (t.device.type, None if t.is_meta else t.detach().clone())
            for name, t in tensors}


@pytest.mark.parametrize("weights", ["real", "meta", "mixed"])
def test_dispatch_tracer_leaves_the_callers_module_untouched(weights):
    from netcut.models import build_on_meta

    torch.manual_seed(0)
    if weights == "meta":
        model = build_on_meta(Gated)
    else:
        model = Gated()
        if weights == "mixed":  # real conv weights, a meta head: runs as a materialised copy
            model.fc = model.fc.to("meta")
    model.train()
    before = _tensor_state(model)
    t = trace(model, (3, 16, 16), tracer="dispatch")
    assert t.tracer == "dispatch" and t.matrix_flops() == 405_664  # as in the tests above
    after = _tensor_state(model)
    assert {k: d for k, (d, _) in after.items()} == {k: d for k, (d, _) in before.items()}
    for name, (_, values) in before.items():
        if values is not None:
            torch.testing.assert_close(after[name][1], values, rtol=0, atol=0, msg=name)
    assert all(m.training for m in model.modules())  # traced in eval mode, then restored


# ----- model specs ------------------------------------------------------------------------


def test_bare_name_equals_torchvision_spec():
    a = trace("resnet18", "3x224x224")
    b = trace("torchvision:resnet18")
    assert a.model_name == b.model_name == "resnet18"
    assert_same_table(a, b)


def test_user_factory_spec(tmp_path, monkeypatch):
    (tmp_path / "netcut_test_user_models.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    t = trace("netcut_test_user_models:tiny", "3x8x8")
    assert t.model_name == "netcut_test_user_models:tiny" and t.tracer == "fx"
    assert t.ops == ["conv", "relu", "view", "linear"]
    # conv 3->4, 3x3, no padding on 8x8: 4*6*6 = 144 outputs x 27 MACs x 2 = 7,776
    # linear 144 -> 2: 2 outputs x 144 MACs x 2 = 576
    assert t.matrix_flops() == 7_776 + 576


@pytest.mark.parametrize("spec,expect", [
    ("resnet5", "resnet50"),                       # a typo suggests the close name
    ("nosuchpkg.mod:fn", "cannot import 'nosuchpkg.mod'"),
    ("json:dumps", "json:dumps"),                  # calling it fails: not a model factory
    ("json:JSONDecoder", "not an nn.Module"),      # returns something that is not a module
    ("json:no_such_attr", "no callable 'no_such_attr'"),
])
def test_bad_model_specs(spec, expect):
    with pytest.raises(ModelSpecError) as info:
        trace(spec)
    assert expect in str(info.value)


@pytest.mark.parametrize("shape", ["3xAx4", "0x3x3", "3x-1x4"])
def test_bad_input_shapes(shape):
    with pytest.raises(InvalidInputError, match="3x224x224"):
        trace("resnet18", shape)


def test_trailing_x_is_not_a_shape():
    # an empty part used to be skipped: "3x" read as (3,), failing later as a TraceError
    with pytest.raises(InvalidInputError):
        parse_input_shape("3x")


@pytest.mark.parametrize("shape", ["x3x224", "3xx224", "3,224,", ""])
def test_empty_parts_are_not_a_shape(shape):
    with pytest.raises(InvalidInputError, match="3x224x224"):
        parse_input_shape(shape)


def test_wrong_image_size_is_a_trace_error():
    with pytest.raises(TraceError) as info:
        trace("vit_b_16", "3x100x100")
    message = str(info.value)
    assert "vit_b_16" in message and "3x100x100" in message


def test_handled_fx_failure_prints_no_traceback(capsys):
    # torch.fx ShapeProp.run_node calls traceback.print_exc() before re-raising
    with pytest.raises(TraceError):
        trace("vit_b_16", "3x100x100")
    assert "Traceback" not in capsys.readouterr().err


def test_unknown_tracer_name():
    with pytest.raises(InvalidInputError, match="tracer"):
        netcut.trace("resnet18", tracer="jit")
