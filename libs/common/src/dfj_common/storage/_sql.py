"""Statement helpers shared by the repositories (synchronous; they run inside a unit of work)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from dfj_common.storage.errors import AlreadyExists, InvalidValue, classify_integrity_error

__all__ = ["checked", "insert_if_absent", "key_clause", "upsert"]


def checked(table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` after the checks SQLite would skip: lengths and ASCII of ``VARCHAR`` columns.

    SQLite ignores declared lengths and SQL Server silently maps non-ASCII ``VARCHAR`` text to
    ``?``; checking here makes both backends refuse the same values, with the column's name.
    Naive datetimes are refused too, before any statement is built.
    """
    out = dict(values)
    for name, value in out.items():
        column = table.c[name]
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise InvalidValue(
                f"{table.name}.{name} needs an aware datetime (UTC), got a naive one"
            )
        if not isinstance(value, str) or not isinstance(column.type, sa.String):
            continue
        if isinstance(column.type, sa.Unicode | sa.UnicodeText):
            continue
        length = column.type.length
        if length is not None and len(value) > length:
            raise InvalidValue(f"{table.name}.{name} is longer than {length} characters")
        if not value.isascii():
            raise InvalidValue(f"{table.name}.{name} must be ASCII")
    return out


def key_clause(table: sa.Table, key: Mapping[str, Any]) -> sa.ColumnElement[bool]:
    """``col1 = :v1 AND col2 = :v2 …`` for a key mapping."""
    return sa.and_(*(table.c[name] == value for name, value in key.items()))


def insert_if_absent(conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row; False (and nothing changed) when one of its unique keys is taken.

    The insert runs in a savepoint, so a duplicate leaves the surrounding transaction usable on
    both backends; other integrity errors propagate.
    """
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(table).values(checked(table, values)))
    except sa_exc.IntegrityError as exc:
        if classify_integrity_error(exc) == "unique":
            return False
        raise
    return True


def upsert(
    conn: Connection,
    table: sa.Table,
    key: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    insert_only: Mapping[str, Any] | None = None,
) -> bool:
    """Update the row with ``key`` or insert it; True when inserted.

    ``insert_only`` values (e.g. ``created_at``) are written on insert only. Portable: UPDATE,
    then INSERT if nothing matched, then UPDATE again if a concurrent writer inserted the key
    first. If the INSERT collided with a *different* unique key (no row has ``key``), that
    is the caller's conflict: ``AlreadyExists``.
    """
    where = key_clause(table, key)
    updates = checked(table, values)
    if updates and conn.execute(sa.update(table).where(where).values(updates)).rowcount:
        return False
    row = {**key, **(insert_only or {}), **values}
    if insert_if_absent(conn, table, row):
        return True
    if updates:
        if conn.execute(sa.update(table).where(where).values(updates)).rowcount:
            return False
    elif (
        conn.execute(sa.select(sa.literal_column("1", sa.Integer)).where(where)).first() is not None
    ):
        return False
    raise AlreadyExists(f"{table.name}: a unique value of this row belongs to another row")
