#!/usr/bin/env python3
"""Module fuzzer: mutated wasm modules must be served or refused cleanly, never crash the process.

Each case takes a module of the corpus (the repository's .wasm files and the
inline WAT of its tests), mutates it (bit flips, byte insertions and
deletions, interesting bytes such as the v128 and GC type codes, section
splicing between modules, section size changes) and loads it the way a
worker does (``WasmModule.load``). A module that loads is then served:
instantiated in a request with small limits, every export called with
zeros where its signature allows, and ``_start`` run. Each case must end in
success or an ``AtollError`` (or a WASI ``proc_exit``); any other exception
fails the run, and an abort kills it (so run it in a child process, as the
test suite does).

Cases are numbered and seeded: ``--seed S --start N --count 1`` replays case
N. Examples:

    .venv/bin/python scripts/fuzz-modules.py                       # 2000 cases
    .venv/bin/python scripts/fuzz-modules.py --count 100000 --seed 7 --time-limit 3600
    .venv/bin/python scripts/fuzz-modules.py --seed 1 --start 1234 --count 1 --save /tmp/case.wasm
    ATOLL_CAPI=0 .venv/bin/python scripts/fuzz-modules.py          # the public-API backend

Exit status: 0 when every case was served or refused cleanly, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import wasmtime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from atoll.errors import AtollError  # noqa: E402
from atoll.manifest.schema import Limits  # noqa: E402
from atoll.runtime.cache import ModuleCache  # noqa: E402
from atoll.runtime.engine import get_engine  # noqa: E402
from atoll.runtime.instance import Instance  # noqa: E402
from atoll.runtime.invocation import CURRENT, Invocation  # noqa: E402
from atoll.runtime.module import WasmModule  # noqa: E402
from atoll.runtime.wasi.context import ProcExit  # noqa: E402
from atoll.worker import Runtime  # noqa: E402

#: Bytes worth writing over others: value types (v128, funcref, externref, the
#: GC and function-reference prefixes), LEB continuation, section ids, opcodes.
INTERESTING = bytes(
    [0x00, 0x01, 0x02, 0x0B, 0x40, 0x60, 0x63, 0x64, 0x6F, 0x70, 0x7B, 0x7F, 0x80, 0xFD, 0xFF]
)

#: Extra seeds beyond the repository's: SIMD, references, and signatures that once aborted.
EXTRA_WAT = [
    '(module (func (export "f") (param v128)) (memory (export "memory") 1) (func (export "_start")))',
    '(module (func (export "f") (param i32) (result v128) (i32x4.splat (local.get 0))))',
    '(module (func (export "f") (param externref) (result funcref) ref.null func))',
    '(module (memory (export "memory") 1) (func (export "s") (param i32 i32) (result i32)'
    " (i32x4.extract_lane 0 (i32x4.add (i32x4.splat (local.get 0)) (i32x4.splat (local.get 1))))))",
    '(module (global (export "g") v128 (v128.const i32x4 1 2 3 4)) (table (export "t") 1 funcref))',
    '(module (import "atoll:log" "write" (func $w (param i32 i32))) (memory (export "memory") 1)'
    ' (data (i32.const 8) "hi") (func (export "_start") (call $w (i32.const 8) (i32.const 2))))',
]

MAX_CORPUS_BYTES = 64 * 1024


def corpus() -> list[bytes]:
    """The seed modules, in a fixed order: tracked .wasm files, then WAT from the tests."""
    files = subprocess.run(
        ["git", "ls-files", "*.wasm"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.split()
    seeds = []
    for name in sorted(files):
        data = (REPO / name).read_bytes()
        if len(data) <= MAX_CORPUS_BYTES:
            seeds.append(data)
    texts = list(EXTRA_WAT)
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and text.lstrip().startswith("(module"):
                texts.append(text)
    for text in texts:
        try:
            seeds.append(bytes(wasmtime.wat2wasm(text)))
        except wasmtime.WasmtimeError:
            continue  # a template with placeholders, or a deliberately broken one
    return seeds


def sections(wasm: bytes) -> list[bytes] | None:
    """The module's top-level sections (id, size and body each), or None if unparsable."""
    out = []
    pos = 8
    while pos < len(wasm):
        start = pos
        pos += 1
        size = shift = 0
        while True:
            if pos >= len(wasm) or shift > 28:
                return None
            byte = wasm[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += size
        if pos > len(wasm):
            return None
        out.append(wasm[start:pos])
    return out


def mutate(rng: random.Random, seeds: list[bytes]) -> tuple[bytes, str]:
    """One mutated module and a word saying how it was made."""
    data = bytearray(rng.choice(seeds))
    how = rng.randrange(7)
    body = range(8, max(9, len(data)))
    if how == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.choice(body) if len(data) > 8 else 0
            if i < len(data):
                data[i] ^= 1 << rng.randrange(8)
        return bytes(data), "bitflip"
    if how == 1:
        i = rng.randint(8, len(data))
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        return bytes(data), "insert"
    if how == 2:
        i = rng.randint(8, len(data))
        del data[i : i + rng.randint(1, 16)]
        return bytes(data), "delete"
    if how == 3:
        for _ in range(rng.randint(1, 3)):
            i = rng.randint(8, max(8, len(data) - 1))
            if i < len(data):
                data[i] = rng.choice(INTERESTING)
        return bytes(data), "interesting"
    ours = sections(bytes(data))
    other = sections(rng.choice(seeds))
    if not ours or not other:
        return bytes(data), "unchanged"
    if how == 4:  # splice: a section of another module replaces or joins ours
        i = rng.randrange(len(ours))
        piece = rng.choice(other)
        if rng.random() < 0.5:
            ours[i] = piece
        else:
            ours.insert(i, piece)
        return bytes(data[:8]) + b"".join(ours), "splice"
    if how == 5:  # drop or duplicate a section
        i = rng.randrange(len(ours))
        if rng.random() < 0.5:
            del ours[i]
        else:
            ours.insert(i, ours[i])
        return bytes(data[:8]) + b"".join(ours), "drop-dup"
    # a section's size byte off by a little
    i = rng.randrange(len(ours))
    section = bytearray(ours[i])
    if len(section) > 1:
        section[1] = (section[1] + rng.choice((-2, -1, 1, 2))) & 0xFF
    ours[i] = bytes(section)
    return bytes(data[:8]) + b"".join(ours), "size"


LIMITS = Limits(cpu_ms=20, memory_mb=16)
ZERO = {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0}


def serve(module: WasmModule, runtime: Runtime) -> None:
    """Instantiate ``module`` in a request and call what can be called; AtollError is fine."""
    invocation = Invocation(runtime.engine, LIMITS, "fuzz", "fuzz")
    token = CURRENT.set(invocation)
    try:
        instance = Instance.create(module, invocation.fresh_store(), invocation, owner=invocation)
        for name in sorted(module.functions)[:8]:
            params = module.functions[name].sig.params
            args = [ZERO.get(kind, 0) for kind in params]
            with contextlib.suppress(AtollError, ProcExit):
                instance.exports[name](*args)
        if module.memory_export is not None:
            instance.memory.size  # noqa: B018 - the lookup is what is tested
    except (AtollError, ProcExit):
        pass
    finally:
        CURRENT.reset(token)
        invocation.close()


def run_case(data: bytes, runtime: Runtime, folder: Path) -> str:
    """Load and serve one module: "served", "refused" or "served-refused"."""
    path = folder / "case.wasm"
    path.write_bytes(data)
    cache = ModuleCache(runtime.engine, None)  # nothing kept between cases
    try:
        module = WasmModule.load("fuzz", path, cache=cache, linker=runtime.linker)
    except AtollError:
        return "refused"
    serve(module, runtime)
    return "served"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--count", type=int, default=2000, help="number of cases")
    parser.add_argument("--time-limit", type=float, default=0, help="stop after S seconds")
    parser.add_argument("--save", type=Path, help="write the (last) case's module here")
    args = parser.parse_args(argv)

    seeds = corpus()
    runtime = Runtime(get_engine(), cache_dir=False)
    tally: dict[str, int] = {}
    failures = 0
    started = time.monotonic()
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(args.start, args.start + args.count):
            if args.time_limit and time.monotonic() - started > args.time_limit:
                break
            data, how = mutate(random.Random(f"{args.seed}:{case}"), seeds)
            if args.save is not None:
                args.save.write_bytes(data)
            try:
                verdict = run_case(data, runtime, Path(tmp))
            except Exception:
                failures += 1
                verdict = "FAILED"
                print(f"case {case} (seed {args.seed}, {how}): not an AtollError", flush=True)
                traceback.print_exc()
            tally[f"{how}/{verdict}"] = tally.get(f"{how}/{verdict}", 0) + 1
            done += 1
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
    print(f"{done} cases from {len(seeds)} seeds in {elapsed:.1f} s; {failures} failed")
    print(summary)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
