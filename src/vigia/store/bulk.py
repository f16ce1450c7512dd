"""Many rows in one statement on PostgreSQL.

The values travel as one array per column and `unnest` turns them back into rows: one
statement to bind and execute, where an executemany sends one per row. A settlement of
fifty stage runs writes its runs, its jobs and its events in three statements this way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_STATEMENTS: dict[tuple[str, str, tuple[str, ...]], str] = {}


def insert_rows(connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same columns)."""
    if not rows:
        return
    names = tuple(rows[0])
    statement = _STATEMENTS.get(("insert", table.name, names))
    if statement is None:
        arrays = ", ".join(_array(table.c[name], name) for name in names)
        statement = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"
        _STATEMENTS[("insert", table.name, names)] = statement
    connection.exec_driver_sql(statement, _columns(table, names, rows))


def update_rows(
    connection: Connection,
    table: sa.Table,
    key: sa.Column[Any],
    shape: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Update the rows ``key`` names, each with its own values of the columns ``shape``
    names (every row has them all, and its key)."""
    names = (key.name, *shape)
    statement = _STATEMENTS.get(("update", table.name, names))
    if statement is None:
        assignments = ", ".join(f"{name} = v.{name}" for name in shape)
        arrays = ", ".join(_array(table.c[name], name) for name in names)
        statement = (
            f"UPDATE {table.name} AS t SET {assignments} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE t.{key.name} = v.{key.name}"
        )
        _STATEMENTS[("update", table.name, names)] = statement
    connection.exec_driver_sql(statement, _columns(table, names, rows))


def _array(column: sa.Column[Any], name: str) -> str:
    # Without the length: an explicit cast to VARCHAR(n) would cut a longer value short
    # instead of refusing it, as the column itself does.
    kind = re.sub(r"\(\d+\)$", "", column.type.compile(dialect=_DIALECT))
    return f"%({name})s::{kind}[]"


def _columns(table: sa.Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for name in names:
        convert = _CONVERTERS.get((table.name, name))
        if convert is None:
            convert = _CONVERTERS[(table.name, name)] = _converter(table.c[name])
        columns[name] = [None if row[name] is None else convert(row[name]) for row in rows]
    return columns


_CONVERTERS: dict[tuple[str, str], Callable[[Any], Any]] = {}


def _converter(column: sa.Column[Any]) -> Callable[[Any], Any]:
    """Each array holds one type: psycopg picks it from the first element, so an int among
    floats (a progress of 1) is made a float, and documents are wrapped as JSONB."""
    kind = column.type.compile(dialect=_DIALECT)
    if kind == "JSONB":
        return Jsonb
    if kind in ("FLOAT", "DOUBLE PRECISION", "REAL"):
        return float
    if kind in ("INTEGER", "BIGINT", "SMALLINT"):
        return int
    return lambda value: getattr(value, "value", value)  # an enum's value, else as it is
