"""Storage errors the caller can act on, under :mod:`dfj_common.errors`.

- ``ConstraintViolation`` (a ``PermanentError``) — the write broke a rule of the schema; trying
  again cannot help.
  - ``AlreadyExists`` — a unique key is taken (e.g. the Jira account is linked to someone else).
  - ``UnknownReference`` — the row points at something that does not exist (e.g. a subscription
    for a guild that is not connected to that site).
  - ``InvalidValue`` — a value is too long, missing, or outside its allowed set.

Transient failures (locks, fail-overs, throttling) surface as
:class:`dfj_common.errors.TransientError` once the bounded retries are spent; anything else is the
driver's own exception (a bug to fix, not a condition to handle).

Messages name the table or rule, never the values, which may be personal data.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Final, Literal

from sqlalchemy import exc as sa_exc

from dfj_common.errors import PermanentError
from dfj_common.storage import mssql

__all__ = [
    "AlreadyExists",
    "ConstraintKind",
    "ConstraintViolation",
    "InvalidValue",
    "UnknownReference",
    "classify_integrity_error",
    "constraint_error",
]


class ConstraintViolation(PermanentError):
    """A write broke a rule of the schema."""

    def __init__(self, message: str, *, reason: str = "ConstraintViolation") -> None:
        super().__init__(message, reason=reason)


class AlreadyExists(ConstraintViolation):
    """A unique key is already taken."""

    def __init__(self, message: str, *, reason: str = "AlreadyExists") -> None:
        super().__init__(message, reason=reason)


class UnknownReference(ConstraintViolation):
    """A foreign key points at a row that does not exist (or still has dependants)."""

    def __init__(self, message: str, *, reason: str = "UnknownReference") -> None:
        super().__init__(message, reason=reason)


class InvalidValue(ConstraintViolation):
    """A value is too long, missing, or outside the allowed set."""

    def __init__(self, message: str, *, reason: str = "InvalidValue") -> None:
        super().__init__(message, reason=reason)


ConstraintKind = Literal["unique", "foreign_key", "not_null", "check", "other"]

# SQL Server: 2627 unique/PK constraint, 2601 unique index, 547 FK or CHECK conflict, 515 NULL.
_MSSQL_UNIQUE: Final = frozenset({2627, 2601})
_MSSQL_CONFLICT: Final = 547
_MSSQL_NOT_NULL: Final = 515
_SQLITE_PREFIXES: Final[tuple[tuple[str, ConstraintKind], ...]] = (
    ("UNIQUE constraint failed", "unique"),
    ("PRIMARY KEY constraint failed", "unique"),
    ("FOREIGN KEY constraint failed", "foreign_key"),
    ("NOT NULL constraint failed", "not_null"),
    ("CHECK constraint failed", "check"),
)
_SQLITE_TABLE: Final = re.compile(r"constraint failed: (\w+)\.")


def classify_integrity_error(exc: sa_exc.IntegrityError) -> ConstraintKind:
    """Which kind of rule an integrity error broke, on SQLite (sqlite3 or ODBC) and SQL Server."""
    orig = exc.orig
    message = " ".join(str(a) for a in getattr(orig, "args", ()))
    codes = set(mssql.native_error_codes(exc)) if not isinstance(orig, sqlite3.Error) else set()
    if codes & _MSSQL_UNIQUE:
        return "unique"
    if _MSSQL_CONFLICT in codes:
        return "check" if "CHECK constraint" in message else "foreign_key"
    if _MSSQL_NOT_NULL in codes:
        return "not_null"
    for prefix, kind in _SQLITE_PREFIXES:
        if prefix in message:
            return kind
    return "other"


def constraint_error(exc: sa_exc.IntegrityError, what: str = "write") -> ConstraintViolation:
    """The :class:`ConstraintViolation` for an integrity error (chain it with ``from exc``)."""
    kind = classify_integrity_error(exc)
    table = _table_hint(exc)
    where = f" on {table}" if table else ""
    if kind == "unique":
        return AlreadyExists(f"{what}{where}: a row with this key already exists")
    if kind == "foreign_key":
        return UnknownReference(f"{what}{where}: it refers to a row that does not exist")
    if kind == "not_null":
        return InvalidValue(f"{what}{where}: a required value is missing")
    if kind == "check":
        return InvalidValue(f"{what}{where}: a value is outside its allowed set")
    return ConstraintViolation(f"{what}{where}: a constraint of the schema was violated")


def _table_hint(exc: sa_exc.IntegrityError) -> str | None:
    message = " ".join(str(a) for a in getattr(exc.orig, "args", ()))
    m = _SQLITE_TABLE.search(message)
    if m:
        return m.group(1)
    m = re.search(r"""(?:object|table) '(?:dbo\.)?(\w+)'|table "(?:dbo\.)?(\w+)\"""", message)
    if m:
        return m.group(1) or m.group(2)
    return None
