"""The database: engine, sessions, and migrations to the current schema."""

from __future__ import annotations

import ast
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event, inspect, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from bot.core.business import SINGLE_BUSINESS_SLUG
from bot.store.webhook_events import RECEIVERS_KEY

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger(__name__)


def normalize_database_url(url: str) -> str:
    """Accept the URL forms hosting providers hand out and pick the installed driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run through `Session.execute` changed.

    Such a statement's result is always a CursorResult, which has the count; `Session.execute` is typed
    to return any Result, so the count is read through this one cast.
    """
    return cast(CursorResult[Any], result).rowcount


def create_private_file(database: str | None) -> None:
    """Create a new SQLite file readable by its owner only: it holds patients' names, numbers and messages.

    SQLite gives the -wal and -shm files it creates the database file's permissions, so they are
    private too. An existing file keeps the permissions its owner gave it.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process created it first, with these same permissions


#: Connections kept for the web handlers (their thread pool runs many more, but most wait on the network).
WEB_CONNECTIONS = 10


#: How long an HTTP request waits for a database connection before it is answered 503 (Retry-After).
WEB_POOL_TIMEOUT = 1.0


def make_web_engine(engine: Engine) -> Engine:
    """A pool of the same database for the HTTP routes only, so a request never waits behind the dispatcher.

    Its connections are WEB_CONNECTIONS and as many again at a burst; when all are busy a request
    waits WEB_POOL_TIMEOUT and then gets `sqlalchemy.exc.TimeoutError` (the routes answer 503).
    """
    if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return engine  # an in-memory database exists once, in its own engine
    return make_engine(
        engine.url.render_as_string(hide_password=False),
        threads=WEB_CONNECTIONS,
        pool_size=WEB_CONNECTIONS,
        pool_timeout=WEB_POOL_TIMEOUT,
    )


def make_engine(url: str, *, threads: int = 10, pool_size: int | None = None, pool_timeout: float = 30.0) -> Engine:
    """Build an engine tuned for the embedded SQLite default or for PostgreSQL.

    `threads` is how many of the bot's own threads (senders, the fast lane) may hold a connection
    at once: each group of sends in flight holds one, and a pool smaller than that made them wait
    for each other until the pool's timeout.
    """
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        create_private_file(make_url(url).database)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size or WEB_CONNECTIONS,
            max_overflow=threads,
            pool_timeout=pool_timeout,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]  # the DB-API connection and record are untyped in SQLAlchemy's stubs
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL lets the web handlers read while the scheduler writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Deleted and overwritten content is zeroed, not left in free space: erasure (`followup
            # forget`) must leave no trace in the file.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size or WEB_CONNECTIONS,
        max_overflow=threads if pool_size else max(threads, 20),
        pool_timeout=pool_timeout,
    )


def make_session_factory(engine: Engine, *, webhook_receivers: tuple[str, ...] = ()) -> sessionmaker[Session]:
    """Sessions for the use cases; the outbound webhook receivers ride along so events queue where they happen."""
    return sessionmaker(engine, expire_on_commit=False, info={RECEIVERS_KEY: webhook_receivers})


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, *, business: str = SINGLE_BUSINESS_SLUG) -> None:
    """Bring the schema to the newest migration; safe to run on every start.

    `business` is the slug of the business the rows already stored belong to, when a migration gives
    them one (0014): the deployment's single business until then.

    Alembic's machinery (some 10 MiB resident for the life of the process) is loaded only when the
    schema is behind: a database already at the newest migration, every start but the first after an
    upgrade, is told apart by `schema_is_current` without it.
    """
    if schema_is_current(engine):
        return
    from alembic import command

    config = alembic_config(engine)
    config.attributes["business"] = business
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by building a new copy and dropping the old one, and dropping a table
            # others refer to fails with foreign keys on. The pragma does nothing inside a transaction, so
            # it is set before one begins; every reference is checked before the migration commits.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            # The driver begins a transaction only before a row is written, so a migration's first
            # CREATE, DROP or ALTER would commit at once: begin it here instead, so a migration that
            # fails (or breaks a reference) leaves nothing of itself behind.
            driver = cast(sqlite3.Connection, connection.connection.driver_connection)
            implicit = driver.isolation_level
            driver.isolation_level = None
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN")
                if connection.dialect.name == "postgresql":
                    # Several processes may start at once: one migrates, the others wait.
                    connection.execute(text("SELECT pg_advisory_xact_lock(727001)"))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise MigrationBrokeReferences(broken)
        finally:
            if sqlite:
                driver.isolation_level = implicit
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


class MigrationBrokeReferences(RuntimeError):
    """A migration left rows referring to rows that are not there: it was rolled back, the database is as it was."""

    def __init__(self, broken: Sequence[Any]) -> None:
        shown = ", ".join(f"{row[0]} row {row[1]} -> {row[2]}" for row in broken[:5])
        super().__init__(
            f"the migration would leave {len(broken)} row(s) referring to rows that are not there ({shown}); "
            "it was rolled back and the database is as it was: mend or remove those rows, then upgrade again"
        )


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is stamped with exactly the migration scripts' heads (so upgrading would do nothing)."""
    heads = migration_heads()
    if heads is None:
        return False
    with engine.connect() as connection:
        stamped = stamped_revisions(connection)
    if stamped == heads:
        log.info("database schema at %s, the newest migration: nothing to migrate", ", ".join(sorted(heads)))
        return True
    return False


def stamped_revisions(connection: Connection) -> frozenset[str]:
    """The revisions Alembic recorded in the database (none for a database never migrated)."""
    if not inspect(connection).has_table("alembic_version"):
        return frozenset()
    return frozenset(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def migration_heads(versions: Path = MIGRATIONS / "versions") -> frozenset[str] | None:
    """The newest revisions among the migration scripts, read from their text as Alembic reads them.

    A head is a revision no other script revises. None when a script's `revision` or `down_revision`
    is not a plain literal: then only Alembic can say, and the caller asks it.
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in versions.glob("*.py"):
        if script.name == "__init__.py" or script.name.startswith(".#"):
            continue  # what Alembic leaves out too
        values = _literal_assignments(script, ("revision", "down_revision"))
        if values is None:
            return None
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            revised.add(down)
        elif isinstance(down, (tuple, list)) and all(isinstance(d, str) for d in down):
            revised.update(down)
        elif down is not None:
            return None
    return frozenset(revisions - revised) or None


def _literal_assignments(script: Path, names: tuple[str, ...]) -> dict[str, object] | None:
    """The module-level assignments to `names` in a script, as values; None if one is not a literal."""
    values: dict[str, object] = {}
    target: ast.expr
    for node in ast.parse(script.read_text(encoding="utf-8"), str(script)).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    return values


def is_reachable(engine: Engine) -> bool:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return True
