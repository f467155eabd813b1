"""The `atoll` group: every command is reachable, and importing it imports no command."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from atoll.cli import COMMANDS, main


def test_every_command_loads_and_is_listed() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output
        command = main.get_command(click.Context(main), name)
        assert command is not None
        assert command.name == name


def test_importing_the_group_imports_no_command() -> None:
    code = (
        "import sys, atoll.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('atoll.cli.') or m == 'uvicorn'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
