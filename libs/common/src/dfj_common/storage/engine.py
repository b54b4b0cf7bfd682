"""Engines for the two supported databases: embedded SQLite and Azure SQL over pyodbc.

SQLite (``sqlite:///path``): the parent directory is created; every connection gets
``journal_mode=WAL`` (readers never block the writer), ``synchronous=NORMAL``,
``foreign_keys=ON`` (cascades and references are enforced) and a ``busy_timeout``. SQLAlchemy
takes over ``BEGIN`` from the ``sqlite3`` module (whose legacy mode breaks savepoints and
transactional DDL), and a connection carrying the execution option ``SQLITE_BEGIN`` =
``"IMMEDIATE"`` takes the write lock at ``BEGIN``: a deferred transaction that reads and then
writes can fail with ``SQLITE_BUSY`` at once instead of waiting. File databases use a
``QueuePool`` shared by threads; ``:memory:`` databases a single shared connection
(``StaticPool``), so give them one worker thread.

Azure SQL (``mssql+pyodbc://…``): ODBC Driver 18 with either ``Authentication=…`` in the URL's
``odbc_connect`` (managed identity through the driver), or an Entra access token from an
azure-identity credential (sync API) put into ``attrs_before`` on every new physical connection
through SQLAlchemy's ``do_connect`` event, with ``Trusted_Connection`` (which SQLAlchemy adds to
host-style URLs) stripped. Connections are pre-pinged and recycled after 30 minutes, below
Azure SQL's idle disconnect.

Bound parameters never appear in exception messages (``hide_parameters``): they may be
message text or ciphertext.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, SingletonThreadPool, StaticPool

from dfj_common.config import Settings
from dfj_common.errors import ConfigError
from dfj_common.storage import mssql

__all__ = ["SQLITE_BEGIN", "AccessToken", "TokenCredential", "create_engine", "worker_count"]

#: Execution option read by the SQLite ``begin`` hook: ``"DEFERRED"`` (default) or ``"IMMEDIATE"``.
SQLITE_BEGIN: Final = "dfj_sqlite_begin"
_BEGIN_MODES: Final = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


class AccessToken(Protocol):
    """What ``get_token`` returns (``azure.core.credentials.AccessToken`` fits)."""

    @property
    def token(self) -> str: ...


class TokenCredential(Protocol):
    """A synchronous azure-identity credential (e.g. ``ManagedIdentityCredential``)."""

    def get_token(self, *scopes: str) -> AccessToken: ...


def create_engine(
    settings_or_url: Settings | str | URL,
    *,
    credential: TokenCredential | None = None,
    pool_size: int = 8,
    busy_timeout: float = 5.0,
    echo: bool = False,
) -> Engine:
    """An engine for ``DFJ_DATABASE_URL`` (or the URL given), configured for its backend."""
    if isinstance(settings_or_url, Settings):
        raw: str | URL = settings_or_url.database_url.reveal()
    else:
        raw = settings_or_url
    try:
        url = make_url(raw)
    except sa.exc.ArgumentError as exc:
        raise ConfigError("DFJ_DATABASE_URL is not a valid SQLAlchemy URL") from exc
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    backend = url.get_backend_name()
    if backend == "sqlite":
        if credential is not None:
            raise ConfigError("an access-token credential only applies to mssql+pyodbc URLs")
        return _sqlite_engine(url, pool_size=pool_size, busy_timeout=busy_timeout, echo=echo)
    if backend == "mssql":
        return _mssql_engine(url, credential=credential, pool_size=pool_size, echo=echo)
    raise ConfigError(
        f"DFJ_DATABASE_URL: unsupported database {backend!r} (use sqlite or mssql+pyodbc)"
    )


def worker_count(engine: Engine) -> int:
    """How many threads can use ``engine`` at once without waiting for a connection."""
    pool = engine.pool
    if isinstance(pool, StaticPool | SingletonThreadPool):
        return 1
    if isinstance(pool, QueuePool):
        return max(1, pool.size())
    return 4


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_engine(url: URL, *, pool_size: int, busy_timeout: float, echo: bool) -> Engine:
    database = url.database or ""
    uri = str(url.query.get("uri", "")).lower() in {"true", "1"}
    memory = database in {"", ":memory:"} or (uri and "mode=memory" in database)
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if memory:
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if not uri:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            connect_args={"check_same_thread": False},
        )
    engine = sa.create_engine(url, **kwargs)
    timeout_ms = max(0, int(busy_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN (see the module docstring); sqlite3 still commits correctly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")).upper()
        if mode not in _BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN} must be one of {sorted(_BEGIN_MODES)}")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# --- SQL Server / Azure SQL ---------------------------------------------------------------


def _mssql_engine(
    url: URL, *, credential: TokenCredential | None, pool_size: int, echo: bool
) -> Engine:
    if url.get_driver_name() != "pyodbc":
        raise ConfigError("DFJ_DATABASE_URL: SQL Server is supported through mssql+pyodbc only")
    if credential is not None:
        _refuse_login_keywords(url)
    try:
        engine = sa.create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            pool_pre_ping=True,
            pool_recycle=1800,
            # Azure SQL: VARBINARY(MAX) / NVARCHAR(MAX), never the legacy IMAGE / NTEXT.
            deprecate_large_types=True,
        )
    except ImportError as exc:
        raise ConfigError(
            "DFJ_DATABASE_URL is mssql+pyodbc, but pyodbc cannot be imported "
            "(install unixODBC's libodbc2 and ODBC Driver 18 for SQL Server)"
        ) from exc
    if credential is not None:
        event.listen(engine, "do_connect", AccessTokenInjector(credential))
    return engine


def _refuse_login_keywords(url: URL) -> None:
    keys: set[str] = set()
    odbc_connect = url.query.get("odbc_connect")
    if isinstance(odbc_connect, str):
        keys |= {k.lower() for k, _ in mssql.parse_odbc_connection_string(odbc_connect)}
    keys |= {k.lower() for k in url.query}
    if url.username or url.password:
        keys.add("uid")
    clash = sorted(keys & mssql.TOKEN_FORBIDDEN_KEYWORDS)
    if clash:
        raise ConfigError(
            "DFJ_DATABASE_URL must not set "
            + ", ".join(clash)
            + " when an access-token credential is used"
        )


class AccessTokenInjector:
    """``do_connect`` hook: a fresh Entra token for every new physical connection."""

    def __init__(self, credential: TokenCredential, scope: str = mssql.ACCESS_TOKEN_SCOPE) -> None:
        self._credential = credential
        self._scope = scope

    def __call__(
        self,
        dialect: Dialect,
        conn_rec: ConnectionPoolEntry,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> None:
        if cargs and isinstance(cargs[0], str):
            pairs = mssql.parse_odbc_connection_string(cargs[0])
            kept = [(k, v) for k, v in pairs if k.lower() not in mssql.TOKEN_FORBIDDEN_KEYWORDS]
            cargs[0] = mssql.format_odbc_connection_string(kept)
        token = self._credential.get_token(self._scope).token
        attrs = dict(cparams.get("attrs_before") or {})
        attrs[mssql.SQL_COPT_SS_ACCESS_TOKEN] = mssql.pack_access_token(token)
        cparams["attrs_before"] = attrs
