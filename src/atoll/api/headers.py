"""``Headers``: case-insensitive, multi-valued HTTP headers, as the Fetch API's."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Union

__all__ = ["Headers", "HeadersInit"]

HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]

#: RFC 9110 §5.6.2 ``token``: what a field name may be.
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: What a field value may not hold: control characters but HTAB, DEL (RFC 9110 §5.5).
BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Headers:
    """Header fields with case-insensitive lookup, each name holding its values in order.

    ``get`` joins repeated values with ``", "`` as the Fetch API does (so does
    it for ``set-cookie``: use :meth:`get_all` for those); :meth:`get_all`
    returns each value. Names are stored lowercased, as HTTP/2 and ASGI carry
    them, in the order each was first added.

    Every operation costs constant time per header it adds, reads or removes
    (a dict of names), so a request with many headers costs in proportion to
    their number. Names must be HTTP tokens and values latin-1 text without
    control characters (but tab): :meth:`set` and :meth:`append` raise
    ``ValueError`` otherwise.
    """

    __slots__ = ("_map",)

    def __init__(self, init: HeadersInit = None) -> None:
        self._map: dict[str, list[str]] = {}
        if init is None:
            return
        if isinstance(init, Headers):
            self._map = {name: list(values) for name, values in init._map.items()}
            return
        pairs = init.items() if isinstance(init, Mapping) else init
        for name, value in pairs:
            self.append(name, value)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from ASGI's ``[(b"name", b"value"), …]`` (the server checked them)."""
        headers = cls()
        index = headers._map
        for n, v in raw:
            name = n.decode("latin-1").lower()
            values = index.get(name)
            if values is None:
                index[name] = [v.decode("latin-1")]
            else:
                values.append(v.decode("latin-1"))
        return headers

    @classmethod
    def from_checked(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """Build from ``(name, value)`` pairs already checked as :meth:`append` checks them
        (names lower-cased tokens, values without NUL, CR or LF): a JS worker's response
        headers, which its own ``Headers`` checked (``entries/js``)."""
        headers = cls()
        headers._extend_checked(pairs)
        return headers

    def raw(self) -> list[tuple[bytes, bytes]]:
        """ASGI's form: ``[(b"name", b"value"), …]``."""
        return [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, values in self._map.items()
            for value in values
        ]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name``; repeated headers joined with ``", "``; ``default`` if absent."""
        values = self._map.get(name.lower())
        if not values:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._map.get(name.lower(), ()))

    def has(self, name: str) -> bool:
        return name.lower() in self._map

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        self._map[_check_name(name)] = [_check_value(value)]

    def append(self, name: str, value: str) -> None:
        """Add a value; earlier values of ``name`` stay."""
        key = _check_name(name)
        value = _check_value(value)
        values = self._map.get(key)
        if values is None:
            self._map[key] = [value]
        else:
            values.append(value)

    def _extend_checked(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Add pairs whose names are lowercase and whose names and values the caller
        checked already (the CGI parser does, with a stricter rule)."""
        index = self._map
        for name, value in pairs:
            values = index.get(name)
            if values is None:
                index[name] = [value]
            else:
                values.append(value)

    def delete(self, name: str) -> None:
        self._map.pop(name.lower(), None)

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, repeated names included (grouped by name)."""
        return [(name, value) for name, values in self._map.items() for value in values]

    def combined(self) -> list[tuple[str, str]]:
        """Each name once, with its values joined by ``", "`` as :meth:`get` joins them."""
        return [
            (name, values[0] if len(values) == 1 else ", ".join(values))
            for name, values in self._map.items()
        ]

    def keys(self) -> list[str]:
        return list(self._map)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

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
        return iter(list(self._map))

    def __len__(self) -> int:
        return len(self._map)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._map == other._map

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name (not an HTTP token): {name!r}")
    return name.lower()


def _check_value(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"header values are str, got {type(value).__name__}")
    if BAD_VALUE.search(value) or not _is_latin1(value):
        raise ValueError(
            f"invalid header value (a control character, or a character past U+00FF): {value!r}"
        )
    return value


def _is_latin1(value: str) -> bool:
    return value.isascii() or max(value) <= "\xff"
