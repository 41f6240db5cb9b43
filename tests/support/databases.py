"""Fresh databases for tests and benchmarks: the migrations run once, each use gets a copy.

Running every Alembic migration took 80 ms on SQLite and 250 ms on PostgreSQL per test, for some
1,500 database tests. Instead the schema is migrated once per process into a template (a SQLite file;
a PostgreSQL database), and each test gets a copy of it: the file copied, or `CREATE DATABASE ...
TEMPLATE`, about 20 ms. The copy is the migrations' own result, not `create_all`, so the tests still
see exactly the schema a deployment has. Tests of the migrations themselves ask for an empty database
and run them (`tests/bot/test_migrations.py`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, make_url, text

from bot.db import make_engine, upgrade

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


class MigratedTemplates:
    """Migrate once per dialect, on first use, then hand out fresh copies of the migrated schema."""

    def __init__(self, folder: Path, postgres_url: str = POSTGRES_URL) -> None:
        self._folder = folder
        self._postgres_url = postgres_url
        self._sqlite_template: Path | None = None
        self._postgres_template: str | None = None
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
        """Create a PostgreSQL database from the migrated template and return its URL."""
        if self._postgres_template is None:
            name = self._create_database("template0")
            engine = make_engine(self._url_of(name))
            upgrade(engine)
            # CREATE DATABASE ... TEMPLATE refuses while anyone is connected to the template.
            engine.dispose()
            self._postgres_template = name
        return self._url_of(self._create_database(self._postgres_template))

    def empty_postgres(self) -> str:
        """Create an empty PostgreSQL database and return its URL."""
        return self._url_of(self._create_database("template0"))

    def drop(self, url: str) -> None:
        """Drop a database made here, closing whatever connections a test left open."""
        name = make_url(url).database
        with self._admin_engine().connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the PostgreSQL template; the SQLite one goes with its folder."""
        if self._postgres_template is not None:
            self.drop(self._url_of(self._postgres_template))
            self._postgres_template = None
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None

    def _create_database(self, template: str) -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
        with self._admin_engine().connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def _url_of(self, database: str) -> str:
        return make_url(self._postgres_url).set(database=database).render_as_string(hide_password=False)

    def _admin_engine(self) -> Engine:
        if self._admin is None:
            # CREATE and DROP DATABASE cannot run inside a transaction.
            self._admin = create_engine(self._postgres_url, isolation_level="AUTOCOMMIT", pool_size=1)
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
