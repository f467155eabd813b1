"""``atoll build [DIR]``: run a worker's ``[build] command`` and check what it produced."""

from __future__ import annotations

import time
from pathlib import Path

import click

from atoll.cli.common import config_options, fail_on_errors, load_config, stderr
from atoll.devtools.build import BuildOutput, run_build
from atoll.devtools.toolchains import require_toolchains
from atoll.errors import BuildError

__all__ = ["build"]


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds the build command may run.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not show the command's output (only errors).")
@config_options
def build(directory: Path, timeout: float, quiet: bool) -> None:
    """Build the worker in DIRECTORY (default: .) with its [build] command.

    First checks that the toolchains the build declares (a
    `# atoll-toolchain: NAME` comment in its script) are installed, and says
    how to install a missing one. Then runs the command, showing its output,
    and checks that every .wasm file atoll.toml names exists and is valid.
    """
    with fail_on_errors():
        manifest = load_config(directory)
        if not manifest.build.command:
            stderr.print(f"nothing to build: {manifest.path} has no \\[build] command")
            return
        toolchains = require_toolchains(manifest)
        names = ", ".join(t.name for t in toolchains) or "none declared"
        stderr.print(f"building [cyan]{manifest.name}[/] (toolchains: {names})", markup=True)
        stderr.print(f"$ {manifest.build.command}", markup=False)
        started = time.monotonic()
        outputs = run_build(
            manifest,
            timeout=timeout,
            on_output=None if quiet else _echo,
            check_toolchains=False,
        )
        elapsed = time.monotonic() - started
        for output in outputs or []:
            _validate(output)
            state = "built" if output.rebuilt else "up to date"
            click.echo(f"{state}: {output.relative} ({output.size:,} bytes)")
        click.echo(f"build of {manifest.name} finished in {elapsed:.1f} s")


def _echo(line: str) -> None:
    click.echo(f"  {line}", err=True)


def _validate(output: BuildOutput) -> None:
    import wasmtime  # only here: `atoll build` of a Python-only worker does not need it

    try:
        wasmtime.Module.validate(wasmtime.Engine(), output.path.read_bytes())
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise BuildError(
            f"the build wrote '{output.relative}' but it is not valid WebAssembly: {first}",
            hint="check the build script's compiler flags and output path",
        ) from None
