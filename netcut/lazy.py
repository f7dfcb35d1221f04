"""Lazy package attributes (PEP 562): a name is imported from its submodule the
first time it is used, so importing a package never imports Lightning."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_attributes(package: str, names: dict[str, str],
                    namespace: dict) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps an attribute to
    the submodule (relative to ``package``) that defines it; a loaded value is kept
    in ``namespace`` (the package's globals) so the lookup runs once."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
