"""``env``: the bindings a worker is granted, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Env"]


class Env(Mapping[str, Any]):
    """Read-only ``env.NAME`` / ``env["NAME"]`` access to a worker's bindings.

    Built once per deploy; shared (read-only) by every request.
    """

    __slots__ = ("__dict__", "_bindings")

    def __init__(self, bindings: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_bindings", dict(bindings))
        # ``env.NAME`` is read in every request: a binding whose name nothing of the class
        # holds (``get``, ``keys``… stay methods) is found in the instance dict, without
        # the failed lookup that precedes ``__getattr__``.
        fields = self.__dict__
        for name, value in self._bindings.items():
            if isinstance(name, str) and not hasattr(type(self), name):
                fields[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self._bindings[name]
        except KeyError:
            known = ", ".join(self._bindings) or "none"
            raise AttributeError(
                f"env has no binding '{name}' (bindings: {known}); declare it in atoll.toml"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("env is read-only")

    def __getitem__(self, name: str) -> Any:
        return self._bindings[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bindings)

    def __len__(self) -> int:
        return len(self._bindings)

    def __dir__(self) -> list[str]:
        return list(self._bindings)

    def __repr__(self) -> str:
        return f"Env({', '.join(self._bindings)})"
