"""The op classes a hardware profile gives efficiencies and overheads for.

Every row of a LayerTable belongs to exactly one class. Classes group ops whose
achieved fraction of peak is similar on real hardware (a depthwise conv reaches a
far smaller share of a GPU's peak than a dense one), so a profile needs one number
per class rather than one per op.
"""

from __future__ import annotations

OP_CLASSES: tuple[str, ...] = (
    "conv",            # dense convolution (groups == 1)
    "conv_grouped",    # 1 < groups < in_channels (ResNeXt, RegNet, ShuffleNet)
    "conv_depthwise",  # groups == in_channels (MobileNet, EfficientNet)
    "matmul",          # linear, matmul, bmm, einsum
    "attention",       # fused scaled-dot-product attention
    "norm",            # batch/layer/group norm
    "elementwise",     # activations, add, mul, ...
    "pool",            # average and adaptive pooling (a global average pool is a reduction)
    "pool_max",        # windowed max-pooling: its own kernel, slower per element on CPUs
    "reduction",       # mean, sum over an axis
    "softmax",
    "data_movement",   # cat, permute+contiguous, roll, pad: pure copies
    "view",            # reshape/flatten/getitem/identity: no kernel, only host work
)

#: classes whose FLOPs are multiply-adds on a matrix unit (the cross-checked FLOPs)
MATRIX_CLASSES: frozenset[str] = frozenset(
    {"conv", "conv_grouped", "conv_depthwise", "matmul", "attention"}
)

#: where a profile that does not list a class looks next, before its ``default``: a
#: profile written before ``pool_max`` existed prices max-pooling as ``pool``
OP_CLASS_FALLBACK: dict[str, str] = {"pool_max": "pool"}

#: finer classes a profile may give its own compute efficiency, falling back to their
#: parent's: a 1x1 dense conv is a plain GEMM over positions, and CPU libraries run it
#: at a smaller share of peak than a conv with a kxk filter (on the Xeon 6 guest 1x1 convs
#: reached 0.39-0.40 of peak and 3x3/7x7 ones 0.60-0.62, single ops in
#: calibration/data/cpu-xeon-gnr-2c-micro-keepmem.json). Rows keep their class; only
#: the efficiency lookup sees the subclass.
EFFICIENCY_SUBCLASSES: dict[str, str] = {"conv_pointwise": "conv"}

OP_CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(OP_CLASSES)}
