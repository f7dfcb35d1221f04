"""Each cost formula alone, with the expected number derived in a comment."""

import pytest
import torch
import torch.nn as nn

from netcut.tracing import trace
from netcut.tracing.costs import OpCall, TensorArg, cost_of, register_cost


def call(kind, inputs, outputs, **attrs):
    return OpCall(kind, tuple(TensorArg(s, w) for s, w in inputs), tuple(outputs), attrs)


def test_conv_dense():
    # 3x3 conv 16->32 on 1x16x8x8, stride 1 pad 1: out 1x32x8x8 = 2048 outputs,
    # each 16*3*3 = 144 MACs -> 2 * 2048 * 144 = 589,824 FLOPs
    c = cost_of(call("conv", [((1, 16, 8, 8), False), ((32, 16, 3, 3), True)], [(1, 32, 8, 8)]))
    assert c.flops == 589_824
    assert c.op_class == "conv"
    assert c.act_read == 16 * 64 and c.weight_read == 32 * 16 * 9 and c.act_write == 32 * 64


def test_conv_bias_is_flagged_for_a_separate_pass():
    # the bias is the 1-D weight (Cout,); it adds no FLOPs (the convention) but is read
    x, w = ((1, 16, 8, 8), False), ((32, 16, 3, 3), True)
    plain = cost_of(call("conv", [x, w], [(1, 32, 8, 8)]))
    biased = cost_of(call("conv", [x, w, ((32,), True)], [(1, 32, 8, 8)]))
    assert not plain.bias_pass and biased.bias_pass
    assert biased.flops == plain.flops and biased.weight_read == plain.weight_read + 32


def test_conv_depthwise_and_grouped():
    # depthwise 3x3 on 32 channels: each of 32*8*8 = 2048 outputs has 1*3*3 = 9 MACs
    dw = cost_of(call("conv", [((1, 32, 8, 8), False), ((32, 1, 3, 3), True)], [(1, 32, 8, 8)]))
    assert dw.flops == 2 * 2048 * 9 and dw.op_class == "conv_depthwise"
    # 4 groups of 8 channels: 8*3*3 = 72 MACs per output
    gr = cost_of(call("conv", [((1, 32, 8, 8), False), ((32, 8, 3, 3), True)], [(1, 32, 8, 8)]))
    assert gr.flops == 2 * 2048 * 72 and gr.op_class == "conv_grouped"


def test_linear():
    # 4 tokens x 10 -> 6: 24 outputs x 10 MACs = 240 MACs = 480 FLOPs
    c = cost_of(call("linear", [((4, 10), False), ((6, 10), True), ((6,), True)], [(4, 6)]))
    assert c.flops == 480 and c.weight_read == 66


def test_matmul_batched():
    # (2, 3, 5) @ (2, 5, 7): 2*3*7 = 42 outputs, 5 MACs each -> 420 FLOPs
    c = cost_of(call("matmul", [((2, 3, 5), False), ((2, 5, 7), False)], [(2, 3, 7)]))
    assert c.flops == 420


def test_sdpa():
    # q,k,v (1, 2 heads, 4 tokens, 8): QK^T 2*4*4*8 = 256 MACs, AV the same -> 1024 FLOPs
    s = (1, 2, 4, 8)
    c = cost_of(call("sdpa", [(s, False)] * 3, [s]))
    assert c.flops == 1024 and c.op_class == "attention"


def test_multihead_attention_matches_its_parts():
    # N=1, L=5, E=8: in-proj 5*8*24, QK^T 5*5*8, AV 5*5*8, out-proj 5*8*8 MACs
    macs = 5 * 8 * 24 + 5 * 5 * 8 * 2 + 5 * 8 * 8
    c = cost_of(call("multihead_attention", [((1, 5, 8), False)], [(1, 5, 8)], batch_first=True))
    assert c.flops == 2 * macs


def test_einsum():
    # "bij,bjk->bik" with b=2, i=3, j=4, k=5: every (b,i,j,k) is one MAC -> 2*120
    c = cost_of(call("einsum", [((2, 3, 4), False), ((2, 4, 5), False)], [(2, 3, 5)],
                     equation="bij,bjk->bik"))
    assert c.flops == 240


def test_window_attention():
    # x (1, 7, 7, 4), window 7x7 -> T = 49 tokens, one window, C = 4:
    # qkv 49*4*12, QK^T 49*49*4, AV 49*49*4, proj 49*4*4 MACs
    macs = 49 * 4 * 12 + 2 * 49 * 49 * 4 + 49 * 4 * 4
    c = cost_of(call("window_attention", [((1, 7, 7, 4), False)], [(1, 7, 7, 4)], window_size=(7, 7)))
    assert c.flops == 2 * macs


@pytest.mark.parametrize("kind,per_elem", [("relu", 1), ("batch_norm", 2), ("layer_norm", 5),
                                           ("add", 1), ("softmax", 5), ("gelu", 8)])
def test_per_element_ops(kind, per_elem):
    # 1x4x3x3 = 36 outputs
    c = cost_of(call(kind, [((1, 4, 3, 3), False)], [(1, 4, 3, 3)]))
    assert c.flops == per_elem * 36


def test_pooling():
    # max pool 2x2 stride 2 on 1x1x4x4 -> 4 outputs x 4 comparisons = 16
    c = cost_of(call("max_pool", [((1, 1, 4, 4), False)], [(1, 1, 2, 2)], kernel_size=(2, 2)))
    assert c.flops == 16 and c.op_class == "pool_max"
    # average pool 2x2 on the same input: 4 outputs x 4 additions, the "pool" class
    a = cost_of(call("avg_pool", [((1, 1, 4, 4), False)], [(1, 1, 2, 2)], kernel_size=(2, 2)))
    assert a.flops == 16 and a.op_class == "pool"
    # global average of 1x2x4x4: every one of 32 inputs is added once, as a mean
    g = cost_of(call("adaptive_avg_pool", [((1, 2, 4, 4), False)], [(1, 2, 1, 1)]))
    assert g.flops == 32 and g.op_class == "reduction"
    # an adaptive pool to 2x2 keeps windows: still pooling
    w = cost_of(call("adaptive_avg_pool", [((1, 2, 4, 4), False)], [(1, 2, 2, 2)]))
    assert w.flops == 32 and w.op_class == "pool"


def test_views_move_nothing():
    c = cost_of(call("view", [((1, 8), False)], [(2, 4)]))
    assert (c.flops, c.act_read, c.act_write, c.kernels) == (0, 0, 0, 0)


def test_cat_is_a_copy():
    c = cost_of(call("cat", [((1, 2, 4), False), ((1, 3, 4), False)], [(1, 5, 4)]))
    assert c.flops == 0 and c.act_read == 20 and c.act_write == 20 and c.op_class == "data_movement"


def test_unknown_kind_raises_keyerror():
    with pytest.raises(KeyError):
        cost_of(call("no_such_op", [((1,), False)], [(1,)]))


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_cost("conv")(lambda c: None)


def test_one_op_network_through_the_tracer():
    # a lone Linear(10, 6) on batch 1: 60 MACs = 120 FLOPs; bytes at fp32:
    # read 10 activations + 66 weights = 76 floats = 304 bytes, write 6 floats = 24
    table = trace(nn.Sequential(nn.Linear(10, 6)), (10,))
    (row,) = list(table)
    assert row.op == "linear" and row.flops == 120
    assert row.bytes_read == 304 and row.bytes_written == 24 and row.params == 66
    half = table.at(dtype="float16").row(0)
    assert half.bytes_read == 152


def test_unsupported_op_is_listed_not_free():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=1)  # no cost formula for cumsum

    table = trace(Odd(), (16,))
    assert table.unsupported() == {"unknown:cumsum": 1}
    # priced as a copy of its input and output, never as zero
    assert table.bytes_read[0] == 16 * 4 and table.bytes_written[0] == 16 * 4
