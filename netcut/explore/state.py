"""Checkpointed exploration state: each retrained TRN's result, saved atomically,
found again by a key over everything that changes it.

A result is keyed on its *inputs*: the model spec, a fingerprint of its pretrained
weights (the file's SHA-256), the row it is cut after, the head, the number of
classes and input shape, a fingerprint of the data folder (every file's relative
path, size and modification time), and the training settings (epochs, seed, mode,
learning rate, batch size, validation split, patience...). An interrupted
exploration run again with the same inputs finds its finished TRNs and retrains
only the rest; change any input and the affected TRNs are retrained. The key does
not hold the deadline, the device or the cut's *name*: a TRN retrained for one
deadline serves every other deadline and device, and the block and layer names of
one row are one TRN.

Layout: ``<folder>/trials/<key>.pt`` (the trained tensors: the head's in head mode,
the whole TRN's otherwise) is written first, ``<folder>/trials/<key>.json`` (the
record) last, both atomically: a record on disk always has its tensors beside it,
and a run killed mid-write leaves at worst a stray ``.pt`` that the next run
overwrites. Two explorations may share a folder one after the other, not at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError

__all__ = ["STATE_FORMAT", "ExploreState", "data_fingerprint", "file_sha256", "result_key"]

STATE_FORMAT = 1


def result_key(fields: dict) -> str:
    """A short hex digest of ``fields`` (JSON, keys sorted): equal inputs, equal key."""
    text = json.dumps({"format": STATE_FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def data_fingerprint(root: str | os.PathLike) -> str:
    """A digest of every non-hidden file under ``root``: relative path, size and
    modification time (not the contents, so a large dataset costs one ``stat`` a
    file). Editing, adding, removing or re-copying a file changes it."""
    root = Path(root)
    digest = hashlib.sha256()

    def fail(exc: OSError) -> None:
        raise InvalidInputError(f"cannot read folder {exc.filename or root}: "
                                f"{exc.strerror or exc}") from None

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            try:
                st = path.stat()
            except OSError as exc:
                raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
            rel = path.relative_to(root).as_posix()
            line = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


class ExploreState:
    """The results already retrained, in ``folder`` (created when first written)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.trials = self.folder / "trials"

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.trials / f"{key}.json", self.trials / f"{key}.pt"

    def get(self, key: str) -> dict | None:
        """The record of ``key``, or None when it was never finished (no record, no
        tensors beside it, or a record that cannot be read: then it is retrained)."""
        record_path, tensors_path = self._paths(key)
        if not record_path.is_file() or not tensors_path.is_file():
            return None
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        return record

    def put(self, key: str, record: dict, tensors: dict) -> Path:
        """Save the trained ``tensors`` (a dict of state_dicts), then ``record``."""
        import torch

        try:
            self.trials.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot write the exploration state to {self.trials}: "
                                    f"{exc.strerror or exc}") from None
        record_path, tensors_path = self._paths(key)
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        atomic_write_bytes(tensors_path, buffer.getvalue())
        atomic_write_text(record_path, json.dumps({**record, "key": key}, indent=1, default=float))
        return record_path

    def tensors(self, key: str) -> dict:
        """The trained tensors saved with ``key`` (plain tensors only: read safely)."""
        import torch

        _, path = self._paths(key)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign file
            lines = str(exc).strip().splitlines()
            why = lines[0][:200] if lines else type(exc).__name__
            raise InvalidInputError(f"cannot read the trained weights {path}: {why}") from None

    def keys(self) -> list[str]:
        if not self.trials.is_dir():
            return []
        return sorted(p.stem for p in self.trials.glob("*.json") if self.get(p.stem) is not None)
