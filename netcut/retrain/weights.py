"""Pretrained weights: torchvision's by name, or a local checkpoint file.

- **By name** (``load_pretrained("resnet18", "IMAGENET1K_V1")``, ``"DEFAULT"``, or
  ``"ResNet18_Weights.IMAGENET1K_V1"``): torchvision keeps downloaded files in its
  cache (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch``); a cached
  file is used without touching the network. A file not cached is downloaded when
  ``download=True``; offline, that fails with one line naming the file, the URL
  and where to put a copy. ``download=False`` never opens a connection.
- **A file** (``load_pretrained("resnet18", "ckpt.pt")``): a ``state_dict``, a
  dict holding one (``state_dict``, ``model``, ``model_state_dict``; Lightning
  checkpoints too), or a whole pickled model. Keys may carry a ``module.`` (DDP),
  ``model.`` or ``trn.`` prefix. The file must fit the architecture: otherwise the
  error names the file and the first key that is missing, unexpected or of
  another shape. A pickled model runs code from the file when loaded, so it is
  only read with ``trust_pickle=True`` (plain tensors are read safely).

Nothing is downloaded at import time, and nothing here imports Lightning.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import sys
import urllib.error
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from ..models import resolve_model, torchvision_classifiers
from .errors import WeightsError

__all__ = ["load_checkpoint", "load_pretrained", "torchvision_weights", "weights_cache_path"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar", ".pkl")
_PREFIXES = ("", "module.", "model.", "trn.", "net.", "model.module.")


def load_pretrained(model: str | nn.Module, weights: str | os.PathLike | None = "DEFAULT", *,
                    download: bool = True, trust_pickle: bool = False,
                    progress: bool | None = None, **model_kwargs) -> nn.Module:
    """A network with its pretrained weights, on the CPU.

    ``model``: a torchvision classifier name (``resnet18``, ``torchvision:resnet18``),
    a ``package.module:factory`` spec, or a module whose architecture the file's
    weights are loaded into. ``weights``: a torchvision weights name, a checkpoint
    file, or ``None`` (random initialisation). ``model_kwargs`` go to the model's
    builder (``num_classes=37`` for a checkpoint fine-tuned on 37 classes).
    """
    if weights is not None and _is_file_spec(weights):
        architecture = model if isinstance(model, nn.Module) else _build(model, **model_kwargs)
        return load_checkpoint(weights, architecture, trust_pickle=trust_pickle)
    if isinstance(model, nn.Module):
        if weights is None:
            return model
        raise WeightsError(f"weights {str(weights)!r} for a given module: pass a checkpoint file "
                           "(a weights name needs a torchvision model name)")
    if weights is None:
        return _build(model, **model_kwargs)
    name = _torchvision_name(model)
    if name is None:
        raise WeightsError(f"{model}: weights by name are torchvision's; for this model pass a "
                           "checkpoint file")
    entry = torchvision_weights(name, str(weights))
    cached = weights_cache_path(entry)
    if not cached.is_file() and not download:
        raise WeightsError(f"{name} weights {entry} are not in the torchvision cache ({cached}) "
                           "and download=False: download them once online, copy the file "
                           "there, or pass a checkpoint file")
    import torchvision.models as tvm

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # init-scheme FutureWarnings of old models
            return tvm.get_model(name, weights=entry, progress=_progress(progress), **model_kwargs)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        if cached.is_file():
            raise WeightsError(f"cannot read cached weights {cached}: {_first_line(exc)}") from None
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"cannot download {name} weights {entry} from {entry.url}: "
                           f"{_first_line(reason)} (offline? copy the file to {cached}, or pass "
                           "a checkpoint file)") from None
    except RuntimeError as exc:
        if "hash" in str(exc).lower() or "zip" in str(exc).lower():
            raise WeightsError(f"{name} weights {entry}: the file at {cached} is corrupt "
                               f"({_first_line(exc)}); delete it and download again") from None
        raise


def torchvision_weights(name: str, weights: str):
    """torchvision's weights entry ``weights`` (``DEFAULT``, ``IMAGENET1K_V1``, or
    ``ResNet18_Weights.IMAGENET1K_V1``) for model ``name``."""
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    key = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    if "." in key:
        raise WeightsError(f"weights {weights!r} are not {name}'s ({enum.__name__}.*)")
    if key == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[key]
    except KeyError:
        known = ", ".join(["DEFAULT"] + [w.name for w in enum])
        raise WeightsError(f"{name} has no weights {weights!r} (known: {known})") from None


def weights_cache_path(entry) -> Path:
    """Where torchvision keeps the file of weights ``entry`` (as torch.hub names it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(entry.url).path)


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *,
                    trust_pickle: bool = False) -> nn.Module:
    """The weights in ``path`` loaded into ``model`` (returned); with no ``model``, the
    whole pickled model the file holds."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist" if not path.exists()
                           else f"checkpoint {path} is not a file")
    obj = _read(path, trust_pickle)
    if isinstance(obj, nn.Module):
        if model is None:
            return obj
        state = obj.state_dict()
    else:
        state = _state_dict_in(obj, path)
        if model is None:
            raise WeightsError(f"{path} holds a state_dict, not a model: give the architecture "
                               "(load_pretrained('resnet18', path) or load_checkpoint(path, model))")
    state = _strip_prefix(state, model.state_dict())
    _check_fits(state, model, path)
    model.load_state_dict(state, strict=True)
    return model


# ----- helpers -----------------------------------------------------------------------------

def _is_file_spec(weights) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    text = str(weights)
    return (os.sep in text or text.lower().endswith(CHECKPOINT_SUFFIXES)
            or os.path.exists(text))


def _torchvision_name(spec: str) -> str | None:
    source, _, name = str(spec).strip().rpartition(":")
    if source in ("", "torchvision", "tv") and name in torchvision_classifiers():
        return name
    return None


def _build(spec: str, **kwargs) -> nn.Module:
    """The architecture of ``spec`` with random weights, on the CPU."""
    name = _torchvision_name(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name is not None:
            import torchvision.models as tvm

            return tvm.get_model(name, weights=None, **kwargs)
        resolve_model(spec)  # an unknown spec fails here, with suggestions
        source, _, factory = str(spec).strip().rpartition(":")
        return getattr(importlib.import_module(source), factory)(**kwargs)


def _read(path: Path, trust_pickle: bool):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:  # no class to allow: the bytes are no checkpoint at all
            raise WeightsError(f"cannot read checkpoint {path}: not a PyTorch checkpoint, "
                               "or a damaged one") from None
        if not trust_pickle:
            raise WeightsError(
                f"{path} holds pickled Python objects ({found.group(1)}: a whole model?), which "
                "loading runs as code: pass trust_pickle=True if you trust the file") from None
    except Exception as exc:  # a truncated or foreign file: torch raises RuntimeError, OSError...
        raise WeightsError(f"cannot read checkpoint {path}: {_first_line(exc)} (truncated, or "
                           "not a PyTorch checkpoint?)") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # the pickle names a class this process cannot import
        raise WeightsError(f"cannot unpickle {path}: {_first_line(exc)}") from None


def _state_dict_in(obj, path: Path) -> dict:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                return inner.state_dict()
            if isinstance(inner, dict) and inner and all(
                    isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    kind = f"a dict with keys {', '.join(map(str, list(obj)[:5]))}" if isinstance(obj, dict) \
        else type(obj).__name__
    raise WeightsError(f"{path} holds {kind}, not weights (a state_dict, a model, or a dict "
                       "with 'state_dict'/'model')")


def _strip_prefix(state: dict, want: dict) -> dict:
    """``state`` with the key prefix (``module.``, ``model.``...) that matches ``want`` best."""
    best, best_hits = state, sum(k in want for k in state)
    for prefix in _PREFIXES[1:]:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        hits = sum(k in want for k in stripped)
        if hits > best_hits:
            best, best_hits = stripped, hits
    return best


def _check_fits(state: dict, model: nn.Module, path: Path) -> None:
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if not (missing or unexpected or shapes):
        return
    first = next(k for k in list(want) + unexpected if k in missing or k in shapes
                 or k in unexpected)
    if first in shapes:
        what = (f"shape {list(state[first].shape)} in the file, {list(want[first].shape)} "
                "in the model")
    elif first in missing:
        what = "missing from the file"
    else:
        what = f"in the file, not in {type(model).__name__}"
    counts = ", ".join(f"{n} {label}" for n, label in ((len(missing), "missing"),
                       (len(unexpected), "unexpected"), (len(shapes), "of another shape")) if n)
    hint = ""
    if shapes and not missing and not unexpected and {k.rsplit(".", 1)[0] for k in shapes} == \
            {list(want)[-1].rsplit(".", 1)[0]}:
        hint = "; only the last layer differs: another number of classes? pass num_classes="
    raise WeightsError(f"{path} does not fit {type(model).__name__}: first mismatching key "
                       f"{first!r} ({what}); {counts}{hint}")


def _progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def _first_line(exc) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
