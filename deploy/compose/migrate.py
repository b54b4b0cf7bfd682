"""docker-compose's one-shot ``migrate`` service: create the database if needed, then migrate.

SQL Server starts with only its system databases, and ``dfj migrate`` upgrades a database but
does not create one. So this waits for the server named in ``DFJ_DATABASE_URL`` to accept a
login (it takes 10-30 s after the container starts), creates the URL's database when it is
missing, and then hands over to ``python -m dfj_common.cli migrate`` in the same process slot.

It runs inside a service image (it needs pyodbc and ODBC Driver 18); compose mounts it from
``deploy/compose/``. Nothing here is used on Azure, where the database is created by Bicep and
the migrations run as the ``<prefix>-migrate`` Container Apps job.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Final

from sqlalchemy.engine import make_url

WAIT_SECONDS: Final = 180.0
_DATABASE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def master_connection_string(database_url: str) -> tuple[str, str]:
    """The ODBC string for ``master`` on the URL's server, and the database to create."""
    url = make_url(database_url)
    if url.get_backend_name() != "mssql" or not url.host or not url.database:
        raise SystemExit("migrate.py: DFJ_DATABASE_URL must be mssql+pyodbc://user:pw@host/db?...")
    if not _DATABASE_NAME.match(url.database):
        raise SystemExit("migrate.py: the database name must be a plain identifier")
    driver = str(url.query.get("driver", "ODBC Driver 18 for SQL Server"))
    trust = str(url.query.get("TrustServerCertificate", "no"))
    parts = [
        f"Driver={{{driver}}}",
        f"Server=tcp:{url.host},{url.port or 1433}",
        "Database=master",
        f"UID={url.username}",
        f"PWD={{{url.password}}}",
        "Encrypt=yes",
        f"TrustServerCertificate={trust}",
        "Connection Timeout=5",
    ]
    return ";".join(parts), url.database


def create_database(database_url: str, *, wait: float = WAIT_SECONDS) -> None:
    """Wait for the server, then ``CREATE DATABASE`` unless it exists."""
    import pyodbc

    connection_string, database = master_connection_string(database_url)
    deadline = time.monotonic() + wait
    while True:
        try:
            connection = pyodbc.connect(connection_string, autocommit=True)
            break
        except pyodbc.Error as exc:
            if time.monotonic() > deadline:
                message = f"migrate.py: SQL Server did not accept a login: {exc.args[0]}"
                raise SystemExit(message) from None
            print("migrate.py: waiting for SQL Server", flush=True)
            time.sleep(3)
    try:
        # The name was checked above; T-SQL takes no parameter for a database name.
        connection.execute(f"IF DB_ID(N'{database}') IS NULL CREATE DATABASE [{database}]")
    finally:
        connection.close()
    print(f"migrate.py: database {database} is there", flush=True)


def main() -> None:
    """Create the database, then become ``python -m dfj_common.cli migrate``."""
    database_url = os.environ.get("DFJ_DATABASE_URL", "")
    create_database(database_url)
    os.execv(sys.executable, [sys.executable, "-m", "dfj_common.cli", "migrate"])  # noqa: S606


if __name__ == "__main__":
    main()
