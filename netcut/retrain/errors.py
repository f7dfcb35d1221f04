"""The retraining package's user errors: subclasses of netcut's, so the CLI turns
them into one ``error:`` line like every other :class:`~netcut.errors.NetcutError`."""

from __future__ import annotations

from ..errors import InvalidInputError, ModelSpecError

__all__ = ["DatasetError", "WeightsError"]


class DatasetError(InvalidInputError):
    """An image dataset that cannot be used: missing or unreadable folder, a class
    without images, a single class, an image that cannot be decoded, images that do
    not fit the network. The message names the file or folder."""


class WeightsError(ModelSpecError):
    """Pretrained weights that cannot be had: an unknown weights name, a download
    that failed (offline), a checkpoint file that is unreadable or belongs to
    another architecture (the message names the file and the first key that differs)."""
