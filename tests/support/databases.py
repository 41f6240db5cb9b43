"""Fresh databases for tests and benchmarks: the migrations run once, each use gets a copy.

Running every Alembic migration took 70 ms on SQLite and 200-300 ms on PostgreSQL per test, for some
800 database tests. Instead the migrations run once per process, and each test gets their result:
on SQLite the migrated file is copied (about 1 ms); on PostgreSQL the exact SQL the migrations sent
(recorded while they ran into a scratch schema) is sent again into a new schema of the test's own
(about half the time: no Alembic, no reflection round trips). A database per test cloned with
`CREATE DATABASE ... TEMPLATE` was tried and measured slower: every `DROP DATABASE` forces a
checkpoint (see docs/testing.md). Tests of the migrations themselves ask for an empty database and
run them (`tests/store/test_migrations.py`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from bot.store.db import make_engine, upgrade

POSTGRES_URL = os.environ.get("FOLLOWUP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: Every database made here starts with this, so a leftover from a killed run is easy to find and drop.
PREFIX = "followup_t_"


def postgres_problem(url: str = POSTGRES_URL) -> str | None:
    """Why no PostgreSQL server answers at `url`, or None when one does."""
    try:
        probe = create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect() as connection:
            connection.execute(text("SELECT 1"))
        probe.dispose()
        return None
    except Exception as error:  # noqa: BLE001 - any failure to connect means "no server here"
        return f"{type(error).__name__}: {error}".splitlines()[0]


#: One statement as the migrations sent it: its SQL text and its parameters (a list when it ran for many rows).
Statement = tuple[str, Any]


class MigratedTemplates:
    """Migrate once per dialect, on first use, then hand out fresh copies of the migrated schema."""

    def __init__(self, folder: Path, postgres_url: str = POSTGRES_URL) -> None:
        self._folder = folder
        self._postgres_url = postgres_url
        self._sqlite_template: Path | None = None
        self._postgres_migration: list[Statement] | None = None
        self._schemas: dict[str, str] = {}
        self._admin: Engine | None = None

    def sqlite(self, path: Path) -> str:
        """Copy the migrated SQLite file to `path` and return its URL."""
        if self._sqlite_template is None:
            template = self._folder / "migrated-template.db"
            engine = make_engine(f"sqlite:///{template}")
            upgrade(engine)
            with engine.connect() as connection:
                # Fold the write-ahead log into the file, so the file alone is the whole database.
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            engine.dispose()
            self._sqlite_template = template
        shutil.copyfile(self._sqlite_template, path)
        return f"sqlite:///{path}"

    def postgres(self) -> str:
        """Create a PostgreSQL schema holding what the migrations build and return its URL."""
        statements = self._recorded_migration()
        schema = self._new_schema_name()
        with self._admin_engine().begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            for statement, parameters in statements:
                if parameters:
                    connection.exec_driver_sql(statement, parameters)
                else:
                    connection.exec_driver_sql(statement)
        return self._url_of(schema)

    def empty_postgres(self) -> str:
        """Create an empty PostgreSQL schema and return its URL."""
        schema = self._new_schema_name()
        with self._admin_engine().begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        return self._url_of(schema)

    def drop(self, url: str) -> None:
        """Drop a schema made here, with everything in it."""
        schema = self._schemas.pop(url)
        with self._admin_engine().begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def close(self) -> None:
        """Drop what is left; the SQLite template goes with its folder."""
        for url in list(self._schemas):
            self.drop(url)
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None

    def _recorded_migration(self) -> list[Statement]:
        """Run the migrations once into a scratch schema, keeping every statement they send."""
        if self._postgres_migration is None:
            url = self.empty_postgres()
            scratch = self._schemas[url]
            statements: list[Statement] = []

            def keep(_conn, _cursor, statement, parameters, _context, _executemany):  # noqa: ANN001 - SQLAlchemy's before_cursor_execute signature
                statements.append((statement, parameters))

            engine = make_engine(url)
            event.listen(engine, "before_cursor_execute", keep)
            try:
                upgrade(engine)
            finally:
                engine.dispose()
                self.drop(url)
            named = [statement for statement, _ in statements if scratch in statement]
            if named:
                # Replayed elsewhere, a statement naming the scratch schema would reach into it.
                raise RuntimeError(f"a migration names its schema, so it cannot be replayed: {named[0][:200]}")
            self._postgres_migration = statements
        return self._postgres_migration

    def _new_schema_name(self) -> str:
        return f"{PREFIX}{uuid.uuid4().hex[:12]}"

    def _url_of(self, schema: str) -> str:
        url = f"{self._postgres_url}?options=-csearch_path%3D{schema}"
        self._schemas[url] = schema
        return url

    def _admin_engine(self) -> Engine:
        if self._admin is None:
            self._admin = create_engine(self._postgres_url, pool_size=1)
        return self._admin


@contextmanager
def migrated_database(kind: str, *, postgres_url: str = POSTGRES_URL) -> Iterator[str]:
    """One fresh, migrated database (`kind` "sqlite" or "postgresql") for a run, dropped afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        templates = MigratedTemplates(Path(folder), postgres_url)
        try:
            if kind == "sqlite":
                yield templates.sqlite(Path(folder) / "followup.db")
                return
            url = templates.postgres()
            try:
                yield url
            finally:
                templates.drop(url)
        finally:
            templates.close()
