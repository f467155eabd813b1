"""The egress policy of a worker: which URLs and addresses its subrequests may reach.

Built once per worker load from ``[outbound]`` (:meth:`EgressPolicy.from_manifest`).
Checked twice per connection attempt, by :mod:`.client`:

1. :meth:`EgressPolicy.check_url` before anything is sent, on the URL and on
   every redirect's ``Location``: scheme, host pattern, port, denials;
2. :meth:`EgressPolicy.check_address` on each address DNS gave for the host,
   at connect time; the connection is made to the address that passed (the
   transport pins it), so a second resolution cannot swap it (DNS rebinding).

Secure by default: with no ``allowed_hosts``, any public address over http or
https is allowed and nothing else. A non-public address (loopback, private,
link-local, CGNAT, multicast, unspecified, reserved, documentation, or an IPv6
form that embeds one of these) is reached only when an allowed entry names it:
its IP, a CIDR that holds it, or the exact host name. Cloud metadata addresses
and the node's own admin API are refused whatever the entries say.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from atoll.errors import EgressRefusedError

__all__ = ["METADATA_ADDRESSES", "EgressPolicy", "HostPattern", "address_class"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud instance metadata endpoints (AWS, GCP, Azure, OpenStack; AWS over IPv6).
METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

#: Set by the supervisor (``host:port``) so serving processes refuse its admin API.
ADMIN_ENV: Final = "ATOLL_ADMIN_ADDRESS"


def address_class(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (``"loopback"``, ``"private"``…), or None.

    An IPv6 address that embeds an IPv4 one (mapped ``::ffff:a.b.c.d``, NAT64,
    6to4, Teredo) is judged by the IPv4 address it carries.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return address_class(embedded)
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "CGNAT (shared)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of ``allowed_hosts`` / ``denied_hosts``: ``[scheme://]host[:port]``."""

    text: str
    schemes: frozenset[str]
    host: str
    """A lowercase name, ``*.suffix``, ``*``, or empty when ``network`` is set."""
    network: IPNetwork | None
    port: int | None
    """None: any port (``:*``); 0: the scheme's default port."""

    @classmethod
    def parse(cls, text: str, key: str) -> HostPattern:
        """Parse one entry; a malformed one is an :class:`EgressRefusedError`-free ConfigError."""
        from atoll.errors import ConfigError

        rest = text.strip()
        schemes = frozenset(_DEFAULT_PORTS)
        if "://" in rest:
            scheme, rest = rest.split("://", 1)
            scheme = scheme.lower()
            if scheme != "*" and scheme not in _DEFAULT_PORTS:
                raise ConfigError(
                    f"key 'outbound.{key}': {text!r} has scheme {scheme!r}",
                    hint="use http://, https:// or *:// (or no scheme: both)",
                )
            if scheme != "*":
                schemes = frozenset({scheme})
        rest = rest.rstrip("/")
        # A denial without a port denies every port; an allowance opens the scheme's.
        port: int | None = None if key == "denied_hosts" else 0
        host = rest
        if rest.startswith("["):  # [v6]:port
            end = rest.find("]")
            host, tail = rest[1:end], rest[end + 1 :]
            if tail.startswith(":"):
                port = _port(tail[1:], text, key)
        elif rest.count(":") == 1:
            host, raw_port = rest.split(":")
            port = _port(raw_port, text, key)
        host = host.lower()
        network: IPNetwork | None = None
        if host and host != "*" and not host.startswith("*."):
            try:
                network = ipaddress.ip_network(host, strict=False)
                host = ""
            except ValueError:
                if not all(
                    part.replace("-", "").replace("_", "").isalnum() for part in host.split(".")
                ):
                    network = None
                    raise ConfigError(
                        f"key 'outbound.{key}': {text!r} is not a host pattern",
                        hint="write [scheme://]host[:port]: api.example.com, *.example.com, "
                        "10.0.0.0/8, https://*:443",
                    ) from None
        if not host and network is None:
            raise ConfigError(f"key 'outbound.{key}': {text!r} names no host")
        return cls(text, schemes, host, network, port)

    def matches(self, scheme: str, host: str, port: int, address: IPAddress | None) -> bool:
        """Does this entry cover ``scheme://host:port`` (at ``address``, when known)?"""
        if scheme not in self.schemes:
            return False
        if self.port == 0 and port != _DEFAULT_PORTS[scheme]:
            return False
        if self.port not in (None, 0) and port != self.port:
            return False
        if self.network is not None:
            target = address if address is not None else _literal(host)
            return (
                target is not None
                and target.version == self.network.version
                and (target in self.network)
            )
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def names(self, host: str, address: IPAddress) -> bool:
        """Does this entry name ``address`` explicitly (so a non-public one is allowed)?"""
        if self.network is not None:
            return address.version == self.network.version and address in self.network
        return bool(self.host) and "*" not in self.host and self.host == host


def _port(raw: str, text: str, key: str) -> int | None:
    from atoll.errors import ConfigError

    if raw == "*":
        return None
    if raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    raise ConfigError(f"key 'outbound.{key}': {text!r} has port {raw!r}", hint="use 1-65535 or *")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class EgressPolicy:
    """A worker's ``[outbound]`` rules. Immutable; shared by every thread of the worker."""

    def __init__(
        self,
        allowed: Iterable[HostPattern] = (),
        denied: Iterable[HostPattern] = (),
        *,
        worker: str = "",
    ) -> None:
        self.allowed = tuple(allowed)
        self.denied = tuple(denied)
        self.worker = worker
        #: Client pools are shared by workers whose rules are equal (see client.py).
        self.key = (tuple(p.text for p in self.allowed), tuple(p.text for p in self.denied))

    @classmethod
    def from_config(
        cls, allowed_hosts: Iterable[str], denied_hosts: Iterable[str], worker: str = ""
    ) -> EgressPolicy:
        """Parse the entries (a malformed one raises :class:`~atoll.errors.ConfigError`)."""
        return cls(
            [HostPattern.parse(t, "allowed_hosts") for t in allowed_hosts],
            [HostPattern.parse(t, "denied_hosts") for t in denied_hosts],
            worker=worker,
        )

    def check_url(self, url: str) -> tuple[str, str, int]:
        """``(scheme, host, port)`` of ``url`` if its scheme, host and port may be reached
        (addresses are checked at connect time); else :class:`EgressRefusedError`."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise EgressRefusedError(
                f"fetch {_shown(url)}: only http and https URLs may be fetched",
                reason="scheme",
            )
        host = (parts.hostname or "").lower()
        if not host:
            raise EgressRefusedError(f"fetch {_shown(url)}: the URL has no host", reason="url")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise EgressRefusedError(f"fetch {_shown(url)}: bad port", reason="url") from None
        for pattern in self.denied:
            if pattern.matches(scheme, host, port, None):
                raise EgressRefusedError(
                    f"fetch {_shown(url)}: refused by [outbound] denied_hosts entry "
                    f"{pattern.text!r}",
                    reason="denied",
                )
        if self.allowed and not any(p.matches(scheme, host, port, None) for p in self.allowed):
            raise EgressRefusedError(
                f"fetch {_shown(url)}: {scheme}://{host}:{port} is not in [outbound] allowed_hosts",
                reason="not_allowed",
                hint="add it to [outbound] allowed_hosts in atoll.toml",
            )
        return scheme, host, port

    def check_address(self, scheme: str, host: str, port: int, address: IPAddress) -> None:
        """Refuse connecting to ``address`` for ``scheme://host:port`` (after DNS)."""
        kind = address_class(address)
        if kind == "cloud metadata":  # itself, or an IPv6 form that carries it
            raise EgressRefusedError(
                f"fetch {scheme}://{host}:{port}: {host} is at {address}, a cloud metadata "
                "address; atoll never lets a worker reach it",
                reason="metadata",
            )
        if _is_admin(address, port):
            raise EgressRefusedError(
                f"fetch {scheme}://{host}:{port}: {address}:{port} is this node's admin API",
                reason="admin",
            )
        for pattern in self.denied:
            if pattern.network is not None and pattern.matches(scheme, host, port, address):
                raise EgressRefusedError(
                    f"fetch {scheme}://{host}:{port}: {host} is at {address}, refused by "
                    f"[outbound] denied_hosts entry {pattern.text!r}",
                    reason="denied",
                )
        if self.allowed:
            covering = [p for p in self.allowed if p.matches(scheme, host, port, address)]
            if not covering:
                raise EgressRefusedError(
                    f"fetch {scheme}://{host}:{port}: {host} is at {address}, which no "
                    "[outbound] allowed_hosts entry covers",
                    reason="not_allowed",
                )
            if kind is None or any(p.names(host, address) for p in covering):
                return
        elif kind is None:
            return
        raise EgressRefusedError(
            f"fetch {scheme}://{host}:{port}: {host} is at {address}, a {kind} address; "
            "workers may reach only public addresses unless [outbound] allowed_hosts names it",
            reason=kind.split(" ")[0].lower(),
            hint=f'to allow it, add "{scheme}://{_bracket(address) if _literal(host) else host}'
            f':{port}" to [outbound] allowed_hosts',
        )


def _bracket(address: IPAddress) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _is_admin(address: IPAddress, port: int) -> bool:
    spec = os.environ.get(ADMIN_ENV)
    if not spec:
        return False
    host, _, raw = spec.rpartition(":")
    if not raw.isdigit() or int(raw) != port:
        return False
    admin = _literal(host)
    if admin is None:
        return False
    if admin.is_unspecified:  # listening on every address: any local one is the admin API
        return address_class(address) is not None
    return admin == address


def _shown(url: str) -> str:
    """``url`` without its query and fragment (they may carry secrets)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
