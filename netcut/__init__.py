"""netcut: which network, cut where, meets my deadline on that device?

The stable API: :func:`list_hardware`, :func:`load_hardware`, :func:`trace`,
:func:`predict` and the :class:`Estimate` / :class:`LayerTable` they return; the
planner's :func:`cut_points`, :func:`trim` and :func:`plan` (-> :class:`Plan`).
Nothing is loaded or traced at import time.
"""

from .errors import (
    HardwareProfileError,
    InvalidInputError,
    MeasurementError,
    ModelSpecError,
    NetcutError,
    TraceError,
    UnknownHardwareError,
)
from .estimate import Estimate, estimate_table, predict
from .hardware import list_hardware, load_hardware
from .planner import cut_points, trim
from .planner.plan import Plan, plan
from .tracing import LayerTable, trace

__version__ = "0.1.0"

__all__ = [
    "Estimate",
    "HardwareProfileError",
    "InvalidInputError",
    "LayerTable",
    "MeasurementError",
    "Plan",
    "ModelSpecError",
    "NetcutError",
    "TraceError",
    "UnknownHardwareError",
    "cut_points",
    "estimate_table",
    "list_hardware",
    "load_hardware",
    "plan",
    "predict",
    "trace",
    "trim",
]
