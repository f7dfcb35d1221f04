"""Errors a user can cause, each rendered by the CLI as one line without a traceback.

Everything that is the caller's mistake (a broken profile, an unknown model, a bad
deadline) raises a subclass of :class:`NetcutError`. Anything else is a bug and is
allowed to show its traceback.
"""

from __future__ import annotations


class NetcutError(Exception):
    """Base class for user-facing errors: the message is the whole story."""


class HardwareProfileError(NetcutError):
    """A hardware YAML file is missing, unreadable, or violates the schema."""


class UnknownHardwareError(NetcutError):
    """A profile name that is neither a shipped profile nor an existing file."""


class ModelSpecError(NetcutError):
    """A model spec string that cannot be resolved into an ``nn.Module``."""


class TraceError(NetcutError):
    """A model that neither torch.fx nor the dispatch fallback could trace."""


class InvalidInputError(NetcutError):
    """A bad argument value: input shape, dtype, batch size, mode, deadline."""


class MeasurementError(NetcutError):
    """A measurement file that is missing fields, corrupt, or inconsistent."""
