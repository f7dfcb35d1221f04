import io

import pytest
from rich.console import Console


@pytest.fixture
def cli(monkeypatch):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from netcut.cli import main as cli_main

    def run(*args: str):
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(cli_main, "out", Console(file=out, width=200, soft_wrap=True))
        monkeypatch.setattr(cli_main, "err", Console(file=err, width=200, soft_wrap=True))
        code = cli_main.main(list(args))
        return code, out.getvalue(), err.getvalue()

    return run
