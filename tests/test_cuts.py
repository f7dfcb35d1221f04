"""Cut points: the block boundaries people expect, their checked numbers, the
classifier head left out, clear errors - and a smoke test over every torchvision
classifier (traced on meta)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from netcut import InvalidInputError
from netcut.models import resolve_model, torchvision_classifiers
from netcut.planner import CutPoint, cut_points, find_cut, head_start, resolve_cut
from netcut.planner import cuts as cuts_module
from netcut.tracing import trace


@functools.lru_cache(maxsize=None)
def traced(spec: str):
    """Each model is traced once per worker (on meta; tables are not mutated)."""
    return trace(spec)


def names(spec: str, **kwargs) -> list[str]:
    return [c.name for c in cut_points(traced(spec), **kwargs)]


def assert_well_formed(table, cuts, strictly_deeper: bool = True):
    """Properties every cut list has, whatever the network."""
    assert cuts, table.model_name
    rows = [c.row_index for c in cuts]
    assert rows == sorted(set(rows)), "cuts are shallowest first, one per row"
    assert all(table.cut_legal[r] for r in rows), "only legal rows"
    assert len({c.name for c in cuts}) == len(cuts), "names are unique"
    depth = np.array([c.depth_fraction for c in cuts])
    flops = np.array([c.flops_kept for c in cuts])
    params = np.array([c.params_kept for c in cuts])
    if strictly_deeper:  # every block does matrix work
        assert (np.diff(depth) > 0).all() and (np.diff(flops) > 0).all()
    else:
        assert (np.diff(depth) >= 0).all() and (np.diff(flops) >= 0).all()
    assert (np.diff(params) >= 0).all()
    assert 0 < depth[-1] < 1, "the head's matrix work is never kept"
    head = head_start(table)
    legal_before_head = [i for i in np.flatnonzero(table.cut_legal) if i < head
                         and 3 <= len(table.out_shapes[i]) <= 5]
    assert rows[-1] == legal_before_head[-1], "the deepest cut is the feature end"
    for c in cuts:
        assert c.shape == tuple(table.out_shapes[c.row_index])
        assert c.node == table.names[c.row_index]
        assert c.flops_kept == pytest.approx(table.flops1[: c.row_index + 1].sum())
        assert c.params_kept == table.params[: c.row_index + 1].sum()


# ----- the boundaries people expect ---------------------------------------------------

RESNET18 = ["conv1"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]


def test_resnet18_block_cuts_are_the_stem_and_the_residual_blocks():
    t = traced("resnet18")
    cuts = cut_points(t)
    assert [c.name for c in cuts] == RESNET18
    assert_well_formed(t, cuts)
    stem, first, last = cuts[0], cuts[1], cuts[-1]
    # the stem cut keeps conv1, bn1, relu and the max-pool (parameter-free blocks
    # join the block before them)
    assert stem.node == "maxpool" and stem.shape == (1, 64, 56, 56)
    assert (stem.layout, stem.channels, stem.spatial) == ("NCHW", 64, (56, 56))
    # params: conv1 7*7*3*64 = 9408, bn1 2*64 = 128
    assert stem.params_kept == 9408 + 128
    # layer1.0 adds two 3x3 convs 3*3*64*64 = 36864 each and two bns of 128
    assert first.params_kept == 9536 + 2 * 36864 + 2 * 128
    # conv1 FLOPs: 2 * (64*112*112 outputs) * (7*7*3 MACs each) = 236,027,904
    assert stem.depth_fraction == pytest.approx(236_027_904 / t.matrix_flops())
    # the feature end: layer4.1's output, everything but the fc (2*512*1000 FLOPs,
    # 512*1000 + 1000 params)
    assert last.shape == (1, 512, 7, 7) and t.ops[last.row_index + 1] == "adaptive_avg_pool"
    assert last.depth_fraction == pytest.approx(1 - 2 * 512 * 1000 / t.matrix_flops())
    assert last.params_kept == t.total_params() - (512 * 1000 + 1000)
    assert [c.channels for c in cuts] == [64, 64, 64, 128, 128, 256, 256, 512, 512]


def test_resnet18_layer_cuts_are_every_legal_row_before_the_head():
    t = traced("resnet18")
    cuts = cut_points(t, granularity="layer")
    assert_well_formed(t, cuts, strictly_deeper=False)
    # 23 legal rows (4 stem rows, add + relu of 8 blocks, avgpool, flatten, fc)
    # minus the 3 of the head
    assert len(cuts) == 20
    # a module run twice gets #k: the block's relu after the residual add is #2
    assert [c.name for c in cuts[:6]] == ["conv1", "bn1", "relu", "maxpool", "layer1.0.add",
                                          "layer1.0.relu#2"]


def test_densenet121_cuts_after_dense_blocks_and_transitions():
    expected = ["features.conv0"] + [
        name for n in range(1, 5)
        for name in (f"features.denseblock{n}", f"features.transition{n}") if n < 4 or
        name.endswith("denseblock4")]
    t = traced("densenet121")
    cuts = cut_points(t)
    assert [c.name for c in cuts] == expected
    assert_well_formed(t, cuts)
    # the feature end keeps norm5 and the functional relu before the pool
    assert cuts[-1].node == "relu" and cuts[-1].shape == (1, 1024, 7, 7)


def test_googlenet_cuts_after_whole_inception_modules():
    modules = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
    expected = ["conv1", "conv2", "conv3"] + [f"inception{m}" for m in modules]
    t = traced("googlenet")
    cuts = cut_points(t)
    # branches are nested Sequentials (blocks of their own in the table) but no
    # single tensor crosses between them, so each module is one cut
    assert [c.name for c in cuts] == expected
    assert_well_formed(t, cuts)
    assert cuts[3].shape == (1, 256, 28, 28)  # inception3a: 64 + 128 + 32 + 32 channels


def test_inception_v3_cuts_are_its_named_stages():
    expected = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1",
                "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    t = traced("inception_v3")  # at its 3x299x299
    cuts = cut_points(t)
    assert [c.name for c in cuts] == expected
    assert_well_formed(t, cuts)
    assert cuts[-1].shape == (1, 2048, 8, 8)


def test_mobilenet_v3_small_cuts_are_the_children_of_features():
    t = traced("mobilenet_v3_small")
    cuts = cut_points(t)
    assert [c.name for c in cuts] == [f"features.{i}" for i in range(13)]
    assert_well_formed(t, cuts)
    assert cuts[-1].shape == (1, 576, 7, 7)


def test_vit_b_16_cuts_are_encoder_layers_of_tokens():
    t = traced("vit_b_16")
    cuts = cut_points(t)
    assert [c.name for c in cuts] == ["conv_proj"] + [
        f"encoder.layers.encoder_layer_{i}" for i in range(12)]
    assert_well_formed(t, cuts)
    for c in cuts:  # 14*14 patches + the class token, 768 wide
        assert (c.shape, c.layout, c.channels, c.spatial) == ((1, 197, 768), "NLC", 768, ())
    # the deepest cut keeps the encoder's final LayerNorm; the head reads token 0
    assert cuts[-1].node == "encoder.ln"


def test_swin_t_cuts_are_channels_last_stages():
    t = traced("swin_t")
    cuts = cut_points(t)
    assert [c.name for c in cuts][:4] == ["features.0", "features.1.0", "features.1.1",
                                           "features.2"]
    assert_well_formed(t, cuts)
    assert (cuts[0].layout, cuts[0].shape, cuts[0].channels) == ("NHWC", (1, 56, 56, 96), 96)
    assert all(c.layout == "NHWC" for c in cuts[:-1])
    # the feature end is after the model's own permute back to NCHW, before the pool
    assert (cuts[-1].layout, cuts[-1].shape) == ("NCHW", (1, 768, 7, 7))


def test_squeezenet_conv_classifier_is_part_of_the_head():
    t = traced("squeezenet1_1")
    cuts = cut_points(t)
    # classifier = Dropout, Conv2d(512, 1000, 1), ReLU, AdaptiveAvgPool2d: the 1x1 conv
    # is the last matrix op, before the pool, so the head starts at its dropout
    assert t.names[head_start(t)] == "classifier.0"
    assert cuts[-1].name == "features.12" and cuts[-1].channels == 512
    assert_well_formed(t, cuts)


# ----- tables, errors, the data contract ----------------------------------------------

def test_a_table_is_used_as_is(monkeypatch):
    t = traced("resnet18")

    def no_tracing(*args, **kwargs):
        raise AssertionError("cut_points traced a model it was given the table of")

    monkeypatch.setattr(cuts_module, "trace", no_tracing)
    assert [c.name for c in cut_points(t)] == RESNET18
    with pytest.raises(InvalidInputError, match="differs from the table"):
        cut_points(t, input_shape="3x64x64")


def test_a_module_or_spec_is_traced_at_the_given_shape():
    model, _ = resolve_model("resnet18")
    cuts = cut_points(model, input_shape="3x64x64")
    assert [c.name for c in cuts] == RESNET18
    assert cuts[-1].shape == (1, 512, 2, 2)


def test_unknown_cut_names_get_suggestions():
    t = traced("resnet18")
    with pytest.raises(InvalidInputError, match=r"no cut point named 'layer2\.l'.*did you mean "
                                                r"layer2\.1"):
        resolve_cut(t, "layer2.l")
    with pytest.raises(InvalidInputError, match="'fc' is part of the classifier head"):
        resolve_cut(t, "fc")
    with pytest.raises(InvalidInputError, match="no single tensor crosses"):
        resolve_cut(t, "layer1.0.conv1")
    with pytest.raises(InvalidInputError, match="ends at cut 'layer1.1'"):
        resolve_cut(t, "layer1")
    with pytest.raises(InvalidInputError, match=r"did you mean .*layer3\.0"):
        find_cut(cut_points(t), "layer3.O")
    with pytest.raises(InvalidInputError, match="granularity 'blocks'"):
        cut_points(t, granularity="blocks")


def test_a_name_that_is_a_block_and_a_row_means_the_block():
    t = traced("resnet18")
    assert resolve_cut(t, "conv1").node == "maxpool"
    row = find_cut(cut_points(t, granularity="layer"), "conv1")
    assert resolve_cut(t, row).row_index == 0  # the layer's CutPoint means the row


def test_cut_points_are_checked_when_built():
    good = cut_points(traced("resnet18"))[1]
    for change, message in [({"channels": 65}, "channels 65"),
                            ({"layout": "NHWC"}, "channels 64 is not axis -1"),
                            ({"layout": "NCL"}, "does not match layout"),
                            ({"spatial": (56,)}, "spatial"),
                            ({"depth_fraction": 1.5}, "depth_fraction"),
                            ({"name": ""}, "non-empty")]:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(good, **change)
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.name = "x"
    assert isinstance(good, CutPoint) and not good.channels_last


# ----- every torchvision classifier ---------------------------------------------------

@pytest.mark.parametrize("spec", torchvision_classifiers())
def test_every_classifier_has_checked_cuts(spec):
    table = traced(spec)  # on meta at its default input: no weights, no arithmetic
    cuts = cut_points(table)
    assert len(cuts) >= 4, [c.name for c in cuts]
    assert_well_formed(table, cuts)
    layers = cut_points(table, granularity="layer")
    assert_well_formed(table, layers, strictly_deeper=False)
    assert layers[-1].row_index == cuts[-1].row_index
    assert {c.row_index for c in cuts} <= {c.row_index for c in layers}


def test_preact_cuts_sit_before_each_closing_activation():
    t = traced("resnet18")
    block, pre = cut_points(t), cut_points(t, granularity="preact")
    assert_well_formed(t, pre)
    # the stem ends in a max-pool: kept; every residual block ends in its ReLU: moved
    # one row up, onto the residual sum, which has the same shape; the last block is
    # the feature end (the whole network): kept
    assert pre[0] == block[0] and pre[-1] == block[-1]
    assert [c.name for c in pre[1:-1]] == [
        f"layer{s}.{b}.add" + (f"_{2 * (s - 1) + b}" if (s, b) != (1, 0) else "")
        for s in range(1, 5) for b in range(2)][:-1]
    for b, p in zip(block[1:-1], pre[1:-1]):
        assert p.row_index == b.row_index - 1 and t.ops[b.row_index] == "relu"
        assert t.ops[p.row_index] == "add" and p.shape == b.shape
        assert resolve_cut(t, p.name).row_index == p.row_index


def test_preact_keeps_blocks_that_end_without_an_activation():
    # MobileNetV2's inverted residuals end linearly (conv + BN, or the residual add);
    # only the stem and the last 1x1 conv end in ReLU6, and the last is the feature end
    t = traced("mobilenet_v2")
    block, pre = cut_points(t), cut_points(t, granularity="preact")
    moved = [(b.name, p.name) for b, p in zip(block, pre) if b.row_index != p.row_index]
    assert moved == [("features.0", "features.0.1")]
    assert t.ops[pre[0].row_index] == "batch_norm"
    # VGG's blocks end in a max-pool: nothing moves
    assert names("vgg11", granularity="preact") == names("vgg11")
