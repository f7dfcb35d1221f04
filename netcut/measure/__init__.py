"""The empirical estimator: time networks and their trimmed versions on this machine.

``measure(...)`` follows one written protocol (``timing.py``) and returns rows of the
shared measurement schema (``netcut.measurements``); ``environment()`` records what
the numbers depend on. Only this package runs real forward passes.
"""

from .environment import environment
from .header import file_header, layer_file_header
from .runner import measure, measure_per_layer
from .timing import GRAPH_PROTOCOL, LAYER_PROTOCOL, PROTOCOL, ROUNDS_PROTOCOL, Timing, time_forward

__all__ = ["GRAPH_PROTOCOL", "LAYER_PROTOCOL", "PROTOCOL", "ROUNDS_PROTOCOL", "Timing", "environment",
           "file_header", "layer_file_header", "measure", "measure_per_layer", "time_forward"]
