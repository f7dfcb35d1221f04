"""``Calibrator``: fit a profile's free parameters to a few measured networks.

The scikit-learn contract: ``Calibrator(base).fit(rows)`` returns the calibrator,
with ``profile_`` (the calibrated profile, carrying its prediction interval) and
``results_`` (parameters, confidence intervals, covariance, residuals and the
leave-models-out error) set.

How the fit works:

* every free parameter is a scale on a group of profile numbers (``params.py``);
  with ``params="auto"`` they are taken in priority order while each adds a
  direction the rows can see (a new rank of the Jacobian), up to one more than
  the number of networks measured (a network's trimmed rows are its prefixes and
  add little) and one fewer than the rows;
* residuals are ``log(predicted / measured)``, weighted so every *model* counts
  the same however many trimmed networks it brought, with scipy's soft-L1 loss;
* on a synchronous schedule (a CPU, a CUDA graph) time is linear in the overhead
  parameters, so they are solved by non-negative least squares inside each step
  of the non-linear search (variable projection) and finally fitted by statsmodels
  WLS, which gives their confidence intervals. Otherwise the whole vector is
  non-linear and its covariance comes from the Jacobian;
* the prediction interval is the spread of *leave-models-out* log errors (each
  model predicted by a fit that never saw it), so it includes the parameters'
  own uncertainty; with one model only, the in-sample spread with a
  degrees-of-freedom correction stands in, and says so.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from scipy.optimize import least_squares, nnls

from ..errors import InvalidInputError
from ..measurements import MeasurementFile, Row, load_measurements
from .edit import get_path, set_path, spelled_out, with_values
from .params import FreeParam, by_names, candidates

LOG_BOUND = np.log(50.0)  # a scale moves a number at most 50x either way
RANK_TOLERANCE = 0.1  # smallest/largest singular value of the unit-column Jacobian
MIN_EFFECT = 1e-4  # a parameter whose 5% change moves no row by this (log) is invisible
#: a parameter is fitted only when at least MIN_NETWORKS of the measured networks depend
#: on it (some row moves by MIN_EFFECT: a class-specific scale such as ``depthwise`` is
#: exactly invisible to a network without that class). One network alone would set it to
#: whatever that network's noise says, and the leave-models-out check could not see it: on
#: the Zen 4 data a depthwise scale of 0.11 fitted to mobilenet_v2 alone made every
#: held-out depthwise network 1.4-1.8x too slow.
#: With fewer networks than MIN_NETWORKS the rule is off (one network's rows can only
#: inform it)
MIN_NETWORKS = 2


@dataclass
class CalibrationResults:
    """What a fit found; ``params[name]`` has the scale, its 95% interval and method."""

    base: str
    params: dict[str, dict]
    covariance: np.ndarray
    param_names: list[str]
    rows: list[Row]
    fitted_ms: np.ndarray
    log_residuals: np.ndarray  # in-sample log(predicted / measured)
    cv: dict  # leave-models-out: metrics, per-model errors, held-out log residuals
    log_residual_sd: float | None
    interval_from: str
    skipped: dict[str, str] = field(default_factory=dict)  # parameter -> why it was not fitted
    #: the base profile's error on the same rows: it was not fitted to them, so it is the
    #: figure the leave-models-out error has to beat for the calibration to be worth it
    uncalibrated: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def summary(self) -> dict:
        """JSON-ready summary (what ``netcut calibrate --json`` prints)."""
        models = sorted({r.model for r in self.rows})
        ape = np.abs(np.exp(self.log_residuals) - 1)
        return {
            "base": self.base, "n_rows": self.n_rows, "models": models,
            "params": self.params, "skipped": self.skipped,
            "in_sample": _metrics(ape),
            "leave_models_out": {k: v for k, v in self.cv.items() if k != "log_residuals"},
            "uncalibrated": self.uncalibrated,
            "log_residual_sd": self.log_residual_sd, "interval_from": self.interval_from,
        }


def _metrics(ape: np.ndarray) -> dict:
    if not len(ape):
        return {"n": 0, "mape": None, "median_ape": None, "within_10": None}
    return {"n": int(len(ape)), "mape": float(ape.mean()), "median_ape": float(np.median(ape)),
            "within_10": float((ape <= 0.10).mean())}


def rows_from(measurements: Iterable) -> tuple[list[Row], list[str]]:
    """Rows and a label per source from paths, MeasurementFiles or Rows (mixed)."""
    rows: list[Row] = []
    sources: list[str] = []
    items = [measurements] if isinstance(measurements, (str, Path, MeasurementFile)) else measurements
    for item in items:
        if isinstance(item, (str, Path)):
            loaded = load_measurements(item)
            rows.extend(loaded.rows)
            sources.append(Path(item).name)
        elif isinstance(item, MeasurementFile):
            rows.extend(item.rows)
            sources.append(item.device)
        elif isinstance(item, Row):
            rows.append(item)
        else:
            raise InvalidInputError(f"cannot calibrate from a {type(item).__name__}; "
                                    "give measurement files or rows")
    if any(isinstance(i, Row) for i in items):
        sources.append("rows given in Python")
    return rows, sources


class _Problem:
    """The base profile spelled out, the parameters' paths, and the rows to predict."""

    def __init__(self, base, params: list[FreeParam], rows: list[Row], predictor, dtypes):
        self.base = base
        self.params = params
        self.rows = rows
        self.predictor = predictor
        self.data0 = spelled_out(base, tuple(dtypes[1:]) if len(dtypes) > 1 else ())
        self.paths = [p.paths(self.data0, base.kind) for p in params]
        self.measured = np.array([r.median_ms for r in rows])
        per_model = Counter(r.model for r in rows)
        self.sqrt_w = np.array([1.0 / np.sqrt(per_model[r.model]) for r in rows])
        self.synchronous = base.kind == "cpu" or all(r.mode != "eager" for r in rows)

    def log_upper(self, i: int) -> float:
        """Largest log-scale of parameter ``i``: an efficiency may not pass 1."""
        if not self.params[i].fraction or not self.paths[i]:
            return LOG_BOUND
        top = max(get_path(self.data0, path) for path in self.paths[i])
        return float(min(LOG_BOUND, max(-np.log(top), 1e-6)))

    def data(self, scales: np.ndarray) -> dict:
        data = copy.deepcopy(self.data0)
        factor: dict[str, float] = {}
        clip: set[str] = set()
        for p, paths, s in zip(self.params, self.paths, scales):
            for path in paths:
                factor[path] = factor.get(path, 1.0) * float(s)
                if p.fraction:
                    clip.add(path)
        for path, f in factor.items():
            value = get_path(self.data0, path) * f
            set_path(data, path, min(value, 1.0) if path in clip else value)
        return data

    def profile(self, scales: np.ndarray):
        return with_values(self.base, self.data(scales))

    def predict(self, scales: np.ndarray, rows: list[Row] | None = None) -> np.ndarray:
        return np.asarray(self.predictor.predict(rows or self.rows, self.profile(scales)), float)


class Calibrator:
    """Fit ``base``'s free parameters to measured rows (see the module docstring).

    ``params``: ``"auto"`` or a list of names from ``netcut.calibrate.params``
    (``compute``, ``dispatch``, ``memory``, ``conv``, ``depthwise``, ``matmul``,
    ``kernel``, ``launch``, ``saturation``, ``compute@float16``...).
    ``predictor``: anything with ``predict(rows, profile) -> milliseconds``;
    default: netcut's own (traces each model once, prices whole and trimmed rows).
    ``cross_validate``: refit once per model to measure the error on unseen models.
    """

    def __init__(self, base, params="auto", predictor=None, max_params: int = 6,
                 cross_validate: bool = True,
                 progress: Callable[[int, int, str], None] | None = None):
        self.base = base
        self.params = params
        self.predictor = predictor
        self.max_params = max_params
        self.cross_validate = cross_validate
        self.progress = progress

    # ----- public -------------------------------------------------------------------
    def fit(self, measurements) -> "Calibrator":
        from ..hardware import load_hardware

        base = self.base if hasattr(self.base, "overhead") else load_hardware(self.base)
        rows, sources = rows_from(measurements)
        if not rows:
            raise InvalidInputError("nothing to calibrate from: the measurements hold no rows")
        _check_modes(base, rows)
        predictor = self.predictor or _default_predictor()
        dtypes = [d for d, _ in Counter(r.dtype for r in rows).most_common()]
        models = sorted({r.model for r in rows})
        n_folds = len(models) if self.cross_validate and len(models) > 1 else 0
        step = self._stepper(n_folds + 1)

        step(f"fitting on {len(rows)} rows")
        problem, skipped = self._problem(base, rows, predictor, dtypes)
        scales, cov, method = _solve(problem)
        fitted = problem.predict(scales)
        log_res = np.log(fitted / problem.measured)

        cv = self._cross_validate(base, rows, predictor, dtypes, models, step) if n_folds else {}
        sd, interval_from = _interval(cv, log_res, len(problem.params))
        params = _describe(problem, scales, cov, method)
        unfitted = np.asarray(predictor.predict(rows, base), float)
        self.results_ = CalibrationResults(
            base=base.name, params=params, covariance=cov,
            param_names=[p.name for p in problem.params], rows=rows, fitted_ms=fitted,
            log_residuals=log_res, cv=cv, log_residual_sd=sd, interval_from=interval_from,
            skipped=skipped, uncalibrated=_metrics(np.abs(unfitted / problem.measured - 1)))
        self.profile_ = _calibrated_profile(problem, scales, self.results_, sources)
        step("done")
        return self

    def predict(self, rows: list[Row]) -> np.ndarray:
        """Milliseconds for ``rows`` on the calibrated profile."""
        if not hasattr(self, "profile_"):
            raise RuntimeError("call fit() first")
        predictor = self.predictor or _default_predictor()
        return np.asarray(predictor.predict(list(rows), self.profile_), float)

    # ----- internals ----------------------------------------------------------------
    def _stepper(self, total: int):
        count = iter(range(total + 1))

        def step(label: str) -> None:
            if self.progress:
                self.progress(min(next(count), total), total, label)
        return step

    def _problem(self, base, rows, predictor, dtypes) -> tuple[_Problem, dict[str, str]]:
        modes = {r.mode for r in rows}
        if self.params == "auto":
            pool = candidates(base.kind, modes, dtypes)
            return _select(base, pool, rows, predictor, dtypes, self.max_params)
        names = [self.params] if isinstance(self.params, str) else list(self.params)
        chosen = by_names(names, base.kind, modes, dtypes)
        if len(rows) < len(chosen):
            raise InvalidInputError(
                f"{len(chosen)} free parameters need at least {len(chosen)} measured rows; "
                f"got {len(rows)} - measure {len(chosen) - len(rows)} more (or fit fewer parameters)")
        return _Problem(base, chosen, rows, predictor, dtypes), {}

    def _cross_validate(self, base, rows, predictor, dtypes, models, step) -> dict:
        held_log: list[float] = []
        per_model: dict[str, dict] = {}
        for model in models:
            step(f"leave out {model}")
            train = [r for r in rows if r.model != model]
            test = [r for r in rows if r.model == model]
            problem, _ = self._problem(base, train, predictor, dtypes)
            scales, _, _ = _solve(problem)
            pred = problem.predict(scales, test)
            log_err = np.log(pred / np.array([r.median_ms for r in test]))
            held_log.extend(log_err.tolist())
            per_model[model] = _metrics(np.abs(np.exp(log_err) - 1)) | {
                "params": [p.name for p in problem.params]}
        log_arr = np.array(held_log)
        return _metrics(np.abs(np.exp(log_arr) - 1)) | {
            "per_model": per_model, "log_residuals": log_arr}


def _default_predictor():
    from ..validation.predictor import RowPredictor

    return RowPredictor()


def _check_modes(base, rows: list[Row]) -> None:
    missing = sorted({r.mode for r in rows} - set(base.overhead))
    if missing:
        raise InvalidInputError(
            f"the measurements are in mode {', '.join(missing)}, which profile {base.name} "
            f"does not describe (it has: {', '.join(base.overhead)})")


def _select(base, pool, rows, predictor, dtypes, max_params) -> tuple[_Problem, dict[str, str]]:
    """Take parameters in priority order while each adds a direction the rows can see."""
    if len(rows) < 2:
        raise InvalidInputError(
            f"calibration needs at least 2 measured rows (one free parameter and one to judge "
            f"the error); got {len(rows)} - measure 1 more")
    # a network's trimmed rows are prefixes of it, so they add little independent
    # information: about one direction per network, plus one
    n_models = len({r.model for r in rows})
    budget = min(max_params, len(rows) - 1, n_models + 1)
    probe = _Problem(base, pool, rows, predictor, dtypes)
    ones = np.ones(len(pool))
    log0 = np.log(probe.predict(ones))
    h = 0.05
    columns = []
    for j in range(len(pool)):  # a backward step: efficiencies at 1.0 cannot grow
        scales = ones.copy()
        scales[j] = np.exp(-h)
        columns.append((log0 - np.log(probe.predict(scales))) / h)
    chosen: list[int] = []
    skipped: dict[str, str] = {}
    for j, col in enumerate(columns):
        p = pool[j]
        if len(chosen) >= budget:
            skipped[p.name] = (f"not enough data ({len(rows)} rows of {n_models} networks allow "
                               f"{budget} parameters)" if budget < max_params
                               else f"max_params={max_params} reached")
            continue
        if np.max(np.abs(col)) < MIN_EFFECT:
            skipped[p.name] = "no measured row depends on it"
            continue
        leaning = sorted({r.model for r, e in zip(rows, col) if abs(e) >= MIN_EFFECT})
        if n_models >= MIN_NETWORKS and len(leaning) < MIN_NETWORKS:
            skipped[p.name] = (f"only {len(leaning)} measured network ({', '.join(leaning)}) "
                               f"depends on it; it takes {MIN_NETWORKS}")
            continue
        trial = np.column_stack([columns[i] for i in chosen + [j]])
        norms = np.linalg.norm(trial, axis=0)
        sv = np.linalg.svd(trial / norms, compute_uv=False)
        if sv[-1] / sv[0] < RANK_TOLERANCE:
            skipped[p.name] = "the rows cannot tell it apart from parameters already fitted"
            continue
        chosen.append(j)
    if not chosen:
        raise InvalidInputError("no profile parameter changes the predicted time of these rows")
    return _Problem(base, [pool[j] for j in chosen], rows, predictor, dtypes), skipped


def _solve(problem: _Problem) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Scales for every parameter, their covariance (log scale) and how each was fitted."""
    params = problem.params
    linear = [i for i, p in enumerate(params) if p.linear] if problem.synchronous else []
    nonlinear = [i for i in range(len(params)) if i not in linear]
    y, sw = problem.measured, problem.sqrt_w

    def full(theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        scales = np.ones(len(params))
        scales[nonlinear] = np.exp(theta)
        scales[linear] = beta
        return scales

    def linear_parts(theta):
        """Time without the linear parameters, and each one's time at scale 1."""
        zero = problem.predict(full(theta, np.zeros(len(linear))))
        feats = []
        for k in range(len(linear)):
            unit = np.zeros(len(linear))
            unit[k] = 1.0
            feats.append(problem.predict(full(theta, unit)) - zero)
        return zero, np.column_stack(feats) if feats else np.zeros((len(y), 0))

    def best_beta(zero, feats):
        if not linear:
            return np.zeros(0)
        a = feats / y[:, None] * sw[:, None]
        b = (1.0 - zero / y) * sw
        beta, _ = nnls(a, b)
        return beta

    def residuals(theta):
        if linear:
            zero, feats = linear_parts(theta)
            pred = zero + feats @ best_beta(zero, feats)
        else:
            pred = problem.predict(full(theta, np.zeros(0)))
        return np.log(np.maximum(pred, 1e-12) / y) * sw

    method = {}
    cov = np.full((len(params), len(params)), np.nan)
    theta = np.zeros(len(nonlinear))
    if nonlinear:
        upper = np.array([problem.log_upper(i) for i in nonlinear])
        fit = least_squares(residuals, theta, bounds=(-LOG_BOUND, upper), loss="soft_l1",
                            f_scale=0.1, max_nfev=100 * (len(nonlinear) + 1), diff_step=1e-3)
        theta = fit.x
        dof = max(len(y) - len(params), 1)
        s2 = float(np.sum(fit.fun ** 2)) / dof
        sub = s2 * np.linalg.pinv(fit.jac.T @ fit.jac)
        cov[np.ix_(nonlinear, nonlinear)] = sub
        for i in nonlinear:
            method[params[i].name] = "scipy least_squares (log residuals, soft-L1)"
    beta = np.zeros(0)
    if linear:
        zero, feats = linear_parts(theta)
        beta = best_beta(zero, feats)
        lin_cov = _wls_covariance(y - zero, feats, (sw / y) ** 2, beta)
        cov[np.ix_(linear, linear)] = lin_cov
        for i in linear:
            method[params[i].name] = "statsmodels WLS (variable projection)"
    return full(theta, beta), cov, method


def _wls_covariance(target, feats, weights, beta) -> np.ndarray:
    """Covariance of the linear scales by statsmodels WLS (relative-error weights)."""
    import statsmodels.api as sm

    if feats.shape[0] <= feats.shape[1]:
        return np.full((feats.shape[1],) * 2, np.nan)
    if np.linalg.matrix_rank(feats * np.sqrt(weights)[:, None]) < feats.shape[1]:
        # two scales the rows cannot tell apart (one of them fitted at 0, say): no
        # unique covariance, so no interval, rather than statsmodels' warning and a guess
        return np.full((feats.shape[1],) * 2, np.nan)
    result = sm.WLS(target, feats, weights=weights).fit()
    return np.asarray(result.cov_params())


def _interval(cv: dict, log_res: np.ndarray, n_params: int) -> tuple[float | None, str]:
    held = cv.get("log_residuals")
    if held is not None and len(held) >= 3:
        return float(np.sqrt(np.mean(held ** 2))), "leave-models-out"
    n = len(log_res)
    if n > n_params:
        return float(np.sqrt(np.sum(log_res ** 2) / (n - n_params))), "in-sample (one model only)"
    return None, "none (as many parameters as rows)"


def _describe(problem: _Problem, scales, cov, method) -> dict[str, dict]:
    out = {}
    for i, p in enumerate(problem.params):
        s = float(scales[i])
        var = cov[i, i]
        if not np.isfinite(var):
            ci = None
        elif p.linear and problem.synchronous:  # fitted on the linear scale
            half = 1.96 * np.sqrt(max(var, 0.0))
            ci = [float(max(s - half, 0.0)), float(s + half)]
        else:  # fitted on the log scale; an unidentified one has no finite upper end
            half = 1.96 * np.sqrt(max(var, 0.0))
            ci = [s * float(np.exp(-half)), s * float(np.exp(half))] if half < 50 else None
        out[p.name] = {"scale": s, "ci95": ci, "meaning": p.meaning,
                       "method": method.get(p.name, ""), "scaled_fields": len(problem.paths[i]),
                       "at_limit": None if p.linear and problem.synchronous else _limit(problem, i, s),
                       "unpinned": _unpinned(problem, i, scales, cov)}
    return out


def _unpinned(problem: _Problem, i: int, scales: np.ndarray, cov: np.ndarray) -> bool:
    """Whether a log-scale parameter moved to the side that makes time longer and its 95%
    interval reaches the edge of the fit's range there: x1/50 for a rate (an efficiency,
    a bandwidth), x50 for a cost (per-op, per-kernel, per-pass time). The rows do not pin
    such a scale, and it can make an unseen network take many times longer (on the Xeon 6,
    a fit of a trial profile without vit_b_16 took ``matmul``, seen only through the
    CNNs' classifiers, to x0.02 and priced vit_b_16 40x too slow). The other edge only
    switches a term off. Reported, not acted on: dropping such scales automatically left
    the shipped evaluations no better (docs/cpu-profile.md, section 4)."""
    param = problem.params[i]
    if param.linear and problem.synchronous:
        return False
    var = cov[i, i]
    half = 1.96 * np.sqrt(var) if np.isfinite(var) and var >= 0 else np.inf
    log_s = float(np.log(max(float(scales[i]), 1e-300)))
    if param.linear or param.name == "saturation":  # a cost: larger is slower
        return log_s > 0 and log_s + half >= LOG_BOUND
    return log_s < 0 and log_s - half <= -LOG_BOUND


def _limit(problem: _Problem, i: int, scale: float) -> str | None:
    """Which limit a log-scale parameter ended at, if any: the measurements asked for
    more than the fit allows, so its value says little (and its interval is open)."""
    log_s, upper = float(np.log(max(scale, 1e-300))), problem.log_upper(i)
    if log_s >= upper - 1e-3:
        return "x50, the most a fit may move a number" if upper >= LOG_BOUND else "an efficiency of 1"
    if log_s <= -LOG_BOUND + 1e-3:
        return "x1/50, the most a fit may move a number"
    return None


def _calibrated_profile(problem: _Problem, scales, results: CalibrationResults, sources):
    """The validated profile: fitted numbers, their sources, and the calibration record."""
    data = problem.data(scales)
    today = _dt.date.today().isoformat()
    label = ", ".join(sources) or "measured rows"
    for p, paths, s in zip(problem.params, problem.paths, scales):
        for path in paths:
            data["sources"][path] = f"fitted by netcut calibrate on {today} from {label} (scale {s:.3g} on '{p.name}')"
    cv = results.cv
    data["calibration"] = {
        "fitted_from": sources, "fitted_on": today, "base_profile": problem.base.name,
        "n_rows": results.n_rows, "models": sorted({r.model for r in results.rows}),
        "params": {k: {"scale": v["scale"], "ci95": v["ci95"]} for k, v in results.params.items()},
        "log_residual_sd": results.log_residual_sd, "interval_from": results.interval_from,
        "leave_models_out_mape": cv.get("mape"), "leave_models_out_within_10": cv.get("within_10"),
    }
    if not data["name"].endswith("-calibrated"):
        data["name"] = f"{data['name']}-calibrated"
    return type(problem.base).model_validate(data)
