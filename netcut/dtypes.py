"""Data types netcut prices, by name, with their storage size.

Tracing happens in float32 on the ``meta`` device; the dtype only changes how many
bytes each element costs and which compute unit runs the op, so it is carried as a
name rather than baked into the traced table.
"""

from __future__ import annotations

from .errors import InvalidInputError

#: bytes per element for every dtype a profile may list a peak for
DTYPE_BYTES: dict[str, int] = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int8": 1,
}

_ALIASES = {
    "fp32": "float32",
    "float": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "i8": "int8",
}


def normalize_dtype(name: object) -> str:
    """Return the canonical dtype name for ``name`` (``"fp16"`` -> ``"float16"``)."""
    text = str(name).strip().lower().removeprefix("torch.")
    text = _ALIASES.get(text, text)
    if text not in DTYPE_BYTES:
        allowed = ", ".join(sorted(DTYPE_BYTES))
        raise InvalidInputError(f"unknown dtype {name!r}; allowed: {allowed}")
    return text


def dtype_bytes(name: str) -> int:
    return DTYPE_BYTES[normalize_dtype(name)]
