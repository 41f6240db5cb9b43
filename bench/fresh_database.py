"""Fresh database per test: running every migration versus copying a template migrated once.

What the test suite's `engine` fixture costs per database test, both ways, on SQLite and PostgreSQL:
"migrate" is what the fixture did until the template (an empty SQLite file or PostgreSQL schema, then
every Alembic migration); "copy" is what it does now (tests/support/databases.py: the migrated file
copied, or the migrations' recorded SQL sent into a new schema). The two are timed alternately in one
process, so a busy machine slows both alike; the ratio is the figure to read. Results: docs/testing.md.

    python -m bench.fresh_database [--rounds 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.common import POSTGRES_URL, machine, median
from bot.store.db import make_engine, upgrade
from tests.support.databases import MigratedTemplates


def migrate_sqlite(folder: Path) -> float:
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}")
    upgrade(engine)
    engine.dispose()
    return time.perf_counter() - started


def copy_sqlite(templates: MigratedTemplates, folder: Path) -> float:
    started = time.perf_counter()
    make_engine(templates.sqlite(folder / f"{uuid.uuid4().hex}.db")).dispose()
    return time.perf_counter() - started


def migrate_postgres() -> float:
    """The old fixture: a schema of its own in the test database, migrated, then dropped."""
    started = time.perf_counter()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
    upgrade(engine)
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
    return time.perf_counter() - started


def copy_postgres(templates: MigratedTemplates) -> float:
    """The new fixture: a schema built by the migrations' recorded SQL, then dropped."""
    started = time.perf_counter()
    url = templates.postgres()
    make_engine(url).dispose()
    templates.drop(url)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        templates = MigratedTemplates(Path(folder), POSTGRES_URL)
        try:
            copy_sqlite(templates, Path(folder))  # the one-time migration of each template, not timed
            copy_postgres(templates)
            times: dict[str, list[float]] = {
                "sqlite migrate": [],
                "sqlite copy": [],
                "postgresql migrate": [],
                "postgresql copy": [],
            }
            for _ in range(args.rounds):
                times["sqlite migrate"].append(migrate_sqlite(Path(folder)))
                times["sqlite copy"].append(copy_sqlite(templates, Path(folder)))
                times["postgresql migrate"].append(migrate_postgres())
                times["postgresql copy"].append(copy_postgres(templates))
        finally:
            templates.close()
    for name, values in times.items():
        print(f"  {name:20} median {median(values) * 1000:6.1f} ms per test ({args.rounds} rounds)")
    for kind in ("sqlite", "postgresql"):
        ratio = median(times[f"{kind} migrate"]) / median(times[f"{kind} copy"])
        print(f"  {kind}: copying is {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
