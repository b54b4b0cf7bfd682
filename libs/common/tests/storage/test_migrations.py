"""The packaged migrations: upgrade/downgrade, agreement with schema.py, offline SQL for mssql."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlglot import exp

from dfj_common.storage import migrate
from dfj_common.storage.engine import create_engine
from dfj_common.storage.schema import metadata

TABLES = set(metadata.tables)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet, in a directory that does not either."""
    return f"sqlite:///{tmp_path / 'var' / 'dfj.sqlite'}"


@pytest.fixture
def migrated(sqlite_template: Path) -> Iterator[Engine]:
    """An engine on a SQLite file migrated to head."""
    engine = create_engine(f"sqlite:///{sqlite_template}")
    yield engine
    engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_records_head(sqlite_url: str) -> None:
    """A fresh database upgrades to head with every table of the schema."""
    assert migrate.current(sqlite_url) is None
    migrate.upgrade(sqlite_url)
    assert migrate.current(sqlite_url) == migrate.head() == "0003"
    assert _tables(sqlite_url) == TABLES | {"alembic_version"}


def test_downgrade_to_base_drops_everything_and_upgrade_again_works(sqlite_url: str) -> None:
    """The downgrade really undoes the upgrade, so the cycle can be repeated."""
    migrate.upgrade(sqlite_url)
    migrate.downgrade(sqlite_url, "base")
    assert migrate.current(sqlite_url) is None
    assert _tables(sqlite_url) == {"alembic_version"}
    migrate.upgrade(sqlite_url)
    assert _tables(sqlite_url) == TABLES | {"alembic_version"}


def test_upgrade_accepts_an_engine_and_is_idempotent(sqlite_url: str) -> None:
    """Upgrading an up-to-date database through an existing engine changes nothing."""
    migrate.upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current(engine) == "0003"
    finally:
        engine.dispose()


def test_migration_matches_the_models(migrated: Engine) -> None:
    """Autogenerate finds no difference between schema.py and the migrated database."""
    with migrated.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []


def _norm(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def test_check_constraints_and_cascades_match_the_models(migrated: Engine) -> None:
    """What autogenerate skips — CHECK constraints, ON DELETE, unique names — also agree."""
    inspector = sa.inspect(migrated)
    for table in metadata.sorted_tables:
        model_checks = {
            (str(c.name), _norm(str(c.sqltext)))
            for c in table.constraints
            if isinstance(c, sa.CheckConstraint)
        }
        db_checks = {
            (str(c["name"]), _norm(c["sqltext"]))
            for c in inspector.get_check_constraints(table.name)
        }
        assert db_checks == model_checks, table.name
        model_fks = {
            (str(fk.name), tuple(fk.column_keys), fk.referred_table.name, fk.ondelete)
            for fk in table.foreign_key_constraints
        }
        db_fks = {
            (
                fk["name"],
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                fk["options"].get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(table.name)
        }
        assert db_fks == model_fks, table.name
        model_uniques = {
            (str(u.name), tuple(c.name for c in u.columns))
            for u in table.constraints
            if isinstance(u, sa.UniqueConstraint)
        }
        db_uniques = {
            (u["name"], tuple(u["column_names"]))
            for u in inspector.get_unique_constraints(table.name)
        }
        assert db_uniques == model_uniques, table.name
        assert inspector.get_pk_constraint(table.name)["name"] == table.primary_key.name
    indexes = {i["name"]: i for i in inspector.get_indexes("installations")}
    where = indexes["ix_installations_installation_id"]["dialect_options"]["sqlite_where"]
    assert _norm(str(where)) == "installation_id IS NOT NULL"


def _tsql_statements(script: str) -> list[exp.Expr]:
    statements: list[exp.Expr] = []
    for batch in re.split(r"^\s*GO\s*$", script, flags=re.MULTILINE):
        for parsed in sqlglot.parse(batch, read="tsql", error_level=sqlglot.ErrorLevel.RAISE):
            if parsed is not None:
                statements.append(parsed)
    return statements


def test_offline_mssql_sql_parses_as_tsql() -> None:
    """Every statement of render_sql('mssql') parses as T-SQL; none falls back to a raw command."""
    script = migrate.render_sql("mssql")
    statements = _tsql_statements(script)
    fallbacks = [s.sql() for s in statements if isinstance(s, exp.Command)]
    assert fallbacks == []
    created = {
        s.this.this.name
        for s in statements
        if isinstance(s, exp.Create) and s.kind == "TABLE" and isinstance(s.this, exp.Schema)
    }
    assert created == TABLES | {"alembic_version"}
    indexes = [s for s in statements if isinstance(s, exp.Create) and s.kind == "INDEX"]
    assert len(indexes) == sum(len(t.indexes) for t in metadata.tables.values())
    assert any(isinstance(s, exp.Insert) for s in statements)  # the alembic_version row


def test_offline_mssql_sql_uses_modern_sql_server_types() -> None:
    """SQL Server gets VARBINARY(max)/NVARCHAR(max)/DATETIME2(6), never IMAGE/NTEXT/DATETIME."""
    script = migrate.render_sql("mssql")
    assert "VARBINARY(max)" in script
    assert "NVARCHAR(max)" in script
    assert "DATETIME2(6)" in script
    assert not re.search(r"\b(IMAGE|NTEXT|TEXT)\b", script)
    assert not re.search(r"\bDATETIME\b(?!2)", script)
    assert "WHERE installation_id IS NOT NULL" in script
    # Indexed text columns have a length: SQL Server cannot index VARCHAR(max).
    assert not re.search(r"\bVARCHAR\(max\)", script)


def test_offline_sql_from_a_url_drops_credentials() -> None:
    """A full URL can be given; only its dialect is used and no password reaches the output."""
    script = migrate.render_sql("mssql+pyodbc://dba:s3cr3t-pw@srv/dfj")
    assert "CREATE TABLE installations" in script
    assert "s3cr3t-pw" not in script


def test_offline_sqlite_sql_parses_as_sqlite() -> None:
    """render_sql('sqlite') also parses, with SQLite's dialect."""
    script = migrate.render_sql("sqlite")
    parsed = [s for s in sqlglot.parse(script, read="sqlite") if s is not None]
    assert not [s.sql() for s in parsed if isinstance(s, exp.Command)]
    assert len([s for s in parsed if isinstance(s, exp.Create) and s.kind == "TABLE"]) == len(
        TABLES | {"alembic_version"}
    )


def test_the_revision_template_ships_and_renders_valid_python(tmp_path: Path) -> None:
    """script.py.mako is in the package and produces a revision chained to head."""
    package = resources.files("dfj_common.storage")
    assert package.joinpath("migrations/script.py.mako").is_file()
    assert package.joinpath("migrations/env.py").is_file()
    config = migrate._config()
    versions = migrate.MIGRATIONS_DIR / "versions"
    config.set_main_option("version_locations", f"{versions}{os.pathsep}{tmp_path}")
    command.revision(config, message="probe", rev_id="9999", version_path=str(tmp_path))
    (written,) = tmp_path.glob("9999_*.py")
    namespace: dict[str, Any] = {}
    exec(compile(written.read_text(), str(written), "exec"), namespace)  # noqa: S102
    assert namespace["revision"] == "9999"
    assert namespace["down_revision"] == migrate.head()
