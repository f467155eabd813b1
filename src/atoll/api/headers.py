"""``Headers``: case-insensitive, multi-valued HTTP headers, as the Fetch API's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Union

__all__ = ["Headers", "HeadersInit"]

HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]


class Headers:
    """An ordered list of ``(name, value)`` pairs with case-insensitive lookup.

    ``get`` joins repeated values with ``", "`` as the Fetch API does (except
    ``set-cookie``, use :meth:`get_all`); :meth:`get_all` returns each value.
    Names are stored lowercased, as HTTP/2 and ASGI carry them.
    """

    __slots__ = ("_items",)

    def __init__(self, init: HeadersInit = None) -> None:
        self._items: list[tuple[str, str]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._items = list(init._items)
            return
        pairs = init.items() if isinstance(init, Mapping) else init
        for name, value in pairs:
            self.append(name, value)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from ASGI's ``[(b"name", b"value"), …]`` (names already lowercase)."""
        headers = cls()
        headers._items = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in raw]
        return headers

    def raw(self) -> list[tuple[bytes, bytes]]:
        """ASGI's form: ``[(b"name", b"value"), …]``."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name``; repeated headers joined with ``", "``; ``default`` if absent."""
        key = name.lower()
        values = [v for n, v in self._items if n == key]
        if not values:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = name.lower()
        return [v for n, v in self._items if n == key]

    def has(self, name: str) -> bool:
        key = name.lower()
        return any(n == key for n, _ in self._items)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        self.delete(name)
        self._items.append((_check_name(name), _check_value(value)))

    def append(self, name: str, value: str) -> None:
        """Add a value; earlier values of ``name`` stay."""
        self._items.append((_check_name(name), _check_value(value)))

    def _extend_checked(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Add pairs whose names are lowercase and whose names and values the caller
        checked already (the CGI parser does, with a stricter rule)."""
        self._items.extend(pairs)

    def delete(self, name: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n != key]

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, repeated names included, in order."""
        return list(self._items)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for n, _ in self._items:
            seen.setdefault(n, None)
        return list(seen)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _check_name(name: str) -> str:
    if not name or any(c in name for c in " \t\r\n:") or not name.isascii():
        raise ValueError(f"invalid header name: {name!r}")
    return name.lower()


def _check_value(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"header values are str, got {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"invalid header value (control character): {value!r}")
    return value
