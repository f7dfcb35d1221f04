"""Dynamic networks: several sub-nets of one backbone sharing its weights, one of
them chosen at run time to fit the current latency budget (Yang & Fan, ASP-DAC
2021), priced by netcut's latency estimator and corrected online.

- :func:`build` -> :class:`DynamicNet` (exits x widths, switchable batch norm,
  sub-nets kept by predicted latency over a budget range);
- :meth:`DynamicNet.select` / ``net(x, budget_ms=...)`` / :meth:`DynamicNet.observe`;
- :func:`recalibrate_bn`: re-estimate each width's batch-norm statistics;
- :func:`export` / :func:`load` -> :class:`DynamicRuntime`: TorchScript + manifest;
- :func:`train_dynamic` (:func:`train_single_path`, :func:`train_multi_path`):
  Lightning fine-tuning, one shared-weight round or each sub-net alone
  (``netcut.dynamic.train``; Lightning is imported when first used);
- :func:`build_report` / :func:`write_report`: Markdown + HTML + JSON with a budget
  trace plot (``netcut.dynamic.report``; matplotlib imported when plotting).

Nothing is traced or built at import time. See ``docs/dynamic.md``.
"""

from ..lazy import lazy_attributes
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

_LAZY = {"DynamicClassifier": "train", "TrainResult": "train", "train_dynamic": "train",
         "train_multi_path": "train", "train_single_path": "train",
         "build_report": "report", "write_report": "report"}

__all__ = [*_LAZY, "ChannelGroup", "Choice", "Decision", "DynamicNet", "DynamicRuntime", "ExitHead",
           "LatencyCorrector", "SlimBatchNorm2d", "SlimConv2d", "StaticSubnet", "SubNet",
           "WidthConfig", "WidthState", "build", "export", "find_groups", "load",
           "recalibrate_bn"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
