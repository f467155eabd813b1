"""The egress policy: every address class, host patterns, denials, the admin API."""

from __future__ import annotations

import ipaddress

import pytest

from atoll.bindings.outbound.policy import ADMIN_ENV, EgressPolicy, address_class
from atoll.errors import ConfigError, EgressRefusedError

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "CGNAT (shared)",
    "100.127.255.254": "CGNAT (shared)",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "ff0e::1": "multicast",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "169.254.169.254": "cloud metadata",
    "fd00:ec2::254": "cloud metadata",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:10.0.0.1": "private",
    "64:ff9b::7f00:1": "loopback",  # NAT64 of 127.0.0.1
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::": "cloud metadata",  # 6to4 of 169.254.169.254
    "192.0.2.1": "private",  # documentation (TEST-NET-1)
    "240.0.0.1": "private",  # reserved (Python files it under is_private)
    "255.255.255.255": "private",
}
PUBLIC = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1"]


@pytest.mark.parametrize(("text", "kind"), sorted(REFUSED.items()))
def test_every_non_public_class_is_named(text: str, kind: str) -> None:
    assert address_class(ipaddress.ip_address(text)) == kind


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    assert address_class(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize("text", sorted(REFUSED))
def test_default_policy_refuses_non_public_addresses(text: str) -> None:
    policy = EgressPolicy()
    with pytest.raises(EgressRefusedError) as info:
        policy.check_address("https", "example.com", 443, ipaddress.ip_address(text))
    assert str(ipaddress.ip_address(text)) in info.value.message
    assert "allowed_hosts" in str(info.value) or info.value.reason == "metadata"


@pytest.mark.parametrize("text", PUBLIC)
def test_default_policy_allows_public_addresses(text: str) -> None:
    EgressPolicy().check_address("https", "example.com", 443, ipaddress.ip_address(text))


def test_default_policy_checks_urls() -> None:
    policy = EgressPolicy()
    assert policy.check_url("https://example.com/a?b=c") == ("https", "example.com", 443)
    assert policy.check_url("http://example.com:8080/") == ("http", "example.com", 8080)
    for url in ("ftp://example.com/", "file:///etc/passwd", "gopher://x/", "http:///nohost"):
        with pytest.raises(EgressRefusedError):
            policy.check_url(url)


def test_an_allowed_ip_opens_that_address_only() -> None:
    policy = EgressPolicy.from_config(["http://127.0.0.1:8080"], [])
    loop = ipaddress.ip_address("127.0.0.1")
    policy.check_url("http://127.0.0.1:8080/x")
    policy.check_address("http", "127.0.0.1", 8080, loop)
    with pytest.raises(EgressRefusedError, match="not in \\[outbound\\] allowed_hosts"):
        policy.check_url("http://127.0.0.1:8081/x")  # another port
    with pytest.raises(EgressRefusedError):
        policy.check_url("https://127.0.0.1:8080/x")  # another scheme
    with pytest.raises(EgressRefusedError):
        policy.check_url("https://example.com/")  # the list is all that is allowed


def test_a_wildcard_never_opens_a_private_address() -> None:
    policy = EgressPolicy.from_config(["*://*:*"], [])
    policy.check_url("http://localhost:9999/")
    with pytest.raises(EgressRefusedError, match="loopback"):
        policy.check_address("http", "localhost", 9999, ipaddress.ip_address("127.0.0.1"))
    policy.check_address("http", "example.com", 9999, ipaddress.ip_address("1.1.1.1"))
    sub = EgressPolicy.from_config(["*.corp.example"], [])
    with pytest.raises(EgressRefusedError, match="private"):
        sub.check_address("https", "db.corp.example", 443, ipaddress.ip_address("10.0.0.5"))


def test_an_exact_name_or_cidr_opens_its_private_addresses() -> None:
    named = EgressPolicy.from_config(["https://db.corp.example"], [])
    named.check_address("https", "db.corp.example", 443, ipaddress.ip_address("10.0.0.5"))
    cidr = EgressPolicy.from_config(["*://10.0.0.0/8:*"], [])
    cidr.check_url("http://10.2.3.4:5000/")
    cidr.check_address("http", "10.2.3.4", 5000, ipaddress.ip_address("10.2.3.4"))
    with pytest.raises(EgressRefusedError):
        cidr.check_address("http", "10.2.3.4", 5000, ipaddress.ip_address("192.168.0.1"))


def test_metadata_is_refused_even_when_allowed() -> None:
    policy = EgressPolicy.from_config(["http://169.254.169.254", "*://169.254.0.0/16:*"], [])
    with pytest.raises(EgressRefusedError, match="metadata") as info:
        policy.check_address("http", "169.254.169.254", 80, ipaddress.ip_address("169.254.169.254"))
    assert info.value.reason == "metadata"
    six_to_four = EgressPolicy.from_config(["*://[2002::/16]:*"], [])  # carries 169.254.169.254
    with pytest.raises(EgressRefusedError, match="metadata"):
        six_to_four.check_address("http", "x.test", 80, ipaddress.ip_address("2002:a9fe:a9fe::"))


def test_a_denial_wins() -> None:
    policy = EgressPolicy.from_config(["*://*:*"], ["*.evil.example", "https://1.1.1.0/24"])
    with pytest.raises(EgressRefusedError, match="denied_hosts"):
        policy.check_url("https://a.evil.example/")
    with pytest.raises(EgressRefusedError, match="denied_hosts"):
        policy.check_address("https", "one.example", 443, ipaddress.ip_address("1.1.1.1"))
    policy.check_address("https", "one.example", 443, ipaddress.ip_address("1.0.0.1"))
    default_deny = EgressPolicy.from_config([], ["example.com"])
    with pytest.raises(EgressRefusedError, match="denied_hosts"):
        default_deny.check_url("https://example.com/")


def test_the_admin_api_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = EgressPolicy.from_config(["http://127.0.0.1:*"], [])
    loop = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setenv(ADMIN_ENV, "127.0.0.1:8788")
    with pytest.raises(EgressRefusedError, match="admin API"):
        policy.check_address("http", "127.0.0.1", 8788, loop)
    policy.check_address("http", "127.0.0.1", 8789, loop)
    monkeypatch.setenv(ADMIN_ENV, "0.0.0.0:8788")
    with pytest.raises(EgressRefusedError, match="admin API"):
        policy.check_address("http", "127.0.0.1", 8788, loop)


@pytest.mark.parametrize(
    "bad", ["ftp://example.com", "exa mple.com", "example.com:99999", "example.com:x", "://"]
)
def test_malformed_patterns_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"outbound\.allowed_hosts"):
        EgressPolicy.from_config([bad], [])


def test_query_is_never_shown() -> None:
    policy = EgressPolicy.from_config(["https://ok.example"], [])
    with pytest.raises(EgressRefusedError) as info:
        policy.check_url("https://other.example/p?token=SECRET")
    assert "SECRET" not in str(info.value)
