"""A test's fresh database, copied from the session's template, is exactly what running the migrations builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from bot.store.db import alembic_config, make_engine, upgrade
from tests.support.databases import MigratedTemplates


def schema_of(engine: Engine) -> dict[str, object]:
    """Every table's columns (type, nullability, default), keys, indexes and constraints, as the database says."""
    inspector = inspect(engine)
    schema: dict[str, object] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (
                    tuple(k["constrained_columns"]),
                    k["referred_table"],
                    tuple(k["referred_columns"]),
                    str(k.get("options")),
                )
                for k in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                map(str, ((i["name"], i["column_names"], i["unique"]) for i in inspector.get_indexes(table)))
            ),
            "unique": sorted(
                map(str, ((u["name"], u["column_names"]) for u in inspector.get_unique_constraints(table)))
            ),
            "checks": sorted(map(str, ((c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)))),
        }
    with engine.connect() as connection:
        schema["alembic_version"] = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return schema


@pytest.fixture
def migrated_for_real(database_url: str, migrated_templates: MigratedTemplates, tmp_path: Path):
    """A second database of the same dialect as the test's, migrated by running every migration."""
    url = (
        f"sqlite:///{tmp_path / 'migrated.db'}"
        if database_url.startswith("sqlite")
        else migrated_templates.empty_postgres()
    )
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()
    if not url.startswith("sqlite"):
        migrated_templates.drop(url)


@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_a_copied_database_has_the_schema_the_migrations_build(engine, migrated_for_real):
    assert schema_of(engine) == schema_of(migrated_for_real)


def head_revision(engine: Engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_a_copied_database_starts_empty_at_the_newest_migration(engine):
    with engine.begin() as connection:
        counts = {
            table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
            for table in inspect(connection).get_table_names()
            if table != "alembic_version"
        }
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        # Left behind on purpose: the next test must not see it.
        connection.execute(text("INSERT INTO alembic_version VALUES ('left-by-a-test')"))
    assert set(counts.values()) == {0}
    assert version == [head_revision(engine)]


def test_the_next_test_gets_a_database_without_what_the_last_one_wrote(engine):
    with engine.connect() as connection:
        stamped = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert stamped == [head_revision(engine)]
