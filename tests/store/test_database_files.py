"""The SQLite database and its write-ahead log are readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from bot.store.db import make_engine, upgrade


def test_a_new_database_and_its_wal_and_shm_files_are_private(tmp_path: Path):
    old_umask = os.umask(0o022)  # the usual umask: files readable by everyone unless the bot says otherwise
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'followup.db'}")
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO processed_deliveries (business, provider, delivery_id, received_at) "
                    "VALUES ('main', 'test', 'x', '2026-11-25 15:00:00')"
                )
            )
        with engine.connect() as connection:  # a reader keeps the -wal and -shm files open
            connection.execute(text("SELECT count(*) FROM processed_deliveries"))
            files = sorted(p.name for p in (tmp_path / "data").iterdir())
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()}
        engine.dispose()
    finally:
        os.umask(old_umask)
    assert files == ["followup.db", "followup.db-shm", "followup.db-wal"]
    assert modes == {name: 0o600 for name in files}


def test_an_existing_database_keeps_its_owners_permissions(tmp_path: Path):
    database = tmp_path / "followup.db"
    database.touch(mode=0o640)
    database.chmod(0o640)
    make_engine(f"sqlite:///{database}").dispose()
    assert stat.S_IMODE(database.stat().st_mode) == 0o640
