"""``atoll deploy [DIR]``: pack a worker folder and upload it to an ``atoll serve`` node.

The admin API's options and client are in :mod:`atoll.cli.admin`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from atoll.cli.admin import admin_client, admin_options, print_nodes
from atoll.cli.common import load_config, selected_config, stderr
from atoll.control.bundle import pack
from atoll.control.deployer import BUNDLE
from atoll.devtools.build import run_build
from atoll.errors import ControlError
from atoll.manifest.sources import SELECTION_FILE

__all__ = ["deploy"]


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@admin_options
@click.option("--no-build", is_flag=True, help="Do not run the [build] command first.")
@click.option("--no-activate", is_flag=True, help="Store the version without serving it.")
def deploy(directory: Path, url: str, token: str, no_build: bool, no_activate: bool) -> None:
    """Deploy the worker in DIRECTORY (default: .) to the node at --url.

    Runs the [build] command, packs the folder (without .git, .atoll,
    node_modules, target, __pycache__…; a JavaScript worker keeps the
    node_modules files its bundle reads), and uploads it. The node checks the
    whole bundle as `atoll dev` would (manifest, modules, the Python entry)
    and refuses it with the same message if it is broken; the version it
    served keeps serving. Returns once every serving process has the new
    version. With -c FILE the folder is FILE's; with --env NAME the worker
    is NAME-ENV (unless [env.NAME] sets name), and the bundle records both
    so that the node reads the same config.
    """
    with admin_client(url, token) as client:
        manifest = load_config(directory)
        if manifest.build.command and not no_build:
            stderr.print(f"building: {manifest.build.command}", markup=False)
            run_build(manifest, on_output=lambda line: click.echo(f"  {line}", err=True))
        config, env = selected_config()
        extra: dict[str, bytes] = {}
        if config is not None or env is not None:  # the node has no flags: the bundle says
            choice = {"config": manifest.path.name, "env": env}
            extra[SELECTION_FILE] = json.dumps(choice).encode()
        if manifest.entry_kind == "js":
            # node_modules stays out of the upload but for the files the bundle reads.
            from atoll.entries.js.bundle import dependency_files

            extra.update(dependency_files(manifest))
        bundle = pack(manifest.root if config is not None else directory, extra=extra)
        started = time.perf_counter()
        try:
            answer = client.deploy(manifest.name, bundle, activate=not no_activate)
        except ControlError as exc:
            raise _local(exc, directory) from None
        elapsed = (time.perf_counter() - started) * 1000
        version = answer["version"]
        processes = answer["processes"]
        what = "new version" if answer["new"] else "version already uploaded"
        click.echo(
            f"{manifest.name}: {what} {version['id'][:12]} "
            f"({version['files']} files, {_size(version['size'])}, bundle {_size(len(bundle))})"
        )
        if answer["active"]:
            click.echo(
                f"active on {processes['synced']}/{processes['total']} processes "
                f"({elapsed:.0f} ms); routes: {', '.join(version['routes']) or manifest.name + '.localhost/*'}"
            )
        for index, error in processes.get("errors", {}).items():
            stderr.print(f"warning: process {index}: {error}", markup=False)
        print_nodes(answer)


def _local(exc: ControlError, directory: Path) -> ControlError:
    """The node's message about the bundle, with the local folder where it wrote <bundle>."""
    prefix = str(directory / "x")[:-1]  # "dir/" (or "" for ".") as `atoll dev` writes paths
    message = exc.message.replace(BUNDLE + "/", prefix).replace(BUNDLE, str(directory))
    hint = exc.hint.replace(BUNDLE + "/", prefix) if exc.hint else None
    return ControlError(message, hint=hint)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"
