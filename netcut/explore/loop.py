"""NetCut's exploration loop: plan, retrain only the proposed TRNs (and the
off-the-shelf networks that fit, as the baseline), measure, pick, optionally
compare with the exhaustive search.

Steps of :func:`explore`, each failing early with one line naming what and where:

1. the data folder is scanned (:class:`~netcut.retrain.ImageFolderDataModule`):
   classes, images, split;
2. every network is planned on the device (:func:`netcut.plan`, one trace each)
   at the data's number of classes; nothing feasible is an error naming the
   fastest candidate and the deadline it would need;
3. the TRNs to retrain are chosen (:mod:`.candidates`) and every network they need
   is loaded with its pretrained weights (a local checkpoint, else torchvision's by
   name) before any training starts;
4. each TRN is trimmed and fine-tuned (:func:`netcut.retrain.fit_trn`), and its
   result saved at once (:mod:`.state`); a result already in the state folder is
   read back instead of retrained;
5. the most accurate feasible TRN is picked (:mod:`.results`), optionally scored
   on a test folder, and exported (:mod:`.export`).

Lightning is imported only when the first TRN is retrained.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from .. import retrain
from ..errors import InvalidInputError, TraceError
from ..models import resolve_model
from ..planner.cuts import CutPoint, cut_points
from ..planner.plan import Plan, check_deadline, plan as run_plan
from ..planner.trim import HEADS, trim
from ..tracing import parse_input_shape, trace
from .candidates import Trial, exhaustive_trials, explored_trials
from .results import Exploration, TrialResult
from .state import ExploreState, data_fingerprint, file_sha256, result_key

__all__ = ["DEFAULT_MODELS", "ExploreProgress", "evaluate", "explore"]

#: networks explored when none are named: small and mid-sized ImageNet classifiers
DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large",
                  "efficientnet_b0", "densenet121")
TRAIN_MODES = ("head", "full", "discriminative")
#: fit_trn's recipe beside the settings explore exposes (part of every result's key)
RECIPE = {"optimizer": "adamw", "scheduler": "cosine", "weight_decay": 1e-4,
          "prefix_lr_scale": 0.1, "label_smoothing": 0.0, "monitor": "val_acc",
          "augment": False, "normalise": "imagenet"}


class ExploreProgress:
    """What the loop says while it works; the default says nothing (the CLI draws
    progress bars by overriding these)."""

    def stage(self, text: str) -> None:
        """A step of the exploration begins (``"planning"``, ``"loading weights"``...)."""

    def trial(self, k: int, n: int, trial: Trial, resumed: bool) -> None:
        """Trial ``k`` (1-based) of ``n`` begins; ``resumed``: read back, not retrained."""

    def epoch(self, done: int, total: int, val_acc: float | None) -> None:
        """An epoch of the current trial ended (``done`` of at most ``total``)."""

    def finished(self, k: int, n: int, result: TrialResult) -> None:
        """Trial ``k`` of ``n`` is done and saved."""


@dataclass
class _Network:
    spec: str
    name: str
    shape: tuple[int, ...]
    weights: str  # what the weights are, in words
    fingerprint: str
    module: nn.Module
    table: object  # LayerTable, traced with fx at ``shape``
    cuts: list[CutPoint]  # every legal row (layer granularity), shallowest first


def explore(models: Sequence[str] | str | None, hardware, deadline_ms, data, *,
            weights: Mapping[str, str] | None = None, epochs: int = 3,
            exhaustive: bool = False, input_shape=None, mode: str = "head",
            head: str = "linear", lr: float | None = None, seed: int = 0,
            batch_size: int = 32, val_fraction: float = 0.2, patience: int | None = 3,
            granularity: str = "block", exhaustive_granularity: str = "layer",
            runners_up: int = 2, confidence: float | None = None, batch: int = 1,
            dtype: str = "float32", latency_mode: str | None = None,
            state_dir=None, test_data=None, export_dir=None, download: bool = True,
            num_workers: int | None = None, accelerator="auto", devices=1,
            progress: ExploreProgress | None = None) -> Exploration:
    """Explore the TRNs of ``models`` for ``deadline_ms`` on ``hardware`` with the
    images in ``data`` (one sub-folder per class; ``train/`` + ``val/`` or split).

    ``weights``: model spec (or network name) -> checkpoint file; a model without
    one gets torchvision's pretrained weights by name (``download=False``: only from
    torchvision's cache). ``epochs``: the retraining budget of each TRN (at most;
    early stopping after ``patience`` epochs without improvement). ``mode``: which
    part trains (``head``, ``full``, ``discriminative``). ``input_shape``: the
    network's input (images are resized to it); default each network's own.
    ``exhaustive``: also retrain every cut of every network at
    ``exhaustive_granularity`` and compare. ``state_dir``: where finished results
    are kept (default ``explore-state`` in the working folder); an interrupted run
    resumes from it. ``test_data``: a folder of the same classes, never trained on,
    to score the picks on. ``export_dir``: export the pick there
    (:func:`netcut.explore.export.export_trn`). ``batch``, ``dtype``,
    ``latency_mode``, ``confidence``, ``granularity``, ``runners_up``: as
    :func:`netcut.plan`.
    """
    started = time.perf_counter()
    say = progress or ExploreProgress()
    deadline = check_deadline(deadline_ms)
    _check_settings(epochs, mode, head, seed, batch_size, patience, lr)
    network_of = _specs(models)  # spec -> network name (as the plan names it)
    specs = list(network_of)
    weight_files = _weights_by_spec(weights or {}, network_of)
    shape_given = parse_input_shape(input_shape) if input_shape is not None else None
    state = ExploreState(state_dir if state_dir is not None else Path("explore-state"))

    # 1. the data
    say.stage("scanning the data")
    shapes = {s: shape_given or parse_input_shape(None, s) for s in specs}
    datamodules: dict[tuple[int, ...], object] = {}

    def datamodule(shape):
        if shape not in datamodules:
            dm = retrain.ImageFolderDataModule(data, shape, batch_size=batch_size,
                                               val_fraction=val_fraction, seed=seed,
                                               num_workers=num_workers)
            dm.setup("fit")
            datamodules[shape] = dm
        return datamodules[shape]

    first = datamodule(shapes[specs[0]])
    classes = tuple(first.classes)
    data_info = {**first.summary(), "fingerprint": data_fingerprint(data)}
    data_info.pop("image_size", None)
    test_index = None
    if test_data is not None:
        from ..retrain.folder import scan_image_folder

        test_index = scan_image_folder(test_data, classes=classes)
        data_info["test"] = {"root": str(test_data), "images": len(test_index),
                             "counts": test_index.counts()}

    # 2. the plan(s)
    say.stage("planning")
    t0, c0 = time.perf_counter(), time.process_time()
    plan_args = dict(batch=batch, dtype=dtype, confidence=confidence, mode=latency_mode,
                     num_classes=len(classes), input_shape=shape_given, runners_up=runners_up,
                     strict=True)
    the_plan = run_plan(specs, hardware, deadline, granularity=granularity, **plan_args)
    plan_s, plan_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    full_plan = the_plan if exhaustive_granularity == granularity else run_plan(
        specs, hardware, deadline, granularity=exhaustive_granularity, **plan_args)
    hw = the_plan.hardware[0]
    if not the_plan.feasible():
        raise InvalidInputError(_nothing_feasible(the_plan, full_plan))
    names = _names(network_of, the_plan)
    explored = explored_trials(the_plan, names)
    trials = exhaustive_trials(full_plan, names, explored) if exhaustive else explored

    # 3. the networks, with their weights, before any training
    say.stage("loading pretrained weights")
    networks: dict[str, _Network] = {}
    for spec in dict.fromkeys(t.spec for t in trials):
        networks[spec] = _load_network(spec, network_of[spec], shapes[spec],
                                       weight_files.get(spec), download, the_plan)

    settings = {"epochs": epochs, "mode": mode, "head": head, "lr": lr, "seed": seed,
                "batch_size": batch_size, "val_fraction": val_fraction, "patience": patience,
                "granularity": granularity, "exhaustive_granularity": exhaustive_granularity,
                "runners_up": runners_up, "batch": batch, "dtype": dtype,
                "latency_mode": latency_mode, "state_dir": str(state.folder),
                "input_shapes": {n.name: list(n.shape) for n in networks.values()},
                "weights": {n.name: {"source": n.weights, "sha256": n.fingerprint}
                            for n in networks.values()},
                "recipe": RECIPE, "accelerator": str(accelerator), "devices": str(devices)}

    # 4. retrain (or read back) each TRN
    results: list[TrialResult] = []
    with _sigterm_as_interrupt():
        _run_trials(trials, networks, classes, data_info, datamodule, state, say, results,
                    the_plan, head=head, mode=mode, epochs=epochs, lr=lr, seed=seed,
                    batch_size=batch_size, val_fraction=val_fraction, patience=patience,
                    accelerator=accelerator, devices=devices)

    fastest = the_plan.fastest(hw)
    exploration = Exploration(
        deadline_ms=deadline, hardware=hw, confidence=confidence,
        calibrated=bool(the_plan.calibrated.get(hw)), networks=list(the_plan.networks),
        settings=settings, data=data_info, results=results, exhaustive_run=exhaustive,
        exhaustive_count=len(full_plan.candidates), plan_s=plan_s, plan_cpu_s=plan_cpu_s,
        fastest={**fastest.__dict__} if fastest else None, skipped=dict(the_plan.skipped))

    # 5. score the picks on the test folder, export the pick
    picks = {r.trial.ident: r for r in (exploration.chosen(), exploration.baseline(),
                                        exploration.exhaustive_choice()) if r is not None}
    if test_index is not None and picks:
        say.stage("scoring on the test folder")
        for r in picks.values():
            trn = _rebuild(r, networks[r.trial.spec], state, len(classes), head)
            exploration.test[r.label] = evaluate(trn, test_index, networks[r.trial.spec].shape,
                                                 batch_size)
    chosen = exploration.chosen()
    if export_dir is not None and chosen is not None:
        from .export import export_trn, model_card

        say.stage("exporting the chosen network")
        net = networks[chosen.trial.spec]
        trn = _rebuild(chosen, net, state, len(classes), head)
        card = model_card(exploration, chosen, weights=settings["weights"][net.name],
                          input_shape=net.shape, classes=classes,
                          node=net.table.names[chosen.trial.row],
                          test_top1=exploration.test.get(chosen.label))
        exploration.export = export_trn(trn, net.shape, export_dir, card)
    exploration.wall_s = time.perf_counter() - started
    return exploration


def _run_trials(trials, networks, classes, data_info, datamodule, state, say, results,
                the_plan, *, head, mode, epochs, lr, seed, batch_size, val_fraction, patience,
                accelerator, devices) -> None:
    """Retrain (or read back) each trial in order, appending to ``results``."""
    for k, trial in enumerate(trials, 1):
        net = networks[trial.spec]
        cut = _cut_at(net, trial)
        key = result_key({
            "spec": trial.spec, "weights": net.fingerprint, "row": cut.row_index,
            "node": cut.node, "head": head, "num_classes": len(classes), "classes": classes,
            "input_shape": net.shape, "data": data_info["fingerprint"], "epochs": epochs,
            "seed": seed, "mode": mode, "lr": lr, "batch_size": batch_size,
            "val_fraction": val_fraction, "patience": patience, "recipe": RECIPE})
        record = state.get(key)
        say.trial(k, len(trials), trial, resumed=record is not None)
        if record is None:
            record = _retrain(trial, net, cut, key, datamodule(net.shape), state, say,
                              num_classes=len(classes), head=head, mode=mode, epochs=epochs,
                              lr=lr, seed=seed, patience=patience, accelerator=accelerator,
                              devices=devices)
            resumed = False
        else:
            resumed = True
        result = _result(trial, key, record, the_plan, resumed)
        results.append(result)
        say.finished(k, len(trials), result)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's stop) stops the exploration like Ctrl-C: the
    finished results stay, the next run resumes. Lightning's own SIGTERM handling only
    stops a fit between batches and is lost when a fit is about to end anyway; its
    handler calls the one found in place, so this one runs during fits too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----- one trial -------------------------------------------------------------------------

def _retrain(trial: Trial, net: _Network, cut: CutPoint, key: str, dm, state: ExploreState,
             say: ExploreProgress, *, num_classes: int, head: str, mode: str, epochs: int,
             lr, seed: int, patience, accelerator, devices) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    trn = trim(net.module, cut, num_classes, head=head, input_shape=net.shape, table=net.table)
    fit = retrain.fit_trn(trn, dm, mode=mode, max_epochs=epochs, lr=lr, seed=seed,
                          patience=patience, accelerator=accelerator, devices=devices,
                          progress=False, callbacks=[_epoch_callback(say)])
    tensors = {"head": trn.head.state_dict()} if mode == "head" else {"trn": trn.state_dict()}
    record = {"label": trial.label, "spec": trial.spec, "row": cut.row_index, "node": cut.node,
              "fit": fit.to_dict(), "trial_s": 0.0, "trial_cpu_s": 0.0,
              "finished_at": time.time()}
    # trimming + fitting, before saving: wall-clock, and this process's CPU time (all its
    # threads; loader worker processes not counted), without the time spent waiting for
    # a core on a busy machine
    record["trial_s"] = time.perf_counter() - t0
    record["trial_cpu_s"] = time.process_time() - c0
    state.put(key, record, tensors)
    return record


def _result(trial: Trial, key: str, record: dict, the_plan: Plan, resumed: bool) -> TrialResult:
    fit = record["fit"]
    return TrialResult(
        trial=trial, key=key, feasible=the_plan.is_feasible(trial.candidate),
        val_top1=float(fit["val_top1"]), val_loss=float(fit["val_loss"]),
        best_epoch=int(fit["best_epoch"]), epochs_run=int(fit["epochs_run"]),
        stopped_early=bool(fit["stopped_early"]), fit_s=float(fit["wall_time_s"]),
        trial_s=float(record["trial_s"]), trainable_params=int(fit["trainable_params"]),
        trial_cpu_s=float(record["trial_cpu_s"]) if "trial_cpu_s" in record else None,
        resumed=resumed, history=tuple(dict(h) for h in fit.get("history", ())))


def _rebuild(result: TrialResult, net: _Network, state: ExploreState, num_classes: int,
            head: str) -> nn.Module:
    """The retrained TRN of ``result``: cut again from the pretrained network, with
    the trained tensors from the state folder; in eval mode."""
    trn = trim(net.module, _cut_at(net, result.trial), num_classes, head=head,
               input_shape=net.shape, table=net.table)
    tensors = state.tensors(result.key)
    if "head" in tensors:
        trn.head.load_state_dict(tensors["head"])
    else:
        trn.load_state_dict(tensors["trn"])
    return trn.eval()


def evaluate(trn: nn.Module, index, shape: tuple[int, ...], batch_size: int = 64) -> float:
    """Top-1 of ``trn`` on the images of ``index`` (an ImageFolderIndex), through the
    evaluation transform the retraining used."""
    from torch.utils.data import DataLoader

    from ..retrain.folder import ImageListDataset, image_transforms

    loader = DataLoader(ImageListDataset(index.samples, image_transforms(shape)),
                        batch_size=batch_size)
    correct = total = 0
    trn.eval()
    with torch.no_grad():
        for x, y in loader:
            correct += int((trn(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total if total else float("nan")


def _epoch_callback(say: ExploreProgress):
    import pytorch_lightning as pl

    class _Epochs(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            acc = trainer.callback_metrics.get("val_acc")
            say.epoch(trainer.current_epoch + 1, trainer.max_epochs,
                      float(acc) if acc is not None else None)

    return _Epochs()


# ----- the networks ----------------------------------------------------------------------

def _load_network(spec: str, name: str, shape, weights_file, download: bool,
                  the_plan: Plan) -> _Network:
    from ..retrain.weights import torchvision_weights, weights_cache_path

    if weights_file is not None:
        module = _load_file(spec, weights_file)
        source, fingerprint = str(weights_file), file_sha256(weights_file)
    else:
        module = retrain.load_pretrained(spec, "DEFAULT", download=download)
        entry = torchvision_weights(name, "DEFAULT")  # loaded: so a torchvision name
        cached = weights_cache_path(entry)
        source = f"torchvision {entry}"
        fingerprint = file_sha256(cached) if cached.is_file() else str(entry)
    module.eval()
    table = trace(spec, shape, tracer="fx")
    planned = the_plan.estimates.get((name, the_plan.hardware[0]))
    cuts = cut_points(table, granularity="layer")
    if planned is not None:  # the plan's rows must be this table's rows
        names_planned = list(planned.table.names)
        if names_planned != list(table.names):
            raise TraceError(f"{name}: the traced table differs from the plan's "
                             f"({len(table.names)} rows against {len(names_planned)})")
    return _Network(spec, name, tuple(shape), source, fingerprint, module, table, cuts)


def _load_file(spec: str, path) -> nn.Module:
    """The checkpoint ``path`` in ``spec``'s architecture. A checkpoint trained for
    another number of classes (the usual case: pretrained on the user's own task)
    is loaded with that number: the classifier it sizes is cut off anyway."""
    try:
        return retrain.load_pretrained(spec, path)
    except retrain.WeightsError as exc:
        classes = _checkpoint_classes(spec, path)
        if classes is None:
            raise
        try:
            return retrain.load_pretrained(spec, path, num_classes=classes)
        except (retrain.WeightsError, TypeError):  # a factory without num_classes
            raise exc from None


def _checkpoint_classes(spec: str, path) -> int | None:
    """The output size of the last layer in the file, where it differs from the
    architecture's and everything else could match; None otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a plain checkpoint: load_pretrained's error stands
        return None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        return None
    want = resolve_model(spec)[0].state_dict()
    last = next((k for k in reversed(list(want)) if k.endswith(".weight")), None)
    if last is None:
        return None
    hits = [v for k, v in state.items() if isinstance(v, torch.Tensor)
            and (k == last or k.endswith("." + last))]
    if len(hits) != 1 or hits[0].dim() != want[last].dim() or hits[0].shape[0] == want[last].shape[0]:
        return None
    return int(hits[0].shape[0])


def _cut_at(net: _Network, trial: Trial) -> CutPoint:
    for cut in net.cuts:
        if cut.row_index == trial.row:
            return cut
    raise TraceError(f"{net.name}: no legal cut at row {trial.row} ({trial.candidate.cut!r})")


def _specs(models) -> dict[str, str]:
    """Spec -> network name; an unknown spec fails here, with suggestions."""
    if models is None:
        specs = list(DEFAULT_MODELS)
    elif isinstance(models, str):
        specs = [m.strip() for m in models.split(",") if m.strip()]
    else:
        specs = [str(m).strip() for m in models if str(m).strip()]
    if not specs:
        raise InvalidInputError("no models to explore")
    out: dict[str, str] = {}
    for spec in specs:
        _, name = resolve_model(spec)
        twin = next((s for s, n in out.items() if n == name), None)
        if twin is not None:
            raise InvalidInputError(f"model {name!r} is given twice ({twin!r} and {spec!r})")
        out[spec] = name
    return out


def _names(network_of: Mapping[str, str], the_plan: Plan) -> dict[str, str]:
    """Plan network name -> spec."""
    out = {name: spec for spec, name in network_of.items()}
    missing = [n for n in the_plan.networks if n not in out]
    if missing:
        raise TraceError(f"the plan names networks {missing} that match no spec in "
                         f"{list(network_of)}")
    return out


def _weights_by_spec(weights: Mapping[str, str], network_of: Mapping[str, str]) -> dict[str, str]:
    """``--weights NAME=PATH`` keyed by spec; NAME may be the spec or the network name."""
    by_name = {name: spec for spec, name in network_of.items()}
    out = {}
    for key, path in weights.items():
        spec = key if key in network_of else by_name.get(key)
        if spec is None:
            raise InvalidInputError(f"weights given for {key!r}, which is not among the models "
                                    f"explored ({', '.join(network_of)})")
        if spec in out:
            raise InvalidInputError(f"weights for {key!r} given twice")
        if not Path(path).is_file():
            raise InvalidInputError(f"weights file {path} for {key} does not exist"
                                    if not Path(path).exists() else
                                    f"weights file {path} for {key} is not a file")
        out[spec] = str(path)
    return out


def _check_settings(epochs, mode, head, seed, batch_size, patience, lr) -> None:
    def positive_int(value, what):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{what} must be a positive integer, got {value!r}")

    positive_int(epochs, "epochs")
    positive_int(batch_size, "batch_size")
    if patience is not None:
        positive_int(patience, "patience")
    if mode not in TRAIN_MODES:
        raise InvalidInputError(f"training mode {mode!r}: allowed {', '.join(TRAIN_MODES)}")
    if head not in HEADS:
        raise InvalidInputError(f"head {head!r}: allowed {', '.join(HEADS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed must be an integer, got {seed!r}")
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
        raise InvalidInputError(f"lr must be positive, got {lr!r}")


def _nothing_feasible(the_plan: Plan, full_plan: Plan) -> str:
    hw = the_plan.hardware[0]
    f = the_plan.fastest(hw)
    text = (f"nothing meets {the_plan.deadline_ms:g} ms on {hw}: the fastest candidate is "
            f"{f.network} cut at {f.cut} ({f.upper_ms:.3g} ms); a deadline of at least "
            f"{f.upper_ms:.3g} ms would admit it")
    if full_plan is not the_plan and full_plan.feasible():
        g = min(full_plan.feasible(), key=lambda c: c.upper_ms)
        text += f" (at layer granularity {g.network} cut at {g.cut} fits: {g.upper_ms:.3g} ms)"
    return text
