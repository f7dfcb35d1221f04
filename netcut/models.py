"""Resolve model specs (``torchvision:resnet50``, ``pkg.mod:factory``) into modules.

Models are built with their parameters on the ``meta`` device: tracing needs
shapes, not numbers, so no memory is spent and no weights are initialised or
downloaded.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import warnings
from typing import Callable, Iterator

import torch
import torch.nn as nn

from .errors import ModelSpecError

#: the input (C, H, W) a torchvision classifier expects, where it is not 3x224x224
_TORCHVISION_INPUT = {
    "inception_v3": (3, 299, 299),
}


@functools.lru_cache(maxsize=1)
def torchvision_classifiers() -> tuple[str, ...]:
    """Every classification model torchvision registers (quantized ones excluded)."""
    import torchvision.models as tvm

    return tuple(sorted(tvm.list_models(module=tvm)))


def default_input_shape(spec: str) -> tuple[int, int, int]:
    if spec.startswith("nb201:"):
        return (3, 32, 32)  # NAS-Bench-201 cells are built for CIFAR-sized input
    name = spec.split(":", 1)[-1]
    return _TORCHVISION_INPUT.get(name, (3, 224, 224))


@contextlib.contextmanager
def _params_to_meta() -> Iterator[None]:
    """Move each parameter and buffer to ``meta`` as a module registers it, for
    builders that compute with real tensors while constructing (RegNet)."""
    original_param = nn.Module.register_parameter
    original_buffer = nn.Module.register_buffer

    def register_parameter(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original_param(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and tensor.device.type != "meta":
            tensor = tensor.to("meta")
        original_buffer(self, name, tensor, persistent=persistent)

    nn.Module.register_parameter = register_parameter
    nn.Module.register_buffer = register_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter = original_param
        nn.Module.register_buffer = original_buffer


def build_on_meta(factory: Callable[..., nn.Module], **kwargs) -> nn.Module:
    """Call ``factory`` so that the resulting module holds no real weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # init-scheme FutureWarnings of old models
        try:
            with torch.device("meta"):
                return factory(**kwargs)
        except (NotImplementedError, RuntimeError):
            with _params_to_meta():
                return factory(**kwargs)


def resolve_model(spec: str | nn.Module) -> tuple[nn.Module, str]:
    """An ``nn.Module`` (on meta when built here) and a display name for ``spec``.

    Accepted: a module; ``torchvision:NAME`` or a bare torchvision name;
    ``package.module:factory`` (a callable returning a module, called with no args);
    or ``nb201:<arch string>`` / ``nb201:<index>`` (a NAS-Bench-201 cell network).
    """
    if isinstance(spec, nn.Module):
        return spec, type(spec).__name__
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"a model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec.startswith("nb201:"):  # nb201:<arch string> or nb201:<index>
        from .zoo.nb201 import resolve_nb201_spec

        return resolve_nb201_spec(spec)
    source, _, name = spec.rpartition(":")
    if source in ("", "torchvision", "tv"):
        return _torchvision(name), name
    try:
        module = importlib.import_module(source)
    except ImportError as exc:
        raise ModelSpecError(f"model spec {spec!r}: cannot import {source!r} ({exc})") from None
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        raise ModelSpecError(f"model spec {spec!r}: {source!r} has no callable {name!r}")
    try:
        model = build_on_meta(factory)
    except Exception as exc:  # a user's factory may raise anything
        raise ModelSpecError(f"model spec {spec!r}: calling {name}() failed: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model spec {spec!r}: {name}() returned {type(model).__name__}, not an nn.Module"
        )
    return model, spec


def _torchvision(name: str) -> nn.Module:
    import torchvision.models as tvm

    known = torchvision_classifiers()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelSpecError(
            f"unknown torchvision classifier {name!r}{hint} ({len(known)} known; "
            "use package.module:factory for your own model)"
        )
    return build_on_meta(tvm.get_model_builder(name))
