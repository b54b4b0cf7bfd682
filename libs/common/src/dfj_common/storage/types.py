"""Column types that behave the same on SQLite and SQL Server.

- :class:`UtcDateTime` stores an aware datetime as naive UTC (``DATETIME2(6)`` on SQL Server,
  ISO text on SQLite, which therefore sorts and compares correctly) and hands back aware UTC
  datetimes. Naive datetimes are refused: their meaning depends on the machine.
- :class:`JsonText` stores JSON as Unicode text with one canonical serialisation (sorted keys,
  no whitespace, no NaN), so both backends hold the same bytes and no JSON support in the
  database is needed. Values must be JSON data (dict, list, str, int, float, bool, None).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Dialect

__all__ = ["JsonText", "UtcDateTime", "dumps_json"]


def dumps_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (what :class:`JsonText` stores)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime, stored as naive UTC."""

    impl = sa.DateTime(timezone=False).with_variant(
        mssql.DATETIME2(precision=6),  # type: ignore[no-untyped-call]
        "mssql",
    )
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given; pass an aware datetime (UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonText(sa.types.TypeDecorator[Any]):
    """JSON data stored as canonical Unicode text."""

    impl = sa.UnicodeText
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dumps_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)
