"""Retraining trimmed networks with PyTorch Lightning (the only part that imports Lightning).

- :func:`fit_trn` fine-tunes one TRN and returns a :class:`FitResult`;
- :class:`TRNClassifier` (the LightningModule: modes ``head``, ``full``,
  ``discriminative``) and :class:`ImageFolderDataModule` (the LightningDataModule)
  for use with your own ``pl.Trainer`` (:func:`build_trainer` makes a quiet one);
- :func:`load_pretrained` / :func:`load_checkpoint`: weights by torchvision name
  or from a local file;
- :func:`export_dataset`: a small real dataset that a package ships (Fashion-MNIST,
  MNIST-5k, digits) written as an image folder, offline.

Importing ``netcut`` never imports this package, and importing this package
imports Lightning only when a Lightning-backed name is first used
(``netcut.retrain.datasets``, ``.folder`` and ``.weights`` work without it).
"""

from __future__ import annotations

from ..lazy import lazy_attributes
from .errors import DatasetError, WeightsError

_LAZY = {
    "TRNClassifier": "module", "MODES": "module",
    "ImageFolderDataModule": "data", "default_num_workers": "data",
    "FitResult": "fit", "fit_trn": "fit", "build_trainer": "fit", "check_fits": "fit",
    "quiet_lightning": "fit",
    "load_pretrained": "weights", "load_checkpoint": "weights",
    "BUNDLED_DATASETS": "datasets", "ExportedDataset": "datasets",
    "available_datasets": "datasets", "export_dataset": "datasets",
    "scan_image_folder": "folder", "image_transforms": "folder",
}

__all__ = ["DatasetError", "WeightsError", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
