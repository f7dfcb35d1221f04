"""Dynamic networks: several sub-nets of one backbone sharing its weights, one of
them chosen at run time to fit the current latency budget (Yang & Fan, ASP-DAC
2021), priced by netcut's latency estimator and corrected online.

- :func:`build` -> :class:`DynamicNet` (exits x widths, switchable batch norm,
  sub-nets kept by predicted latency over a budget range);
- :meth:`DynamicNet.select` / ``net(x, budget_ms=...)`` / :meth:`DynamicNet.observe`;
- :func:`recalibrate_bn`: re-estimate each width's batch-norm statistics;
- :func:`export` / :func:`load` -> :class:`DynamicRuntime`: TorchScript + manifest.

Nothing is traced or built at import time. See ``docs/dynamic.md``.
"""

from .bn import recalibrate_bn
from .build import build
from .channels import ChannelGroup, find_groups
from .correction import LatencyCorrector
from .export import DynamicRuntime, export, load
from .net import DynamicNet, ExitHead, SubNet
from .selector import Choice, Decision
from .slim import SlimBatchNorm2d, SlimConv2d, WidthState
from .static import StaticSubnet
from .widths import WidthConfig

__all__ = ["ChannelGroup", "Choice", "Decision", "DynamicNet", "DynamicRuntime", "ExitHead",
           "LatencyCorrector", "SlimBatchNorm2d", "SlimConv2d", "StaticSubnet", "SubNet",
           "WidthConfig", "WidthState", "build", "export", "find_groups", "load",
           "recalibrate_bn"]
