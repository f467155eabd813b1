"""What the commands that talk to a node's admin API share: its options, its client, the name.

``deploy``, ``versions``, ``rollback``, ``delete``, ``secret`` and ``tail``
take ``--url`` (``$ATOLL_ADMIN_URL``) and the admin token: ``--token``
(``$ATOLL_ADMIN_TOKEN``), else the ``admin-token`` file ``atoll serve`` wrote
in its state folder, found with ``--state DIR`` (``$ATOLL_STATE``) on the
node's own machine. A command's worker ``NAME`` defaults to the ``name`` of
the worker folder it runs in, as wrangler does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from atoll.cli.common import config_options, fail_on_errors, selected_config
from atoll.control.client import DEFAULT_ADMIN_URL, AdminClient
from atoll.errors import ConfigError, ControlError
from atoll.manifest import load_manifest

__all__ = [
    "TOKEN_FILE",
    "admin_client",
    "admin_options",
    "admin_token",
    "print_nodes",
    "worker_name",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The file in ``atoll serve``'s state folder that holds the token it made.
TOKEN_FILE = "admin-token"


def admin_token(token: str | None, state: Path | None) -> str:
    """The token given, else the one in ``STATE/admin-token``.

    Raises :class:`ControlError` that says where the token is and how to pass
    it when neither is there.
    """
    if token:
        return token
    how = (
        "pass --token TOKEN (or set $ATOLL_ADMIN_TOKEN); on the node's machine, "
        "--state DIR (or $ATOLL_STATE) reads DIR/admin-token"
    )
    if state is None:
        raise ControlError(
            "no admin token: `atoll serve` wrote one in its state folder, "
            f"STATE/{TOKEN_FILE} (it prints the path when it starts)",
            hint=how,
        )
    path = state / TOKEN_FILE
    try:
        found = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ControlError(
            f"no admin token in {path}: is {state} the folder of `atoll serve --state`?",
            hint="a node started with --token (or $ATOLL_ADMIN_TOKEN) writes no file: " + how,
        ) from None
    except OSError as exc:
        raise ControlError(f"cannot read the admin token in {path}: {exc}", hint=how) from None
    if not found:
        raise ControlError(f"{path} is empty", hint=how)
    return found


def admin_options(command: F) -> F:
    """``--url``, ``--token``, ``--state``, and ``-c``/``--env`` for the worker's config.

    The command gets ``url`` and ``token`` (resolved); the config is read by :func:`worker_name`.
    """

    @functools.wraps(command)
    def resolved(*args: Any, state: Path | None, token: str | None, **kwargs: Any) -> Any:
        with fail_on_errors():
            found = admin_token(token, state)
        return command(*args, token=found, **kwargs)

    wrapped: Any = resolved
    wrapped = click.option(
        "--state",
        envvar="ATOLL_STATE",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"The node's state folder, to read its {TOKEN_FILE} when no --token is given.",
    )(wrapped)
    wrapped = click.option(
        "--token",
        envvar="ATOLL_ADMIN_TOKEN",
        default=None,
        help=f"Admin API bearer token ($ATOLL_ADMIN_TOKEN; default: STATE/{TOKEN_FILE}).",
    )(wrapped)
    wrapped = click.option(
        "--url",
        envvar="ATOLL_ADMIN_URL",
        default=DEFAULT_ADMIN_URL,
        show_default=True,
        help="Admin API of the node ($ATOLL_ADMIN_URL).",
    )(wrapped)
    wrapped = config_options(wrapped)
    return wrapped  # type: ignore[no-any-return]


def name_option(command: F) -> F:
    """``--name NAME``: the worker, as wrangler writes it (``wrangler secret put KEY --name W``)."""
    return click.option(
        "--name",
        "name_option",
        default=None,
        metavar="NAME",
        help="The worker (default: `name` of the config in the current folder).",
    )(command)


def worker_name(*given: str | None, folder: Path = Path(".")) -> str:
    """The first name given, else the ``name`` of the worker config in ``folder``.

    The config is the one ``-c``/``--env`` select (:func:`config_options`):
    with ``--env staging`` the name is ``NAME-staging``, as wrangler's.
    Raises :class:`ConfigError` when no name is given and ``folder`` has no config.
    """
    for name in given:
        if name:
            return name
    config, env = selected_config()
    try:
        return load_manifest(folder, check_files=False, config=config, env=env).name
    except ConfigError as exc:
        if "no config file found" not in exc.message:
            raise
        raise ConfigError(
            "no worker NAME given, and no worker config in the current folder to take it from",
            hint="pass NAME (or --name NAME), or run the command in the worker's folder",
        ) from None


@contextmanager
def admin_client(url: str, token: str) -> Iterator[AdminClient]:
    """An :class:`AdminClient`, inside :func:`fail_on_errors` (errors become messages, exit 1)."""
    with fail_on_errors(), AdminClient(url, token) as client:
        yield client


def print_nodes(answer: dict[str, Any]) -> None:
    """A cluster node's answer: on how many nodes the change is active (docs/cluster.md)."""
    nodes = answer.get("nodes")
    if nodes:
        pending = f"; not yet: {', '.join(nodes['pending'])}" if nodes["pending"] else ""
        click.echo(f"cluster: active on {nodes['activated']}/{nodes['total']} nodes{pending}")
