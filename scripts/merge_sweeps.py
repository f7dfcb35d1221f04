"""Merge the sweep files of each network into one measurement file.

    .venv/bin/python scripts/merge_sweeps.py OUT_DIR SWEEP_DIR [SWEEP_DIR ...]

Every ``*.json`` in the first sweep folder must be in the others; ``OUT_DIR/<name>``
gets the merge (``netcut.measure.sweeps.merge_sweeps``), written atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from netcut.errors import NetcutError
from netcut.files import atomic_write_text
from netcut.measure.sweeps import merge_sweeps


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, sweeps = Path(argv[0]), [Path(a) for a in argv[1:]]
    out.mkdir(parents=True, exist_ok=True)
    try:
        for name in sorted(p.name for p in sweeps[0].glob("*.json")):
            merged = merge_sweeps([s / name for s in sweeps])
            atomic_write_text(out / name, json.dumps(merged, indent=1))
            print(f"merged {len(sweeps)} sweeps of {name} into {out / name}")
    except NetcutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
