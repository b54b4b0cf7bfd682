"""Every statement the repositories issue also compiles for SQL Server and parses as T-SQL.

SQL Server is not always at hand, so this runs a workload touching every repository on SQLite,
captures the SQLAlchemy statements, compiles each for the mssql dialect and parses the result with
sqlglot's ``tsql`` dialect (a fallback to a raw ``Command`` counts as a failure).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlalchemy import event
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection
from sqlglot import exp

from dfj_common.clock import ManualClock
from dfj_common.storage import AccessMode, Database, InstallationState, Repositories
from dfj_common.storage.engine import create_engine


async def _workload(repos: Repositories) -> None:
    site, guild, user = "site-1", "1", "2"
    await repos.installations.save_connect(
        site, base_url="https://x", shared_secret_ciphertext=b"s"
    )
    await repos.installations.save_forge("ari:inst", cloud_id="c", system_token_ciphertext=b"t")
    await repos.installations.get(site)
    await repos.installations.get_by_installation_id("ari:inst")
    await repos.installations.client_keys(InstallationState.INSTALLED)
    await repos.installations.set_state(site, InstallationState.ENABLED)
    await repos.guild_connections.connect(guild, site, connected_by=user, settings={"a": 1})
    await repos.guild_connections.connect(guild, site, connected_by=user)
    await repos.guild_connections.list_for_site(site)
    await repos.guild_connections.update_settings(guild, {})
    await repos.user_links.link(site, account_id="acc", discord_user_id=user)
    await repos.user_links.link(site, account_id="acc2", discord_user_id=user, replace=True)
    await repos.user_links.get_by_account(site, "acc2")
    await repos.user_links.list_for_discord_user(user)
    sub = await repos.subscriptions.add(
        guild_id=guild,
        channel_id="3",
        client_key=site,
        project_key="P",
        event_types=["e"],
        created_by=user,
    )
    await repos.subscriptions.list_for_project(site, "P")
    await repos.subscriptions.remove(sub.id, guild_id=guild)
    await repos.role_rules.put(guild, "create", ["9"])
    await repos.role_rules.put(guild, "create", ["8"])
    await repos.role_rules.for_guild(guild)
    await repos.feature_access.put(guild, "view", AccessMode.ALL)
    await repos.feature_access.get(guild, "view")
    await repos.processed_ids.mark_processed("c", "m")
    await repos.processed_ids.mark_processed("c", "m")
    await repos.processed_ids.is_processed("c", "m")
    await repos.processed_ids.purge_older_than(timedelta(days=1))
    draft = await repos.drafts.put(
        client_key=site, discord_user_id=user, payload={"t": "x"}, ttl=timedelta(minutes=1)
    )
    await repos.drafts.take(draft.id, discord_user_id=user)
    await repos.drafts.purge_expired()
    await repos.oauth_states.consume("s", expires_at=repos.db.now() + timedelta(minutes=1))
    await repos.oauth_states.purge_expired()
    await repos.metadata_cache.put(site, "k", "v", [1], ttl=timedelta(minutes=1))
    await repos.metadata_cache.get(site, "k", "v")
    await repos.metadata_cache.invalidate(site, "k")
    await repos.delivery_log.record("m", channel_id="3", status="sent")
    await repos.delivery_log.record("m", channel_id="3", status="edited")
    await repos.delivery_log.get("m")
    await repos.user_links.erase_discord_user(user)
    await repos.guild_connections.disconnect(guild)
    await repos.installations.delete(site)


async def test_repository_statements_are_valid_tsql(tmp_path: Path, sqlite_template: Path) -> None:
    """Compiled for mssql, each captured statement parses as T-SQL into a real statement."""
    path = tmp_path / "db.sqlite"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite:///{path}")
    captured: list[sa.ClauseElement] = []

    @event.listens_for(engine, "before_execute")
    def capture(conn: Connection, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        # Savepoints are SQLAlchemy's own dialect-specific constructs; check the DML and queries.
        if isinstance(clause, sa.Select | sa.Insert | sa.Update | sa.Delete):
            captured.append(clause)

    try:
        async with Database(engine, clock=ManualClock()) as db:
            await _workload(Repositories(db))
    finally:
        engine.dispose()

    dialect = mssql.dialect(  # type: ignore[no-untyped-call]
        paramstyle="qmark", deprecate_large_types=True
    )
    kinds: set[str] = set()
    for clause in captured:
        sql = str(clause.compile(dialect=dialect))
        parsed = sqlglot.parse_one(sql, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
        assert not isinstance(parsed, exp.Command), sql
        kinds.add(type(parsed).__name__)
    assert kinds >= {"Select", "Insert", "Update", "Delete"}
    assert len(captured) > 60
