"""The empirical estimator: time networks and their trimmed versions on this machine.

``measure(...)`` follows one written protocol (``timing.py``) and returns rows of the
shared measurement schema (``netcut.measurements``); ``environment()`` records what
the numbers depend on. Only this package runs real forward passes.
"""

from .environment import environment
from .runner import measure
from .timing import PROTOCOL, Timing, time_forward

__all__ = ["PROTOCOL", "Timing", "environment", "measure", "time_forward"]
