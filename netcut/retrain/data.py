"""The :class:`ImageFolderDataModule`: an image folder as a LightningDataModule.

Layouts, told apart by the root's contents:

- ``root/train/<class>/...`` and ``root/val/<class>/...``: used as given (the
  validation folder may lack a class, not add one);
- ``root/train/<class>/...`` alone, or ``root/<class>/...``: each class split into
  train and val at random, ``val_fraction`` of its images to val (seeded, so the
  same ``seed`` gives the same split on every machine).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from .errors import DatasetError
from .folder import (IMAGENET_MEAN, IMAGENET_STD, ImageListDataset, image_size_of,
                     image_transforms, scan_image_folder, split_stratified)

__all__ = ["ImageFolderDataModule", "default_num_workers"]


def default_num_workers() -> int:
    """Loader processes for a small machine: one core is left to the training
    process, at most 4 workers (enough to keep a single GPU fed on small images)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(0, min(4, cores - 1))


class ImageFolderDataModule(pl.LightningDataModule):
    """Train/val loaders over an image folder, at the network's input size.

    ``image_size``: ``224``, ``(H, W)`` or the network's input shape ``(3, H, W)``.
    Images are made RGB (grayscale repeated over 3 channels), resized and
    normalised with ImageNet statistics (see :func:`~netcut.retrain.folder.image_transforms`;
    ``augment`` adds random crops and flips to training images).
    ``num_workers``: loader processes (default :func:`default_num_workers`);
    ``seed`` fixes the split and the shuffling order.
    """

    def __init__(self, root: str | os.PathLike, image_size=224, *, batch_size: int = 32,
                 val_fraction: float = 0.2, seed: int = 0, num_workers: int | None = None,
                 augment: bool = False, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, check: str = "header",
                 pin_memory: bool | None = None):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise DatasetError(f"batch_size must be a positive integer, got {batch_size!r}")
        if num_workers is not None and (isinstance(num_workers, bool)
                                        or not isinstance(num_workers, int) or num_workers < 0):
            raise DatasetError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if not 0.0 < float(val_fraction) < 1.0:
            raise DatasetError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
        self.root = Path(root)
        self.image_size = image_size_of(image_size)
        self.batch_size = batch_size
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.augment = bool(augment)
        self.mean, self.std = tuple(mean), tuple(std)
        self.check = check
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.save_hyperparameters({"root": str(self.root), "image_size": list(self.image_size),
                                   "batch_size": batch_size, "val_fraction": self.val_fraction,
                                   "seed": self.seed, "augment": self.augment,
                                   "mean": list(self.mean), "std": list(self.std)})
        self.classes: tuple[str, ...] | None = None
        self.layout: str | None = None
        self.train_set: ImageListDataset | None = None
        self.val_set: ImageListDataset | None = None

    # ----- scanning ----------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Scan and split once (later calls, one per stage or process, reuse it)."""
        if self.train_set is not None:
            return
        train_dir, val_dir = self.root / "train", self.root / "val"
        if _is_dir(train_dir):
            train = scan_image_folder(train_dir, check=self.check)
            if _is_dir(val_dir):
                val = scan_image_folder(val_dir, classes=train.classes, check=self.check)
                train_samples, val_samples = list(train.samples), list(val.samples)
                self.layout = "train/ and val/ folders"
            else:
                train_samples, val_samples = split_stratified(
                    train.samples, train.classes, self.val_fraction, self.seed, train_dir)
                self.layout = f"train/ {self._split_label()}"
        else:
            if _is_dir(val_dir):
                raise DatasetError(f"{self.root} has a val/ folder but no train/ folder")
            train = scan_image_folder(self.root, check=self.check)
            train_samples, val_samples = split_stratified(
                train.samples, train.classes, self.val_fraction, self.seed, self.root)
            self.layout = self._split_label()
        self.classes = train.classes
        self.train_set = ImageListDataset(train_samples, image_transforms(
            self.image_size, train=True, augment=self.augment, mean=self.mean, std=self.std))
        self.val_set = ImageListDataset(val_samples, image_transforms(
            self.image_size, mean=self.mean, std=self.std))

    def _split_label(self) -> str:
        return f"split {1 - self.val_fraction:.0%}/{self.val_fraction:.0%} (seed {self.seed})"

    @property
    def num_classes(self) -> int:
        self.setup()
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """What the network is given: ``(3, H, W)``."""
        return (3, *self.image_size)

    def summary(self) -> dict:
        """Where the data came from and how much of it: for the exploration record."""
        self.setup()
        counts = {}
        for split, dataset in (("train", self.train_set), ("val", self.val_set)):
            per = {c: 0 for c in self.classes}
            for _, label in dataset.samples:
                per[self.classes[label]] += 1
            counts[split] = per
        return {"root": str(self.root), "layout": self.layout, "classes": list(self.classes),
                "image_size": list(self.image_size), "counts": counts,
                "train_images": len(self.train_set), "val_images": len(self.val_set)}

    # ----- loaders -----------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self.train_set, shuffle=True, generator=generator,
                            drop_last=len(self.train_set) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_set, shuffle=False)

    def _loader(self, dataset, **kwargs) -> DataLoader:
        # drop_last in training: a last batch of one sample breaks BatchNorm after pooling
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=self.pin_memory,
                          **kwargs)


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, where a folder that may not be looked into (``chmod 0``
    without root) is an error naming it, not a PermissionError from deep inside."""
    try:
        return path.is_dir()
    except OSError as exc:
        raise DatasetError(f"cannot read dataset folder {path.parent}: "
                           f"{exc.strerror or exc}") from None
