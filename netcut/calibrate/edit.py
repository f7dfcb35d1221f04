"""Reading and writing a profile's numbers by dotted path, fast enough for an optimiser.

A fit evaluates hundreds of candidate profiles; re-validating each through pydantic
would cost more than pricing it. ``with_values`` rebuilds the frozen sub-models with
``model_construct`` (no checks); the final profile is validated once when written.
"""

from __future__ import annotations

import fnmatch
from typing import Iterator

from ..opclasses import EFFICIENCY_SUBCLASSES, OP_CLASSES


def leaves(data: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric leaf of nested dicts as (dotted path, value)."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from leaves(value, path + ".")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield path, float(value)


def matching(data: dict, patterns: tuple[str, ...]) -> list[str]:
    """Dotted paths of the numeric leaves matching any shell-style pattern."""
    return [p for p, _ in leaves(data) if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]


def get_path(data: dict, path: str) -> float:
    node = data
    for key in path.split("."):
        node = node[key]
    return float(node)


def set_path(data: dict, path: str, value: float) -> None:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = float(value)


def spelled_out(profile, dtypes: tuple[str, ...] = ()) -> dict:
    """``profile.model_dump()`` with every efficiency written per op class (and per
    ``dtypes``), and the occupancy term explicit, so that scaling one class or one
    dtype never changes what its neighbours fall back to. Prices identically."""
    data = profile.model_dump()
    eff = profile.efficiency
    keys = {"compute": OP_CLASSES + tuple(EFFICIENCY_SUBCLASSES), "memory": OP_CLASSES}
    for kind in ("compute", "memory"):
        data["efficiency"][kind] = {"default": getattr(eff, kind)["default"]} | {
            c: eff.fraction(kind, c, "__none__") for c in keys[kind]}
    by_dtype = data["efficiency"].setdefault("by_dtype", {})
    for dtype in dtypes:
        by_dtype[dtype] = {kind: {c: eff.fraction(kind, c, dtype) for c in keys[kind]}
                           for kind in ("compute", "memory")}
    for mode in data["overhead"].values():  # per-class dispatch, so one class can move alone
        dispatch = mode["dispatch_us"]
        mode["dispatch_us"] = {"default": dispatch["default"]} | {
            c: dispatch.get(c, dispatch["default"]) for c in OP_CLASSES}
    if profile.kind == "gpu":
        data["compute"]["saturation_outputs"] = float(profile.saturation_outputs())
    _cite_implied(data)
    return data


def _cite_implied(data: dict) -> None:
    """Give a source to numbers that were implied (a fallback) and are now written."""
    from ..hardware.schema import _has_source

    for path, _ in leaves({k: v for k, v in data.items()
                           if k not in ("sources", "calibration", "schema_version")}):
        if not _has_source(path, data["sources"]):
            data["sources"][path] = ("implied by the base profile (its fallback or default), "
                                     "written out by netcut calibrate")


def with_values(profile, data: dict):
    """A profile object built from ``data`` (a dump of ``profile``) without validation."""
    from ..hardware.schema import DtypeEfficiency, Efficiency, Memory, ModeOverhead

    eff = dict(data["efficiency"])
    eff["by_dtype"] = {d: DtypeEfficiency.model_construct(**e) for d, e in eff.get("by_dtype", {}).items()}
    out = dict(data)
    out["efficiency"] = Efficiency.model_construct(**eff)
    out["overhead"] = {m: ModeOverhead.model_construct(**o) for m, o in data["overhead"].items()}
    out["memory"] = Memory.model_construct(**data["memory"])
    out["compute"] = type(profile.compute).model_construct(**data["compute"])
    return type(profile).model_construct(**out)
