"""A client of the admin API (``admin.py``), for the CLI: httpx, bearer token, errors as ControlError."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from atoll.errors import ControlError

__all__ = ["DEFAULT_ADMIN_URL", "AdminClient"]

DEFAULT_ADMIN_URL = "http://127.0.0.1:8788"


class AdminClient:
    """One admin API at ``url``. Each method raises :class:`ControlError` with the node's message."""

    def __init__(self, url: str, token: str, *, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request; the JSON answer, or ControlError with the node's error and hint."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return _answer(response)

    def _unreachable(self, exc: httpx.HTTPError) -> ControlError:
        return ControlError(
            f"cannot reach the admin API at {self.url}: {exc}",
            hint="is `atoll serve` running? check --url (or $ATOLL_ADMIN_URL)",
        )

    # -- operations --------------------------------------------------------------------------

    def deploy(self, name: str, bundle: bytes, *, activate: bool = True) -> dict[str, Any]:
        return self.call(
            "POST",
            f"/workers/{name}/versions",
            params={"activate": "1" if activate else "0"},
            content=bundle,
            headers={"content-type": "application/gzip"},
        )

    def workers(self) -> dict[str, Any]:
        return self.call("GET", "/workers")

    def versions(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/workers/{name}/versions")

    def activate(self, name: str, version: str | None) -> dict[str, Any]:
        body = {} if version is None else {"version": version}
        return self.call("POST", f"/workers/{name}/active", json=body)

    def delete(self, name: str) -> dict[str, Any]:
        return self.call("DELETE", f"/workers/{name}")

    def delete_version(self, name: str, version: str) -> dict[str, Any]:
        return self.call("DELETE", f"/workers/{name}/versions/{version}")

    def secrets(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/workers/{name}/secrets")

    def put_secret(self, name: str, key: str, value: str) -> dict[str, Any]:
        return self.call(
            "PUT",
            f"/workers/{name}/secrets/{key}",
            content=value.encode(),
            headers={"content-type": "text/plain; charset=utf-8"},
        )

    def delete_secret(self, name: str, key: str) -> dict[str, Any]:
        return self.call("DELETE", f"/workers/{name}/secrets/{key}")

    def tail(
        self,
        name: str,
        *,
        statuses: Sequence[str] = (),
        outcomes: Sequence[str] = (),
        sample: float = 1.0,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-sent events of the tail stream: ``(kind, data)``, kind ``open``,
        ``request`` or ``dropped``. Ends when the node stops."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("status", s) for s in statuses
        ]
        params += [("outcome", o) for o in outcomes]
        params.append(("sample", str(sample)))
        try:
            with self._client.stream(
                "GET",
                f"/workers/{name}/tail",
                params=params,
                timeout=httpx.Timeout(None, connect=10.0),
            ) as response:
                if response.status_code != 200:
                    response.read()
                    _answer(response)
                kind = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        yield kind, json.loads(line[5:])
                        kind = "message"
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text.strip() or response.reason_phrase}
    if response.status_code >= 400:
        if not isinstance(data, dict):
            data = {"error": str(data)}
        raise ControlError(
            str(data.get("error") or f"HTTP {response.status_code}"), hint=data.get("hint")
        )
    if not isinstance(data, dict):  # pragma: no cover - the API answers objects
        raise ControlError(f"unexpected answer from the admin API: {data!r}")
    return data
