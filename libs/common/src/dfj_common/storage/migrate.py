"""Run the packaged Alembic migrations without an ``alembic.ini``.

The script location is the ``migrations`` directory beside this module (shipped in the wheel,
``script.py.mako`` included). Online commands take a URL — the engine comes from
:func:`dfj_common.storage.engine.create_engine`, so SQLite pragmas and Azure SQL access tokens
apply — or an existing :class:`~sqlalchemy.engine.Engine`. :func:`render_sql` renders the upgrade
offline (Alembic's ``--sql``) for a DBA to review or apply, e.g. ``render_sql("mssql")``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url

from dfj_common.storage.engine import TokenCredential, create_engine

__all__ = ["MIGRATIONS_DIR", "current", "downgrade", "head", "render_sql", "upgrade"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"


def _config(*, url: str | None = None, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolates '%'; URL-encoded odbc_connect strings are full of them.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _engine(target: str | Engine, credential: TokenCredential | None) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = create_engine(target, credential=credential, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _online(
    target: str | Engine,
    credential: TokenCredential | None,
    run: Callable[[Config], None],
) -> None:
    with _engine(target, credential) as engine, engine.connect() as connection:
        config = _config()
        config.attributes["connection"] = connection
        run(config)
        connection.commit()


def upgrade(
    url: str | Engine, revision: str = "head", *, credential: TokenCredential | None = None
) -> None:
    """Upgrade the database to ``revision``."""
    _online(url, credential, lambda config: command.upgrade(config, revision))


def downgrade(
    url: str | Engine, revision: str, *, credential: TokenCredential | None = None
) -> None:
    """Downgrade the database to ``revision`` (``"base"`` drops every table)."""
    _online(url, credential, lambda config: command.downgrade(config, revision))


def current(url: str | Engine, *, credential: TokenCredential | None = None) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with _engine(url, credential) as engine, engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest revision shipped in this package."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("no migrations found")
    return revision


def render_sql(
    dialect_url_or_name: str, revision: str = "head", *, from_revision: str | None = None
) -> str:
    """The SQL of an upgrade, rendered offline for a dialect name (``"mssql"``) or URL."""
    if "://" in dialect_url_or_name:
        url = make_url(dialect_url_or_name)
        # Offline rendering needs only the dialect: never carry credentials along.
        url = url.set(username=None, password=None)
        text_url = url.render_as_string(hide_password=False)
    else:
        text_url = f"{dialect_url_or_name}://"
    output = io.StringIO()
    span = revision if from_revision is None else f"{from_revision}:{revision}"
    command.upgrade(_config(url=text_url, output=output), span, sql=True)
    return output.getvalue()
