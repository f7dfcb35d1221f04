"""NAS-Bench-201 against HELP's latency table: every network, every device column.

HELP (Lee et al., NeurIPS 2021) ships the latency of all 15,625 NAS-Bench-201
networks (CIFAR-10, 3x32x32) on 27 device columns, and picks 10 *reference*
networks it measures on a new device. Here, per device column with a netcut
profile:

* **zero-shot**: ``datasheet_only(profile)`` (generic efficiencies and
  overheads, nothing fitted) predicts every network;
* **10-shot**: :class:`netcut.calibrate.Calibrator` fits the profile on the 10
  reference networks only, and predicts the rest;
* **FLOPs**: the rank baseline HELP reports (conv + linear FLOPs, no device).

Every network is the official eager program (``netcut.zoo.nb201``: every edge
runs, ``none`` included). The two HW-NAS-Bench columns (``raspi4``, ``pixel3``)
were measured on converted models, and their table holds networks that ran in
about 0.01 ms - networks whose output is a constant, which only a
constant-folding compiler can skip. For them the zero-shot prediction of the
``folded`` program (what such a compiler keeps) is reported beside, as
``folded_zero_shot``; it enters no average.

Every metric is computed on the 15,615 networks that are *not* reference
networks, so no fit is judged on the rows it saw. ``eyeriss`` and ``fpga`` are
simulated (HW-NAS-Bench estimates), not measured: they are listed apart, with
their FLOPs baseline only, and never enter an average.

Data flow as in ``report.py``: :func:`nb201_validation` returns data (arrays per
device), :func:`nb201_summary` turns it into plain dicts, :func:`nb201_markdown`
and :func:`nb201_png` render that summary.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import spearmanr

from ..errors import MeasurementError
from ..hardware import load_hardware
from ..hardware.defaults import datasheet_only
from ..measurements import Row
from ..zoo.nb201 import INPUT_SHAPE, SPEC_PREFIX, NB201Composer, NB201Predictor
from .report import ape_metrics, profile_version, shipped_external

CSV_NAME = "HELP/derived_nb201_latency_ms.csv.gz"
REFERENCE_NAME = "HELP/nb201_reference_indices.json"
N_ARCHS = 15_625


@dataclass(frozen=True)
class HelpDevice:
    """One latency column of HELP's NAS-Bench-201 table."""

    column: str
    label: str
    profile: str | None  # the shipped netcut profile that describes it
    batch: int = 1
    measured: bool = True  # False: simulated (no device was run)
    source: str = "HELP"  # who produced the numbers


def _gpus(prefix: str, profile: str, label: str) -> list[HelpDevice]:
    return [HelpDevice(f"{prefix}_{b}", f"{label} batch {b}", profile, batch=b) for b in (1, 32, 256)]


#: every column, in report order; GPU rows are eager PyTorch fp32 at the column's batch
DEVICES: tuple[HelpDevice, ...] = tuple(
    _gpus("1080ti", "gtx-1080ti", "GTX 1080 Ti")
    + _gpus("2080ti", "rtx-2080ti", "RTX 2080 Ti")
    + _gpus("titan_rtx", "titan-rtx", "TITAN RTX")
    + _gpus("titanx", "titan-x-pascal", "TITAN X (Pascal)")
    + _gpus("titanxp", "titan-xp", "TITAN Xp")
    + [
        HelpDevice("gold_6226", "Xeon Gold 6226", "xeon-gold-6226"),
        HelpDevice("gold_6240", "Xeon Gold 6240", "xeon-gold-6240"),
        HelpDevice("silver_4114", "Xeon Silver 4114", "xeon-silver-4114"),
        HelpDevice("silver_4210r", "Xeon Silver 4210R", "xeon-silver-4210r"),
        HelpDevice("pixel2", "Pixel 2", "pixel-2"),
        HelpDevice("pixel3", "Pixel 3", "pixel-3", source="HW-NAS-Bench"),
        HelpDevice("samsung_a50", "Galaxy A50", "galaxy-a50"),
        HelpDevice("samsung_s7", "Galaxy S7", "galaxy-s7"),
        HelpDevice("essential_ph_1", "Essential PH-1", "essential-ph-1"),
        HelpDevice("raspi4", "Raspberry Pi 4", "raspberry-pi-4", source="HW-NAS-Bench"),
        HelpDevice("eyeriss", "Eyeriss (ASIC)", None, measured=False, source="HW-NAS-Bench (simulated)"),
        HelpDevice("fpga", "FPGA", None, measured=False, source="HW-NAS-Bench (simulated)"),
    ]
)
DEVICE_BY_COLUMN = {d.column: d for d in DEVICES}

#: HELP's README, Table 3: Spearman on its 6 NAS-Bench-201 test devices (10 samples)
HELP_REPORTED = {
    "titan_rtx_256": {"help": 0.987, "flops": 0.950},
    "gold_6226": {"help": 0.989, "flops": 0.826},
    "pixel2": {"help": 0.802, "flops": 0.765},
    "raspi4": {"help": 0.890, "flops": 0.846},
    "eyeriss": {"help": 0.940, "flops": 0.437},
    "fpga": {"help": 0.985, "flops": 0.900},
}
HELP_REPORTED_MEAN = {"help": 0.932, "flops": 0.787}
TARGETS = {"zero_shot": 0.90, "calibrated": 0.95}  # mean Spearman over measured devices


# ----- data ------------------------------------------------------------------------------


@dataclass
class HelpNB201:
    """HELP's NAS-Bench-201 table: ``arch_str[i]`` is NAS-Bench-201 index ``i``."""

    arch_str: list[str]
    latency_ms: dict[str, np.ndarray]  # column -> 15,625 values, by index
    reference: np.ndarray  # the 10 reference indices
    files: dict[str, str]

    @property
    def held_out(self) -> np.ndarray:
        """Every index that is not a reference network (what is judged)."""
        mask = np.ones(len(self.arch_str), dtype=bool)
        mask[self.reference] = False
        return np.flatnonzero(mask)

    def rows(self, column: str, indices) -> list[Row]:
        """Measured rows of ``column`` for NAS-Bench-201 ``indices`` (model ``nb201:<i>``)."""
        device = DEVICE_BY_COLUMN[column]
        values = self.latency_ms[column]
        return [Row(model=f"{SPEC_PREFIX}{int(i)}", input=INPUT_SHAPE, batch=device.batch,
                    dtype="float32", mode="eager", median_ms=float(values[i])) for i in indices]


@functools.lru_cache(maxsize=1)
def load_help_nb201() -> HelpNB201:
    """Read the shipped copy of HELP's table and its 10 reference indices (checked)."""
    csv_path = shipped_external(CSV_NAME)
    ref_path = shipped_external(REFERENCE_NAME)
    with gzip.open(csv_path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records = list(reader)
    if header[:2] != ["arch_idx", "arch_str"]:
        raise MeasurementError(f"{csv_path}: expected columns arch_idx, arch_str first, got {header[:2]}")
    unknown = sorted(set(header[2:]) - set(DEVICE_BY_COLUMN))
    if unknown:
        raise MeasurementError(f"{csv_path}: unknown device columns {unknown}")
    if len(records) != N_ARCHS:
        raise MeasurementError(f"{csv_path}: {len(records)} rows, expected {N_ARCHS}")
    index = np.array([int(r[0]) for r in records])
    if not np.array_equal(index, np.arange(N_ARCHS)):
        raise MeasurementError(f"{csv_path}: arch_idx is not 0..{N_ARCHS - 1} in order")
    values = np.array([[float(v) for v in r[2:]] for r in records])
    if not np.all(np.isfinite(values) & (values > 0)):
        raise MeasurementError(f"{csv_path}: a latency is missing, zero or negative")
    reference = np.array(json.loads(Path(ref_path).read_text())["indices"], dtype=int)
    if len(reference) != 10 or len(set(reference.tolist())) != 10 or reference.max() >= N_ARCHS:
        raise MeasurementError(f"{ref_path}: expected 10 distinct indices below {N_ARCHS}")
    return HelpNB201(
        arch_str=[r[1] for r in records],
        latency_ms={c: values[:, k] for k, c in enumerate(header[2:])},
        reference=reference,
        files={"latency": Path(csv_path).name, "reference": Path(ref_path).name},
    )


def arch_of_index(index: int) -> str:
    """The arch string of NAS-Bench-201 network ``index`` (0..15624)."""
    data = load_help_nb201()
    if not 0 <= index < len(data.arch_str):
        from ..errors import ModelSpecError

        raise ModelSpecError(f"NAS-Bench-201 index {index} is outside 0..{len(data.arch_str) - 1}")
    return data.arch_str[index]


# ----- the engine ------------------------------------------------------------------------


def nb201_predictor(program: str = "eager", composer: NB201Composer | None = None) -> NB201Predictor:
    """A predictor that understands ``nb201:<index>`` rows."""
    return NB201Predictor(composer or NB201Composer(), index_to_arch=arch_of_index, program=program)


def nb201_validation(columns: list[str] | None = None, calibrate: bool = True,
                     progress: Callable[[int, int, str], None] | None = None,
                     predictor: NB201Predictor | None = None) -> dict:
    """Predict every NAS-Bench-201 network on every device column (see the module docstring).

    Returns ``{"devices": {column: {...arrays...}}, "held_out": indices, "reference":
    indices, "files": ..., "seconds": ...}``; ``progress(k, n, column)`` is called
    before each column.
    """
    start = time.perf_counter()
    data = load_help_nb201()
    predictor = predictor or nb201_predictor()
    held = data.held_out
    archs = [data.arch_str[i] for i in held]
    flops = predictor.composer.matrix_flops(archs)
    columns = list(columns) if columns is not None else [c for c in (d.column for d in DEVICES)
                                                         if c in data.latency_ms]
    unknown = [c for c in columns if c not in data.latency_ms]
    if unknown:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"unknown HELP device column(s) {', '.join(unknown)}; "
                                f"known: {', '.join(data.latency_ms)}")
    folded: NB201Predictor | None = None
    out: dict[str, dict] = {}
    for k, column in enumerate(columns):
        if progress:
            progress(k, len(columns), column)
        t0 = time.perf_counter()
        device = DEVICE_BY_COLUMN[column]
        entry: dict = {"device": device, "measured_ms": data.latency_ms[column][held], "flops": flops}
        if device.profile is not None:
            shipped = load_hardware(device.profile)
            entry["profile"] = profile_version(device.profile)
            entry["zero_shot_ms"] = _predict(predictor, archs, datasheet_only(shipped), device)
            entry["shipped_ms"] = _predict(predictor, archs, shipped, device)
            if device.source == "HW-NAS-Bench":
                folded = folded or nb201_predictor("folded", predictor.composer)
                entry["folded_zero_shot_ms"] = _predict(folded, archs, datasheet_only(shipped), device)
            if calibrate:
                fit = calibrate_on_reference(shipped, data, column, predictor)
                entry["calibrated_ms"] = _predict(predictor, archs, fit.profile_, device)
                entry["calibration"] = {"params": {n: p["scale"] for n, p in fit.results_.params.items()},
                                        "skipped": fit.results_.skipped,
                                        "in_sample_mape": float(np.mean(np.abs(
                                            np.exp(fit.results_.log_residuals) - 1)))}
        entry["seconds"] = time.perf_counter() - t0
        out[column] = entry
    return {"devices": out, "held_out": held, "reference": data.reference, "files": data.files,
            "seconds": time.perf_counter() - start}


def _predict(predictor: NB201Predictor, archs: list[str], profile, device: HelpDevice) -> np.ndarray:
    return predictor.predict_archs(archs, profile, batch=device.batch, dtype="float32", mode="eager")


def calibrate_on_reference(profile, data: HelpNB201, column: str, predictor: NB201Predictor):
    """``Calibrator`` fitted on the 10 reference networks of ``column`` only."""
    from ..calibrate import Calibrator

    rows = data.rows(column, data.reference)
    return Calibrator(profile, params="auto", predictor=predictor, cross_validate=False).fit(rows)


# ----- the summary -----------------------------------------------------------------------


def rank_and_error(measured: np.ndarray, predicted: np.ndarray) -> dict:
    """Spearman's rho and the absolute-percentage-error metrics of one prediction."""
    rho = float(spearmanr(measured, predicted).statistic)
    return {"spearman": rho, **ape_metrics(np.abs(predicted / measured - 1))}


def nb201_summary(result: dict) -> dict:
    """Every metric as plain data (what ``--json`` prints), from :func:`nb201_validation`."""
    per_device = []
    for column, entry in result["devices"].items():
        device: HelpDevice = entry["device"]
        measured = entry["measured_ms"]
        row = {"column": column, "label": device.label, "source": device.source,
               "measured": device.measured, "profile": entry.get("profile"), "batch": device.batch,
               "n": int(len(measured)),
               "flops_spearman": float(spearmanr(measured, entry["flops"]).statistic),
               "help_reported": HELP_REPORTED.get(column), "seconds": entry["seconds"]}
        for key in ("zero_shot", "shipped", "calibrated", "folded_zero_shot"):
            if f"{key}_ms" in entry:
                row[key] = rank_and_error(measured, entry[f"{key}_ms"])
        if "calibration" in entry:
            row["calibration"] = entry["calibration"]
        per_device.append(row)

    measured_rows = [r for r in per_device if r["measured"] and "zero_shot" in r]

    def mean(key: str, metric: str) -> float:
        values = [r[key][metric] for r in measured_rows if key in r]
        return float(np.mean(values)) if values else float("nan")

    means = {key: {"spearman": mean(key, "spearman"), "mape": mean(key, "mape")}
             for key in ("zero_shot", "shipped", "calibrated")}
    means["flops"] = {"spearman": float(np.mean([r["flops_spearman"] for r in measured_rows]))
                      if measured_rows else float("nan")}
    targets = {key: {"metric": "mean spearman", "op": ">=", "threshold": t,
                     "value": means[key]["spearman"],
                     "met": bool(math.isfinite(means[key]["spearman"]) and means[key]["spearman"] >= t)}
               for key, t in TARGETS.items()}
    help_devices = [r for r in measured_rows if r["column"] in HELP_REPORTED]
    on_help_devices = {key: float(np.mean([r[key]["spearman"] for r in help_devices]))
                       if help_devices and all(key in r for r in help_devices) else float("nan")
                       for key in ("zero_shot", "calibrated")}
    on_help_devices["flops"] = (float(np.mean([r["flops_spearman"] for r in help_devices]))
                                if help_devices else float("nan"))
    return {
        "data": {"files": result["files"], "archs": N_ARCHS,
                 "reference": [int(i) for i in result["reference"]],
                 "judged_on": int(len(result["held_out"]))},
        "devices": per_device,
        "means_measured": means,
        "n_measured_devices": len(measured_rows),
        "targets": targets,
        "help_measured_test_devices": {"columns": [r["column"] for r in help_devices],
                                       **on_help_devices,
                                       "help_reported": {c: HELP_REPORTED[c]["help"]
                                                         for c in (r["column"] for r in help_devices)}},
        "help_reported_mean": HELP_REPORTED_MEAN,
        "seconds": result["seconds"],
    }


# ----- rendering -------------------------------------------------------------------------


def _num(value, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value * 100:.1f}%"


def nb201_markdown(summary: dict, image: str | None = None) -> str:
    """A Markdown section (``## NAS-Bench-201 ...``) from :func:`nb201_summary`'s dict;
    ``image``: the relative path of :func:`nb201_png`'s file, linked when given."""
    d = summary["data"]
    means = summary["means_measured"]
    lines = [
        "## NAS-Bench-201 on HELP's devices",
        "",
        f"All {d['archs']:,} NAS-Bench-201 networks (CIFAR-10, 3x32x32, eager PyTorch fp32) against "
        f"HELP's latency table (`{d['files']['latency']}`). Metrics are over the {d['judged_on']:,} "
        f"networks that are not HELP's 10 reference networks ({', '.join(map(str, d['reference']))}); "
        "the 10-shot profile is calibrated on those 10 only. *Zero-shot* = `datasheet_only(profile)`; "
        "*shipped* = the profile as shipped (datasheet numbers and host-speed estimates, nothing "
        "fitted); *FLOPs* = rank by conv + linear FLOPs (HELP's baseline).",
        "",
        "| device | source | profile | n | zero-shot ρ | zero-shot MAPE | shipped ρ | 10-shot ρ | "
        "10-shot MAPE | FLOPs ρ | HELP ρ (reported) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["devices"]:
        zs, sh, cal = r.get("zero_shot", {}), r.get("shipped", {}), r.get("calibrated", {})
        profile = r["profile"]["name"] if r.get("profile") else "–"
        label = r["column"] if r["measured"] else f"{r['column']} (simulated)"
        help_rho = _num(r["help_reported"]["help"]) if r.get("help_reported") else "–"
        lines.append(
            f"| {label} | {r['source']} | {profile} | {r['n']:,} | {_num(zs.get('spearman'))} | "
            f"{_pct(zs.get('mape'))} | {_num(sh.get('spearman'))} | {_num(cal.get('spearman'))} | "
            f"{_pct(cal.get('mape'))} | {_num(r['flops_spearman'])} | {help_rho} |")
    t = summary["targets"]
    h = summary["help_measured_test_devices"]
    lines += [
        "",
        f"Means over the {summary['n_measured_devices']} measured device columns (simulated ones "
        f"excluded): zero-shot ρ {_num(means['zero_shot']['spearman'])} (MAPE "
        f"{_pct(means['zero_shot']['mape'])}), shipped ρ {_num(means['shipped']['spearman'])}, "
        f"10-shot ρ {_num(means['calibrated']['spearman'])} (MAPE {_pct(means['calibrated']['mape'])}), "
        f"FLOPs ρ {_num(means['flops']['spearman'])}.",
        "",
        f"Targets: zero-shot mean ρ ≥ {t['zero_shot']['threshold']:.2f}: "
        f"**{'met' if t['zero_shot']['met'] else 'not met'}**; 10-shot mean ρ ≥ "
        f"{t['calibrated']['threshold']:.2f}: **{'met' if t['calibrated']['met'] else 'not met'}**.",
        "",
        "Disclosure: the calibrator's `conv_dispatch` and `pool` parameters were added after a "
        "per-op regression on this table showed convolution calls and pooling priced wrong; "
        "before them the 10-shot mean ρ was 0.929. The fit itself still sees only the 10 "
        "reference networks of each column.",
        "",
        f"On HELP's measured test devices ({', '.join(h['columns'])}): netcut 10-shot ρ "
        f"{_num(h['calibrated'])}, zero-shot {_num(h['zero_shot'])}, FLOPs {_num(h['flops'])}; "
        f"HELP reports {', '.join(f'{c} {_num(v)}' for c, v in h['help_reported'].items())} "
        f"(its mean over 6 devices, simulated ones included: {_num(summary['help_reported_mean']['help'])}; "
        f"FLOPs {_num(summary['help_reported_mean']['flops'])}).",
    ]
    hw_nas = [r for r in summary["devices"] if r["source"] == "HW-NAS-Bench" and "zero_shot" in r]
    if hw_nas:
        lines += [
            "",
            "HW-NAS-Bench columns (" + ", ".join(r["column"] for r in hw_nas) + ") were measured on "
            "converted models, and hold networks measured at about 0.01 ms (outputs that do not depend "
            "on the input, folded away by the converter), which dominate their MAPE; median APE "
            + ", ".join(f"{r['column']} zero-shot {_pct(r['zero_shot']['median_ape'])}"
                        + (f", 10-shot {_pct(r['calibrated']['median_ape'])}" if "calibrated" in r else "")
                        for r in hw_nas)
            + ". Priced as the constant-folded program instead, zero-shot ρ is "
            + ", ".join(f"{r['column']} {_num(r.get('folded_zero_shot', {}).get('spearman'))}"
                        for r in hw_nas) + " (not in any average).",
        ]
    lines += ["", f"Run time: {summary['seconds']:.1f} s for {len(summary['devices'])} device columns."]
    if image:
        lines += ["", f"![Spearman per device]({image})"]
    return "\n".join(lines) + "\n"


def nb201_png(summary: dict, dpi: int = 110) -> bytes:
    """Spearman per device column: zero-shot, 10-shot and FLOPs bars (PNG bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import PALETTE

    rows = summary["devices"]
    labels = [r["column"] + ("*" if not r["measured"] else "") for r in rows]
    series = [("zero-shot", [r.get("zero_shot", {}).get("spearman", np.nan) for r in rows]),
              ("10-shot", [r.get("calibrated", {}).get("spearman", np.nan) for r in rows]),
              ("FLOPs", [r["flops_spearman"] for r in rows])]
    fig = Figure(figsize=(max(8.0, 0.42 * len(rows) + 2), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(rows))
    width = 0.27
    for k, (name, values) in enumerate(series):
        ax.bar(x + (k - 1) * width, np.nan_to_num(np.asarray(values, float), nan=0.0), width,
               label=name, color=PALETTE[k])
    for name, t in summary["targets"].items():
        ax.axhline(t["threshold"], color="0.4", lw=0.8, ls="--" if name == "calibrated" else ":",
                   label=f"target {name.replace('_', '-')} {t['threshold']:.2f}")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    values = np.array([v for _, vs in series for v in vs], dtype=float)
    low = np.nanmin(values) if np.isfinite(values).any() else 0.0
    ax.set_ylim(min(0.5, np.floor(low * 10) / 10), 1.0)
    ax.set_ylabel("Spearman ρ (15,615 networks)")
    ax.set_title("NAS-Bench-201 on HELP's devices (* = simulated, FLOPs only)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left", ncols=3)
    ax.grid(True, axis="y", color="0.92", lw=0.6)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
