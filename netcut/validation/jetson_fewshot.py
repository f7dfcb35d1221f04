"""Jetson Nano / Xavier 3-shot: calibrate on three torch2trt rows, judge the rest.

The torch2trt table has one row per (device, network) with an eager PyTorch fp16
and a TensorRT latency, so each (device, mode) is its own few-shot case.
"""

from __future__ import annotations

import csv

from ..hardware import load_hardware
from ..measurements import Row
from .fewshot import FewShotCase
from .report import JETSON_COLUMNS, JETSON_CSV, JETSON_PROFILES, shipped_external

#: the documented 3-shot split, by rule: one network per family in the table
#: (residual, densely connected, plain VGG stack)
CALIBRATION_MODELS = ("resnet50", "densenet121", "vgg16")
MODE_COLUMNS = {"eager": "pytorch_latency_ms", "fused": "tensorrt_latency_ms"}


def jetson_cases() -> list[FewShotCase]:
    rows: dict[tuple, list[Row]] = {}
    with open(shipped_external(JETSON_CSV), newline="") as handle:
        for rec in csv.DictReader(handle):
            for mode, column in MODE_COLUMNS.items():
                rows.setdefault((rec["device"], mode), []).append(Row(
                    model=rec["torchvision_model"], input=(3, 224, 224), batch=1, dtype="float16",
                    mode=mode, median_ms=float(rec[column])))
    cases = []
    for (device, mode), group in sorted(rows.items()):
        profile = load_hardware(JETSON_PROFILES[device])
        if mode not in profile.overhead:
            continue
        cases.append(FewShotCase(
            key=f"{profile.name}-{mode}-3shot", title=f"{profile.name}, {JETSON_COLUMNS[mode]}",
            profile=profile, rows=group, calibration_models=CALIBRATION_MODELS, group=f"{mode}, held out",
            note="Jetson: 3 rows fit at most 2 parameters, taken in the calibrator's fixed order "
                 "(compute, then a per-op cost: dispatch when eager, kernel otherwise); before that "
                 "order was set, memory came second and fused gave 19.4% (Nano) and 51.8% (Xavier)"))
    return cases
