"""Training a dynamic network with PyTorch Lightning: single-path against multi-path.

Yang & Fan (ASP-DAC 2021) generate the sub-nets of a dynamic network in one of two
ways, and both are here, on the same data and the same budget:

- **multi-path** (:func:`train_multi_path`, the baseline): every sub-net is taken
  out as a static network with its *own* copy of the weights
  (``net.static(id, share=False)``) and fine-tuned alone, one Lightning ``fit`` per
  sub-net. N sub-nets cost N trainings and N copies of the weights.
- **single-path** (:func:`train_single_path`): ONE ``fit`` of the shared-weight
  :class:`~netcut.dynamic.DynamicNet`, sampling sub-nets from step to step.

**Sampling (single-path).** Sub-nets of one width share every layer up to their
exits, so a width is trained in one pass: the width is activated, the stages run
up to the deepest exit that width's sub-nets use, and each of its sub-nets' heads
adds its cross-entropy to the loss as the pass goes by (a multi-exit loss). Which
widths a step trains (``sampling``):

- ``"sandwich"`` (default): the widest width and one other, the others in turn
  (round-robin): the largest sub-nets train every step, each narrower width every
  ``W - 1`` steps (slimmable networks' "largest + one sampled" rule, the random
  draw replaced by a rotation so every width gets the same share). Two passes a
  step. The default because it matched multi-path's accuracy in
  ``benchmarks/dynamic_train.py``, where ``cycle`` lost accuracy on the shallow exits.
- ``"cycle"``: one width per step, the widths in turn - Yang & Fan's single round
  visiting the sub-nets in turn (they switch per epoch; per step keeps the shares
  even within an epoch and under the learning-rate schedule). One pass a step: the
  cheapest, each width getting ``1/W`` of the steps.
- ``"random"``: the widest and one other drawn at random (seeded by ``seed`` and the
  step number, so every process of a distributed run draws the same).

The losses are summed and one optimizer step follows. **Batch norm**: every
BatchNorm keeps running statistics per width (switchable BN, see
:mod:`.slim`), so each width's statistics are updated only by its own passes;
after the fit :func:`~netcut.dynamic.recalibrate_bn` re-estimates them from
``recalibrate_batches`` training batches with the final weights (counted in the
training time; ``0`` turns it off). Multi-path copies keep their own BatchNorm.

**The budget.** Both methods see the same training images for the same number of
``epochs``, with the same optimizer, learning rate, schedule, batch size and
seed: multi-path runs ``epochs`` epochs *per sub-net* (N fits), single-path
``epochs`` epochs in all (one fit; each step trains 2 widths with ``sandwich``
and ``random``, 1 with ``cycle``). ``TrainResult.updates`` counts, per sub-net,
the optimizer steps its loss took part in.

**Accuracy** is top-1 of the final weights on data not trained on: the data
module's validation split (``eval_loader`` to use another, e.g. a test split),
measured after training, the same way for both methods. Nothing is selected on
it (no checkpointing, no early stopping).

**Time.** ``wall_s``: the whole training (Lightning set-up, every epoch, the BN
recalibration of single-path; not the final accuracy measurement);
``train_s``: the sum of the training steps (forward, backward, optimizer; on
CUDA synchronised), and ``per_step_ms`` = ``train_s / steps``.

Lightning does the training and the distribution: ``accelerator``, ``devices``,
``strategy``, ``num_nodes`` and ``precision`` (and any other ``pl.Trainer``
argument) pass through unchanged. Importing :mod:`netcut.dynamic` does not import
Lightning; this module does.
"""

from __future__ import annotations

import contextlib
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import pytorch_lightning as pl
import torch
import torch.nn as nn
from pytorch_lightning.callbacks import Callback

from ..errors import InvalidInputError
from ..retrain.errors import DatasetError
from ..retrain.fit import build_trainer, quiet_lightning
from ..retrain.module import OPTIMIZERS, SCHEDULERS, TRNClassifier
from ..tracing.fx_tracer import eval_mode
from .bn import recalibrate_bn
from .net import DynamicNet

__all__ = ["METHODS", "SAMPLING", "DynamicClassifier", "TrainResult", "evaluate",
           "train_dynamic", "train_multi_path", "train_single_path"]

METHODS = ("single", "multi")
SAMPLING = ("sandwich", "cycle", "random")
DEFAULT_LR = 1e-3


@dataclass(frozen=True)
class TrainResult:
    """How one method trained the sub-nets. ``accuracies``: sub-net name -> top-1
    on the evaluation data after training; ``updates``: sub-net name -> optimizer
    steps that trained it; ``fit_s``: multi-path, sub-net name -> its fit's wall
    time. ``models``: multi-path, the trained static copies (not serialised)."""

    method: str
    accuracies: dict[str, float]
    wall_s: float
    train_s: float
    steps: int
    epochs: int
    updates: dict[str, int]
    sampling: str | None
    recalibrated_batches: int
    accelerator: str
    strategy: str
    num_devices: int
    eval_images: int
    fit_s: dict[str, float] | None = None
    models: dict[str, nn.Module] | None = field(default=None, repr=False, compare=False)

    @property
    def per_step_ms(self) -> float:
        return self.train_s / self.steps * 1e3 if self.steps else float("nan")

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "models"}
        out["per_step_ms"] = self.per_step_ms
        return out


class _StepTimer(Callback):
    """Sums the time of the training steps (forward, backward, optimizer step)."""

    def __init__(self):
        self.total_s = 0.0
        self.steps = 0
        self._start = 0.0

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.total_s += time.perf_counter() - self._start
        self.steps += 1


class DynamicClassifier(pl.LightningModule):
    """Single-path training of a :class:`DynamicNet` (kept as ``self.net``, trained
    in place): per step, the widths chosen by ``sampling`` each run once, every
    sub-net of that width adding its exit's cross-entropy (module docstring)."""

    def __init__(self, net: DynamicNet, *, sampling: str = "sandwich", lr: float = DEFAULT_LR,
                 weight_decay: float = 1e-4, optimizer: str = "adamw", momentum: float = 0.9,
                 scheduler: str = "cosine", label_smoothing: float = 0.0, seed: int = 0):
        super().__init__()
        if not isinstance(net, DynamicNet):
            raise InvalidInputError(f"single-path training needs a DynamicNet, got {type(net).__name__}")
        _check_options(sampling=sampling, optimizer=optimizer, scheduler=scheduler, lr=lr)
        self.net = net
        self.save_hyperparameters(ignore=["net"])
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # width index -> (sub-net to activate: its deepest, {exit index: [sub-net ids]})
        plan: dict[int, tuple[int, dict[int, list[int]]]] = {}
        for s in net.subnets:
            deepest, exits = plan.get(s.width_index, (s.id, {}))
            if s.exit_index > net.subnets[deepest].exit_index:
                deepest = s.id
            exits.setdefault(s.exit_index, []).append(s.id)
            plan[s.width_index] = (deepest, exits)
        self._plan = plan
        # widest first: the most channels kept in all; ties by the width's order
        self.width_order = sorted(plan, key=lambda k: (-sum(net.widths[k].channels), k))
        self.updates = {s.name: 0 for s in net.subnets}

    def widths_for_step(self, step: int) -> list[int]:
        """The width indices trained at optimizer step ``step``."""
        order = self.width_order
        if len(order) == 1:
            return order
        sampling = self.hparams.sampling
        if sampling == "cycle":
            return [order[step % len(order)]]
        others = order[1:]
        if sampling == "random":
            return [order[0], random.Random(self.hparams.seed * 1_000_003 + step).choice(others)]
        return [order[0], others[step % len(others)]]

    def width_loss(self, k: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Width ``k`` in one pass: the summed loss of its sub-nets' exits."""
        net = self.net
        deepest, exits = self._plan[k]
        net.activate(deepest)
        stop = net.subnets[deepest].exit_index
        loss = x.new_zeros(())
        for j in range(stop + 1):
            x = net.stages[j](x)
            if j in exits:
                loss = loss + self.criterion(net.heads[j](x), y) * len(exits[j])
                if self.training:
                    for sid in exits[j]:
                        self.updates[net.subnets[sid].name] += 1
        return loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = sum(self.width_loss(k, x, y) for k in self.widths_for_step(self.global_step))
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        return _optimizer(self, self.net.parameters())


def _optimizer(module: pl.LightningModule, params) -> object:
    hp = module.hparams
    if hp.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, nesterov=True,
                                    weight_decay=hp.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    epochs = module.trainer.max_epochs if module._trainer is not None else None
    if hp.scheduler == "none" or not epochs or epochs < 1:
        return optimizer
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def _check_options(*, sampling: str | None = None, optimizer: str = "adamw",
                   scheduler: str = "cosine", lr: float = DEFAULT_LR) -> None:
    if sampling is not None and sampling not in SAMPLING:
        raise InvalidInputError(f"sampling {sampling!r}: allowed {', '.join(SAMPLING)}")
    if optimizer not in OPTIMIZERS:
        raise InvalidInputError(f"optimizer {optimizer!r}: allowed {', '.join(OPTIMIZERS)}")
    if scheduler not in SCHEDULERS:
        raise InvalidInputError(f"scheduler {scheduler!r}: allowed {', '.join(SCHEDULERS)}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise InvalidInputError(f"lr must be a positive number, got {lr!r}")


def _check_epochs(epochs) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidInputError(f"epochs must be a positive integer, got {epochs!r}")
    return epochs


def check_data(net: DynamicNet, datamodule: pl.LightningDataModule) -> None:
    """The data module's classes and image size against the network's: a one-line
    :class:`DatasetError` before any training when they differ."""
    if not isinstance(datamodule, pl.LightningDataModule):
        raise InvalidInputError("datamodule must be a LightningDataModule, got "
                                f"{type(datamodule).__name__}")
    datamodule.setup("fit")
    where = str(getattr(datamodule, "root", type(datamodule).__name__))
    num_classes = getattr(datamodule, "num_classes", None)
    if num_classes is not None and num_classes != net.num_classes:
        raise DatasetError(f"the dataset {where} has {num_classes} classes, the dynamic network's "
                           f"heads have {net.num_classes}: build it with --num-classes {num_classes}")
    shape = getattr(datamodule, "input_shape", None)
    if shape is not None and tuple(shape) != tuple(net.input_shape):
        raise DatasetError(f"the dataset {where} gives {'x'.join(map(str, shape))} images, the "
                           f"dynamic network takes {'x'.join(map(str, net.input_shape))}")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, subnet: int | str | None = None,
             device: torch.device | str | None = None) -> tuple[float, int]:
    """Top-1 accuracy of ``model`` (a DynamicNet: sub-net ``subnet``) over
    ``loader`` in eval mode: ``(accuracy, images)``."""
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    correct = total = 0
    with eval_mode(model):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x, subnet=subnet) if subnet is not None else model(x)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    if total == 0:
        raise DatasetError("no images to measure accuracy on (the validation split is empty)")
    return correct / total, total


def _root_device(trainer: pl.Trainer) -> torch.device:
    """Where the fit ran (rank 0's device): the BN re-estimation and the scoring run
    there too."""
    try:
        return trainer.strategy.root_device
    except Exception:  # a strategy without one
        return torch.device("cpu")


@contextlib.contextmanager
def _quiet(quiet: bool):
    """Lightning's expected messages held back; also its note that the static
    copies' ``validation_step`` has no loader (accuracy is measured after the fit)."""
    with quiet_lightning(quiet), warnings.catch_warnings():
        if quiet:
            warnings.filterwarnings("ignore", message=r".*`validation_step` but have no.*")
        yield


def _trainer(epochs: int, timer: _StepTimer, callbacks: Sequence[Callback], progress, quiet,
             dist: dict, trainer_kwargs: dict) -> pl.Trainer:
    return build_trainer(max_epochs=epochs, callbacks=[timer, *callbacks], progress=progress,
                         quiet=quiet, enable_checkpointing=False, num_sanity_val_steps=0,
                         limit_val_batches=0, **dist, **trainer_kwargs)


def train_single_path(net: DynamicNet, datamodule: pl.LightningDataModule, *, epochs: int = 3,
                      sampling: str = "sandwich", lr: float = DEFAULT_LR,
                      weight_decay: float = 1e-4, optimizer: str = "adamw",
                      scheduler: str = "cosine", label_smoothing: float = 0.0,
                      recalibrate_batches: int = 20, seed: int = 0,
                      eval_loader: Iterable | None = None, accelerator="auto", devices="auto",
                      strategy="auto", num_nodes: int = 1, precision=None,
                      progress: bool | None = None, quiet: bool = True,
                      callbacks: Sequence[Callback] = (), **trainer_kwargs) -> TrainResult:
    """One Lightning fit of the shared-weight ``net`` (trained in place), sub-nets
    sampled per step; then each width's BN statistics re-estimated and each
    sub-net's accuracy measured on ``eval_loader`` (default: the validation split).
    Does not set the accuracies on ``net`` (:func:`train_dynamic` does)."""
    _check_epochs(epochs)
    if isinstance(recalibrate_batches, bool) or not isinstance(recalibrate_batches, int) \
            or recalibrate_batches < 0:
        raise InvalidInputError(f"recalibrate_batches must be a non-negative integer, "
                                f"got {recalibrate_batches!r}")
    check_data(net, datamodule)
    module = DynamicClassifier(net, sampling=sampling, lr=lr, weight_decay=weight_decay,
                               optimizer=optimizer, scheduler=scheduler,
                               label_smoothing=label_smoothing, seed=seed)
    timer = _StepTimer()
    dist = dict(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
                precision=precision)
    with _quiet(quiet):
        pl.seed_everything(seed, workers=True, verbose=False)
        trainer = _trainer(epochs, timer, callbacks, progress, quiet, dist, trainer_kwargs)
        start = time.perf_counter()
        net.train()
        trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
        device = _root_device(trainer)  # Lightning hands the module back on the CPU
        net.to(device)
        used = 0
        if recalibrate_batches:
            counts = recalibrate_bn(net, datamodule.train_dataloader(), batches=recalibrate_batches)
            used = min(counts.values()) if counts else 0
        wall = time.perf_counter() - start
    net.eval()
    loader = eval_loader if eval_loader is not None else datamodule.val_dataloader()
    accuracies, images = {}, 0
    for s in net.subnets:
        accuracies[s.name], images = evaluate(net, loader, subnet=s.id)
    net.cpu()
    return TrainResult(method="single", accuracies=accuracies, wall_s=wall, train_s=timer.total_s,
                       steps=timer.steps, epochs=epochs, updates=dict(module.updates),
                       sampling=sampling, recalibrated_batches=used,
                       accelerator=type(trainer.accelerator).__name__,
                       strategy=type(trainer.strategy).__name__, num_devices=trainer.num_devices,
                       eval_images=images)


def train_multi_path(net: DynamicNet, datamodule: pl.LightningDataModule, *, epochs: int = 3,
                     lr: float = DEFAULT_LR, weight_decay: float = 1e-4, optimizer: str = "adamw",
                     scheduler: str = "cosine", label_smoothing: float = 0.0, seed: int = 0,
                     eval_loader: Iterable | None = None, accelerator="auto", devices="auto",
                     strategy="auto", num_nodes: int = 1, precision=None,
                     progress: bool | None = None, quiet: bool = True,
                     callbacks: Sequence[Callback] = (), **trainer_kwargs) -> TrainResult:
    """Every sub-net of ``net`` fine-tuned alone, as a static copy with its own
    weights (``net`` is not changed): one Lightning fit per sub-net, each with the
    same epochs, data order (``seed``) and optimizer. The trained copies are in
    ``TrainResult.models`` (name -> :class:`~netcut.dynamic.StaticSubnet`)."""
    _check_epochs(epochs)
    _check_options(optimizer=optimizer, scheduler=scheduler, lr=lr)
    check_data(net, datamodule)
    timer = _StepTimer()
    dist = dict(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
                precision=precision)
    models: dict[str, nn.Module] = {}
    fit_s: dict[str, float] = {}
    updates: dict[str, int] = {}
    trainer = None
    with _quiet(quiet):
        for s in net.subnets:
            copy = net.static(s.id, share=False)
            module = TRNClassifier(copy, net.num_classes, "full", lr=lr, weight_decay=weight_decay,
                                   optimizer=optimizer, scheduler=scheduler,
                                   label_smoothing=label_smoothing)
            pl.seed_everything(seed, workers=True, verbose=False)
            steps_before = timer.steps
            trainer = _trainer(epochs, timer, callbacks, progress, quiet, dist, trainer_kwargs)
            start = time.perf_counter()
            trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
            fit_s[s.name] = time.perf_counter() - start
            updates[s.name] = timer.steps - steps_before
            models[s.name] = copy.eval()
    loader = eval_loader if eval_loader is not None else datamodule.val_dataloader()
    accuracies, images = {}, 0
    device = _root_device(trainer)
    for name, copy in models.items():
        accuracies[name], images = evaluate(copy.to(device), loader)
        copy.cpu()
    return TrainResult(method="multi", accuracies=accuracies, wall_s=sum(fit_s.values()),
                       train_s=timer.total_s, steps=timer.steps, epochs=epochs, updates=updates,
                       sampling=None, recalibrated_batches=0,
                       accelerator=type(trainer.accelerator).__name__,
                       strategy=type(trainer.strategy).__name__, num_devices=trainer.num_devices,
                       eval_images=images, fit_s=fit_s, models=models)


def train_dynamic(net: DynamicNet, datamodule: pl.LightningDataModule, method: str = "single",
                  **kwargs) -> dict[str, TrainResult]:
    """``method``: ``"single"``, ``"multi"`` or ``"both"`` -> ``{method: TrainResult}``.
    Multi-path runs first (it leaves ``net`` unchanged), so both start from the same
    weights. ``net``'s accuracies are set from single-path when it ran, else from
    multi-path. ``kwargs`` go to both (``sampling`` and ``recalibrate_batches``
    to single-path only)."""
    if method not in (*METHODS, "both"):
        raise InvalidInputError(f"method {method!r}: allowed single, multi, both")
    if not isinstance(net, DynamicNet):
        raise InvalidInputError(f"training needs a DynamicNet, got {type(net).__name__}")
    _check_options(sampling=kwargs.get("sampling", "sandwich"),
                   optimizer=kwargs.get("optimizer", "adamw"),
                   scheduler=kwargs.get("scheduler", "cosine"), lr=kwargs.get("lr", DEFAULT_LR))
    _check_epochs(kwargs.get("epochs", 3))
    single_only = {k: kwargs.pop(k) for k in ("sampling", "recalibrate_batches") if k in kwargs}
    results: dict[str, TrainResult] = {}
    if method in ("multi", "both"):
        results["multi"] = train_multi_path(net, datamodule, **kwargs)
    if method in ("single", "both"):
        results["single"] = train_single_path(net, datamodule, **kwargs, **single_only)
    deployed = results.get("single") or results["multi"]
    net.set_accuracies(deployed.accuracies)
    return results
