"""The :class:`TRNClassifier`: a trimmed network (a plain ``nn.Module``) trained by
Lightning, in one of three modes.

============================  =====================================  ====================
mode                          what trains                            default learning rate
============================  =====================================  ====================
``"head"``                    the new head only; the prefix frozen   1e-3
``"full"``                    everything, one learning rate          1e-4
``"discriminative"``          everything; the prefix at              1e-3 (head),
                              ``lr * prefix_lr_scale``               1e-4 (prefix)
============================  =====================================  ====================

**BatchNorm in head mode.** Freezing the prefix's weights is not enough: a
BatchNorm layer in train mode still normalises with the *batch's* statistics and
overwrites its running mean and variance with this dataset's. The head would then
learn on features that differ from those it meets at inference (running
statistics), and the "frozen" prefix would not be the pretrained one any more. So
in head mode every module outside the head stays in eval mode whatever
``train()`` is called with (Dropout and StochasticDepth in the prefix are off
too): the prefix is then exactly the pretrained feature extractor, run as at
inference. In ``full`` and ``discriminative`` modes BatchNorm trains as usual.

The head is the TRN's ``head`` attribute (what :func:`netcut.trim` makes);
everything else is the prefix. Metrics: cross-entropy loss and top-1 accuracy
(torchmetrics, synchronised across processes), logged per epoch as
``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``; :attr:`history` keeps
them per epoch.
"""

from __future__ import annotations

import json

import pytorch_lightning as pl
import torch
import torch.nn as nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from ..files import atomic_write_text
from ..errors import InvalidInputError

__all__ = ["DEFAULT_LR", "MODES", "TRNClassifier"]

MODES = ("head", "full", "discriminative")
DEFAULT_LR = {"head": 1e-3, "full": 1e-4, "discriminative": 1e-3}
OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "none")


class TRNClassifier(pl.LightningModule):
    """Fine-tunes ``trn`` (kept as ``self.trn``; trained in place) for ``num_classes``
    classes (default: the out_features of the head's last Linear)."""

    def __init__(self, trn: nn.Module, num_classes: int | None = None, mode: str = "head", *,
                 lr: float | None = None, prefix_lr_scale: float = 0.1,
                 weight_decay: float = 1e-4, optimizer: str = "adamw", momentum: float = 0.9,
                 scheduler: str = "cosine", label_smoothing: float = 0.0):
        super().__init__()
        if mode not in MODES:
            raise InvalidInputError(f"mode {mode!r}: allowed {', '.join(MODES)}")
        if optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"optimizer {optimizer!r}: allowed {', '.join(OPTIMIZERS)}")
        if scheduler not in SCHEDULERS:
            raise InvalidInputError(f"scheduler {scheduler!r}: allowed {', '.join(SCHEDULERS)}")
        head = getattr(trn, "head", None)
        if not isinstance(trn, nn.Module) or not isinstance(head, nn.Module):
            raise InvalidInputError("the TRN must be an nn.Module with a `head` module "
                                    "(what netcut.trim makes)")
        lr = DEFAULT_LR[mode] if lr is None else lr
        for name, value in (("lr", lr), ("prefix_lr_scale", prefix_lr_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
        if num_classes is None:
            num_classes = _head_classes(head)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise InvalidInputError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.trn = trn
        self.save_hyperparameters(ignore=["trn"])
        self.hparams.lr = float(lr)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        #: one dict per finished epoch: epoch, train_loss, train_acc, val_loss, val_acc
        self.history: list[dict] = []
        #: where rank 0 writes ``history`` as JSON after each epoch (None: nowhere); the
        #: way it comes back from processes that ``ddp_spawn`` started
        self.history_path: str | None = None
        self._freeze()

    # ----- what trains ---------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.hparams.mode

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.trn.head.parameters())

    def prefix_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.trn.parameters() if id(p) not in head]

    def _prefix_modules(self) -> list[nn.Module]:
        return [m for m in self.trn.children() if m is not self.trn.head]

    def _freeze(self) -> None:
        for p in self.prefix_parameters():
            p.requires_grad_(self.mode != "head")
        for p in self.head_parameters():
            p.requires_grad_(True)

    def train(self, mode: bool = True) -> "TRNClassifier":
        """As ``nn.Module.train``, but in head mode the prefix stays in eval mode
        (BatchNorm keeps its pretrained statistics; see the module docstring)."""
        super().train(mode)
        if mode and self.mode == "head":
            for module in self._prefix_modules():
                module.eval()
        return self

    def on_fit_start(self) -> None:
        self.train()  # Lightning keeps the mode the module came in: the TRN may be in eval

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.trn.parameters() if p.requires_grad)

    # ----- steps -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trn(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.train_loss.update(loss.detach(), weight=len(y))
        self.train_acc.update(logits.detach(), y)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_loss.update(self.criterion(logits, y), weight=len(y))
        self.val_acc.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        loss, acc = self.val_loss.compute(), self.val_acc.compute()  # synced across processes
        self.val_loss.reset()
        self.val_acc.reset()
        if self.trainer.sanity_checking:
            return
        # already synchronised; sync_dist only tells Lightning so (a no-op average)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("val_acc", acc, prog_bar=True, sync_dist=True)
        self._record(val_loss=float(loss), val_acc=float(acc))

    def on_train_epoch_end(self) -> None:
        if self.train_loss.update_count == 0:
            return
        loss, acc = self.train_loss.compute(), self.train_acc.compute()
        self.train_loss.reset()
        self.train_acc.reset()
        self.log("train_loss", loss, sync_dist=True)
        self.log("train_acc", acc, sync_dist=True)
        self._record(train_loss=float(loss), train_acc=float(acc))
        if self.history_path and self.trainer.is_global_zero:
            atomic_write_text(self.history_path, json.dumps(self.history, indent=1) + "\n")

    def _record(self, **values: float) -> None:
        epoch = int(self.current_epoch)
        if not self.history or self.history[-1]["epoch"] != epoch:
            self.history.append({"epoch": epoch})
        self.history[-1].update(values)

    # ----- optimisation ------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """The optimizer's groups: ``name``, ``params``, ``lr``."""
        lr = self.hparams.lr
        head = [p for p in self.head_parameters() if p.requires_grad]
        prefix = [p for p in self.prefix_parameters() if p.requires_grad]
        if self.mode == "head":
            return [{"name": "head", "params": head, "lr": lr}]
        if self.mode == "full":
            return [{"name": "head", "params": head, "lr": lr},
                    {"name": "prefix", "params": prefix, "lr": lr}]
        return [{"name": "head", "params": head, "lr": lr},
                {"name": "prefix", "params": prefix, "lr": lr * self.hparams.prefix_lr_scale}]

    def configure_optimizers(self):
        groups = [g for g in self.param_groups() if g["params"]]
        if self.hparams.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, momentum=self.hparams.momentum, nesterov=True,
                                        weight_decay=self.hparams.weight_decay)
        else:
            optimizer = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        epochs = self.trainer.max_epochs if self._trainer is not None else None
        if self.hparams.scheduler == "none" or not epochs or epochs < 1:
            return optimizer
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def _head_classes(head: nn.Module) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidInputError("cannot tell the number of classes from the head (no Linear "
                                "in it): pass num_classes")
    return int(linears[-1].out_features)
