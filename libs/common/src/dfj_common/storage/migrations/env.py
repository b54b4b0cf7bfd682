"""Alembic environment of the dfj schema; driven by :mod:`dfj_common.storage.migrate`.

Online, the connection comes from ``config.attributes["connection"]`` (``migrate`` opens it with
:func:`dfj_common.storage.engine.create_engine`, so SQLite pragmas and Azure SQL tokens apply);
without one, an engine is built from ``sqlalchemy.url``. Offline (``--sql``), statements are
rendered for the URL's dialect with literal values.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection, make_url

from dfj_common.storage.engine import create_engine
from dfj_common.storage.schema import metadata

config = context.config


def _run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    dialect_opts: dict[str, object] = {"paramstyle": "named"}
    if url and make_url(url).get_backend_name() == "mssql":
        # Without a server to ask, SQLAlchemy would render the legacy IMAGE / NTEXT types.
        dialect_opts["deprecate_large_types"] = True
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts=dialect_opts,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use dfj_common.storage.migrate")
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            _run_on(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
