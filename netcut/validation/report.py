"""``netcut validate``: predicted against measured, judged only on unseen models.

H100: for each of the 11 models, the profile is fitted (``fit.py``) on the other
10 and that model's rows are predicted (leave-models-out). Rows are judged in two
regimes: GPU-bound (CUDA-graph rows, eager batch 64) and host-bound (eager batch
1 and 16), beside the repeatability of the measurements themselves. Jetson: the
datasheet-only profiles, with no fitting, against torch2trt's published eager
PyTorch fp16 latencies.

The engine returns data; :func:`h100_summary` and :func:`jetson_summary` turn it
into plain dicts of metrics (what ``--json`` prints). Rendering lives in
``writer.py`` (markdown and PNGs) and the CLI (rich tables).
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ..errors import MeasurementError
from ..hardware import load_hardware, resolve_profile_path
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
        return ape_metrics(self.ape if mask is None else self.ape[mask])


def ape_metrics(ape) -> dict:
    """n, mean and median absolute percentage error (fractions), share within ±10%."""
    ape = np.asarray(ape, dtype=float)
    if not ape.size:
        nan = float("nan")
        return {"n": 0, "mape": nan, "median_ape": nan, "within_10": nan}
    return {"n": int(ape.size), "mape": float(ape.mean()), "median_ape": float(np.median(ape)),
            "within_10": float((ape <= 0.10).mean())}


@dataclass(frozen=True)
class Target:
    """A pass mark on one metric, e.g. ``Target("mape", "<=", 0.10)``."""

    metric: str
    op: str  # "<=" or ">="
    threshold: float

    def check(self, metrics: dict) -> dict:
        value = metrics[self.metric]
        met = math.isfinite(value) and (value <= self.threshold if self.op == "<="
                                        else value >= self.threshold)
        return {"metric": self.metric, "op": self.op, "threshold": self.threshold,
                "value": value, "met": bool(met)}


H100_TARGETS = {
    "gpu_bound": (Target("mape", "<=", 0.10), Target("within_10", ">=", 0.80)),
    "host_bound": (Target("mape", "<=", 0.20),),
}
JETSON_TARGETS = (Target("mape", "<=", 0.25),)
REGIMES = {
    "gpu_bound": "CUDA-graph rows at every batch, and eager rows at batch 64 that take at "
                 "most 1.15x the CUDA-graph run of the same network",
    "host_bound": "eager rows at batch 1 and 16, and eager rows at batch 64 that take "
                  "more than 1.15x the CUDA-graph run",
}
#: an eager row taking more than this times its CUDA-graph twin (same network, batch,
#: dtype) is host-bound whatever its batch: the graph run is the GPU's own time
HOST_GAP = 1.15


def judged(metrics: dict, targets) -> dict:
    """``metrics`` with each target checked and ``met`` (all of them)."""
    checks = [t.check(metrics) for t in targets]
    return {**metrics, "targets": checks, "met": all(c["met"] for c in checks)}


def host_bound(row: Row, graph_ms: float | None = None) -> bool:
    """Eager at batch < 64; at batch 64 only when the measured eager time exceeds
    ``HOST_GAP`` x ``graph_ms``, the CUDA-graph time of the same network (a rule on
    measurements alone, so no profile decides which regime judges it)."""
    if row.mode != "eager":
        return False
    if row.batch < 64:
        return True
    return graph_ms is not None and row.median_ms > HOST_GAP * graph_ms


def regime(row: Row, graph_ms: float | None = None) -> str:
    return "host_bound" if host_bound(row, graph_ms) else "gpu_bound"


def regimes_of(rows: list[Row]) -> list[str]:
    """Each row's regime, eager rows compared with the CUDA-graph rows among ``rows``."""
    graph = {(r.model, r.batch, r.dtype, r.cut): r.median_ms for r in rows if r.mode == "graph"}
    return [regime(r, graph.get((r.model, r.batch, r.dtype, r.cut))) for r in rows]


def repeatability(first: list[Row], second: list[Row]) -> dict[str, float]:
    """Median |a/b - 1| between two measurement runs, per (dtype, batch)."""
    other = {r.key(): r.median_ms for r in second}
    groups: dict[str, list[float]] = {}
    for r in first:
        if r.key() in other:
            groups.setdefault(f"{r.dtype} b{r.batch}", []).append(abs(r.median_ms / other[r.key()] - 1))
    return {k: float(np.median(v)) for k, v in sorted(groups.items())}


def cut_order_groups(scored: Scored) -> dict[tuple, float]:
    """Spearman of cut-point order per (model, batch, dtype, mode) trimmed group of >= 3."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(scored.rows):
        if r.cut is not None:
            groups.setdefault((r.model, r.batch, r.dtype, r.mode), []).append(i)
    return {key: float(spearmanr(scored.measured[idx], scored.predicted[idx]).statistic)
            for key, idx in groups.items() if len(idx) >= 3}


def cut_depth_groups(scored: Scored) -> dict[tuple, float]:
    """Spearman of measured latency against blocks kept (``cut.k``), per trimmed group:
    the baseline every profile gets by predicting more time for every block kept."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(scored.rows):
        if r.cut is not None and r.cut.k is not None:
            groups.setdefault((r.model, r.batch, r.dtype, r.mode), []).append(i)
    return {key: float(spearmanr(scored.measured[idx], [scored.rows[i].cut.k for i in idx]).statistic)
            for key, idx in groups.items() if len(idx) >= 3}


def cut_order_spearman(scored: Scored) -> list[float]:
    """Spearman of cut-point order within each (model, batch, dtype) trimmed group."""
    return list(cut_order_groups(scored).values())


def spearman_stats(values) -> dict:
    """Median, minimum and share >= 0.95 of Spearman coefficients (NaN = constant
    predictions or measurements in a group: counted, and never >= 0.95)."""
    values = np.asarray(list(values), dtype=float)
    finite = values[np.isfinite(values)]
    nan = float("nan")
    return {"groups": int(values.size), "undefined": int(values.size - finite.size),
            "median": float(np.median(finite)) if finite.size else nan,
            "min": float(finite.min()) if finite.size else nan,
            "share_ge_0.95": float((values >= 0.95).mean()) if values.size else nan}


def trimmed_vs_whole(rows: list[Row]) -> dict:
    """Data consistency: the deepest trimmed network against the whole one.

    Per (model, dtype, batch) of host-bound eager rows, ``ratio`` = measured time of
    the trimmed network with the most blocks kept / measured time of the whole
    network. The trimmed one does strictly less work (same blocks or fewer, a
    10-class head instead of the full classifier), so a ratio well above 1 is
    measurement noise, and bounds what any model can match on those rows.
    """
    whole, deepest = {}, {}
    for i, r in enumerate(rows):
        if not host_bound(r):
            continue
        key = (r.model, r.dtype, r.batch)
        if r.cut is None:
            whole[key] = r
        else:
            depth = r.cut.k if r.cut.k is not None else i
            if key not in deepest or depth > deepest[key][0]:
                deepest[key] = (depth, r)
    groups = []
    for key in sorted(set(whole) & set(deepest)):
        trimmed = deepest[key][1]
        groups.append({"model": key[0], "dtype": key[1], "batch": key[2],
                       "cut": trimmed.cut.last_block, "k": trimmed.cut.k,
                       "n_blocks": trimmed.cut.n_blocks, "trimmed_ms": trimmed.median_ms,
                       "whole_ms": whole[key].median_ms,
                       "ratio": trimmed.median_ms / whole[key].median_ms})
    ratios = np.array([g["ratio"] for g in groups])
    nan = float("nan")
    return {"groups": groups, "n": len(groups),
            "median": float(np.median(ratios)) if groups else nan,
            "min": float(ratios.min()) if groups else nan,
            "max": float(ratios.max()) if groups else nan,
            "above_1": int((ratios > 1).sum()), "above_1_1": int((ratios > 1.1).sum())}


H100_FILES = ("h100-graph", "h100-eager", "h100-eager-repeat")


def h100_leave_models_out(progress=None) -> dict:
    """Leave-models-out fit of ``h100-sxm`` and the datasheet-only baseline.

    ``progress(k, n, model)`` is called before fold ``k`` of ``n``. Returns the
    two :class:`Scored` sets (same rows, same order), the repeatability of the
    eager whole-network data, the calibration rows of each fold and the files used.
    """
    files = {name: shipped_measurements(name) for name in H100_FILES}
    graph, eager, repeat = (load_measurements(files[n]).rows for n in H100_FILES)
    base = load_hardware("h100-sxm")
    predictor = RowPredictor()
    rows = graph + eager
    lomo = np.empty(len(rows))
    models = sorted({r.model for r in rows})
    folds = {}
    for k, model in enumerate(models):
        if progress:
            progress(k, len(models), model)
        train_g = [r for r in graph if r.model != model]
        train_e = [r for r in eager if r.model != model]
        folds[model] = {"graph": len(train_g), "eager": len(train_e)}
        fitted, _ = fit_gpu_profile(base, train_g, train_e, predictor)
        held = [i for i, r in enumerate(rows) if r.model == model]
        lomo[held] = predictor.predict([rows[i] for i in held], fitted)
    uncalibrated = predictor.predict(rows, datasheet_only(base))
    return {
        "lomo": Scored("leave-models-out fit", rows, lomo),
        "datasheet": Scored("datasheet-only (generic efficiencies)", rows, uncalibrated),
        "repeatability": repeatability([r for r in eager if r.cut is None], repeat),
        "folds": folds,
        "files": {name: Path(path).name for name, path in files.items()},
        "profile": profile_version("h100-sxm"),
    }


JETSON_CSV = "torch2trt/derived_jetson_torchvision_latency.csv"
JETSON_PROFILES = {"jetson_nano": "jetson-nano", "jetson_xavier": "jetson-xavier-agx"}


def shipped_external(relpath: str) -> Path:
    """Path of a third-party data file shipped in ``netcut.calibration`` under
    ``data/external/`` (``torch2trt/derived_jetson_torchvision_latency.csv``)."""
    from importlib import resources

    try:
        base = resources.files("netcut.calibration") / "data" / "external"
    except ModuleNotFoundError:
        base = Path(__file__).resolve().parents[2] / "calibration" / "data" / "external"
    path = Path(str(base / relpath))
    if not path.is_file():
        raise MeasurementError(f"{path}: no such shipped data file")
    return path


def profile_version(name: str) -> dict:
    """A profile's name, file name and a short hash of the file's bytes."""
    path = resolve_profile_path(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return {"name": name, "file": path.name, "sha256": digest}


def jetson_datasheet(csv_path: Path | None = None, era: dict | None = None) -> list[dict]:
    """Datasheet-only profiles against torch2trt's Jetson table (eager fp16, batch 1).

    ``eager`` rows are compared with torch2trt's "Latency (PyTorch)" column, ``fused``
    rows (one engine, no per-op dispatch) with its "Latency (TensorRT)" column. With
    ``era`` (:func:`netcut.validation.pytorch_era.era_dispatch_scale`'s result) the
    eager rows are priced again (``"profile": "era"``) with the host dispatch moved to
    PyTorch 1.x, which torch2trt ran: at the median scale, and at the lowest and
    highest column's scale to show how much the choice matters.
    """
    from .pytorch_era import era_profile

    csv_path = shipped_external(JETSON_CSV) if csv_path is None else csv_path
    predictor = RowPredictor()
    profiles = {key: load_hardware(name) for key, name in JETSON_PROFILES.items()}
    moved = {key: {s: era_profile(p, era[s]) for s in ("median", "min", "max")}
             for key, p in profiles.items()} if era else {}
    out = []
    with open(csv_path, newline="") as handle:
        for rec in csv.DictReader(handle):
            profile = profiles[rec["device"]]
            for mode, column in (("eager", "pytorch_latency_ms"), ("fused", "tensorrt_latency_ms")):
                row = Row(model=rec["torchvision_model"], input=(3, 224, 224), batch=1,
                          dtype="float16", mode=mode, median_ms=float(rec[column]))
                if mode not in profile.overhead:
                    continue
                pred = float(predictor.predict([row], profile)[0])
                base = {"device": profile.name, "model": row.model, "mode": mode,
                        "measured_ms": row.median_ms}
                out.append({**base, "profile": "datasheet", "predicted_ms": pred})
                if mode == "eager" and moved:
                    at = {s: float(predictor.predict([row], p)[0]) for s, p in moved[rec["device"]].items()}
                    out.append({**base, "profile": "era", "predicted_ms": at["median"],
                                "predicted_at_min_scale_ms": at["min"],
                                "predicted_at_max_scale_ms": at["max"]})
    return out


def h100_summary(result: dict) -> dict:
    """Every H100 metric as plain data, from :func:`h100_leave_models_out`'s result."""
    fit, sheet = result["lomo"], result["datasheet"]
    rows = fit.rows
    regimes = np.array(regimes_of(rows))
    models = sorted({r.model for r in rows})

    def both(mask, targets=()):
        return {"fit": judged(fit.metrics(mask), targets),
                "datasheet": judged(sheet.metrics(mask), targets)}

    by_regime = {name: {"rule": rule, **both(regimes == name, H100_TARGETS[name])}
                 for name, rule in REGIMES.items()}

    eager_whole = {(r.dtype, r.batch) for r in rows if r.mode == "eager" and r.cut is None}
    repeat = result.get("repeatability", {})
    by_dtype_batch = []
    for dtype, batch in sorted(eager_whole, key=lambda k: (k[0], k[1])):
        mask = np.array([r.mode == "eager" and r.dtype == dtype and r.batch == batch for r in rows])
        kinds = sorted(set(regimes[mask]))
        entry = {"dtype": dtype, "batch": batch,
                 "regime": kinds[0] if len(kinds) == 1 else "mixed", **both(mask),
                 "repeatability": repeat.get(f"{dtype} b{batch}")}
        by_dtype_batch.append(entry)

    settings = sorted({(r.mode, r.batch, r.dtype) for r in rows})
    by_setting = []
    for mode, batch, dtype in settings:
        mask = np.array([(r.mode, r.batch, r.dtype) == (mode, batch, dtype) for r in rows])
        kinds = sorted(set(regimes[mask]))
        by_setting.append({"mode": mode, "batch": batch, "dtype": dtype,
                           "regime": kinds[0] if len(kinds) == 1 else "mixed", **both(mask)})

    rho_fit, rho_sheet = cut_order_groups(fit), cut_order_groups(sheet)
    folds = result.get("folds", {})
    by_model = []
    for model in models:
        is_model = np.array([r.model == model for r in rows])
        entry = {"model": model, "calibration_rows": folds.get(model),
                 **{name: both(is_model & (regimes == name)) for name in REGIMES},
                 "cut_order_spearman_median": spearman_stats(
                     v for k, v in rho_fit.items() if k[0] == model)["median"]}
        by_model.append(entry)

    fold_sizes = [f["graph"] + f["eager"] for f in folds.values()]
    return {
        "data": {"files": result.get("files", {}), "rows": len(rows), "models": models},
        "profile": result.get("profile"),
        "folds": {"count": len(folds),
                  "calibration_rows_min": min(fold_sizes) if fold_sizes else None,
                  "calibration_rows_max": max(fold_sizes) if fold_sizes else None,
                  "per_model": folds},
        "targets": {name: [vars(t) for t in ts] for name, ts in H100_TARGETS.items()},
        "regimes": by_regime,
        "eager_by_dtype_batch": by_dtype_batch,
        "by_setting": by_setting,
        "by_model": by_model,
        "cut_order_spearman": {"fit": spearman_stats(rho_fit.values()),
                               "datasheet": spearman_stats(rho_sheet.values()),
                               "depth": spearman_stats(cut_depth_groups(fit).values())},
        "trimmed_vs_whole": trimmed_vs_whole(rows),
    }


JETSON_COLUMNS = {"eager": "torch2trt 'Latency (PyTorch)': eager PyTorch fp16",
                  "fused": "torch2trt 'Latency (TensorRT)': a TensorRT engine"}
JETSON_PROFILE_LABELS = {"datasheet": "datasheet-only",
                         "era": "datasheet + PyTorch 1.x dispatch (HELP)"}


def jetson_summary(records: list[dict], csv_name: str = Path(JETSON_CSV).name,
                   era: dict | None = None) -> dict:
    """Every Jetson metric as plain data, from :func:`jetson_datasheet`'s records;
    ``era``: :func:`netcut.validation.pytorch_era.era_dispatch_scale`'s result."""
    records = [{"profile": "datasheet", **r} for r in records]
    groups = []
    keys = sorted({(r["device"], r["mode"], r["profile"]) for r in records},
                  key=lambda k: (k[0], k[1], list(JETSON_PROFILE_LABELS).index(k[2])))
    for device, mode, variant in keys:
        mine = [r for r in records if (r["device"], r["mode"], r["profile"]) == (device, mode, variant)]
        ape = [abs(r["predicted_ms"] / r["measured_ms"] - 1) for r in mine]
        group = {"device": device, "mode": mode, "profile": variant,
                 "profile_label": JETSON_PROFILE_LABELS[variant],
                 "compared_with": JETSON_COLUMNS.get(mode, mode),
                 **judged(ape_metrics(ape), JETSON_TARGETS)}
        for end in ("min", "max"):  # the era scale's sensitivity: its extreme columns
            key = f"predicted_at_{end}_scale_ms"
            if all(key in r for r in mine):
                group[f"mape_at_{end}_scale"] = float(np.mean(
                    [abs(r[key] / r["measured_ms"] - 1) for r in mine]))
        groups.append(group)
    by_model = [{**r, "ratio": r["predicted_ms"] / r["measured_ms"]} for r in records]
    devices = sorted({r["device"] for r in records})
    measured = {(r["device"], r["model"], r["mode"]) for r in records}
    out = {"data": {"files": {"torch2trt": csv_name}, "rows": len(measured),
                    "priced": len(records)},
           "profiles": [profile_version(d) for d in devices],
           "targets": [vars(t) for t in JETSON_TARGETS],
           "groups": groups, "by_model": by_model}
    if era is not None:
        out["era"] = era
    return out


@dataclass
class Validation:
    """One ``netcut validate`` run: the parts that ran, and queries on them."""

    h100: dict | None = None  # h100_leave_models_out()
    h200: dict | None = None  # h200.h200_validation()
    jetson: list[dict] | None = None  # jetson_datasheet()
    jetson_era: dict | None = None  # pytorch_era.era_dispatch_scale(), if the eager rows used it
    fewshot: dict[str, list] = field(default_factory=dict)  # part -> [FewShotResult]
    nb201: dict | None = None  # help_nb201.nb201_validation()

    def summary(self) -> dict:
        """Every metric, per part and group, as plain data (what ``--json`` prints)."""
        from .fewshot import summarize

        out = {}
        if self.h100 is not None:
            out["h100"] = h100_summary(self.h100)
        if self.h200 is not None:
            from .h200 import h200_summary

            out["h200"] = h200_summary(self.h200)
        if self.jetson is not None:
            out["jetson"] = jetson_summary(self.jetson, era=self.jetson_era)
        if self.nb201 is not None:
            from .help_nb201 import nb201_summary

            out["nb201"] = nb201_summary(self.nb201)
        if self.fewshot:
            out["fewshot"] = {part: [summarize(r) for r in results]
                              for part, results in self.fewshot.items()}
        return out


PROFILE_LABELS = {"fit": "leave-models-out fit", "datasheet": "datasheet-only",
                  "depth": "blocks kept (no profile)"}
REGIME_LABELS = {"gpu_bound": "GPU-bound", "host_bound": "host-bound", "mixed": "mixed"}


def headline(summary: dict) -> list[dict]:
    """The judged groups, one dict each: what the summary tables show."""
    rows = []
    if "h100" in summary:
        for name, entry in summary["h100"]["regimes"].items():
            for key in ("fit", "datasheet"):
                rows.append({"part": "h100-sxm", "group": REGIME_LABELS[name],
                             "profile": PROFILE_LABELS[key], **_judged_fields(entry[key])})
    if "h200" in summary:
        h = summary["h200"]
        for name, entry in h["regimes"].items():
            for key, label in (("datasheet", "datasheet-only"), ("moved", "H100 fit moved")):
                rows.append({"part": "h200 (measured here)", "group": REGIME_LABELS[name],
                             "profile": label, **_judged_fields(entry[key])})
    if "jetson" in summary:
        for g in summary["jetson"]["groups"]:
            rows.append({"part": g["device"], "group": g["mode"],
                         "profile": g.get("profile_label", "datasheet-only"), **_judged_fields(g)})
    if "nb201" in summary:
        nb = summary["nb201"]
        for key, label in (("zero_shot", "datasheet-only"), ("calibrated", "10-shot calibrated")):
            target = nb["targets"][key]
            rows.append({"part": f"NAS-Bench-201, {nb['n_measured_devices']} devices",
                         "group": "mean over devices", "profile": label,
                         "n": nb["data"]["judged_on"], "mape": nb["means_measured"][key]["mape"],
                         "median_ape": float("nan"), "within_10": float("nan"),
                         "targets": [target], "met": target["met"]})
    for cases in summary.get("fewshot", {}).values():
        for c in cases:
            k = len(c["calibration_models"])
            for key, label in (("datasheet", "datasheet-only"), ("calibrated", f"{k}-shot calibrated")):
                rows.append({"part": c["profile"], "group": c["group"], "profile": label,
                             **_judged_fields(c[key])})
    return rows


def _judged_fields(m: dict) -> dict:
    return {k: m[k] for k in ("n", "mape", "median_ape", "within_10", "targets", "met")}
