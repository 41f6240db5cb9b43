"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.models import Base


def test_the_migrated_schema_matches_the_models(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_touches_are_indexed_by_enrollment_and_position_for_the_claim(engine):
    indexes = {index["name"]: index["column_names"] for index in inspect(engine).get_indexes("touches")}
    assert indexes["ix_touches_enrollment_position"] == ["enrollment_id", "position"]
