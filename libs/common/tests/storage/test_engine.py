"""Engine construction: SQLite pragmas and pooling, the Azure SQL token hook, bad URLs."""

from __future__ import annotations

import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool, StaticPool

from dfj_common.config import Secret, Settings
from dfj_common.errors import ConfigError
from dfj_common.storage import mssql
from dfj_common.storage.engine import SQLITE_BEGIN, create_engine, worker_count


def test_sqlite_file_gets_directory_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    """Every pooled connection runs in WAL mode with foreign keys on and the given busy timeout."""
    path = tmp_path / "deep" / "er" / "dfj.sqlite"
    engine = create_engine(f"sqlite:///{path}", busy_timeout=2.5, pool_size=3)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert path.is_file()
        assert isinstance(engine.pool, QueuePool)
        assert worker_count(engine) == 3
    finally:
        engine.dispose()


def test_settings_database_url_is_used(tmp_path: Path) -> None:
    """create_engine accepts Settings and reads DFJ_DATABASE_URL from it."""
    url = f"sqlite:///{tmp_path / 'from-settings.sqlite'}"
    engine = create_engine(Settings(database_url=Secret(url)))
    try:
        assert engine.url.database == str(tmp_path / "from-settings.sqlite")
    finally:
        engine.dispose()


def test_memory_database_is_one_connection_shared_by_threads() -> None:
    """':memory:' uses a StaticPool, so a table made on one thread is seen on another."""
    engine = create_engine("sqlite://")
    try:
        assert isinstance(engine.pool, StaticPool)
        assert worker_count(engine) == 1
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        seen: list[object] = []

        def look() -> None:
            with engine.connect() as conn:
                seen.append(conn.exec_driver_sql("SELECT COUNT(*) FROM t").scalar())

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
        assert seen == [0]
    finally:
        engine.dispose()


def test_immediate_begin_takes_the_write_lock_at_once(tmp_path: Path) -> None:
    """With the SQLITE_BEGIN option a transaction locks for writing at BEGIN; by default not."""
    path = tmp_path / "lock.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with engine.connect() as conn, conn.begin():
            other.execute("BEGIN IMMEDIATE")  # a deferred BEGIN holds no lock yet
            other.execute("ROLLBACK")
        with engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin(), pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        engine.dispose()


def test_transactions_are_real_so_rollback_undoes_ddl_and_dml(tmp_path: Path) -> None:
    """SQLAlchemy emits BEGIN itself, so a rolled-back transaction leaves no table behind."""
    engine = create_engine(f"sqlite:///{tmp_path / 'tx.sqlite'}")
    try:
        with engine.connect() as conn:
            with conn.begin() as tx:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                tx.rollback()
            assert not sa.inspect(conn).has_table("t")
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["postgresql://h/db", "mssql+pymssql://h/db", "not a url"],
)
def test_unsupported_urls_are_config_errors(url: str) -> None:
    """Only sqlite and mssql+pyodbc are accepted, and the error names the setting."""
    with pytest.raises(ConfigError, match="DFJ_DATABASE_URL"):
        create_engine(url)


@dataclass
class FakeToken:
    token: str


class FakeCredential:
    """Records the scopes asked for and hands out numbered tokens."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> FakeToken:
        self.scopes.append(scopes)
        return FakeToken(f"token-{len(self.scopes)}")


def test_a_credential_is_refused_for_sqlite() -> None:
    """Access tokens only make sense for Azure SQL."""
    with pytest.raises(ConfigError, match="mssql"):
        create_engine("sqlite://", credential=FakeCredential())


@pytest.mark.parametrize(
    "url",
    [
        "mssql+pyodbc://user:pw@srv/db?driver=ODBC+Driver+18+for+SQL+Server",
        "mssql+pyodbc://srv/db?driver=ODBC+Driver+18+for+SQL+Server"
        "&authentication=ActiveDirectoryMsi",
        mssql.odbc_connect_url(
            mssql.build_odbc_connection_string("srv", "db", authentication="ActiveDirectoryMsi")
        ),
    ],
)
def test_a_credential_with_login_keywords_is_refused(url: str, pyodbc_module: ModuleType) -> None:
    """With a token, UID/PWD/Authentication in the URL would fail with FA005: refuse early."""
    with pytest.raises(ConfigError, match="must not set"):
        create_engine(url, credential=FakeCredential())


class Stop(Exception):
    """Ends a connection attempt once the hooks have run."""


def test_each_new_connection_gets_a_fresh_packed_token(pyodbc_module: ModuleType) -> None:
    """do_connect puts a fresh packed token in attrs_before and drops Trusted_Connection."""
    credential = FakeCredential()
    engine = create_engine(
        "mssql+pyodbc://srv.database.windows.net/dfj?driver=ODBC+Driver+18+for+SQL+Server",
        credential=credential,
    )
    seen: list[tuple[str, dict[str, Any]]] = []

    @event.listens_for(engine, "do_connect")
    def capture(dialect: Any, rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        seen.append((cargs[0], dict(cparams)))
        raise Stop

    try:
        for _ in range(2):
            with pytest.raises(Stop):
                engine.connect()
    finally:
        engine.dispose()
    assert credential.scopes == [(mssql.ACCESS_TOKEN_SCOPE,)] * 2
    conn_str, cparams = seen[0]
    keys = {k.lower() for k, _ in mssql.parse_odbc_connection_string(conn_str)}
    assert keys.isdisjoint(mssql.TOKEN_FORBIDDEN_KEYWORDS), conn_str
    assert {"driver", "server", "database"} <= keys
    attrs = cparams["attrs_before"]
    assert attrs == {1256: mssql.pack_access_token("token-1")}
    assert seen[1][1]["attrs_before"] == {1256: mssql.pack_access_token("token-2")}


def test_mssql_without_pyodbc_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where libodbc is missing, asking for mssql fails with a clear configuration error."""
    monkeypatch.setitem(sys.modules, "pyodbc", None)
    with pytest.raises(ConfigError, match="pyodbc"):
        create_engine("mssql+pyodbc://srv/db?driver=ODBC+Driver+18+for+SQL+Server")


def test_sqlite_needs_no_pyodbc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The embedded default works on a machine where pyodbc cannot be imported."""
    monkeypatch.setitem(sys.modules, "pyodbc", None)
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
