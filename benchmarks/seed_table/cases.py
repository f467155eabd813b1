"""The seed table's rows: deterministic inputs and what each kernel is asked to do."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Case", "make_cases", "write_inputs"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One row: ``kernel`` (sha256, resize, fib, json) run on ``data`` with ``params``."""

    key: str  # a short id, e.g. "fib45"
    label: str  # the row's title in the table
    kernel: str
    data: bytes = b""
    params: tuple[int, ...] = ()
    #: Columns too slow to run at this size (pure Python fib(45) would take minutes).
    skip: frozenset[str] = field(default_factory=frozenset)

    @property
    def input_name(self) -> str:
        return f"{self.key}.bin"


def random_bytes(n: int, seed: str) -> bytes:
    """``n`` deterministic pseudo-random bytes."""
    return hashlib.shake_128(seed.encode()).digest(n)


def json_text(size: int, seed: int = 45) -> bytes:
    """A JSON document of about ``size`` bytes: records with strings, numbers, nesting, escapes."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "émile", 'quote"d', "tab\there", "日本", "x" * 12]
    records: list[dict[str, object]] = []
    total = 2
    while total < size:
        record = {
            "id": len(records),
            "name": f"{rng.choice(words)} {rng.choice(words)}",
            "score": round(rng.uniform(-1000, 1000), 3),
            "big": rng.randrange(10**12),
            "exp": float(f"{rng.uniform(1, 9):.2f}e{rng.randrange(-20, 20)}"),
            "active": rng.random() < 0.5,
            "parent": None if rng.random() < 0.3 else rng.randrange(len(records) + 1),
            "tags": [rng.choice(words) for _ in range(rng.randrange(5))],
            "point": {"x": rng.randrange(-500, 500), "y": rng.random(), "z": []},
        }
        text = json.dumps(record, indent=1)
        records.append(record)
        total += len(text) + text.count("\n") + 3  # one more space per line inside the list, ",\n "
    return json.dumps(records, indent=1).encode()


def make_cases(quick: bool) -> list[Case]:
    """The rows: the seed article's kernels at its sizes (smaller where ``quick`` says)."""
    sw, sh, dw, dh = (960, 540, 480, 270) if quick else (3840, 2160, 1920, 1080)
    image = random_bytes(sw * sh * 4, "image")
    cases = [
        Case("sha256", "SHA-256 of 1 MiB", "sha256", random_bytes(MIB, "sha256")),
        Case(
            "resize",
            f"RGBA resize {sw}x{sh} → {dw}x{dh}, bilinear",
            "resize",
            image,
            (sw, sh, dw, dh),
        ),
        Case("fib32", "fib(32), naive recursion", "fib", params=(32,)),
    ]
    if not quick:
        cases.append(
            Case("fib45", "fib(45), naive recursion", "fib", params=(45,), skip=frozenset({"pure"}))
        )
    cases.append(Case("json", "JSON parse of 2 MiB, count values", "json", json_text(2 * MIB)))
    return cases


def write_inputs(cases: list[Case], folder: Path) -> None:
    """Write each case's input to ``folder`` for the native and node columns."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        if case.data:
            (folder / case.input_name).write_bytes(case.data)
