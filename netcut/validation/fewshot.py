"""Few-shot validation: calibrate on a documented handful of models, judge the rest.

One *case* is a device, its measured rows and the models the calibration may see.
Its result compares, on the SAME held-out rows (every row of every other model),
the datasheet-only profile with the profile ``Calibrator`` fitted on the
calibration models alone. Nothing about the held-out rows reaches the fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from ..calibrate import Calibrator
from ..estimate import DEFAULT_INTERVAL, interval_bounds
from ..measurements import Row
from .predictor import RowPredictor


@dataclass
class FewShotCase:
    key: str  # short id, e.g. "timm-i9-10940x"
    title: str  # what was measured, by whom
    profile: object  # the datasheet-only profile (as shipped, or ``datasheet_only(...)``)
    rows: list[Row]
    calibration_models: tuple[str, ...]
    group: str = ""  # what the rows are, in a few words (the summary table's "group")
    note: str = ""
    targets: tuple = ()  # report.Target checks on the calibrated held-out metrics
    datasheet_targets: tuple = ()


@dataclass
class FewShotResult:
    case: FewShotCase
    held_out: list[Row]
    measured: np.ndarray
    datasheet_ms: np.ndarray
    calibrated_ms: np.ndarray
    calibration: dict  # Calibrator.results_.summary()
    calibration_rows: int = 0
    extra: dict = field(default_factory=dict)


def run_case(case: FewShotCase, predictor: RowPredictor | None = None,
             params="auto") -> FewShotResult:
    predictor = predictor or RowPredictor()
    base = case.profile
    train = [r for r in case.rows if r.model in case.calibration_models]
    test = [r for r in case.rows if r.model not in case.calibration_models]
    missing = set(case.calibration_models) - {r.model for r in train}
    if missing:
        raise ValueError(f"{case.key}: calibration models without rows: {sorted(missing)}")
    cal = Calibrator(base, params=params, predictor=predictor).fit(train)
    return FewShotResult(
        case=case, held_out=test, measured=np.array([r.median_ms for r in test]),
        datasheet_ms=predictor.predict(test, base), calibrated_ms=predictor.predict(test, cal.profile_),
        calibration=cal.results_.summary(), calibration_rows=len(train))


def summarize(result: FewShotResult) -> dict:
    """Plain data: the case, the split, and both profiles' error on the held-out rows."""
    from .report import ape_metrics, judged

    case = result.case

    def metrics(pred, targets):
        ape = np.abs(pred / result.measured - 1)
        out = judged(ape_metrics(ape), targets)
        rho = spearmanr(pred, result.measured).statistic if len(pred) > 2 else float("nan")
        return out | {"spearman": float(rho), "median_ratio": float(np.median(pred / result.measured))}

    cal = result.calibration
    low, high = interval_bounds(result.calibrated_ms, cal["log_residual_sd"], DEFAULT_INTERVAL)
    inside = (result.measured >= low) & (result.measured <= high)
    return {
        "key": case.key, "group": case.group or case.key, "title": case.title, "profile": case.profile.name, "note": case.note,
        "calibration_models": list(case.calibration_models),
        "calibration_rows": result.calibration_rows,
        "held_out_models": sorted({r.model for r in result.held_out}),
        "datasheet": metrics(result.datasheet_ms, case.datasheet_targets),
        "calibrated": metrics(result.calibrated_ms, case.targets),
        "fitted_params": {k: v["scale"] for k, v in cal["params"].items()},
        "calibration_leave_models_out": {k: cal["leave_models_out"].get(k)
                                         for k in ("n", "mape", "within_10")},
        "log_residual_sd": cal["log_residual_sd"],
        # how often the calibrated profile's stored prediction interval held on rows it never saw
        "interval": {"level": DEFAULT_INTERVAL, "held_out_coverage": float(inside.mean())},
        "points": [{"model": r.model, "input": list(r.input), "cut": r.cut.last_block if r.cut else None,
                    "measured_ms": float(m), "datasheet_ms": float(d), "calibrated_ms": float(c)}
                   for r, m, d, c in zip(result.held_out, result.measured, result.datasheet_ms,
                                         result.calibrated_ms)],
    }
