"""Emscripten's JS glue, untouched: ``examples/emscripten-c`` under ``atoll dev``.

The example's ``build/greet.mjs`` and ``build/greet.wasm`` were built here with
Debian 12's emscripten 3.1.6 (``examples/emscripten-c/build.sh``) and are
committed, so the test needs no emcc.
"""

from __future__ import annotations

import httpx

from tests.support import REPO, start_dev


def test_emscripten_glue_runs_in_a_js_worker() -> None:
    server = start_dev(REPO / "examples" / "emscripten-c", "--loops", "1", "--no-reload")
    try:
        response = httpx.get(server.url + "/?name=Ada")
        assert response.status_code == 200, response.text
        assert response.text == "Hello, Ada! (from C, built by Emscripten)\n2 + 3 = 5\n"
    finally:
        server.stop()
