"""The supervisor's own steps, without starting serving processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from atoll.control.supervisor import ServeOptions, Supervisor


def _journal_mode(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        db.close()


def test_the_shared_sqlite_files_are_made_in_wal_mode_before_the_processes_start(
    tmp_path: Path,
) -> None:
    # Serving processes that start together and each turn a new file to WAL can fail
    # with "database is locked" (SQLite does not wait for that lock): the supervisor
    # makes the files first, so the processes only open them.
    supervisor = Supervisor(ServeOptions(state=tmp_path / "state"))
    supervisor.state.prepare()
    asyncio.run(supervisor._prepare_files())
    assert _journal_mode(tmp_path / "state" / "cron.sqlite") == "wal"
    assert _journal_mode(tmp_path / "state" / "kv.sqlite3") == "wal"


def test_a_kv_store_elsewhere_is_left_to_its_backend(tmp_path: Path) -> None:
    supervisor = Supervisor(ServeOptions(state=tmp_path / "state", kv="memory"))
    supervisor.state.prepare()
    asyncio.run(supervisor._prepare_files())
    assert (tmp_path / "state" / "cron.sqlite").is_file()
    assert not (tmp_path / "state" / "kv.sqlite3").exists()
