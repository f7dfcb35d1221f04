"""How much more host dispatch PyTorch 1.x cost than netcut's profiles assume.

netcut's eager dispatch defaults come from PyTorch 2.x runs (the H100 host: 25 us
per op on a server x86 core, scaled by each host's speed). Published tables made
in 2019-2021 ran PyTorch 1.x: torch2trt's Jetson tables (2019-2020) and HELP's
NAS-Bench-201 columns (2021). HELP's desktop GPUs at batch 1 are host-bound, so
a one-parameter fit of ``dispatch`` on each column's 10 reference networks says
what a PyTorch 1.x op cost there against the profile. Their median is moved, as a
scale, onto a profile that is judged against another PyTorch 1.x table (the
Jetsons): a number fitted on other devices, none of them the one judged.

HELP does not name its hosts, so the scale holds whatever differs between those
setups and the profiles' assumption: the PyTorch version and the host CPUs alike.
"""

from __future__ import annotations

import numpy as np

from ..calibrate import Calibrator
from ..hardware import load_hardware

#: HELP's desktop GPU columns at batch 1 (eager PyTorch fp32, NAS-Bench-201 on CIFAR-10)
HELP_BATCH1_GPUS = ("1080ti_1", "2080ti_1", "titan_rtx_1", "titanx_1", "titanxp_1")


def era_dispatch_scale(columns: tuple[str, ...] = HELP_BATCH1_GPUS) -> dict:
    """``dispatch`` fitted alone on the 10 reference networks of each HELP column.

    Returns ``{"per_column": {column: scale}, "median": m, "min": lo, "max": hi,
    "rule": text}``; the median is what :func:`era_profile` applies.
    """
    from .help_nb201 import DEVICE_BY_COLUMN, load_help_nb201, nb201_predictor

    data = load_help_nb201()
    predictor = nb201_predictor()
    per_column = {}
    for column in columns:
        profile = load_hardware(DEVICE_BY_COLUMN[column].profile)
        rows = data.rows(column, data.reference)
        fit = Calibrator(profile, params=["dispatch"], predictor=predictor, cross_validate=False).fit(rows)
        per_column[column] = float(fit.results_.params["dispatch"]["scale"])
    values = np.array(list(per_column.values()))
    return {"per_column": per_column, "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max()),
            "rule": (f"median over HELP's {len(columns)} desktop GPU columns at batch 1 of "
                     "'dispatch' fitted alone on each column's 10 reference networks")}


def era_profile(profile, scale: float):
    """``profile`` with its eager host dispatch moved to PyTorch 1.x by ``scale``."""
    from ..calibrate.scale import scale_profile

    return scale_profile(profile, {"dispatch": scale},
                         note="PyTorch 1.x host dispatch, from HELP's desktop GPUs at batch 1 "
                              "(netcut.validation.pytorch_era)")
