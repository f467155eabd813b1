"""Uploads checked whole before they are stored; activation and rollback (atoll.control.deployer)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from atoll.control.bundle import pack
from atoll.control.deployer import BUNDLE, Deployer
from atoll.control.node import Node
from atoll.control.state import State
from atoll.errors import ControlError
from atoll.worker import Runtime
from tests.control.serving import write_worker


@pytest.fixture
def deployer(tmp_path: Path, runtime: Runtime) -> Deployer:
    state = State(tmp_path / "state")
    state.prepare()
    return Deployer(state, runtime)


def test_upload_stores_activates_and_forgets_the_checked_imports(
    deployer: Deployer, tmp_path: Path
) -> None:
    folder = write_worker(tmp_path / "w", "w", 1)
    (folder / "src" / "helper_for_deployer_test.py").write_text("VALUE = 1\n")
    (folder / "src" / "worker.py").write_text(
        "import helper_for_deployer_test\n" + (folder / "src" / "worker.py").read_text()
    )
    path_before = list(sys.path)
    upload = deployer.upload("w", pack(folder))
    assert upload.new
    assert upload.pointer is not None
    assert upload.pointer.version == upload.version.id
    assert upload.version.files == 4
    assert "helper_for_deployer_test" not in sys.modules
    assert sys.path == path_before
    assert not any(str(deployer.state.tmp_dir) in (getattr(m, "__file__", "") or "")
                   for m in list(sys.modules.values()))  # fmt: skip
    assert list(deployer.state.tmp_dir.iterdir()) == []
    again = deployer.upload("w", pack(folder))
    assert (again.new, again.version.id) == (False, upload.version.id)


def test_a_refused_upload_names_the_bundle_not_the_node_s_folders(
    deployer: Deployer, tmp_path: Path
) -> None:
    folder = write_worker(tmp_path / "w", "w", 1)
    (folder / "atoll.toml").write_text('name = "w"\nmain = "src/missing.py"\n')
    with pytest.raises(ControlError) as info:
        deployer.upload("w", pack(folder))
    assert info.value.message.startswith(f"{BUNDLE}/atoll.toml:2: key 'main'")
    assert str(deployer.state.root) not in str(info.value)
    assert deployer.state.workers() == []
    assert list(deployer.state.tmp_dir.iterdir()) == []


def test_the_upload_must_be_the_named_worker(deployer: Deployer, tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="the bundle is worker 'w', uploaded as 'x'"):
        deployer.upload("x", pack(write_worker(tmp_path / "w", "w", 1)))


def test_store_without_activating(deployer: Deployer, tmp_path: Path) -> None:
    upload = deployer.upload("w", pack(write_worker(tmp_path / "w", "w", 1)), activate=False)
    assert upload.pointer is None
    assert deployer.state.active("w") is None
    assert deployer.activate("w", upload.version.id[:6]).version == upload.version.id


def test_rollback_needs_a_previous_version(deployer: Deployer, tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "w", 1)
    first = deployer.upload("w", pack(folder)).version.id
    with pytest.raises(ControlError, match="no previous version"):
        deployer.activate("w", None)
    second = deployer.upload("w", pack(write_worker(folder, "w", 2))).version.id
    assert deployer.activate("w", None).version == first
    assert deployer.activate("w", None).version == second  # back and forth
    deployer.delete_version("w", first)
    with pytest.raises(ControlError, match="was deleted"):
        deployer.activate("w", None)


def test_routes_held_by_another_worker_are_refused(deployer: Deployer, tmp_path: Path) -> None:
    deployer.upload("a", pack(write_worker(tmp_path / "a", "a", 1, routes=["x.test/*"])))
    b = write_worker(tmp_path / "b", "b", 1, routes=["x.test/*"])
    with pytest.raises(ControlError, match=r"'x\.test/\*' is already served by worker 'a'"):
        deployer.upload("b", pack(b))
    stored = deployer.upload("b", pack(b), activate=False)  # storing is fine
    with pytest.raises(ControlError, match="already served"):
        deployer.activate("b", stored.version.id)
    deployer.delete_worker("a")
    assert deployer.activate("b", stored.version.id).version == stored.version.id


def test_secrets_are_checked_against_bindings(deployer: Deployer, tmp_path: Path) -> None:
    deployer.put_secret("w", "VERSION", "before the first deploy")  # no manifest yet: allowed
    with pytest.raises(ControlError, match="secret 'VERSION' has the name of a binding"):
        deployer.upload("w", pack(write_worker(tmp_path / "w", "w", 1)))
    deployer.delete_secret("w", "VERSION")
    deployer.upload("w", pack(write_worker(tmp_path / "w", "w", 1)))
    with pytest.raises(ControlError, match="has the name of a binding"):
        deployer.put_secret("w", "M", "x")
    deployer.put_secret("w", "API_KEY", "k")
    assert deployer.secrets.names("w") == ["API_KEY"]
    deployer.delete_worker("w")
    assert deployer.secrets.names("w") == []


async def test_a_node_loads_what_the_deployer_stored(
    deployer: Deployer, tmp_path: Path, runtime: Runtime
) -> None:
    from atoll.api import Request

    folder = write_worker(tmp_path / "w", "w", 1, routes=["w.test/*"])
    deployer.upload("w", pack(folder))
    deployer.put_secret("w", "API_KEY", "k1")
    node = Node(deployer.state, runtime)
    pointer = deployer.state.active("w")
    assert pointer is not None
    assert node.sync() == {"versions": {"w": pointer.version}, "errors": {}}
    worker = node.app.router.match("w.test", "/secret")
    assert worker is not None
    result = await worker.handle(Request("http://w.test/secret"), "r1")
    assert result.response.body == b"k1"
    same = node.sync()
    assert node.app.router.match("w.test", "/") is worker  # nothing changed: not reloaded
    assert same["errors"] == {}
    deployer.put_secret("w", "API_KEY", "k2")
    node.sync()
    reloaded = node.app.router.match("w.test", "/")
    assert reloaded is not None
    assert reloaded is not worker
    assert node.version_of(reloaded) == node.deployments["w"].version
    deployer.delete_worker("w")
    node.sync()
    assert node.app.router.match("w.test", "/") is None


def test_a_bad_route_names_the_manifest_line(deployer: Deployer, tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "w", 1, routes=["example.com"])
    with pytest.raises(ControlError) as info:
        deployer.upload("w", pack(folder))
    assert info.value.message == (
        f"{BUNDLE}/atoll.toml:3: key 'routes[0]': route 'example.com': a route needs a path"
    )
    assert info.value.hint == "write example.com/* for every path of example.com"


SIBLING_ENTRY = """
from atoll import Response
import sibling_for_node_test as helper

async def fetch(request, env, ctx):
    return Response(helper.VALUE)
"""


async def test_each_version_and_worker_imports_its_own_sibling_modules(
    deployer: Deployer, tmp_path: Path, runtime: Runtime
) -> None:
    from atoll.api import Request

    def version(folder: Path, name: str, value: str) -> None:
        write_worker(folder, name, 1, routes=[f"{name}.test/*"], python=SIBLING_ENTRY)
        (folder / "src" / "sibling_for_node_test.py").write_text(f"VALUE = {value!r}\n")
        deployer.upload(name, pack(folder))

    async def body(node: Node, host: str) -> bytes:
        worker = node.app.router.match(host, "/")
        assert worker is not None
        return (await worker.handle(Request(f"http://{host}/"), "r")).response.body

    node = Node(deployer.state, runtime)
    version(tmp_path / "a", "a", "a1")
    node.sync()
    version(tmp_path / "a", "a", "a2")
    version(tmp_path / "b", "b", "b1")
    node.sync()
    assert await body(node, "a.test") == b"a2"
    assert await body(node, "b.test") == b"b1"
    assert not list(deployer.state.workers_dir.rglob("__pycache__"))
