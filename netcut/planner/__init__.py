"""The planner: where a pretrained network can be cut, and the trimmed networks
(TRNs) those cuts make - a kept prefix, global pooling and a new head.

Nothing is traced or built at import time.
"""

from .cuts import CutPoint, cut_points, find_cut, head_start, resolve_cut
from .trim import GlobalPool, TrimmedNet, trim

__all__ = ["CutPoint", "GlobalPool", "TrimmedNet", "cut_points", "find_cut", "head_start",
           "resolve_cut", "trim"]
