"""timm's published CPU benchmarks as measured rows for torchvision architectures.

timm times its own model definitions; only those whose architecture is the
torchvision one of the mapped name are used (same layers, channels and strides;
timm's weights and init differ, which does not change latency). Its CPU runs use
``torch.compile`` at batch 1, fp32, mean of 40 steps: netcut prices them in the
profile's eager mode, whose per-op dispatch a compiled graph partly removes - a
known bias the calibrated ``dispatch`` scale absorbs.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..hardware import load_hardware
from ..measurements import Row
from .fewshot import FewShotCase

TIMM_FILES = {
    "i9-10940x": "pytorch-image-models/benchmark-infer-fp32-nchw-pt240-cpu-i9_10940x-dynamo.csv",
    "i7-12700h": "pytorch-image-models/benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv",
}

#: timm name -> torchvision name, where the architectures are the same
SAME_ARCHITECTURE = {
    **{f"resnet{d}": f"resnet{d}" for d in (18, 34, 50, 101, 152)},
    **{f"densenet{d}": f"densenet{d}" for d in (121, 161, 169, 201)},
    "mobilenetv2_100": "mobilenet_v2",
    "mobilenetv3_large_100": "mobilenet_v3_large",
    "mobilenetv3_small_100": "mobilenet_v3_small",
    "mnasnet_100": "mnasnet1_0",
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
    **{f"regnet{k}_{a}": f"regnet_{k}_{b}" for k in ("x", "y")
       for a, b in (("004", "400mf"), ("008", "800mf"), ("016", "1_6gf"), ("032", "3_2gf"),
                    ("080", "8gf"), ("160", "16gf"), ("320", "32gf"))},
    "resnext50_32x4d": "resnext50_32x4d",
    "resnext101_32x8d": "resnext101_32x8d",
    "resnext101_64x4d": "resnext101_64x4d",
    "wide_resnet50_2": "wide_resnet50_2",
    "wide_resnet101_2": "wide_resnet101_2",
    **{f"convnext_{s}": f"convnext_{s}" for s in ("tiny", "small", "base", "large")},
    "vit_base_patch16_224": "vit_b_16",
    "vit_base_patch32_224": "vit_b_32",
    "vit_large_patch16_224": "vit_l_16",
    "vit_large_patch32_224": "vit_l_32",
    "swin_tiny_patch4_window7_224": "swin_t",
    "swin_small_patch4_window7_224": "swin_s",
    "swin_base_patch4_window7_224": "swin_b",
    "inception_v3": "inception_v3",
}
#: transformers whose position embeddings / windows fix the input size
FIXED_SIZE = {"vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "swin_t", "swin_s", "swin_b"}
#: the documented calibration split, by rule: one common network per op class a
#: profile prices differently (dense conv, depthwise conv, grouped conv,
#: memory-heavy dense connections, matmul/attention), all at 224x224
CALIBRATION_MODELS = ("resnet50", "mobilenet_v2", "resnext50_32x4d", "densenet121", "vit_b_16")


def timm_rows(device: str, path: Path | None = None) -> list[Row]:
    """Rows (model, input size, mean ms) for the mapped models in one timm CSV."""
    from .report import shipped_external

    path = shipped_external(TIMM_FILES[device]) if path is None else path
    rows: dict[tuple, Row] = {}
    with open(path, newline="") as handle:
        for rec in csv.DictReader(handle):
            tv = SAME_ARCHITECTURE.get(rec["model"])
            size = int(rec["infer_img_size"])
            if tv is None or int(rec["infer_batch_size"]) != 1:
                continue
            if tv in FIXED_SIZE and size != 224:
                continue
            row = Row(model=tv, input=(3, size, size), batch=1, dtype="float32", mode="eager",
                      median_ms=float(rec["infer_step_time"]))
            rows.setdefault(row.key(), row)
    return list(rows.values())


def timm_cases() -> list[FewShotCase]:
    out = []
    for device, relpath in TIMM_FILES.items():
        out.append(FewShotCase(
            key=f"timm-{device}", title=f"timm benchmark, {device}: batch 1, fp32, torch.compile "
            f"(mean of 40 steps; {Path(relpath).name})",
            profile=load_hardware(device), rows=timm_rows(device),
            calibration_models=CALIBRATION_MODELS, group="timm compiled b1, held out",
            note="timm: timm's own model code with torchvision-identical architectures, compiled, "
                 "priced in eager mode; the split's rule (one network per op class) replaced a first "
                 "split without a grouped-conv network (resnet50, mobilenet_v2, efficientnet_b0, "
                 "densenet121, convnext_tiny), which gave 25.4% (i9) and 19.4% (i7) calibrated MAPE"))
    return out
