"""``atoll init NAME --template T``: a new worker folder from one of atoll's templates.

Templates live in ``atoll/templates/<name>/`` (package data). Each builds and
runs as it is: an ``atoll.toml`` with a ``[build] command``, sources, a build
script that declares its toolchain (``# atoll-toolchain: …``, see
:mod:`atoll.devtools.toolchains`), a README and a ``.gitignore``. The worker name
replaces :data:`PLACEHOLDER` in the files of :data:`NAMED_FILES`.

Dotfiles are stored without their dot (``gitignore``), because package data
globs skip dotfiles; :data:`RENAMED` restores them on copy.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
from importlib import resources
from pathlib import Path

import click
from rich.markup import escape

from atoll.cli.common import fail_on_errors, stderr
from atoll.errors import AtollError
from atoll.manifest.schema import Manifest

__all__ = ["PLACEHOLDER", "TEMPLATES", "copy_template", "init", "template_dir"]

#: Every template, with what it makes; ``atoll init --help`` lists them.
TEMPLATES: dict[str, str] = {
    "python": "a Python worker, no wasm",
    "python-rust": "Python entry calling a Rust wasm module (alloc/dealloc ABI)",
    "python-c": "Python entry calling a C wasm module (alloc/dealloc ABI)",
    "python-assemblyscript": "Python entry calling an AssemblyScript wasm module",
    "rust-wasi": "the whole worker is a Rust WASI program (CGI over WASI)",
    "c-wasi": "the whole worker is a C WASI program (CGI over WASI)",
    "zig-wasi": "the whole worker is a Zig WASI program (CGI over WASI)",
    "assemblyscript-wasi": "the whole worker is an AssemblyScript WASI program",
    "js": "a JavaScript worker (ES module, as on Cloudflare Workers), no wasm",
    "js-rust": "JavaScript entry importing a Rust wasm module (the seed article's shape)",
}

#: The name each template uses for its worker; replaced by the new name.
PLACEHOLDER = "my-worker"

#: Files in which :data:`PLACEHOLDER` is replaced.
NAMED_FILES = frozenset({"atoll.toml", "README.md", "package.json", "package-lock.json"})

#: Template file name → name in the new worker.
RENAMED = {"gitignore": ".gitignore"}

#: What is never copied (left behind by building a template in place).
SKIPPED = frozenset({"__pycache__", "node_modules", "build", ".zig-cache", "zig-out"})

#: The manifest's own rule for worker names.
_NAME_PATTERN = re.compile(
    next(f for f in dataclasses.fields(Manifest) if f.name == "name").metadata["pattern"]
)


def _template_list() -> str:
    width = max(len(name) for name in TEMPLATES)
    return "\n".join(f"  {name.ljust(width)}  {what}" for name, what in TEMPLATES.items())


def template_dir(template: str) -> Path:
    """The folder of a template inside the installed package.

    Raises :class:`AtollError` for an unknown template or one missing from the install.
    """
    if template not in TEMPLATES:
        raise AtollError(
            f"unknown template '{template}'",
            hint="templates:\n" + _template_list(),
        )
    folder = Path(str(resources.files("atoll") / "templates" / template))
    if not (folder / "atoll.toml").is_file():
        raise AtollError(
            f"template '{template}' is missing from this atoll installation ({folder})",
            hint="reinstall atoll",
        )
    return folder


def copy_template(template: str, target: Path, name: str) -> list[Path]:
    """Copy a template into ``target`` (created; must be missing or empty) as worker ``name``.

    Returns the files written, relative to ``target``. Raises :class:`AtollError`
    when ``name`` is not a valid worker name or ``target`` is not empty.
    """
    if not _NAME_PATTERN.fullmatch(name):
        raise AtollError(
            f"'{name}' is not a valid worker name",
            hint="use lowercase letters, digits and dashes (not first or last), at most 63 characters",
        )
    source = template_dir(template)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AtollError(
            f"{target} already exists and is not empty",
            hint="choose another name or --dir, or empty the folder first",
        )
    written: list[Path] = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        relative_dir = Path(folder).relative_to(source)
        for file_name in sorted(files):
            if file_name.endswith((".pyc", ".wasm")):
                continue
            src = Path(folder) / file_name
            relative = relative_dir / RENAMED.get(file_name, file_name)
            dst = target / relative
            dst.parent.mkdir(parents=True, exist_ok=True)
            if file_name in NAMED_FILES:
                dst.write_text(src.read_text().replace(PLACEHOLDER, name))
            else:
                shutil.copyfile(src, dst)
            if file_name.endswith(".sh"):
                # Installed package data may lose the executable bit.
                dst.chmod(dst.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            written.append(relative)
    return written


@click.command(
    epilog="\b\nTemplates:\n" + _template_list(),
)
@click.argument("name")
@click.option(
    "-t",
    "--template",
    default="python",
    show_default=True,
    metavar="TEMPLATE",
    help="What to start from (listed below).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create (default: ./NAME). Must be missing or empty.",
)
def init(name: str, template: str, directory: Path | None) -> None:
    """Create a worker named NAME from a template, ready to build and run.

    Each template has a README of its own; `atoll dev` in the new folder
    builds it and serves it.
    """
    if template not in TEMPLATES:
        raise click.BadParameter(
            f"unknown template '{template}'. Templates:\n{_template_list()}",
            param_hint="'-t' / '--template'",
        )
    target = directory if directory is not None else Path(name)
    with fail_on_errors():
        written = copy_template(template, target, name)
    stderr.print(
        f"created [cyan]{name}[/] in {escape(str(target))} from template [bold]{template}[/] "
        f"({len(written)} files)",
        markup=True,
    )
    click.echo(
        f"next:\n  cd {target}\n  atoll dev        # builds, then serves http://127.0.0.1:8787/"
    )
