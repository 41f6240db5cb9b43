"""Many rows in one statement on PostgreSQL: each column's values as one array, unnested by the statement.

psycopg's executemany sends a statement a row (pipelined: one round trip, but a Bind and Execute a row
for the server, and a row's parameters adapted one by one in Python). Profiled under 2,000 texts due at
once, a group's recording spent most of its time there; the same rows as one array a column are one
statement, adapted and executed once (about a third of the client's CPU a row, measured on this
machine). SQLite's executemany is a C loop in-process and stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import Insert, TableValuedAlias
from sqlalchemy.types import TypeEngine

#: Builds a target column's value from the unnested rows (`rows.c.<name>`), for a value worked out in SQL.
Derived = Callable[[TableValuedAlias], ColumnElement[Any]]


class ManyRows:
    """An INSERT of many rows into `table`: one executemany on SQLite, one unnesting statement on PostgreSQL.

    `varying` are the columns whose values differ a row (sent as one array each); `same` those every
    row of a call has alike (sent once; a call whose rows differ there is sent as an executemany, as
    on SQLite). `row_only` are values a row carries that are no column of the table (with their types),
    for `derived`: target columns computed from the row's values. Rows are inserted
    in the order given (the statement orders by each value's place in its array).
    """

    def __init__(
        self,
        table: Table,
        varying: Sequence[str],
        same: Sequence[str] = (),
        *,
        derived: Mapping[str, Derived] | None = None,
        row_only: Mapping[str, TypeEngine[Any]] | None = None,
        plain: Insert | None = None,
    ):
        self.table = table
        row_only = dict(row_only or {})
        self.varying = tuple(varying)
        self.same = tuple(same)
        #: The executemany statement (SQLite, or rows that differ in a `same` column).
        self.plain = plain if plain is not None else insert(table)
        types = {**{name: table.c[name].type for name in self.varying if name in table.c}, **row_only}
        arrays = [bindparam(f"{name}_values", type_=ARRAY(types[name])) for name in self.varying]
        rows = func.unnest(*arrays).table_valued(*self.varying, with_ordinality="place").render_derived(name="rows")
        targets: list[str] = [name for name in self.varying if name not in row_only]
        values: list[ColumnElement[Any]] = [rows.c[name] for name in targets]
        for name in self.same:
            targets.append(name)
            values.append(bindparam(f"{name}_value", type_=table.c[name].type))
        for name, build in (derived or {}).items():
            targets.append(name)
            values.append(build(rows))
        self.unnesting = insert(table).from_select(targets, select(*values).order_by(rows.c.place))

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        first = rows[0]
        if (
            connection.dialect.name != "postgresql"
            or len(rows) == 1
            or any(row[name] != first[name] for row in rows for name in self.same)
        ):
            connection.execute(self.plain, list(rows))
            return
        params = {f"{name}_values": [row[name] for row in rows] for name in self.varying}
        params.update({f"{name}_value": first[name] for name in self.same})
        connection.execute(self.unnesting, params)
