"""Image folders (one sub-folder per class), checked when scanned, and the
transforms that bring their images to a network's input size.

Nothing here imports Lightning: :class:`~netcut.retrain.data.ImageFolderDataModule`
wraps these for a Trainer, and anything else can use them with a plain DataLoader.

Scanning rules (like torchvision's ``ImageFolder``, but with errors that name the
file or folder): classes are the non-hidden sub-folders of the root, sorted;
a class's images are the files under its folder (recursively) whose names end in
one of :data:`IMAGE_EXTENSIONS`, any case; other files are ignored. Every image
is opened when scanned (``check="header"``: a few bytes each, so a file that is
not an image fails here and not in the middle of an epoch; ``"full"`` decodes
every pixel, ``"none"`` skips the check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD", "ImageFolderIndex",
           "ImageListDataset", "ResizeCover", "image_size_of", "image_transforms",
           "scan_image_folder", "split_stratified"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKS = ("header", "full", "none")


@dataclass(frozen=True)
class ImageFolderIndex:
    """The images of one folder: ``samples`` are ``(path, class index)`` pairs,
    sorted by class then path; ``classes[i]`` is class ``i``'s folder name."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for _, label in self.samples:
            out[self.classes[label]] += 1
        return out

    def __len__(self) -> int:
        return len(self.samples)


def scan_image_folder(root: str | os.PathLike, classes: Sequence[str] | None = None,
                      check: str = "header") -> ImageFolderIndex:
    """Index ``root/<class>/**/<image>``; a :class:`DatasetError` naming the folder
    or file for: a missing or unreadable folder, no class folders, a single class,
    a class without images, an image that cannot be decoded.

    ``classes``: the class list to index against (a validation folder is indexed
    with the training folder's classes; it may lack some, not add any).
    """
    if check not in CHECKS:
        raise DatasetError(f"check {check!r}: allowed {', '.join(CHECKS)}")
    root = Path(root)
    try:
        exists, is_dir = root.exists(), root.is_dir()
    except OSError as exc:  # a parent that may not be looked into
        raise DatasetError(f"cannot read dataset folder {root}: {exc.strerror or exc}") from None
    if not exists:
        raise DatasetError(f"dataset folder {root} does not exist")
    if not is_dir:
        raise DatasetError(f"dataset path {root} is not a folder")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"cannot read dataset folder {root}: {exc.strerror or exc}") from None
    found = [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
    if not found:
        loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
        where = (f"; its {len(loose)} images lie directly in it: move them into one folder "
                 "per class" if loose else "")
        raise DatasetError(f"no class folders in {root}: expected one sub-folder per class "
                           f"holding its images ({root}/<class>/<image>.png){where}")
    if classes is None:
        classes = tuple(found)
        if len(classes) < 2:
            raise DatasetError(f"only one class ({classes[0]!r}) in {root}: a classifier needs "
                               "at least two class folders")
    else:
        classes = tuple(classes)
        extra = [c for c in found if c not in classes]
        if extra:
            raise DatasetError(f"{root} has class folder(s) {', '.join(map(repr, extra))} that the "
                               f"training set lacks (classes: {', '.join(classes)})")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        try:
            if not folder.is_dir():
                continue  # a validation folder may lack a class
        except OSError as exc:
            raise DatasetError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
        images, others = _walk(folder)
        if not images:
            seen = f" (found {len(others)} other file(s), e.g. {others[0]})" if others else ""
            raise DatasetError(f"class {name!r} has no images: {folder} holds no file ending in "
                               f"{', '.join(IMAGE_EXTENSIONS[:4])}, ...{seen}")
        samples.extend((str(p), label) for p in images)
    if not samples:
        raise DatasetError(f"no images in {root}")
    if check != "none":
        for path, _ in samples:
            check_image(path, full=check == "full")
    return ImageFolderIndex(root=root, classes=classes, samples=tuple(samples))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _walk(folder: Path) -> tuple[list[Path], list[str]]:
    images, others = [], []

    def fail(exc: OSError) -> None:
        raise DatasetError(f"cannot read folder {exc.filename or folder}: "
                           f"{exc.strerror or exc}") from None

    for dirpath, dirnames, filenames in os.walk(folder, onerror=fail, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _is_image(name):
                images.append(Path(dirpath, name))
            elif not name.startswith("."):
                others.append(name)
    return images, others


def check_image(path: str | os.PathLike, full: bool = False) -> None:
    """Open ``path`` as an image (``full``: decode every pixel) or raise a
    :class:`DatasetError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.width < 1 or image.height < 1:
                raise ValueError(f"it is {image.width}x{image.height} pixels")
            if full:
                image.load()
    except DatasetError:
        raise
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        raise DatasetError(f"cannot decode image {path}: {_first_line(exc)}") from None


def load_rgb(path: str | os.PathLike):
    """The image at ``path`` as an RGB PIL image (grayscale, palette and alpha
    images are converted: networks pretrained on ImageNet take 3 channels)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as exc:
        raise DatasetError(f"cannot decode image {path}: {_first_line(exc)}") from None


def split_stratified(samples: Sequence[tuple[str, int]], classes: Sequence[str],
                     val_fraction: float, seed: int, root: Path | str = "") -> tuple[list, list]:
    """Each class's images split into train and val at random (``seed``): round(n *
    val_fraction) to val, at least one each side."""
    if not 0.0 < float(val_fraction) < 1.0:
        raise DatasetError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    train, val = [], []
    for label in sorted(by_class):
        items = by_class[label]
        if len(items) < 2:
            raise DatasetError(f"class {classes[label]!r} in {root} has {len(items)} image: at "
                               "least 2 are needed to split it into train and val (or give "
                               "train/ and val/ folders)")
        n_val = min(len(items) - 1, max(1, round(len(items) * float(val_fraction))))
        order = rng.permutation(len(items))
        val.extend(items[i] for i in sorted(order[:n_val]))
        train.extend(items[i] for i in sorted(order[n_val:]))
    return train, val


class ImageListDataset(torch.utils.data.Dataset):
    """``(transform(rgb image), class index)`` for a list of ``(path, class index)``."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable | None = None):
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = load_rgb(path)
        return (self.transform(image) if self.transform else image), label


def image_size_of(size) -> tuple[int, int]:
    """``224``, ``(224, 224)`` or a network input shape ``(3, 224, 224)`` -> (H, W)."""
    if isinstance(size, str):
        parts = size.lower().replace(",", "x").split("x")
        try:
            size = tuple(int(p) for p in parts) if len(parts) > 1 else int(parts[0])
        except ValueError:
            raise DatasetError(f"image size {size!r} is not a number or HxW") from None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    size = tuple(size) if isinstance(size, (tuple, list)) else size
    if isinstance(size, tuple) and len(size) == 3:
        if size[0] != 3:
            raise DatasetError(f"input shape {size}: images are given to the network as RGB, "
                               f"3 channels, not {size[0]}")
        size = size[1:]
    if (not isinstance(size, tuple) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                       for s in size)):
        raise DatasetError(f"image size must be N, (H, W) or (3, H, W) with positive integers, "
                           f"got {size!r}")
    return int(size[0]), int(size[1])


class ResizeCover:
    """Resize a PIL image, keeping its aspect ratio, to the smallest size that
    covers ``(H, W)`` (then a center crop takes exactly ``(H, W)``)."""

    def __init__(self, size: tuple[int, int]):
        self.size = size

    def __call__(self, image):
        from torchvision.transforms import functional as F

        h, w = self.size
        scale = max(h / image.height, w / image.width)
        new = [max(h, round(image.height * scale)), max(w, round(image.width * scale))]
        if new == [image.height, image.width]:
            return image
        return F.resize(image, new, antialias=True)

    def __repr__(self) -> str:
        return f"ResizeCover(size={self.size})"


def image_transforms(image_size, *, train: bool = False, augment: bool = False,
                     mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> Callable:
    """PIL RGB image -> normalised ``[3, H, W]`` float tensor at ``image_size``.

    Evaluation (and training without ``augment``): resize keeping the aspect
    ratio until it covers (H, W), center crop. ``train`` with ``augment``: a random
    resized crop (60-100 % of the area) and a horizontal flip. Then ImageNet
    normalisation (``mean``/``std``), as the pretrained weights expect.
    """
    from torchvision import transforms as T

    size = image_size_of(image_size)
    if train and augment:
        geometry = [T.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                    T.RandomHorizontalFlip()]
    else:
        geometry = [ResizeCover(size), T.CenterCrop(size)]
    return T.Compose([*geometry, T.ToTensor(), T.Normalize(list(mean), list(std))])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
