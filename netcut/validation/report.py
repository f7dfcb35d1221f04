"""``netcut validate``: predicted against measured, judged only on unseen models.

H100: for each of the 11 models, the profile is fitted (``fit.py``) on the other
10 and that model's rows are predicted (leave-models-out). Rows are judged in two
regimes: GPU-bound (CUDA-graph rows, eager batch 64) and host-bound (eager batch
1 and 16), beside the repeatability of the measurements themselves. Jetson: the
datasheet-only profiles, with no fitting, against torch2trt's published eager
PyTorch fp16 latencies.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ..hardware import load_hardware
from ..hardware.defaults import datasheet_only
from ..measurements import Row, load_measurements, shipped_measurements
from .fit import fit_gpu_profile
from .predictor import RowPredictor


@dataclass
class Scored:
    label: str
    rows: list[Row]
    predicted: np.ndarray

    @property
    def measured(self) -> np.ndarray:
        return np.array([r.median_ms for r in self.rows])

    @property
    def ape(self) -> np.ndarray:
        return np.abs(self.predicted / self.measured - 1)

    def metrics(self, mask=None) -> dict:
        ape = self.ape if mask is None else self.ape[mask]
        return {"n": int(ape.size), "mape": float(ape.mean()) if ape.size else float("nan"),
                "within_10": float((ape <= 0.10).mean()) if ape.size else float("nan")}


def host_bound(row: Row) -> bool:
    return row.mode == "eager" and row.batch < 64


def repeatability(first: list[Row], second: list[Row]) -> dict[str, float]:
    """Median |a/b - 1| between two measurement runs, per (dtype, batch)."""
    other = {r.key(): r.median_ms for r in second}
    groups: dict[str, list[float]] = {}
    for r in first:
        if r.key() in other:
            groups.setdefault(f"{r.dtype} b{r.batch}", []).append(abs(r.median_ms / other[r.key()] - 1))
    return {k: float(np.median(v)) for k, v in sorted(groups.items())}


def cut_order_spearman(scored: Scored) -> list[float]:
    """Spearman of cut-point order within each (model, batch, dtype) trimmed group."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(scored.rows):
        if r.cut is not None:
            groups.setdefault((r.model, r.batch, r.dtype), []).append(i)
    out = []
    for idx in groups.values():
        if len(idx) >= 3:
            out.append(float(spearmanr(scored.measured[idx], scored.predicted[idx]).statistic))
    return out


def h100_leave_models_out(progress=None) -> dict:
    eager = load_measurements(shipped_measurements("h100-eager")).rows
    graph = load_measurements(shipped_measurements("h100-graph")).rows
    repeat = load_measurements(shipped_measurements("h100-eager-repeat")).rows
    base = load_hardware("h100-sxm")
    predictor = RowPredictor()
    rows = graph + eager
    lomo = np.empty(len(rows))
    models = sorted({r.model for r in rows})
    for k, model in enumerate(models):
        if progress:
            progress(k, len(models), model)
        train_g = [r for r in graph if r.model != model]
        train_e = [r for r in eager if r.model != model]
        fitted, _ = fit_gpu_profile(base, train_g, train_e, predictor)
        held = [i for i, r in enumerate(rows) if r.model == model]
        lomo[held] = predictor.predict([rows[i] for i in held], fitted)
    uncalibrated = predictor.predict(rows, datasheet_only(base))
    return {
        "lomo": Scored("leave-models-out fit", rows, lomo),
        "datasheet": Scored("datasheet-only (generic efficiencies)", rows, uncalibrated),
        "repeatability": repeatability([r for r in eager if r.cut is None], repeat),
    }


def jetson_datasheet(csv_path: Path) -> list[dict]:
    """Datasheet-only profiles against torch2trt's Jetson table (eager fp16, batch 1)."""
    predictor = RowPredictor()
    device_profile = {"jetson_nano": "jetson-nano", "jetson_xavier": "jetson-xavier-agx"}
    out = []
    with open(csv_path, newline="") as handle:
        for rec in csv.DictReader(handle):
            profile = load_hardware(device_profile[rec["device"]])
            for mode, column in (("eager", "pytorch_latency_ms"), ("fused", "tensorrt_latency_ms")):
                row = Row(model=rec["torchvision_model"], input=(3, 224, 224), batch=1,
                          dtype="float16", mode=mode, median_ms=float(rec[column]))
                if mode not in profile.overhead:
                    continue
                pred = float(predictor.predict([row], profile)[0])
                out.append({"device": profile.name, "model": row.model, "mode": mode,
                            "measured_ms": row.median_ms, "predicted_ms": pred})
    return out
