"""Merge sweeps: the same networks measured several times over, one after another.

On a shared VM the machine's speed drifts over minutes, and a network timed in one
go takes whatever speed its minute had: two runs of ``scripts/measure_this_cpu.sh``
on the Zen 4 guest moved whole networks by -29% to +25% against each other. Timing
every network briefly, then all of them again, S times, and keeping each row's
median over the sweeps gives every network the same mix of fast and slow minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MeasurementError
from ..measurements import load_measurements

SWEEPS_PROTOCOL = (
    " Merged from {sweeps} sweeps over every network (each sweep times every network "
    "in turn with this protocol, then the next sweep starts): a row's median_ms is the "
    "median of its {sweeps} sweep medians, min_ms the least of their minimums, p90_ms "
    "the median of their p90s, n the calls of all sweeps together."
)


def merge_sweeps(paths: list[str | Path]) -> dict:
    """One measurement file (as a dict) from the files of one network's S sweeps.

    Rows are matched by their key (model, input, batch, dtype, mode, cut); a row must
    appear in every sweep. The header is the first sweep's, with the merge written
    into its protocol and each sweep's start time into ``environment.sweeps``.
    """
    if len(paths) < 2:
        raise MeasurementError(f"merging sweeps needs at least 2 files, got {len(paths)}")
    files = [load_measurements(p) for p in paths]
    first = files[0]
    keys = [r.key() for r in first.rows]
    for path, other in zip(paths[1:], files[1:]):
        theirs = {r.key() for r in other.rows}
        if theirs != set(keys):
            missing = sorted(str(k) for k in set(keys) ^ theirs)[:3]
            raise MeasurementError(f"{path}: not the same rows as {paths[0]} (e.g. {', '.join(missing)})")
        if other.protocol != first.protocol:
            raise MeasurementError(f"{path}: measured with another protocol than {paths[0]}")
    by_key = [{r.key(): r for r in f.rows} for f in files]
    rows = []
    for row in first.rows:
        same = [b[row.key()] for b in by_key]
        merged = row.model_copy(update={
            "median_ms": float(np.median([r.median_ms for r in same])),
            "min_ms": min((r.min_ms for r in same if r.min_ms is not None), default=None),
            "p90_ms": _median_or_none([r.p90_ms for r in same]),
            "n": sum(r.n or 0 for r in same) or None,
        })
        rows.append(merged.model_dump(mode="json", exclude_none=True))
    header = first.model_dump(mode="json", by_alias=True, exclude={"rows"})
    header["protocol"] = first.protocol + SWEEPS_PROTOCOL.format(sweeps=len(files))
    header["environment"] = dict(first.environment) | {
        "sweeps": [f.environment.get("timestamp") for f in files]}
    return header | {"rows": rows}


def _median_or_none(values):
    present = [v for v in values if v is not None]
    return float(np.median(present)) if len(present) == len(values) else None
