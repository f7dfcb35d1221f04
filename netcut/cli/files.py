"""Kept for old imports: the atomic writers live in :mod:`netcut.files`."""

from ..files import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
