"""The post-deploy SQL users script, and the helper scripts compose mounts into containers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
_CREATE = re.compile(
    r"IF DATABASE_PRINCIPAL_ID\(N'\$\((\w+)\)'\) IS NULL\s+CREATE USER \[\$\(\1\)\] "
    r"FROM EXTERNAL PROVIDER;"
)
_ROLE = re.compile(r"ALTER ROLE (\w+) ADD MEMBER \[\$\((\w+)\)\];")


def _sql_lines() -> str:
    text = (ROOT / "deploy" / "sql" / "create-users.sql").read_text()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def test_sql_script_creates_one_user_per_identity(main_bicep: dict[str, Any]) -> None:
    """A user FROM EXTERNAL PROVIDER for each identity the deployment's sqlUsers output names."""
    created = set(_CREATE.findall(_sql_lines()))
    outputs = main_bicep["outputs"]["sqlUsers"]["value"]
    expected = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper() + "_IDENTITY" for key in outputs}
    assert created == expected


def test_sql_roles_are_least_privilege() -> None:
    """The gateway only reads; the workers read and write; only the migrate identity does DDL."""
    roles: dict[str, set[str]] = {}
    for role, who in _ROLE.findall(_sql_lines()):
        roles.setdefault(who, set()).add(role)
    assert roles.pop("GATEWAY_IDENTITY") == {"db_datareader"}
    assert roles.pop("MIGRATE_IDENTITY") == {"db_ddladmin", "db_datareader", "db_datawriter"}
    assert roles == {
        name: {"db_datareader", "db_datawriter"}
        for name in ("JIRA_WORKER_IDENTITY", "DISCORD_WORKER_IDENTITY", "LINKER_IDENTITY")
    }
    assert "db_owner" not in _sql_lines()


@pytest.fixture(name="migrate")
def _migrate(load_script: Callable[[Path], ModuleType]) -> ModuleType:
    return load_script(COMPOSE_DIR / "migrate.py")


def test_migrate_connects_to_master_of_the_database_url(
    migrate: ModuleType, compose: dict[str, Any]
) -> None:
    """From compose's own DFJ_DATABASE_URL: the same server and login, database master."""
    raw = compose["services"]["migrate"]["environment"]["DFJ_DATABASE_URL"]
    url = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", raw)
    connection_string, database = migrate.master_connection_string(url)
    pairs = dict(part.split("=", 1) for part in connection_string.split(";"))
    assert database == "dfj"
    assert pairs["Server"] == "tcp:sqlserver,1433"
    assert pairs["Database"] == "master"
    assert pairs["Driver"] == "{ODBC Driver 18 for SQL Server}"
    assert pairs["UID"] == "sa"
    assert pairs["TrustServerCertificate"] == "yes"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/dfj.sqlite",
        "mssql+pyodbc://sa:pw@sqlserver/dfj];DROP DATABASE x;--?driver=x",
        "mssql+pyodbc://sa:pw@sqlserver/?driver=x",
    ],
)
def test_migrate_refuses_what_it_cannot_create(migrate: ModuleType, url: str) -> None:
    """Only SQL Server URLs with a plain database name (it is spliced into T-SQL)."""
    with pytest.raises(SystemExit):
        migrate.master_connection_string(url)


def test_helper_scripts_import_without_their_runtime(
    load_script: Callable[[Path], ModuleType],
) -> None:
    """smoke.py and sandbox.py load (their heavy imports are deferred) and expose their checks."""
    smoke = load_script(COMPOSE_DIR / "smoke.py")
    assert [c.__name__ for c in smoke.CHECKS] == [
        "gateway_ready",
        "workers_alive",
        "descriptor",
        "interactions",
    ]
    sandbox = load_script(COMPOSE_DIR / "sandbox.py")
    assert sandbox.LISTEN_PORT != sandbox.PAGE_PORT
