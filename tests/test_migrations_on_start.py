"""What migrates at start: a database at the newest migration starts without Alembic; one behind is upgraded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.store.db import MIGRATIONS, alembic_config, make_engine, migration_heads
from tests.support.ports import free_port
from tests.support.processes import start_followup_run, stop, wait_healthy

#: Runs `followup db upgrade` in a fresh interpreter and reports which of Alembic's modules it loaded.
DB_UPGRADE_LOADING = (
    "import json, sys\n"
    "from bot.cli import main\n"
    "status = main(['db', 'upgrade'])\n"
    "print(json.dumps({'status': status, 'alembic': sorted(m for m in sys.modules if m.split('.')[0] == 'alembic')}))\n"
)


def shipped_heads() -> set[str]:
    """The heads as Alembic itself reads the shipped scripts."""
    return set(ScriptDirectory(str(MIGRATIONS)).get_heads())


def stamped(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def run_env(database_url: str, business_file: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "FOLLOWUP_BUSINESS": str(business_file),
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }


def db_upgrade_in_a_fresh_process(database_url: str, business_file: Path, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", DB_UPGRADE_LOADING],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={
            **run_env(database_url, business_file, free_port()),
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        },
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_heads_read_from_the_scripts_text_are_the_heads_alembic_reads():
    assert migration_heads() == shipped_heads()


def script(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(f'"""{name}"""\nfrom typing import Sequence, Union\n\n{body}\n')


@pytest.mark.parametrize(
    ("scripts", "heads"),
    [
        ({"a": "revision = 'a'\ndown_revision = None", "b": "revision: str = 'b'\ndown_revision: str = 'a'"}, {"b"}),
        (
            {
                "a": "revision = 'a'\ndown_revision = None",
                "b": "revision = 'b'\ndown_revision = 'a'",
                "c": "revision = 'c'\ndown_revision = 'a'",
            },
            {"b", "c"},
        ),
        (
            {
                "a": "revision = 'a'\ndown_revision = None",
                "b": "revision = 'b'\ndown_revision = 'a'",
                "c": "revision = 'c'\ndown_revision = 'a'",
                "m": "revision = 'm'\ndown_revision = ('b', 'c')",
            },
            {"m"},
        ),
        # Not a literal: only Alembic can say, so the check gives way to it.
        ({"a": "revision = 'a'\ndown_revision = None", "b": "revision = 'b'\ndown_revision = PREVIOUS"}, None),
        ({"a": "down_revision = None"}, None),
        ({}, None),
    ],
)
def test_migration_heads_are_the_revisions_no_script_revises(
    tmp_path: Path, scripts: dict[str, str], heads: set[str] | None
):
    (tmp_path / "__init__.py").write_text("")
    for name, body in scripts.items():
        script(tmp_path, name, body)
    assert migration_heads(tmp_path) == (None if heads is None else frozenset(heads))


def test_db_upgrade_on_a_database_at_the_newest_migration_does_not_load_alembic(
    engine, database_url: str, business_file: Path, tmp_path: Path
):
    loaded = db_upgrade_in_a_fresh_process(database_url, business_file, tmp_path)
    assert loaded == {"status": 0, "alembic": []}


def test_db_upgrade_on_an_empty_database_runs_every_migration(database_url: str, business_file: Path, tmp_path: Path):
    loaded = db_upgrade_in_a_fresh_process(database_url, business_file, tmp_path)
    assert loaded["status"] == 0 and "alembic.command" in loaded["alembic"]
    assert set(stamped(database_url)) == shipped_heads()


def test_followup_run_on_a_database_at_the_newest_migration_starts_without_migrating(
    engine, database_url: str, business_file: Path, tmp_path: Path
):
    port, log = free_port(), tmp_path / "run.log"
    process = start_followup_run(run_env(database_url, business_file, port), log, cwd=tmp_path)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log=log)
    finally:
        stop(process)
    output = log.read_text()
    assert "the newest migration: nothing to migrate" in output
    assert "alembic" not in output
    assert set(stamped(database_url)) == shipped_heads()


@pytest.mark.filterwarnings("ignore:.*expression-based index")  # SQLite's reflection while downgrading
def test_followup_run_upgrades_a_database_one_migration_behind_before_it_serves(
    engine, database_url: str, business_file: Path, tmp_path: Path
):
    from alembic import command

    scripts = ScriptDirectory.from_config(alembic_config(engine))
    head = scripts.get_revision(scripts.get_current_head())
    assert isinstance(head.down_revision, str)
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, head.down_revision)
    engine.dispose()
    port, log = free_port(), tmp_path / "run.log"
    process = start_followup_run(run_env(database_url, business_file, port), log, cwd=tmp_path)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log=log)
        assert stamped(database_url) == [head.revision]
    finally:
        stop(process)
    assert f"Running upgrade {head.down_revision} -> {head.revision}" in log.read_text()
