"""Export of the chosen TRN: TorchScript, ONNX where the ``onnx`` package is
installed, and a JSON card saying what the network is and how far to trust it.

Files in the export folder (each written atomically; an existing file of the
same name is replaced):

- ``model.ts``: ``torch.jit.trace`` of the TRN in eval mode at batch 1 (the
  prefix is an fx GraphModule, which traces cleanly); loaded back and checked
  against the eager TRN on random input before it is kept. ``torch.jit`` warns
  that it is deprecated in this torch; the warning is held back here;
- ``model.onnx``: ``torch.onnx.export`` (the TorchScript-based exporter, dynamic
  batch), checked with ``onnx.checker`` (and against the eager TRN where
  ``onnxruntime`` is installed), only when ``import onnx`` works; otherwise skipped,
  and the card says why;
- ``card.json``: base network and weights (with the file's SHA-256), cut, head and
  classes, the input it expects (shape, RGB, ImageNet mean/std), the predicted
  latency with its interval (when the profile is calibrated), the measured
  accuracy, the dataset and its fingerprint, the training settings and seed,
  and each file's SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import math
import os
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from ..files import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError
from ..tracing.fx_tracer import eval_mode

__all__ = ["CARD", "ONNX_FILE", "TORCHSCRIPT_FILE", "export_trn", "model_card"]

TORCHSCRIPT_FILE = "model.ts"
ONNX_FILE = "model.onnx"
CARD = "card.json"
CARD_FORMAT = "netcut-trn-card"


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        warnings.filterwarnings("ignore", message=r".*is deprecated.*torch\.(compile|export).*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_trn(trn: nn.Module, input_shape, dest, card: dict) -> dict:
    """Write ``model.ts``, ``model.onnx`` (if onnx is installed) and ``card.json``
    (``card`` plus the files' names and hashes) into ``dest`` (created if needed).
    Returns ``{"folder", "torchscript", "onnx", "onnx_skipped", "card"}`` as strings."""
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the export folder {dest}: "
                                f"{exc.strerror or exc}") from None
    shape = tuple(int(s) for s in input_shape)
    param = next(trn.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    example = torch.randn((1, *shape), dtype=dtype)
    files: dict[str, dict] = {}
    out = {"folder": str(dest), "torchscript": None, "onnx": None, "onnx_skipped": None,
           "card": None}

    # TorchScript, checked against the eager network
    with eval_mode(trn), torch.no_grad(), _quiet_jit():
        traced = torch.jit.trace(trn, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        data = buffer.getvalue()
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
        probe = torch.randn((2, *shape), dtype=dtype)
        diff = float((loaded(probe) - trn(probe)).abs().max())
    if not math.isfinite(diff) or diff > 1e-3:
        raise InvalidInputError(f"the TorchScript export of the TRN differs from it by {diff:g} "
                                "on random input; not written")
    path = atomic_write_bytes(dest / TORCHSCRIPT_FILE, data)
    files["torchscript"] = {"file": path.name, "sha256": _sha256(data), "bytes": len(data),
                            "max_abs_diff_vs_eager": diff,
                            "how": "torch.jit.trace at batch 1, eval mode"}
    out["torchscript"] = str(path)

    # ONNX, where the package is installed
    if importlib.util.find_spec("onnx") is None:
        out["onnx_skipped"] = "the onnx package is not installed (pip install onnx)"
    else:
        try:
            data = _onnx_bytes(trn, example, dest)
        except Exception as exc:  # an exporter that cannot take the network: say so, go on
            lines = str(exc).strip().splitlines()
            out["onnx_skipped"] = (f"torch.onnx.export failed: "
                                   f"{(lines[0] if lines else type(exc).__name__)[:300]}")
        else:
            path = atomic_write_bytes(dest / ONNX_FILE, data)
            files["onnx"] = {"file": path.name, "sha256": _sha256(data), "bytes": len(data),
                             "how": "torch.onnx.export, dynamic batch axis; onnx.checker passed",
                             "max_abs_diff_vs_eager": _onnxruntime_diff(data, trn, shape, dtype)}
            out["onnx"] = str(path)
    card = {**card, "files": files}
    if out["onnx_skipped"]:
        card["onnx_skipped"] = out["onnx_skipped"]
    out["card"] = str(atomic_write_text(dest / CARD, json.dumps(card, indent=1, default=float)))
    return out


def _onnx_bytes(trn: nn.Module, example: torch.Tensor, dest: Path) -> bytes:
    """The ONNX file's bytes, exported into a temporary file beside ``dest``'s files."""
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".model.", suffix=".onnx.tmp")
    os.close(fd)
    try:
        with eval_mode(trn), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = dict(input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
            try:
                torch.onnx.export(trn, (example,), tmp, dynamo=False, **kwargs)
            except TypeError:  # a torch without the dynamo switch
                torch.onnx.export(trn, (example,), tmp, **kwargs)
        data = Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)
    import onnx

    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def _onnxruntime_diff(data: bytes, trn: nn.Module, shape, dtype) -> float | None:
    """Largest difference between onnxruntime and the eager TRN on random input
    (None where onnxruntime is not installed)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    probe = torch.randn((2, *shape), dtype=dtype)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": probe.numpy()})[0]
    with eval_mode(trn), torch.no_grad():
        want = trn(probe).numpy()
    return float(abs(got - want).max())


def _interval(hardware: str, latency_ms: float, level: float = 0.9) -> dict | None:
    """A two-sided prediction interval from a calibrated profile's log-residual
    spread (None for a datasheet profile)."""
    try:
        from ..hardware import load_hardware

        sd = (load_hardware(hardware).calibration or {}).get("log_residual_sd")
    except Exception:  # a profile object that does not resolve by name
        return None
    if sd is None:
        return None
    from scipy.stats import norm

    factor = math.exp(norm.ppf(0.5 + level / 2) * float(sd))
    return {"level": level, "low_ms": latency_ms / factor, "high_ms": latency_ms * factor}


def model_card(exploration, result, *, weights: dict, input_shape, classes, node: str,
               test_top1: float | None = None) -> dict:
    """The JSON card of ``result`` (a TrialResult of ``exploration``); ``node``: the
    last op kept (its LayerTable row name)."""
    from .. import __version__
    from ..retrain.folder import IMAGENET_MEAN, IMAGENET_STD

    c = result.candidate
    settings = exploration.settings
    return {
        "format": CARD_FORMAT, "version": 1,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "netcut": __version__,
        "network": {"name": c.network, "spec": result.trial.spec, "weights": weights},
        "cut": {"name": c.cut, "node": node, "row": result.trial.row,
                "cut_index": c.cut_index, "whole": c.whole,
                "depth_fraction": c.depth_fraction, "channels": c.channels,
                "params_kept": c.params_kept, "flops_kept": c.flops_kept},
        "head": {"kind": settings["head"], "pool": "global average",
                 "num_classes": len(classes), "classes": list(classes)},
        "input": {"shape": list(input_shape), "layout": "NCHW", "color": "RGB",
                  "scale": "pixels / 255", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                  "resize": "keep aspect ratio to cover HxW, then center crop"},
        "latency": {"hardware": exploration.hardware, "predicted_ms": c.latency_ms,
                    "upper_ms": c.upper_ms, "confidence": exploration.confidence,
                    "calibrated": exploration.calibrated,
                    "interval": _interval(exploration.hardware, c.latency_ms),
                    "deadline_ms": exploration.deadline_ms, "batch": settings["batch"],
                    "dtype": settings["dtype"], "mode": settings["latency_mode"],
                    "source": "netcut's analytical estimator (a prediction, not a measurement)"},
        "accuracy": {"val_top1": result.val_top1, "val_loss": result.val_loss,
                     "test_top1": test_top1, "best_epoch": result.best_epoch,
                     "epochs_run": result.epochs_run,
                     "val_images": exploration.data.get("val_images"),
                     "note": "val_top1 is the best epoch's, chosen on the same images"},
        "dataset": {k: exploration.data.get(k) for k in
                    ("root", "layout", "classes", "counts", "fingerprint", "test")},
        "training": {k: settings[k] for k in ("mode", "epochs", "lr", "batch_size", "seed",
                                               "val_fraction", "patience", "recipe")},
    }
