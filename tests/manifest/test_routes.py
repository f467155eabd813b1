"""Route patterns and precedence (atoll.manifest.routes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.errors import ConfigError, ConfigProblems
from atoll.manifest import parse_manifest
from atoll.manifest.routes import (
    RouteTable,
    conflicts,
    default_routes,
    manifest_routes,
    parse_route,
    request_host,
)


def table(*pairs: tuple[str, str]) -> RouteTable[str]:
    """A table whose targets are the owners' names: ``table(("example.com/*", "a"), ...)``."""
    return RouteTable((parse_route(pattern), owner, owner) for pattern, owner in pairs)


@pytest.mark.parametrize(
    ("pattern", "host", "path", "expected"),
    [
        ("example.com/*", "example.com", "/", True),
        ("example.com/*", "example.com", "/a/b", True),
        ("example.com/*", "www.example.com", "/", False),
        ("example.com/hello", "example.com", "/hello", True),
        ("example.com/hello", "example.com", "/hello/", False),
        ("*.example.com/api/*", "a.example.com", "/api/x", True),
        ("*.example.com/api/*", "a.b.example.com", "/api/", True),
        ("*.example.com/api/*", "example.com", "/api/x", False),
        ("*.example.com/api/*", "a.example.com", "/api", False),
        ("*example.com/*", "example.com", "/", True),
        ("*example.com/*", "www.example.com", "/", True),
        ("/api/*", "anything.test", "/api/v1", True),
        ("/api/*", "anything.test", "/other", False),
        ("/api*", "h", "/api", True),
        ("/api*", "h", "/apiary", True),
        ("https://Example.COM/*", "example.com", "/x", True),
        ("*/static/*", "h", "/static/a.css", True),
    ],
)
def test_pattern_matches(pattern: str, host: str, path: str, expected: bool) -> None:
    assert parse_route(pattern).matches(host, path) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("example.com", "needs a path"),
        ("ex*ample.com/*", "may only start the host"),
        ("example.com/*.jpg", "may only end the path"),
        ("example.com/?a=*", "query string"),
        ("example.com:8080/*", "cannot name a port"),
    ],
)
def test_bad_patterns_are_config_errors(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match="key 'routes'") as info:
        parse_route(pattern)
    assert message in str(info.value)
    assert repr(pattern) in str(info.value)


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Example.com:8787", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:8787", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("", ""),
    ],
)
def test_request_host_drops_port_and_case(raw: str, host: str) -> None:
    assert request_host(raw) == host


def test_exact_host_beats_wildcard_host_even_with_exact_path() -> None:
    routes = table(("*.example.com/a", "wild"), ("a.example.com/*", "exact"))
    assert routes.match("a.example.com", "/a") == "exact"
    assert routes.match("b.example.com", "/a") == "wild"


def test_longer_path_prefix_wins_on_the_same_host() -> None:
    routes = table(("example.com/*", "site"), ("example.com/api/*", "api"))
    assert routes.match("example.com", "/api/users") == "api"
    assert routes.match("example.com", "/about") == "site"


def test_exact_path_beats_prefix() -> None:
    routes = table(("example.com/api/*", "api"), ("example.com/api/health", "health"))
    assert routes.match("example.com", "/api/health") == "health"
    assert routes.match("example.com", "/api/healthz") == "api"


def test_longer_wildcard_host_beats_shorter() -> None:
    routes = table(("*.example.com/*", "zone"), ("*.api.example.com/*", "api"))
    assert routes.match("v1.api.example.com", "/") == "api"
    assert routes.match("www.example.com", "/") == "zone"


def test_any_host_patterns_come_last() -> None:
    routes = table(("/api/*", "any"), ("*.example.com/*", "wild"), ("example.com/*", "exact"))
    assert routes.match("example.com", "/api/x") == "exact"
    assert routes.match("www.example.com", "/api/x") == "wild"
    assert routes.match("other.test", "/api/x") == "any"
    assert routes.match("other.test", "/x") is None


def test_host_falls_through_when_its_paths_do_not_match() -> None:
    routes = table(("example.com/admin/*", "admin"), ("*example.com/*", "catchall"))
    assert routes.match("example.com", "/admin/x") == "admin"
    assert routes.match("example.com", "/public") == "catchall"


def test_request_port_and_case_are_ignored() -> None:
    routes = table(("example.com/*", "site"))
    assert routes.match("EXAMPLE.com:8787", "/") == "site"


def test_unmatched_is_none() -> None:
    assert table().match("example.com", "/") is None
    assert table(("example.com/*", "a")).match("example.org", "/") is None


def test_worker_without_routes_is_served_at_name_localhost() -> None:
    (route,) = default_routes("seed")
    routes = RouteTable([(route, "seed", "seed")])
    assert routes.match("seed.localhost:8787", "/any/path") == "seed"
    assert routes.match("other.localhost", "/") is None


def test_conflicts_name_both_owners() -> None:
    claims = {
        "a": [parse_route("example.com/*")],
        "b": [parse_route("https://EXAMPLE.com/*"), parse_route("b.test/*")],
    }
    assert conflicts(claims) == [("https://EXAMPLE.com/*", "b", "a")]
    assert conflicts({"a": [parse_route("x.test/*")], "b": [parse_route("y.test/*")]}) == []


def test_equal_patterns_resolve_by_owner_name_whatever_the_order() -> None:
    one = table(("example.com/*", "b"), ("example.com/*", "a"))
    two = table(("example.com/*", "a"), ("example.com/*", "b"))
    assert one.match("example.com", "/") == two.match("example.com", "/") == "a"


# -- a config's routes (strings, tables, custom domains, environments) -----------------


def test_manifest_routes_strings_tables_and_custom_domains(tmp_path: Path) -> None:
    text = (
        'name = "w"\nmain = "w.py"\n'
        'routes = ["a.example.com/*", { pattern = "b.example.com/api/*", zone_name = "example.com" },'
        ' { pattern = "c.example.com", custom_domain = true }]\n'
    )
    manifest = parse_manifest(text, path=tmp_path / "wrangler.toml", check_files=False)
    routes = manifest_routes(manifest)
    assert [r.pattern for r in routes] == [
        "a.example.com/*",
        "b.example.com/api/*",
        "c.example.com/*",
    ]
    assert routes[2].matches("c.example.com", "/any/path")
    bare = parse_manifest(
        'name = "w"\nmain = "w.py"\n', path=tmp_path / "a.toml", check_files=False
    )
    assert manifest_routes(bare) == default_routes("w")


def test_manifest_routes_name_every_bad_pattern_where_it_is_written(tmp_path: Path) -> None:
    text = (
        'name = "w"\n'  # 1
        'main = "w.py"\n'  # 2
        "[env.staging]\n"  # 3
        "routes = [\n"  # 4
        '  "ok.example.com/*",\n'  # 5
        '  "example.com",\n'  # 6
        '  { pattern = "x.example.com/a*b" },\n'  # 7
        "]\n"
    )
    manifest = parse_manifest(
        text, path=tmp_path / "wrangler.toml", env="staging", check_files=False
    )
    with pytest.raises(ConfigProblems) as info:
        manifest_routes(manifest)
    assert [(p.key, p.line) for p in info.value.problems] == [
        ("env.staging.routes[1]", 6),
        ("env.staging.routes[2]", 7),
    ]
    single = parse_manifest(
        'name = "w"\nmain = "w.py"\nroute = { pattern = "example.com", zone_name = "x" }\n',
        path=tmp_path / "wrangler.toml",
        check_files=False,
    )
    with pytest.raises(ConfigError) as one:
        manifest_routes(single)
    assert (one.value.key, one.value.line) == ("route", 3)
    assert "a route needs a path" in one.value.message
