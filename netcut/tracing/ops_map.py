"""What torch.fx nodes mean: module types, functions and methods -> op kinds.

The tracer turns every node into an op *kind* (the key of a cost formula in
``costs.py``) plus the few attributes a formula needs. Unlisted targets become
``unknown:<name>`` and are reported as unsupported, never priced as free.
"""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

# --- leaf modules -------------------------------------------------------------
MODULE_KINDS: dict[type, str] = {
    nn.Conv1d: "conv",
    nn.Conv2d: "conv",
    nn.Conv3d: "conv",
    nn.Linear: "linear",
    nn.BatchNorm1d: "batch_norm",
    nn.BatchNorm2d: "batch_norm",
    nn.BatchNorm3d: "batch_norm",
    nn.LayerNorm: "layer_norm",
    nn.GroupNorm: "group_norm",
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardtanh: "hardtanh",
    nn.LeakyReLU: "leaky_relu",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Mish: "mish",
    nn.Softmax: "softmax",
    nn.LogSoftmax: "log_softmax",
    nn.Dropout: "identity",
    nn.Dropout2d: "identity",
    nn.AlphaDropout: "identity",
    nn.Identity: "identity",
    nn.MaxPool1d: "max_pool",
    nn.MaxPool2d: "max_pool",
    nn.AvgPool1d: "avg_pool",
    nn.AvgPool2d: "avg_pool",
    nn.AdaptiveAvgPool1d: "adaptive_avg_pool",
    nn.AdaptiveAvgPool2d: "adaptive_avg_pool",
    nn.AdaptiveMaxPool2d: "adaptive_max_pool",
    nn.Flatten: "flatten",
    nn.Unflatten: "flatten",
    nn.MultiheadAttention: "multihead_attention",
}

# --- functions ------------------------------------------------------------------
FUNCTION_KINDS: dict[object, str] = {
    F.conv1d: "conv",
    F.conv2d: "conv",
    F.conv3d: "conv",
    F.linear: "linear",
    torch.matmul: "matmul",
    operator.matmul: "matmul",
    torch.bmm: "matmul",
    torch.einsum: "einsum",
    F.scaled_dot_product_attention: "sdpa",
    F.batch_norm: "batch_norm",
    F.layer_norm: "layer_norm",
    F.group_norm: "group_norm",
    F.normalize: "normalize",
    F.relu: "relu",
    torch.relu: "relu",
    F.relu6: "relu6",
    F.hardtanh: "hardtanh",
    F.silu: "silu",
    F.gelu: "gelu",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    torch.exp: "exp",
    torch.sqrt: "sqrt",
    torch.clamp: "clamp",
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    operator.sub: "sub",
    operator.isub: "sub",
    torch.sub: "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    operator.itruediv: "div",
    torch.div: "div",
    operator.neg: "neg",
    operator.pow: "pow",
    F.softmax: "softmax",
    torch.softmax: "softmax",
    F.log_softmax: "log_softmax",
    F.max_pool2d: "max_pool",
    F.avg_pool2d: "avg_pool",
    F.adaptive_avg_pool2d: "adaptive_avg_pool",
    F.adaptive_avg_pool1d: "adaptive_avg_pool",
    F.adaptive_max_pool2d: "adaptive_max_pool",
    torch.mean: "mean",
    torch.sum: "sum",
    torch.amax: "amax",
    torch.cat: "cat",
    torch.concat: "cat",
    torch.stack: "stack",
    F.pad: "pad",
    torch.roll: "roll",
    F.dropout: "identity",
    torch.flatten: "flatten",
    torch.reshape: "flatten",
    torch.permute: "view",
    torch.transpose: "view",
    torch.swapaxes: "view",
    torch.squeeze: "view",
    torch.unsqueeze: "view",
    torch.chunk: "view",
    torch.split: "view",
    torch.narrow: "view",
    operator.getitem: "view",
}

METHOD_KINDS: dict[str, str] = {
    "view": "flatten",
    "reshape": "flatten",
    "flatten": "flatten",
    "unflatten": "flatten",
    "contiguous": "contiguous",
    "permute": "view",
    "transpose": "view",
    "swapaxes": "view",
    "t": "view",
    "squeeze": "view",
    "unsqueeze": "view",
    "expand": "view",
    "expand_as": "view",
    "chunk": "view",
    "split": "view",
    "unbind": "view",
    "narrow": "view",
    "type_as": "view",
    "to": "view",
    "detach": "view",
    "matmul": "matmul",
    "bmm": "matmul",
    "add": "add",
    "add_": "add",
    "sub": "sub",
    "mul": "mul",
    "mul_": "mul",
    "div": "div",
    "sigmoid": "sigmoid",
    "relu": "relu",
    "relu_": "relu",
    "softmax": "softmax",
    "mean": "mean",
    "sum": "sum",
    "exp": "exp",
    "clamp": "clamp",
    "masked_fill": "copy",
    "repeat": "copy",
    "clone": "copy",
}

#: method/function kinds whose result is a view only when the input is contiguous
RESHAPE_KINDS = {"flatten"}


def function_kind(target: object) -> str | None:
    kind = FUNCTION_KINDS.get(target)
    if kind is not None:
        return kind
    name = getattr(target, "__name__", "")
    module = getattr(target, "__module__", "") or ""
    if module.startswith("torchvision.models.swin_transformer"):
        if name.startswith("shifted_window_attention"):
            return "window_attention"
        if name.startswith("_patch_merging_pad"):
            return "patch_merging_pad"
        if name.startswith("_get_relative_position_bias"):
            return "relative_position_bias"
    if module.startswith("torchvision.ops.stochastic_depth") and name == "stochastic_depth":
        return "identity"
    return None


def target_name(target: object) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", repr(target))
