"""Export: one TorchScript file with every sub-net, plus a JSON manifest.

``torch.jit.script`` of a DynamicNet itself does not work: its width lives in a
plain Python object shared by the slim layers, and its stages are fx modules
driven from Python. What works is **trace per sub-net**: each sub-net is turned
into a static network whose weights are *views* of the shared ones
(:meth:`DynamicNet.static`), traced with ``torch.jit.trace``, and the traced
sub-nets go into one scripted dispatcher, ``forward(x, subnet: int)``. TorchScript
serialisation stores each storage once, so the file holds the shared weights
once (plus each width's batch-norm statistics), not once per sub-net.

The manifest (``manifest.json``) is what a runtime reads to decide: per sub-net
its name, exit, width, predicted latency, accuracy, FLOPs and parameters; the
online correction's state; the margin; the input shape and batch the predictions
are for; and the artifact's SHA-256. :func:`load` returns a
:class:`DynamicRuntime` that selects, runs and corrects exactly as DynamicNet does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn as nn

from ..files import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError
from ..tracing.fx_tracer import eval_mode
from .correction import LatencyCorrector
from .net import DynamicNet
from .selector import Choice, Decision, Selector

__all__ = ["ARTIFACT", "MANIFEST", "DynamicRuntime", "export", "load"]

FORMAT = "netcut-dynamic"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARTIFACT = "dynamic.ts"
HOW = ("TorchScript: each sub-net traced (torch.jit.trace) as a static network sharing the "
       "weights; one scripted dispatcher forward(x, subnet: int) holds them all")


class _Dispatch(nn.Module):
    """Runs sub-net ``subnet`` of ``subnets`` (scripted; the index is an input)."""

    def __init__(self, subnets: list[nn.Module]):
        super().__init__()
        self.subnets = nn.ModuleList(subnets)

    def forward(self, x: torch.Tensor, subnet: int) -> torch.Tensor:
        for i, module in enumerate(self.subnets):
            if i == subnet:
                return module(x)
        raise RuntimeError("unknown sub-net index")


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """TorchScript works but warns that it is deprecated; say it once, in the docs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def export(net: DynamicNet, directory: str | Path, *, share_weights: bool = True,
           example_input: torch.Tensor | None = None,
           modules: Sequence[nn.Module] | None = None, extra: dict | None = None) -> Path:
    """Write ``directory/dynamic.ts`` and ``directory/manifest.json`` (the folder is
    made if its parent exists); returns the manifest's path. ``share_weights=False``
    gives every sub-net contiguous copies of its weights (a larger file; no
    strided weight slices at run time). ``modules``: one network per sub-net to
    export instead of the sub-nets' views (multi-path training's separately trained
    copies). ``extra``: more manifest fields (e.g. ``training``). Each file is
    written atomically, the manifest last."""
    if not isinstance(net, DynamicNet):
        raise InvalidInputError(f"export needs a DynamicNet, got {type(net).__name__}")
    folder = Path(directory)
    if not folder.parent.is_dir():
        raise InvalidInputError(f"cannot export to {folder}: folder {folder.parent} does not exist")
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"cannot export to {folder}: it is a file")
    param = next(net.parameters())
    x = example_input if example_input is not None else torch.randn(
        net.batch, *net.input_shape, device=param.device, dtype=param.dtype)
    if modules is not None:
        modules = list(modules)
        if len(modules) != len(net.subnets):
            raise InvalidInputError(f"export: {len(modules)} modules for {len(net.subnets)} sub-nets")
        share_weights = False
    with eval_mode(net), torch.no_grad(), _quiet_jit():
        sources = modules if modules is not None else [
            net.static(s.id, share=share_weights) for s in net.subnets]
        traced = []
        for module in sources:
            with eval_mode(module):
                traced.append(torch.jit.trace(module, x, check_trace=False))
        scripted = torch.jit.script(_Dispatch(traced))
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    data = buffer.getvalue()
    folder.mkdir(exist_ok=True)
    atomic_write_bytes(folder / ARTIFACT, data)
    summary = net.summary()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "how": HOW,
        "artifact": ARTIFACT, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "share_weights": share_weights, "torch": torch.__version__,
        **{k: summary[k] for k in ("source", "input_shape", "num_classes", "hardware", "batch",
                                    "dtype", "exits", "widths", "margin", "confidence",
                                    "correction")},
        "subnets": [{k: s[k] for k in ("id", "name", "exit", "width", "predicted_ms", "accuracy",
                                       "flops", "params")} for s in summary["subnets"]],
        **(extra or {}),
    }
    path = folder / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path


def load(directory: str | Path, map_location: str | torch.device | None = None) -> "DynamicRuntime":
    """The exported dynamic network in ``directory``, ready to run by budget."""
    folder = Path(directory)
    path = folder / MANIFEST
    if not path.is_file():
        raise InvalidInputError(f"no {MANIFEST} in {folder}: not an exported dynamic network "
                                "(netcut.dynamic.export writes one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInputError(f"{path}: not a netcut dynamic-network manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(f"{path}: format version {manifest.get('format_version')!r}, "
                                f"this netcut reads {FORMAT_VERSION}")
    for key in ("artifact", "sha256", "subnets", "correction", "input_shape"):
        if key not in manifest:
            raise InvalidInputError(f"{path}: missing field {key!r}")
    artifact = folder / manifest["artifact"]
    try:
        data = artifact.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {artifact}: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise InvalidInputError(f"{artifact} does not match {path} (SHA-256 differs): export again")
    with _quiet_jit():
        module = torch.jit.load(io.BytesIO(data), map_location=map_location)
    return DynamicRuntime(module, manifest, path)


class DynamicRuntime:
    """An exported dynamic network: ``rt(x, budget_ms=b)``, ``rt(x, subnet=i)``,
    ``rt.run(x, b) -> (output, Decision)``, ``select``, ``observe`` - the same
    choice and correction as :class:`DynamicNet`. ``save_manifest()`` keeps what
    the correction learned on this device for the next start."""

    def __init__(self, module: torch.jit.ScriptModule, manifest: dict, path: Path | None = None):
        self.module = module
        self.manifest = manifest
        self.path = path
        self.subnets = list(manifest["subnets"])
        self.names = [s["name"] for s in self.subnets]
        self.input_shape = tuple(manifest["input_shape"])
        self.corrector = LatencyCorrector(len(self.subnets), manifest["correction"]["alpha"],
                                          manifest["correction"]["shared"])
        self.corrector.load_state_dict(manifest["correction"])
        accuracies = [s.get("accuracy") for s in self.subnets]
        if any(a is None for a in accuracies):  # rank by FLOPs until every accuracy is known
            accuracies = [s["flops"] for s in self.subnets]
        self.selector = Selector([s["predicted_ms"] for s in self.subnets], accuracies, self.corrector,
                                 manifest.get("margin", 0.0), self.names,
                                 manifest.get("confidence"))
        self.auto_observe = True
        self.last_decision: Decision | None = None

    def _index(self, key) -> int:
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(self.subnets):
            return key
        if isinstance(key, str) and key in self.names:
            return self.names.index(key)
        raise InvalidInputError(f"unknown sub-net {key!r}: ids 0..{len(self.subnets) - 1} or "
                                f"names ({', '.join(self.names)})")

    def __call__(self, x: torch.Tensor, budget_ms: float | None = None,
                 subnet: int | str | None = None) -> torch.Tensor:
        if budget_ms is not None:
            if subnet is not None:
                raise InvalidInputError("give a budget or a sub-net, not both")
            return self.run(x, budget_ms)[0]
        if subnet is None:
            raise InvalidInputError("give a budget (budget_ms=...) or a sub-net (subnet=...)")
        return self.module(x, self._index(subnet))

    def warmup(self, x: torch.Tensor, runs: int = 3) -> None:
        """Run every sub-net ``runs`` times untimed: TorchScript optimises a graph on
        its first calls, which are many times slower than the later ones."""
        with torch.inference_mode():
            for i in range(len(self.subnets)):
                for _ in range(runs):
                    self.module(x, i)

    def run(self, x: torch.Tensor, budget_ms: float) -> tuple[torch.Tensor, Decision]:
        sync = (lambda: torch.cuda.synchronize(x.device)) if x.is_cuda else None
        out, decision = self.selector.timed(lambda i: self.module(x, i), budget_ms,
                                            self.auto_observe, sync)
        self.last_decision = decision
        return out, decision

    def select(self, budget_ms: float, margin: float | None = None) -> Choice:
        return self.selector.select(budget_ms, margin)

    def observe(self, subnet: int | str, measured_ms: float) -> None:
        self.selector.observe(self._index(subnet), measured_ms)

    def expected_ms(self, subnet: int | str) -> float | None:
        return self.selector.expected_ms(self._index(subnet))

    def save_manifest(self, path: str | Path | None = None) -> Path:
        """Write the manifest with the current correction state (atomically)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise InvalidInputError("no manifest path: give one")
        manifest = {**self.manifest, "correction": self.corrector.state_dict()}
        atomic_write_text(target, json.dumps(manifest, indent=2) + "\n")
        self.manifest = manifest
        return target
