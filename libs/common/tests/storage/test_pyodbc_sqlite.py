"""Real pyodbc against unixODBC with the SQLite3 ODBC driver: binding and error mapping.

These prove the parts of the SQL Server path that do not need SQL Server: pyodbc's qmark binding
of text, bytes and NULL, and that the error helpers read real pyodbc exceptions. They skip when
the driver is missing, and fail instead under ``CI``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from dfj_common.storage import mssql
from dfj_common.storage.database import is_transient_db_error
from dfj_common.storage.errors import classify_integrity_error


@pytest.fixture
def odbc(sqlite_odbc: ModuleType, tmp_path: Path) -> Iterator[Any]:
    """A pyodbc connection to a fresh SQLite file through the SQLite3 ODBC driver."""
    path = tmp_path / "odbc.sqlite"
    conn = sqlite_odbc.connect(f"Driver={{SQLite3}};Database={path}", autocommit=False)
    try:
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT, data BLOB, note TEXT)")
        conn.commit()
        yield conn
    finally:
        conn.close()


def test_the_driver_is_registered_with_unixodbc(sqlite_odbc: ModuleType) -> None:
    """pyodbc sees the SQLite3 driver and speaks qmark, as SQLAlchemy's pyodbc dialects expect."""
    assert "SQLite3" in sqlite_odbc.drivers()
    assert sqlite_odbc.paramstyle == "qmark"


def test_qmark_binding_round_trips_unicode_bytes_and_null(odbc: Any) -> None:
    """Text with non-ASCII characters, arbitrary bytes and None come back unchanged."""
    blob = bytes(range(256))
    odbc.execute(
        "INSERT INTO t (id, name, data, note) VALUES (?, ?, ?, ?)", "1", "Zoë 課題 ✓", blob, None
    )
    odbc.commit()
    row = odbc.execute("SELECT name, data, note FROM t WHERE id = ?", "1").fetchone()
    assert row.name == "Zoë 課題 ✓"
    assert bytes(row.data) == blob
    assert row.note is None


def test_parameters_are_not_interpolated(odbc: Any) -> None:
    """A quote in a bound value is data, not SQL."""
    odbc.execute("INSERT INTO t (id, name) VALUES (?, ?)", "2", "x'); DROP TABLE t; --")
    odbc.commit()
    assert odbc.execute("SELECT name FROM t WHERE id = ?", "2").fetchval() == (
        "x'); DROP TABLE t; --"
    )
    assert odbc.execute("SELECT COUNT(*) FROM t").fetchval() == 1


def test_a_bad_statement_is_a_permanent_error_with_native_codes(
    odbc: Any, sqlite_odbc: ModuleType
) -> None:
    """A real 'no such table' error carries SQLSTATE and native code, and is not transient."""
    with pytest.raises(sqlite_odbc.Error) as caught:
        odbc.execute("SELECT * FROM nope")
    exc = caught.value
    assert mssql.sqlstate(exc) is not None
    assert mssql.native_error_codes(exc), exc.args
    assert 1 in mssql.native_error_codes(exc)  # SQLITE_ERROR
    assert not mssql.is_transient(exc)
    assert not is_transient_db_error(sa_exc.ProgrammingError("SELECT", None, exc))


def test_a_constraint_violation_is_classified_and_not_transient(
    odbc: Any, sqlite_odbc: ModuleType
) -> None:
    """A real duplicate-key error maps to 'unique', with SQLite's constraint code, no retry."""
    odbc.execute("INSERT INTO t (id) VALUES (?)", "dup")
    odbc.commit()
    with pytest.raises(sqlite_odbc.Error) as caught:
        odbc.execute("INSERT INTO t (id) VALUES (?)", "dup")
    odbc.rollback()
    exc = caught.value
    assert 19 in mssql.native_error_codes(exc), exc.args  # SQLITE_CONSTRAINT
    assert not mssql.is_transient(exc)
    wrapped = sa_exc.IntegrityError("INSERT", None, exc)
    assert classify_integrity_error(wrapped) == "unique"
    assert not is_transient_db_error(wrapped)
