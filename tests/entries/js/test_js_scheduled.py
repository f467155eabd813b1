"""Cron triggers for JavaScript workers: ``scheduled(controller, env, ctx)`` (module syntax) and
``addEventListener("scheduled", …)`` (service-worker syntax), in process and under
``atoll dev --test-scheduled`` (a real socket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from atoll.api import ScheduledEvent
from atoll.runtime.outcome import Outcome
from atoll.worker import load_worker, run_pending
from tests.support import StartDev

MODULE = """\
export default {
  async fetch(request, env) {
    return new Response("fetch ran");
  },
  async scheduled(controller, env, ctx) {
    console.log("cron", controller.cron, typeof controller.scheduledTime, controller.scheduledTime);
    controller.noRetry();
    if (controller.cron === "0 0 1 1 *") throw new Error("new year job failed");
    ctx.waitUntil(new Promise((resolve) => setTimeout(() => {
      console.log("waited", env.WHO);
      resolve();
    }, 5)));
  },
};
"""

SERVICE_WORKER = """\
addEventListener("fetch", (event) => event.respondWith(new Response("sw fetch")));
addEventListener("scheduled", (event) => {
  event.waitUntil((async () => {
    await null;
    console.log("sw cron", event.cron, event.scheduledTime);
  })());
});
"""

FETCH_ONLY = """\
export default { async fetch() { return new Response("only fetch"); } };
"""

SPIN = """\
export default {
  async fetch() { return new Response("ok"); },
  async scheduled() { for (;;) {} },
};
"""


def _folder(root: Path, name: str, source: str, extra: str = "") -> Path:
    folder = root / name
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "index.js").write_text(source)
    (folder / "atoll.toml").write_text(
        f'name = "{name}"\nmain = "src/index.js"\n[vars]\nWHO = "cron"\n'
        f'[triggers]\ncrons = ["*/10 * * * *"]\n{extra}'
    )
    return folder


WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
WHEN_MS = int(WHEN.timestamp() * 1000)


def _run(folder: Path, cron: str) -> tuple[int, Outcome, list[str], str]:
    async def go() -> tuple[int, Outcome, list[str], str]:
        worker = load_worker(folder, dev=True)
        result = await worker.run_scheduled(ScheduledEvent(cron, WHEN), "req1")
        await run_pending(result)
        return (
            result.response.status,
            result.outcome,
            result.logs,
            (await result.response.bytes()).decode(),
        )

    return asyncio.run(go())


def test_module_scheduled_gets_controller_env_and_ctx(tmp_path: Path) -> None:
    status, outcome, logs, _ = _run(_folder(tmp_path, "cron-js", MODULE), "*/3 * * * *")
    assert (status, outcome) == (200, Outcome.OK)
    assert logs[0] == f"cron */3 * * * * number {WHEN_MS}"
    assert logs[1:] == ["waited cron"]  # ctx.waitUntil work ran (after the run's result)


def test_a_throwing_scheduled_is_a_500_with_the_js_error(tmp_path: Path) -> None:
    status, outcome, _, body = _run(_folder(tmp_path, "cron-js", MODULE), "0 0 1 1 *")
    assert (status, outcome) == (500, Outcome.EXCEPTION)
    assert "new year job failed" in body


def test_service_worker_scheduled_listener(tmp_path: Path) -> None:
    status, outcome, logs, _ = _run(_folder(tmp_path, "cron-sw", SERVICE_WORKER), "5 * * * *")
    assert (status, outcome) == (200, Outcome.OK)
    assert logs == [f"sw cron 5 * * * * {WHEN_MS}"]


def test_a_worker_without_scheduled_says_so(tmp_path: Path) -> None:
    status, _, _, body = _run(_folder(tmp_path, "no-cron", FETCH_ONLY), "5 * * * *")
    assert status == 500
    assert "no scheduled() method" in body


def test_a_scheduled_run_is_under_the_cpu_limit(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "spin", SPIN, "[limits]\ncpu_ms = 50\n")
    status, outcome, _, _ = _run(folder, "5 * * * *")
    assert (status, outcome) == (503, Outcome.EXCEEDED_CPU)


def _wait_for(server_log: Callable[[], str], text: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = server_log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{server_log()}")


def test_dev_test_scheduled_runs_a_js_worker(tmp_path: Path, dev_server: StartDev) -> None:
    server = dev_server(_folder(tmp_path, "cron-js", MODULE), "--test-scheduled")
    response = httpx.get(server.url + "/__scheduled", params={"cron": "*/3 * * * *"})
    assert response.status_code == 200
    assert response.text == "Ran scheduled event\n"
    _wait_for(server.log, "cron */3 * * * * number")
    assert httpx.get(server.url + "/").text == "fetch ran"
    failed = httpx.get(server.url + "/__scheduled", params={"cron": "0 0 1 1 *"})
    assert failed.status_code == 500
    assert "new year job failed" in failed.text
    default = httpx.get(server.url + "/__scheduled")  # the first of [triggers]
    assert default.status_code == 200
    _wait_for(server.log, "cron */10 * * * * number")


CRON_ONLY = """\
export default {
  async scheduled(controller, env) {
    await env.RUNS.put("last", controller.cron);
  },
};
"""


async def test_a_cron_only_worker_loads_and_runs_in_process(tmp_path: Path) -> None:
    import atoll

    folder = _folder(
        tmp_path, "cron-only", CRON_ONLY, '[[kv_namespaces]]\nbinding = "RUNS"\nid = "runs"\n'
    )
    async with await atoll.load(folder) as worker:
        result = await worker.scheduled("7 * * * *")
        assert (result.status, result.outcome) == (200, "ok")
        assert await worker.kv("RUNS").get("last") == "7 * * * *"
        missing = await worker.fetch("/")  # no fetch(): a 500, not a load failure
        assert missing.status == 500
