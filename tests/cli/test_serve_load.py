"""Deploys and rollbacks under a steady load: no failed and no mixed-version responses.

A node with two serving processes takes requests from four threads (two
keep-alive connections, two opening a connection per request) while a new
version is deployed and then rolled back; each phase lasts 100 requests. Every
response names its version three ways (entry constant, var, wasm export),
so a response built from parts of two versions would show.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from tests.control.load import Load
from tests.control.serving import deploy, start_serve, write_worker

V1 = "v1:v1:1"
V2 = "v2:v2:2"


def test_deploy_and_rollback_under_load_fail_no_request(tmp_path: Path) -> None:
    node = start_serve(tmp_path / "state", processes=2)
    try:
        folder = write_worker(tmp_path / "w", "w", 1)
        deploy(node, folder)
        assert node.get("w.localhost").text == V1
        marks: dict[str, float] = {}
        with Load(node.url + "/", "w.localhost", threads=4) as load:
            load.wait_for(100)
            write_worker(folder, "w", 2)
            marks["deploy_start"] = time.monotonic()
            answer = deploy(node, folder)
            marks["deploy_done"] = time.monotonic()
            assert answer["processes"] == {"total": 2, "synced": 2, "errors": {}}
            load.wait_for(100, after=marks["deploy_done"])
            marks["rollback_start"] = time.monotonic()
            with node.client() as client:
                client.activate("w", None)
            marks["rollback_done"] = time.monotonic()
            load.wait_for(100, after=marks["rollback_done"])
        records = load.records
    finally:
        node.stop()

    failed = [r for r in records if r.status != 200 or r.error]
    assert failed == [], failed[:5]
    assert Counter(r.body for r in records).keys() <= {V1, V2}, "mixed-version response"
    assert {r.keep_alive for r in records} == {True, False}

    def bodies(after: float, before: float) -> set[str]:
        return {r.body for r in records if r.started > after and r.ended < before}

    assert bodies(0, marks["deploy_start"]) == {V1}
    assert bodies(marks["deploy_done"], marks["rollback_start"]) == {V2}
    assert bodies(marks["rollback_done"], float("inf")) == {V1}
