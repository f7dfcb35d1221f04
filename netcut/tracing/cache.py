"""An on-disk cache of traced LayerTables, so a second plan over the zoo is instant.

A table depends on the model spec, the per-sample input shape and the library
versions that built and traced it; the key hashes all of them, so upgrading torch,
torchvision or netcut starts a fresh cache instead of reusing stale tables. Only
spec strings are cached (an ``nn.Module`` object has no stable name). Tables are
traced at batch 1 in float32; batch and dtype are applied afterwards with ``.at``.

Location: ``$NETCUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/netcut``, else
``~/.cache/netcut``. ``NETCUT_CACHE_DIR=off`` disables it. A file that cannot be
read (corrupt, truncated, written by another version) is traced again and
replaced; a cache directory that cannot be written only costs the speed-up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path

from .table import LayerTable

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 2: the conv_bias column; 3: the pool_max op class, global pools as reductions


def cache_dir() -> Path | None:
    """Where tables are cached, or None when caching is off."""
    given = os.environ.get("NETCUT_CACHE_DIR")
    if given is not None:
        return None if given.strip().lower() in ("", "off", "0", "none") else Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "netcut"


def _key(spec: str, shape: tuple[int, ...]) -> str:
    import torch
    import torchvision

    from .. import __version__

    text = "|".join([str(CACHE_FORMAT), spec, "x".join(map(str, shape)), __version__,
                     torch.__version__, torchvision.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_cached(spec: str, shape: tuple[int, ...]) -> LayerTable | None:
    directory = cache_dir()
    if directory is None:
        return None
    path = directory / "tables" / f"{_key(spec, shape)}.pkl"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            table = pickle.load(handle)
    except Exception as exc:  # corrupt or foreign: trace again and replace it
        log.warning("ignoring unreadable cached table %s (%s)", path, exc)
        return None
    if not isinstance(table, LayerTable) or tuple(table.input_shape) != tuple(shape):
        return None
    return table


def store(spec: str, shape: tuple[int, ...], table: LayerTable) -> None:
    directory = cache_dir()
    if directory is None:
        return
    folder = directory / "tables"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(table, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, folder / f"{_key(spec, shape)}.pkl")
    except OSError as exc:
        log.info("table cache not written (%s)", exc)


def trace_cached(spec: str, shape: tuple[int, ...]) -> LayerTable:
    """``trace(spec, shape)``, read from / written to the disk cache."""
    from . import trace

    table = load_cached(spec, shape)
    if table is None:
        table = trace(spec, shape)
        store(spec, shape, table)
    return table
