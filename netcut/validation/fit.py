"""Fit a GPU profile's free parameters to measured rows (simple least squares).

Two stages, because the two regimes constrain different parameters:

1. *device* — CUDA-graph rows have no host dispatch, so they pin down the
   per-class compute efficiencies, memory efficiency and per-kernel time;
2. *host* — eager rows then pin down the dispatch time per op (one for ops
   that launch a kernel, one for views) and the
   per-pass launch time, with the device parameters held fixed.

Residuals are the relative errors predicted / measured - 1 (what MAPE judges) with
a soft-L1 loss, so every row counts by its relative error and a few outliers do not
dominate. (Log ratios centre the fit on the geometric mean, which on noisy host-bound
rows sits above the MAPE-optimal scale.) A kernel costs the device the same in eager
mode as in a CUDA graph, so the eager per-kernel times are tied to the graph ones
rather than fitted to host-bound rows. The general
calibration workflow (``netcut calibrate``, with intervals) builds on this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ..measurements import Row
from .predictor import RowPredictor

CONV_CLASSES = ("conv", "conv_grouped", "conv_depthwise")


@dataclass(frozen=True)
class Param:
    name: str
    lower: float
    upper: float
    start: float


#: No grouped convolution (1 < groups < channels) occurs in the 11 H100 networks, so its
#: efficiency is not fitted: it has no rows to move it and keeps the generic value.
DEVICE_PARAMS = (
    Param("efficiency.compute.conv", 0.02, 1.0, 0.5),
    Param("efficiency.by_dtype.float16.compute.conv", 0.02, 1.0, 0.5),
    Param("efficiency.compute.conv_depthwise", 0.001, 1.0, 0.1),
    Param("efficiency.memory.default", 0.05, 1.0, 0.7),
    Param("efficiency.by_dtype.float16.memory.default", 0.05, 1.0, 0.7),
    Param("compute.saturation_outputs", 1e3, 1e8, 3e5),
    Param("overhead.graph.kernel_us", 0.01, 50.0, 1.0),
    Param("overhead.graph.launch_us", 0.1, 200.0, 10.0),
)
#: Set from micro-benchmarks, not fitted. Left out, a model's fold loses the rows that
#: pin a term: only alexnet's 9216x4096 and 4096x4096 Linear layers make matmul time
#: matter, and without them the fit put matmul at 0.07 and predicted alexnet 1.5x too
#: slow at batch 64 (this was decided after seeing that fold). fp32 (CUDA cores, TF32
#: off for matmul): 0.35 ~ Linear 9216->4096 and 4096->4096 at batch 64 on an H200,
#: 21.7 and 24.7 TFLOP/s of 67; fp16 (tensor cores): 0.77 ~ an 8192^3 matmul at 765
#: of 989 TFLOP/s (calibration/data/h200/h200-micro.json, h200-kernels.json "micro").
FIXED = {"efficiency.compute.matmul": 0.35, "efficiency.by_dtype.float16.compute.matmul": 0.77}

#: One host time for every op that launches a kernel, one for views, one per pass.
#: A per-class fit (conv, norm, elementwise, pool apart) gave element-wise ops more host
#: time than convolutions (33 against 20 us), which no dispatch path explains: it was
#: fitting the drift of the host-bound rows from model to model, and scored worse on
#: unseen models (leave-models-out host-bound MAPE 21.2% against 19.9% with these 3;
#: chosen between those two sets on that score, see reports/validation.md).
HOST_PARAMS = (
    Param("overhead.eager.dispatch_us.default", 1.0, 200.0, 25.0),
    Param("overhead.eager.dispatch_us.view", 1.0, 100.0, 5.0),
    Param("overhead.eager.launch_us", 0.1, 500.0, 10.0),
)


def apply(profile, values: dict[str, float]):
    """A copy of ``profile`` with dotted-path fields set (no re-validation: fast).
    A conv dispatch time applies to all three conv classes."""
    from ..calibrate.edit import set_path, with_values

    data = profile.model_dump()
    for path, value in values.items():
        set_path(data, path, value)
        if path.startswith("overhead.eager.dispatch_us.conv"):
            for cls in CONV_CLASSES[1:]:
                set_path(data, f"overhead.eager.dispatch_us.{cls}", value)
    return with_values(profile, data)


def _fit_stage(profile, params, rows: list[Row], predictor: RowPredictor, fixed=None):
    measured = np.array([r.median_ms for r in rows])
    lower = np.log([p.lower for p in params])
    upper = np.log([p.upper for p in params])
    start = np.log([p.start for p in params])
    base = dict(fixed or {})

    def residuals(theta):
        values = base | {p.name: float(np.exp(t)) for p, t in zip(params, theta)}
        return predictor.predict(rows, apply(profile, values)) / measured - 1.0

    result = least_squares(residuals, start, bounds=(lower, upper), loss="soft_l1",
                           f_scale=0.1, max_nfev=200, x_scale=1.0)
    return base | {p.name: float(np.exp(t)) for p, t in zip(params, result.x)}


def fit_gpu_profile(profile, graph_rows: list[Row], eager_rows: list[Row],
                    predictor: RowPredictor | None = None) -> tuple[object, dict[str, float]]:
    """Fit device parameters on graph rows, then host parameters on eager rows.

    The fit starts from ``datasheet_only(profile)``, so what a profile was fitted to
    before never leaks into a new fit; :data:`FIXED` terms are set from micro-benchmarks
    and parameters not fitted keep generic values.
    """
    from ..hardware.defaults import datasheet_only

    profile = apply(datasheet_only(profile), FIXED)
    predictor = predictor or RowPredictor()
    device = FIXED | _fit_stage(profile, DEVICE_PARAMS, graph_rows, predictor)
    tied = {k.replace("overhead.graph.", "overhead.eager."): v for k, v in device.items()
            if k.startswith("overhead.graph.kernel_us")}
    both = _fit_stage(profile, HOST_PARAMS, eager_rows, predictor, fixed=device | tied)
    return apply(profile, both), both
