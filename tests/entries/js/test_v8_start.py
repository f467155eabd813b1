"""V8 failing to start in a process (``entries/js/v8.py``): a clear error, raised again, never a retry.

STPyV8 starts V8 when it is imported, on the first JS worker a process loads. In a full CI
run under load that start once raised a bare ``MemoryError`` from
``v8_default_platform.init()`` in a serving process, and the deploy failed with that
traceback. Each case runs in a process of its own: V8 starts once per process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

FAILING_START = """
import json, sys
import _STPyV8  # the extension, loaded but V8 not started: make its start fail as in CI

calls = []

def init(self):
    calls.append(1)
    raise MemoryError

_STPyV8.JSPlatform.init = init

from atoll.errors import WorkerLoadError
from atoll.worker import load_worker

errors = []
for _ in range(2):
    try:
        load_worker(sys.argv[1])
    except WorkerLoadError as exc:
        errors.append({"message": exc.message, "hint": exc.hint})
print(json.dumps({"errors": errors, "starts": len(calls)}))
"""


def test_a_v8_that_cannot_start_is_a_load_error_naming_the_worker_and_raised_again(
    tmp_path: Path,
) -> None:
    (tmp_path / "index.js").write_text("export default { fetch() { return new Response('') } };")
    (tmp_path / "atoll.toml").write_text('name = "nostart"\nmain = "index.js"\n')
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_START, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["errors"]) == 2  # both loads fail with a WorkerLoadError, not MemoryError
    first, second = result["errors"]
    assert first["message"].startswith("index.js: V8 could not start in this process")
    assert "raised MemoryError" in first["message"]
    # What the process held when it failed, for triage (address space, mappings, threads).
    assert re.search(r"holds \d+\.\d\d TiB of address space in \d+ mappings", first["message"])
    assert "(vm.max_map_count" in first["message"]
    assert "restart" in first["hint"]
    # The second load raises the same error without starting V8 again (a second start aborts
    # the whole process in V8's own checks).
    assert second == first
    assert result["starts"] == 1
