"""Fixtures of the storage tests: a migrated database per test, on SQLite and (if given) SQL Server.

SQLite is always tested: the schema is migrated once per session into a template file, which each
test copies. SQL Server is tested when ``DFJ_TEST_MSSQL_URL`` holds an ``mssql+pyodbc://`` URL; its
tables are emptied before each test. pyodbc-based tests skip when pyodbc or the SQLite ODBC driver
is missing — except under ``CI``, which installs them, where a missing driver is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dfj_common.clock import ManualClock
from dfj_common.storage import migrate
from dfj_common.storage.database import Database
from dfj_common.storage.engine import create_engine
from dfj_common.storage.repositories import Repositories
from dfj_common.storage.schema import metadata

MSSQL_ENV = "DFJ_TEST_MSSQL_URL"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mssql", id="mssql", marks=pytest.mark.azure),
]


def unavailable(reason: str) -> None:
    """Skip for ``reason`` — or fail, when running in CI, which must have every driver."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is expected to provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pyodbc_module() -> ModuleType:
    """pyodbc, importable (it needs unixODBC's libodbc.so.2)."""
    try:
        import pyodbc
    except ImportError as exc:
        unavailable(f"pyodbc cannot be imported ({exc}); apt-get install unixodbc")
        raise  # unreachable: unavailable() always raises
    module: ModuleType = pyodbc
    return module


@pytest.fixture(scope="session")
def sqlite_odbc(pyodbc_module: ModuleType) -> ModuleType:
    """pyodbc with the SQLite3 ODBC driver registered."""
    drivers: list[str] = pyodbc_module.drivers()
    if "SQLite3" not in drivers:
        unavailable(
            f"the SQLite3 ODBC driver is not registered (have {drivers}); "
            "apt-get install unixodbc libsqliteodbc"
        )
    return pyodbc_module


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, to copy."""
    path = tmp_path_factory.mktemp("template") / "dfj.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def mssql_url() -> str:
    """The SQL Server under test, migrated to head."""
    url = os.environ.get(MSSQL_ENV)
    if not url:
        pytest.skip(f"{MSSQL_ENV} is not set: no SQL Server to test against")
    migrate.upgrade(url)
    return url


def wipe(engine: Engine) -> None:
    """Delete every row, children first."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sa.delete(table))


@pytest.fixture(params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "dfj.sqlite"
        shutil.copyfile(sqlite_template, path)
        eng = create_engine(f"sqlite:///{path}")
    else:
        eng = create_engine(request.getfixturevalue("mssql_url"))
        wipe(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when told to."""
    return ManualClock()


async def no_sleep(seconds: float) -> None:
    """Back-off without waiting."""


@pytest.fixture
async def db(engine: Engine, clock: ManualClock) -> AsyncIterator[Database]:
    """A Database over the backend's engine, with the manual clock."""
    async with Database(engine, clock=clock, sleep=no_sleep) as database:
        yield database


@pytest.fixture
def repos(db: Database) -> Repositories:
    """Every repository over ``db``."""
    return Repositories(db)
