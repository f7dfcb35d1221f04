"""What ``plan`` and ``explore`` do once their run is done: relay netcut's own
warnings, write the report, and print the result as JSON when asked."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Callable

from . import main as cli
from .render import print_json


def relay_warnings(caught) -> None:
    """Warnings raised by netcut during a run (not by its dependencies), one yellow
    line each on stderr."""
    for w in caught:
        if "netcut" in str(w.filename):
            cli.err.print(f"[yellow]warning:[/] {w.message}", highlight=False)


def report_and_json(result, write_report: Callable, target: Path | None, as_json: bool) -> dict | None:
    """Write ``result``'s report to ``target`` (None: no report), recording the
    command line that made it; with ``as_json`` print ``result.summary()`` plus the
    written paths and return None, else return the written paths."""
    written = {}
    if target is not None:
        command = "netcut " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
        written = write_report(result, target, command=command)
    if as_json:
        payload = result.summary()
        payload["report"] = {k: str(v) for k, v in written.items()}
        print_json(cli.out, payload)
        return None
    return written
