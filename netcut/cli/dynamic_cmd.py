"""``netcut dynamic build|show|run|train|report``: the dynamic-network commands (netcut/dynamic/cli.py)."""

from __future__ import annotations

from ..dynamic.cli import dynamic_app
from . import main as cli

cli.app.add_typer(dynamic_app, name="dynamic")
