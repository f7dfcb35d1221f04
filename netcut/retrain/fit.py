"""``fit_trn``: fine-tune one TRN on an image folder and say how it went.

Lightning does the training and the distribution: ``accelerator``, ``devices``,
``strategy``, ``num_nodes`` and ``precision`` go to ``pl.Trainer`` unchanged (any
other Trainer argument too, through ``**trainer_kwargs``), so a TRN trains on
CPUs, one GPU or many as Lightning can. Callbacks: ``ModelCheckpoint`` keeps the
best epoch by ``monitor`` (``val_acc`` by default), ``EarlyStopping`` stops after
``patience`` epochs without improvement. At the end the TRN holds the best
epoch's weights (``restore_best``) and :class:`FitResult` reports that epoch.

Quiet by default: Lightning's banner (GPU/TPU available...), its model summary
and its expected warnings (few loader workers, head mode's eval-mode prefix)
are held back for the duration of the call only; errors and other warnings
still show. The progress bar shows only on a terminal (``progress=None``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pytorch_lightning as pl
import torch
import torch.nn as nn
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from ..errors import InvalidInputError
from ..tracing.fx_tracer import eval_mode
from .errors import DatasetError
from .module import TRNClassifier

__all__ = ["FitResult", "build_trainer", "check_fits", "fit_trn", "quiet_lightning"]

HISTORY_FILE = "history.json"  # per-epoch metrics, written beside the checkpoints

_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric",
                      "lightning.fabric")
_EXPECTED_WARNINGS = (r".*does not have many workers.*",
                      r".*in eval mode at the start of training.*",
                      r".*is smaller than the logging interval.*",
                      r".*`srun` command is available.*",
                      r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


@dataclass(frozen=True)
class FitResult:
    """How one fine-tuning went; ``val_top1``/``val_loss`` are the best epoch's
    (by ``monitor``), ``epochs_run`` counts the epochs trained (fewer than
    ``max_epochs`` when stopped early); ``history`` has one row per validated epoch."""

    mode: str
    val_top1: float
    val_loss: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    wall_time_s: float
    best_checkpoint: str | None
    trainable_params: int
    accelerator: str
    strategy: str
    num_devices: int
    num_nodes: int
    history: tuple[dict, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "history": [dict(h) for h in self.history]}


def build_trainer(*, max_epochs: int = 10, accelerator="auto", devices="auto", strategy="auto",
                  num_nodes: int = 1, precision=None, callbacks: Sequence[Callback] = (),
                  logger=False, progress: bool | None = None, quiet: bool = True,
                  default_root_dir=None, **trainer_kwargs) -> pl.Trainer:
    """A ``pl.Trainer``: the distribution arguments passed through as given;
    ``progress=None`` shows the bar only when stderr is a terminal; ``quiet``
    holds back the banner and the model summary."""
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise InvalidInputError(f"max_epochs must be a positive integer, got {max_epochs!r}")
    kwargs = dict(max_epochs=max_epochs, accelerator=accelerator, devices=devices,
                  strategy=strategy, num_nodes=num_nodes, callbacks=list(callbacks),
                  logger=logger, default_root_dir=default_root_dir,
                  enable_progress_bar=sys.stderr.isatty() if progress is None else bool(progress),
                  enable_model_summary=not quiet, log_every_n_steps=1)
    if precision is not None:
        kwargs["precision"] = precision
    kwargs.update(trainer_kwargs)
    with quiet_lightning(quiet):
        try:
            return pl.Trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ImportError) as exc:
            raise InvalidInputError(f"cannot set up training: {_first_line(exc)}") from None


def fit_trn(trn: nn.Module, datamodule: pl.LightningDataModule, *, mode: str = "head",
            max_epochs: int = 10, lr: float | None = None, prefix_lr_scale: float = 0.1,
            weight_decay: float = 1e-4, optimizer: str = "adamw", scheduler: str = "cosine",
            label_smoothing: float = 0.0, accelerator="auto", devices="auto", strategy="auto",
            num_nodes: int = 1, precision=None, seed: int = 0, ckpt_dir=None,
            monitor: str = "val_acc", patience: int | None = 3, min_delta: float = 0.0,
            progress: bool | None = None, quiet: bool = True, logger=False,
            callbacks: Sequence[Callback] = (), restore_best: bool = True,
            **trainer_kwargs) -> FitResult:
    """Fine-tune ``trn`` (in place) on ``datamodule`` and report the best epoch.

    ``mode``: ``"head"``, ``"full"`` or ``"discriminative"`` (see
    :class:`TRNClassifier`, which takes ``lr``, ``prefix_lr_scale``, ``weight_decay``,
    ``optimizer``, ``scheduler``, ``label_smoothing``). ``seed`` seeds torch, numpy,
    Python and the loader workers. ``ckpt_dir``: where the best checkpoint is kept
    (``None``: a temporary folder, removed at the end; ``best_checkpoint`` is then
    ``None``), with ``history.json`` (the metrics of every epoch) beside it.
    ``patience=None`` turns early stopping off.

    ``datamodule``: an :class:`ImageFolderDataModule`, or any LightningDataModule
    with ``num_classes`` (and ``input_shape``, ``(3, H, W)``, to be checked).
    Before any training, its images and classes are checked against the TRN: an
    input size it cannot take, or a head with another number of classes, is a
    one-line :class:`DatasetError`. Ctrl-C: Lightning stops gracefully and exits
    the process (``SystemExit(1)``); checkpoints written in ``ckpt_dir`` stay.
    """
    if not isinstance(datamodule, pl.LightningDataModule):
        raise InvalidInputError("datamodule must be a LightningDataModule, got "
                                f"{type(datamodule).__name__}")
    if monitor not in ("val_acc", "val_loss"):
        raise InvalidInputError(f"monitor {monitor!r}: allowed val_acc, val_loss")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 1):
        raise InvalidInputError(f"patience must be a positive integer or None, got {patience!r}")
    datamodule.setup("fit")
    num_classes = getattr(datamodule, "num_classes", None)
    if not isinstance(num_classes, int):
        raise InvalidInputError(f"{type(datamodule).__name__} does not say its num_classes")
    input_shape = getattr(datamodule, "input_shape", None)
    if input_shape is not None:
        where = str(getattr(datamodule, "root", type(datamodule).__name__))
        check_fits(trn, input_shape, num_classes, where=where)
    module = TRNClassifier(trn, num_classes, mode, lr=lr, prefix_lr_scale=prefix_lr_scale,
                           weight_decay=weight_decay, optimizer=optimizer, scheduler=scheduler,
                           label_smoothing=label_smoothing)
    direction = "max" if monitor == "val_acc" else "min"
    temporary = ckpt_dir is None
    dirpath = Path(tempfile.mkdtemp(prefix="netcut-fit-")) if temporary else Path(ckpt_dir)
    try:
        dirpath.mkdir(parents=True, exist_ok=True)
        module.history_path = str(dirpath / HISTORY_FILE)
        checkpoint = ModelCheckpoint(dirpath=dirpath, monitor=monitor, mode=direction,
                                     filename=f"{mode}-{{epoch:02d}}-{{{monitor}:.4f}}",
                                     save_top_k=1)
        stopper = (EarlyStopping(monitor=monitor, mode=direction, patience=patience,
                                 min_delta=min_delta) if patience is not None else None)
        with quiet_lightning(quiet):
            pl.seed_everything(seed, workers=True, verbose=False)
            trainer = build_trainer(
                max_epochs=max_epochs, accelerator=accelerator, devices=devices,
                strategy=strategy, num_nodes=num_nodes, precision=precision,
                callbacks=[checkpoint, *([stopper] if stopper else []), *callbacks],
                logger=logger, progress=progress, quiet=quiet, default_root_dir=dirpath,
                **trainer_kwargs)
            start = time.perf_counter()
            try:
                trainer.fit(module, datamodule=datamodule)
            except DatasetError as exc:  # raised in a loader worker: keep its own line
                raise DatasetError(_worker_message(exc)) from None
            wall = time.perf_counter() - start
        best_path = checkpoint.best_model_path or None
        if restore_best and best_path and Path(best_path).is_file():  # rank 0 holds the file
            state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        rows = module.history or _read_history(dirpath / HISTORY_FILE)  # ddp_spawn: from rank 0
        history = tuple(dict(h) for h in rows if "val_acc" in h)
        if not history:
            raise InvalidInputError("training ran no validation epoch (is the val set empty?)")
        pick = max if direction == "max" else min
        best = pick(history, key=lambda h: h[monitor]) if best_path else history[-1]
        return FitResult(
            mode=mode, val_top1=best["val_acc"], val_loss=best["val_loss"],
            best_epoch=best["epoch"],
            epochs_run=max(trainer.current_epoch, max(h["epoch"] for h in rows) + 1),
            stopped_early=bool(stopper and stopper.stopped_epoch > 0), wall_time_s=wall,
            best_checkpoint=None if temporary else best_path,
            trainable_params=module.trainable_parameters(),
            accelerator=type(trainer.accelerator).__name__,
            strategy=type(trainer.strategy).__name__, num_devices=trainer.num_devices,
            num_nodes=trainer.num_nodes, history=history)
    finally:
        if temporary:
            shutil.rmtree(dirpath, ignore_errors=True)


def check_fits(trn: nn.Module, input_shape: Sequence[int], num_classes: int,
               where: str = "") -> None:
    """Run the TRN on a batch of 2 images of ``input_shape`` (on meta tensors when
    it can, computing nothing) and insist on ``[2, num_classes]``; a
    :class:`DatasetError` naming ``where`` otherwise."""
    shape = (2, *input_shape)
    size = "x".join(map(str, input_shape))
    label = _label(trn)
    with eval_mode(trn), torch.no_grad():
        try:
            out_shape = _shape_on_meta(trn, shape)
        except Exception:  # an op without a meta kernel, or a real misfit: run it for real
            try:
                param = next(trn.parameters(), None)
                factory = {"device": param.device, "dtype": param.dtype} if param is not None else {}
                out_shape = tuple(trn(torch.zeros(shape, **factory)).shape)
            except Exception as exc:
                raise DatasetError(f"images of {size} ({where}) do not fit {label}: "
                                   f"{_first_line(exc)}") from None
    if out_shape != (2, num_classes):
        got = out_shape[-1] if len(out_shape) == 2 else out_shape
        raise DatasetError(f"{label} gives {got} outputs per image, the dataset {where} has "
                           f"{num_classes} classes: trim with num_classes={num_classes}")


def _shape_on_meta(trn: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    from torch.func import functional_call

    tensors = {**dict(trn.named_parameters()), **dict(trn.named_buffers())}
    stand_ins = {n: torch.empty_like(t, device="meta") for n, t in tensors.items()}
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    x = torch.empty(shape, dtype=dtype, device="meta")
    return tuple(functional_call(trn, stand_ins, (x,)).shape)


@contextlib.contextmanager
def quiet_lightning(enabled: bool = True) -> Iterator[None]:
    """Hold back Lightning's info lines and its expected warnings, for the ``with``
    block only (the loggers' levels are put back after)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _read_history(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _worker_message(exc: Exception) -> str:
    """A DataLoader worker's error comes back as 'Caught X in DataLoader worker...'
    plus the worker's traceback; its last line holds the original message."""
    text = str(exc)
    if not text.startswith("Caught "):
        return text
    last = text.strip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


def _label(trn: nn.Module) -> str:
    source, cut = getattr(trn, "source", ""), getattr(getattr(trn, "cut", None), "name", None)
    if source and cut:
        return f"the TRN of {source} cut at {cut!r}"
    return f"the network {type(trn).__name__}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]

