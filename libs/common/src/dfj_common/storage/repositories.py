"""Narrow async repositories over a :class:`~dfj_common.storage.database.Database`.

Each method is one unit of work (one transaction, retried as a whole on transient failures),
returns frozen dataclasses or plain values, and takes "now" from the database's injected clock.
Rules of the schema the caller can break surface as
:mod:`dfj_common.storage.errors` (``AlreadyExists``, ``UnknownReference``, ``InvalidValue``).
Optional arguments left as ``None`` on an update keep the stored value.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dfj_common.storage import schema as s
from dfj_common.storage._sql import checked, insert_if_absent, key_clause, upsert
from dfj_common.storage.database import Database
from dfj_common.storage.errors import AlreadyExists, InvalidValue
from dfj_common.storage.schema import AccessMode, InstallationKind, InstallationState

__all__ = [
    "CachedValue",
    "Delivery",
    "DeliveryLog",
    "Draft",
    "Drafts",
    "FeatureAccess",
    "GuildConnection",
    "GuildConnections",
    "Installation",
    "Installations",
    "MetadataCache",
    "OAuthStates",
    "ProcessedIds",
    "Repositories",
    "RoleRules",
    "Subscription",
    "Subscriptions",
    "UserLink",
    "UserLinks",
]

# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Installation:
    """A Jira site that installed the app (ciphertexts are opaque bytes, hidden from repr)."""

    client_key: str
    kind: InstallationKind
    state: InstallationState
    created_at: datetime
    updated_at: datetime
    app_key: str | None = None
    base_url: str | None = None
    display_url: str | None = None
    oauth_client_id: str | None = None
    shared_secret_ciphertext: bytes | None = field(default=None, repr=False)
    installation_id: str | None = None
    cloud_id: str | None = None
    api_base_url: str | None = None
    system_token_ciphertext: bytes | None = field(default=None, repr=False)
    system_token_expires_at: datetime | None = None
    environment_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GuildConnection:
    """A Discord guild connected to a Jira site."""

    guild_id: str
    client_key: str
    connected_by: str
    settings: Mapping[str, Any]
    connected_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class UserLink:
    """A Discord user linked to a Jira account on one site."""

    client_key: str
    account_id: str
    discord_user_id: str
    linked_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    """Which Jira events of a project go to which Discord channel."""

    id: str
    guild_id: str
    channel_id: str
    client_key: str
    project_key: str
    event_types: tuple[str, ...]
    issue_types: tuple[str, ...]
    jql: str | None
    delivery_mode: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Draft:
    """Temporary data (e.g. field suggestions) of one user, until ``expires_at``."""

    id: str
    client_key: str
    discord_user_id: str
    payload: Mapping[str, Any] = field(repr=False)
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class CachedValue:
    """A cached piece of site metadata."""

    value: Any
    fetched_at: datetime
    expires_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """What became of one outbox message."""

    message_id: str
    channel_id: str
    discord_message_id: str | None
    status: str
    recorded_at: datetime
    pack_head: str | None = None  # the first message of the post this one went out in
    pack_size: int | None = None  # on that first message: how many went out together


@dataclass(frozen=True, slots=True)
class IssueThread:
    """The thread of a channel where one issue's notifications go."""

    channel_id: str
    thread_key: str
    client_key: str
    thread_id: str
    created_at: datetime


# --- repositories -------------------------------------------------------------------------


class _Repository:
    def __init__(self, db: Database) -> None:
        self._db = db


class Installations(_Repository):
    """Installed sites, Connect and Forge."""

    async def save_connect(
        self,
        client_key: str,
        *,
        base_url: str,
        shared_secret_ciphertext: bytes,
        app_key: str | None = None,
        display_url: str | None = None,
        oauth_client_id: str | None = None,
        installation_id: str | None = None,
        state: InstallationState = InstallationState.INSTALLED,
    ) -> Installation:
        """Insert or update a Connect installation (an ``installed`` callback)."""
        t = s.installations
        values = _present(
            kind=InstallationKind.CONNECT.value,
            state=state.value,
            base_url=base_url,
            shared_secret_ciphertext=shared_secret_ciphertext,
            app_key=app_key,
            display_url=display_url,
            oauth_client_id=oauth_client_id,
            installation_id=installation_id,
        )

        def save_connect(conn: Connection) -> Installation:
            now = self._db.now()
            upsert(
                conn,
                t,
                {"client_key": client_key},
                {**values, "updated_at": now},
                insert_only={"created_at": now},
            )
            return _installation(_one(conn, sa.select(t).where(t.c.client_key == client_key)))

        return await self._db.run(save_connect)

    async def save_forge(
        self,
        installation_id: str,
        *,
        client_key: str | None = None,
        cloud_id: str | None = None,
        api_base_url: str | None = None,
        system_token_ciphertext: bytes | None = None,
        system_token_expires_at: datetime | None = None,
        base_url: str | None = None,
        display_url: str | None = None,
        app_key: str | None = None,
        environment_id: str | None = None,
        state: InstallationState = InstallationState.INSTALLED,
    ) -> Installation:
        """Insert or update a Forge installation.

        Without ``client_key`` the row already holding ``installation_id`` is updated (a Connect
        install that reported it keeps its tenant key and data); a new row is keyed by the
        installation id.
        """
        t = s.installations
        values = _present(
            kind=InstallationKind.FORGE.value,
            state=state.value,
            installation_id=installation_id,
            cloud_id=cloud_id,
            api_base_url=api_base_url,
            system_token_ciphertext=system_token_ciphertext,
            system_token_expires_at=system_token_expires_at,
            base_url=base_url,
            display_url=display_url,
            app_key=app_key,
            environment_id=environment_id,
        )

        def save_forge(conn: Connection) -> Installation:
            now = self._db.now()
            key = client_key
            if key is None:
                found = conn.execute(
                    sa.select(t.c.client_key).where(t.c.installation_id == installation_id)
                ).scalar_one_or_none()
                key = found if found is not None else installation_id
            upsert(
                conn,
                t,
                {"client_key": key},
                {**values, "updated_at": now},
                insert_only={"created_at": now},
            )
            return _installation(_one(conn, sa.select(t).where(t.c.client_key == key)))

        return await self._db.run(save_forge)

    async def get(self, client_key: str) -> Installation | None:
        """The installation with this tenant key."""
        t = s.installations
        row = await self._db.run(
            lambda conn: conn.execute(sa.select(t).where(t.c.client_key == client_key)).first(),
            write=False,
        )
        return None if row is None else _installation(row)

    async def get_by_installation_id(self, installation_id: str) -> Installation | None:
        """The installation with this Forge installation id."""
        t = s.installations
        row = await self._db.run(
            lambda conn: conn.execute(
                sa.select(t).where(t.c.installation_id == installation_id)
            ).first(),
            write=False,
        )
        return None if row is None else _installation(row)

    async def by_cloud_id(self, cloud_id: str) -> list[Installation]:
        """Every installation on the site ``cloud_id`` (Forge's stable site id), newest first."""
        t = s.installations
        rows = await self._db.run(
            lambda conn: conn.execute(
                sa.select(t).where(t.c.cloud_id == cloud_id).order_by(t.c.updated_at.desc())
            ).all(),
            write=False,
        )
        return [_installation(r) for r in rows]

    async def client_keys(self, state: InstallationState | None = None) -> list[str]:
        """Tenant keys, optionally only those in ``state``, sorted."""
        t = s.installations
        query = sa.select(t.c.client_key).order_by(t.c.client_key)
        if state is not None:
            query = query.where(t.c.state == state.value)
        return await self._db.run(
            lambda conn: [str(k) for k in conn.execute(query).scalars()], write=False
        )

    async def set_state(self, client_key: str, state: InstallationState) -> bool:
        """Move an installation to ``state``; False when there is no such installation."""
        t = s.installations

        def set_state(conn: Connection) -> bool:
            stmt = sa.update(t).where(t.c.client_key == client_key)
            values = {"state": state.value, "updated_at": self._db.now()}
            return bool(conn.execute(stmt.values(values)).rowcount)

        return await self._db.run(set_state)

    async def update_system_token(
        self, client_key: str, *, ciphertext: bytes, expires_at: datetime
    ) -> bool:
        """Store the latest Forge system token (encrypted); False when there is no such row."""
        t = s.installations

        def update_system_token(conn: Connection) -> bool:
            values = {
                "system_token_ciphertext": ciphertext,
                "system_token_expires_at": expires_at,
                "updated_at": self._db.now(),
            }
            stmt = sa.update(t).where(t.c.client_key == client_key).values(checked(t, values))
            return bool(conn.execute(stmt).rowcount)

        return await self._db.run(update_system_token)

    async def delete(self, client_key: str) -> bool:
        """Delete an installation and, by cascade, every row of that site."""
        t = s.installations
        return await self._db.run(
            lambda conn: bool(
                conn.execute(sa.delete(t).where(t.c.client_key == client_key)).rowcount
            )
        )


class GuildConnections(_Repository):
    """Which Discord guild is connected to which site (one site per guild)."""

    async def connect(
        self,
        guild_id: str,
        client_key: str,
        *,
        connected_by: str,
        settings: Mapping[str, Any] | None = None,
    ) -> GuildConnection:
        """Connect a guild to a site; connecting again to the same site refreshes who and when.

        Raises ``AlreadyExists`` when the guild is connected to another site, and
        ``UnknownReference`` when the site is not installed.
        """
        t = s.guild_connections

        def connect(conn: Connection) -> GuildConnection:
            now = self._db.now()
            current = conn.execute(
                sa.select(t.c.client_key).where(t.c.guild_id == guild_id)
            ).scalar_one_or_none()
            if current is not None and current != client_key:
                raise AlreadyExists("the guild is connected to another site; disconnect it first")
            values = _present(
                connected_by=connected_by,
                connected_at=now,
                settings=None if settings is None else dict(settings),
            )
            if current is None:
                values.setdefault("settings", {})
                conn.execute(
                    sa.insert(t).values(
                        checked(t, {"guild_id": guild_id, "client_key": client_key, **values})
                    )
                )
            else:
                conn.execute(
                    sa.update(t).where(t.c.guild_id == guild_id).values(checked(t, values))
                )
            return _guild(_one(conn, sa.select(t).where(t.c.guild_id == guild_id)))

        return await self._db.run(connect)

    async def get(self, guild_id: str) -> GuildConnection | None:
        """The connection of a guild."""
        t = s.guild_connections
        row = await self._db.run(
            lambda conn: conn.execute(sa.select(t).where(t.c.guild_id == guild_id)).first(),
            write=False,
        )
        return None if row is None else _guild(row)

    async def list_for_site(self, client_key: str) -> list[GuildConnection]:
        """Every guild connected to a site."""
        t = s.guild_connections
        query = sa.select(t).where(t.c.client_key == client_key).order_by(t.c.guild_id)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return [_guild(r) for r in rows]

    async def update_settings(self, guild_id: str, settings: Mapping[str, Any]) -> bool:
        """Replace a guild's settings; False when the guild is not connected."""
        t = s.guild_connections
        stmt = sa.update(t).where(t.c.guild_id == guild_id).values(settings=dict(settings))
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))

    async def disconnect(self, guild_id: str) -> bool:
        """Disconnect a guild; its subscriptions, role rules and access modes go with it."""
        t = s.guild_connections
        stmt = sa.delete(t).where(t.c.guild_id == guild_id)
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))


class UserLinks(_Repository):
    """Discord user ↔ Jira account, per site; each side linked at most once per site."""

    async def link(
        self, client_key: str, *, account_id: str, discord_user_id: str, replace: bool = False
    ) -> UserLink:
        """Link a Discord user to a Jira account on a site (idempotent for the same pair).

        If either side is linked to someone else, raises ``AlreadyExists`` — or, with
        ``replace=True``, removes those links in the same transaction.
        """
        t = s.user_links

        def link(conn: Connection) -> UserLink:
            site = t.c.client_key == client_key
            by_user = conn.execute(
                sa.select(t).where(site, t.c.discord_user_id == discord_user_id)
            ).first()
            if by_user is not None and by_user.account_id == account_id:
                return _link(by_user)
            by_account = conn.execute(
                sa.select(t).where(site, t.c.account_id == account_id)
            ).first()
            if (by_user or by_account) and not replace:
                side = "Discord user" if by_user is not None else "Jira account"
                raise AlreadyExists(f"the {side} is already linked on this site")
            conn.execute(
                sa.delete(t).where(
                    site,
                    sa.or_(t.c.discord_user_id == discord_user_id, t.c.account_id == account_id),
                )
            )
            row = {
                "client_key": client_key,
                "account_id": account_id,
                "discord_user_id": discord_user_id,
                "linked_at": self._db.now(),
            }
            conn.execute(sa.insert(t).values(checked(t, row)))
            return _link(
                _one(conn, sa.select(t).where(site, t.c.discord_user_id == discord_user_id))
            )

        return await self._db.run(link)

    async def get_by_discord_user(self, client_key: str, discord_user_id: str) -> UserLink | None:
        """The link of a Discord user on a site."""
        t = s.user_links
        query = sa.select(t).where(
            t.c.client_key == client_key, t.c.discord_user_id == discord_user_id
        )
        row = await self._db.run(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else _link(row)

    async def get_by_account(self, client_key: str, account_id: str) -> UserLink | None:
        """The link of a Jira account on a site."""
        t = s.user_links
        query = sa.select(t).where(t.c.client_key == client_key, t.c.account_id == account_id)
        row = await self._db.run(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else _link(row)

    async def list_for_site(self, client_key: str) -> list[UserLink]:
        """Every link on a site (export, uninstall)."""
        return await self._list(s.user_links.c.client_key == client_key)

    async def list_for_discord_user(self, discord_user_id: str) -> list[UserLink]:
        """Every link of a Discord user, across sites (per-user export)."""
        return await self._list(s.user_links.c.discord_user_id == discord_user_id)

    async def list_for_account(self, account_id: str) -> list[UserLink]:
        """Every link of a Jira account, across sites (personal-data reporting)."""
        return await self._list(s.user_links.c.account_id == account_id)

    async def unlink(self, client_key: str, discord_user_id: str) -> bool:
        """Remove a Discord user's link on a site."""
        t = s.user_links
        stmt = sa.delete(t).where(
            t.c.client_key == client_key, t.c.discord_user_id == discord_user_id
        )
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))

    async def erase_discord_user(self, discord_user_id: str) -> int:
        """Remove every link of a Discord user (erasure); the number removed."""
        t = s.user_links
        stmt = sa.delete(t).where(t.c.discord_user_id == discord_user_id)
        return await self._db.run(lambda conn: int(conn.execute(stmt).rowcount))

    async def erase_account(self, account_id: str) -> int:
        """Remove every link of a Jira account (Atlassian reported it closed)."""
        t = s.user_links
        stmt = sa.delete(t).where(t.c.account_id == account_id)
        return await self._db.run(lambda conn: int(conn.execute(stmt).rowcount))

    async def _list(self, where: sa.ColumnElement[bool]) -> list[UserLink]:
        t = s.user_links
        query = sa.select(t).where(where).order_by(t.c.client_key, t.c.discord_user_id)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return [_link(r) for r in rows]


class Subscriptions(_Repository):
    """Channel subscriptions to a project's events."""

    async def add(
        self,
        *,
        guild_id: str,
        channel_id: str,
        client_key: str,
        project_key: str,
        event_types: Sequence[str],
        created_by: str,
        issue_types: Sequence[str] = (),
        jql: str | None = None,
        delivery_mode: str = "message",
        subscription_id: str | None = None,
    ) -> Subscription:
        """Add a subscription; ``UnknownReference`` unless the guild is connected to the site."""
        t = s.subscriptions
        row = {
            "id": subscription_id or str(uuid.uuid4()),
            "guild_id": guild_id,
            "channel_id": channel_id,
            "client_key": client_key,
            "project_key": project_key,
            "event_types": _strings(event_types, "event_types"),
            "issue_types": _strings(issue_types, "issue_types"),
            "jql": jql,
            "delivery_mode": delivery_mode,
            "created_by": created_by,
        }

        def add(conn: Connection) -> Subscription:
            conn.execute(sa.insert(t).values(checked(t, {**row, "created_at": self._db.now()})))
            return _subscription(_one(conn, sa.select(t).where(t.c.id == row["id"])))

        return await self._db.run(add)

    async def get(self, subscription_id: str) -> Subscription | None:
        """One subscription by id."""
        found = await self._list(s.subscriptions.c.id == subscription_id)
        return found[0] if found else None

    async def list_for_guild(self, guild_id: str) -> list[Subscription]:
        """Every subscription of a guild."""
        return await self._list(s.subscriptions.c.guild_id == guild_id)

    async def list_for_channel(self, guild_id: str, channel_id: str) -> list[Subscription]:
        """Every subscription of one channel."""
        t = s.subscriptions
        return await self._list(sa.and_(t.c.guild_id == guild_id, t.c.channel_id == channel_id))

    async def list_for_project(self, client_key: str, project_key: str) -> list[Subscription]:
        """Every subscription to a project of a site (webhook fan-out)."""
        t = s.subscriptions
        return await self._list(
            sa.and_(t.c.client_key == client_key, t.c.project_key == project_key)
        )

    async def remove(self, subscription_id: str, *, guild_id: str) -> bool:
        """Remove a subscription of ``guild_id`` (another guild's id matches nothing)."""
        t = s.subscriptions
        stmt = sa.delete(t).where(t.c.id == subscription_id, t.c.guild_id == guild_id)
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))

    async def remove_for_channel(self, guild_id: str, channel_id: str) -> int:
        """Remove every subscription of a channel (it was deleted); the number removed."""
        t = s.subscriptions
        stmt = sa.delete(t).where(t.c.guild_id == guild_id, t.c.channel_id == channel_id)
        return await self._db.run(lambda conn: int(conn.execute(stmt).rowcount))

    async def _list(self, where: sa.ColumnElement[bool]) -> list[Subscription]:
        t = s.subscriptions
        query = sa.select(t).where(where).order_by(t.c.created_at, t.c.id)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return [_subscription(r) for r in rows]


class RoleRules(_Repository):
    """Per guild and capability, the Discord roles allowed to use it."""

    async def put(self, guild_id: str, capability: str, role_ids: Sequence[str]) -> None:
        """Set the roles of a capability; ``UnknownReference`` when the guild is not connected."""
        t = s.role_rules
        roles = _strings(role_ids, "role_ids")
        await self._db.run(
            lambda conn: upsert(
                conn, t, {"guild_id": guild_id, "capability": capability}, {"role_ids": roles}
            )
        )

    async def get(self, guild_id: str, capability: str) -> tuple[str, ...] | None:
        """The roles of a capability, or None when no rule is set."""
        t = s.role_rules
        query = sa.select(t.c.role_ids).where(
            key_clause(t, {"guild_id": guild_id, "capability": capability})
        )
        value = await self._db.run(
            lambda conn: conn.execute(query).scalar_one_or_none(), write=False
        )
        return None if value is None else tuple(value)

    async def for_guild(self, guild_id: str) -> dict[str, tuple[str, ...]]:
        """Every rule of a guild, by capability."""
        t = s.role_rules
        query = sa.select(t.c.capability, t.c.role_ids).where(t.c.guild_id == guild_id)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return {str(r.capability): tuple(r.role_ids) for r in rows}

    async def remove(self, guild_id: str, capability: str) -> bool:
        """Remove a rule."""
        t = s.role_rules
        stmt = sa.delete(t).where(key_clause(t, {"guild_id": guild_id, "capability": capability}))
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))


class FeatureAccess(_Repository):
    """Per guild and feature: linked users only, or everyone."""

    async def put(self, guild_id: str, feature: str, mode: AccessMode) -> None:
        """Set a feature's access mode; ``UnknownReference`` when the guild is not connected."""
        t = s.feature_access
        await self._db.run(
            lambda conn: upsert(
                conn,
                t,
                {"guild_id": guild_id, "feature": feature},
                {"mode": AccessMode(mode).value},
            )
        )

    async def get(self, guild_id: str, feature: str) -> AccessMode | None:
        """A feature's access mode, or None when unset."""
        t = s.feature_access
        query = sa.select(t.c.mode).where(key_clause(t, {"guild_id": guild_id, "feature": feature}))
        value = await self._db.run(
            lambda conn: conn.execute(query).scalar_one_or_none(), write=False
        )
        return None if value is None else AccessMode(value)

    async def for_guild(self, guild_id: str) -> dict[str, AccessMode]:
        """Every access mode of a guild, by feature."""
        t = s.feature_access
        query = sa.select(t.c.feature, t.c.mode).where(t.c.guild_id == guild_id)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return {str(r.feature): AccessMode(r.mode) for r in rows}

    async def remove(self, guild_id: str, feature: str) -> bool:
        """Remove a feature's access mode."""
        t = s.feature_access
        stmt = sa.delete(t).where(key_clause(t, {"guild_id": guild_id, "feature": feature}))
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))


class ProcessedIds(_Repository):
    """Message ids a consumer has handled, for idempotency."""

    async def mark_processed(self, consumer: str, message_id: str) -> bool:
        """Record ``message_id`` for ``consumer``; False when it was already recorded."""
        t = s.processed_ids
        return await self._db.run(
            lambda conn: insert_if_absent(
                conn,
                t,
                {"consumer": consumer, "message_id": message_id, "processed_at": self._db.now()},
            )
        )

    async def is_processed(self, consumer: str, message_id: str) -> bool:
        """Whether ``message_id`` is recorded for ``consumer``."""
        t = s.processed_ids
        query = sa.select(sa.literal_column("1", sa.Integer)).where(
            key_clause(t, {"consumer": consumer, "message_id": message_id})
        )
        return await self._db.run(lambda conn: conn.execute(query).first() is not None, write=False)

    async def forget(self, consumer: str, message_id: str) -> bool:
        """Drop a record (the handler failed after marking, so a redelivery must run again)."""
        t = s.processed_ids
        stmt = sa.delete(t).where(key_clause(t, {"consumer": consumer, "message_id": message_id}))
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))

    async def purge_older_than(self, age: timedelta) -> int:
        """Drop records older than ``age`` (beyond any redelivery window); the number dropped."""
        t = s.processed_ids
        return await self._db.run(
            lambda conn: int(
                conn.execute(sa.delete(t).where(t.c.processed_at < self._db.now() - age)).rowcount
            )
        )


class Drafts(_Repository):
    """Short-lived per-user drafts; expired ones are never returned."""

    async def put(
        self,
        *,
        client_key: str,
        discord_user_id: str,
        payload: Mapping[str, Any],
        ttl: timedelta,
        draft_id: str | None = None,
    ) -> Draft:
        """Store a draft for ``ttl``; the id (unguessable unless given) is returned in it."""
        if ttl <= timedelta(0):
            raise InvalidValue("a draft needs a positive time to live")
        t = s.drafts
        draft_key = draft_id or secrets.token_urlsafe(18)

        def put(conn: Connection) -> Draft:
            now = self._db.now()
            row = {
                "id": draft_key,
                "client_key": client_key,
                "discord_user_id": discord_user_id,
                "payload": dict(payload),
                "created_at": now,
                "expires_at": now + ttl,
            }
            conn.execute(sa.insert(t).values(checked(t, row)))
            return _draft(_one(conn, sa.select(t).where(t.c.id == draft_key)))

        return await self._db.run(put)

    async def get(self, draft_id: str, *, discord_user_id: str) -> Draft | None:
        """The draft if it belongs to ``discord_user_id`` and has not expired."""
        query = self._live(draft_id, discord_user_id)
        row = await self._db.run(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else _draft(row)

    async def take(self, draft_id: str, *, discord_user_id: str) -> Draft | None:
        """Get and delete the draft atomically; None if absent, expired, foreign or taken."""
        t = s.drafts

        def take(conn: Connection) -> Draft | None:
            row = conn.execute(self._live(draft_id, discord_user_id)).first()
            if row is None:
                return None
            gone = conn.execute(sa.delete(t).where(t.c.id == draft_id)).rowcount
            return _draft(row) if gone else None

        return await self._db.run(take)

    async def purge_expired(self) -> int:
        """Delete expired drafts; the number deleted."""
        t = s.drafts
        return await self._db.run(
            lambda conn: int(
                conn.execute(sa.delete(t).where(t.c.expires_at <= self._db.now())).rowcount
            )
        )

    async def list_for_discord_user(self, discord_user_id: str) -> list[Draft]:
        """Every draft of a Discord user, expired or not (per-user export)."""
        t = s.drafts
        query = sa.select(t).where(t.c.discord_user_id == discord_user_id).order_by(t.c.created_at)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return [_draft(r) for r in rows]

    async def erase_discord_user(self, discord_user_id: str) -> int:
        """Delete every draft of a Discord user (erasure)."""
        t = s.drafts
        stmt = sa.delete(t).where(t.c.discord_user_id == discord_user_id)
        return await self._db.run(lambda conn: int(conn.execute(stmt).rowcount))

    def _live(self, draft_id: str, discord_user_id: str) -> sa.Select[Any]:
        t = s.drafts
        return sa.select(t).where(
            t.c.id == draft_id,
            t.c.discord_user_id == discord_user_id,
            t.c.expires_at > self._db.now(),
        )


class OAuthStates(_Repository):
    """Single use of signed, expiring OAuth states and one-time codes.

    The gateway issues and verifies them without writing; the consumer calls :meth:`consume`
    with the state's id (its nonce) and signed expiry, and only the first call wins.
    """

    async def consume(self, state_id: str, *, expires_at: datetime) -> bool:
        """True exactly once per state id, and never once ``expires_at`` has passed."""
        t = s.oauth_states

        def consume(conn: Connection) -> bool:
            now = self._db.now()
            if expires_at <= now:
                return False
            row = {"state_id": state_id, "expires_at": expires_at, "used_at": now}
            return insert_if_absent(conn, t, row)

        return await self._db.run(consume)

    async def purge_expired(self) -> int:
        """Forget used states whose expiry has passed (they can no longer be replayed)."""
        t = s.oauth_states
        return await self._db.run(
            lambda conn: int(
                conn.execute(sa.delete(t).where(t.c.expires_at <= self._db.now())).rowcount
            )
        )


class MetadataCache(_Repository):
    """Cached site metadata (projects, issue types, fields) with an expiry."""

    async def get(self, client_key: str, kind: str, key: str) -> CachedValue | None:
        """The cached value, or None when absent or expired."""
        t = s.metadata_cache

        def get(conn: Connection) -> CachedValue | None:
            query = sa.select(t.c.value, t.c.fetched_at, t.c.expires_at).where(
                key_clause(t, {"client_key": client_key, "kind": kind, "key": key}),
                t.c.expires_at > self._db.now(),
            )
            row = conn.execute(query).first()
            if row is None:
                return None
            return CachedValue(
                value=row.value, fetched_at=row.fetched_at, expires_at=row.expires_at
            )

        return await self._db.run(get, write=False)

    async def put(
        self, client_key: str, kind: str, key: str, value: Any, *, ttl: timedelta
    ) -> CachedValue:
        """Cache JSON ``value`` for ``ttl``; ``UnknownReference`` for an unknown site."""
        if ttl <= timedelta(0):
            raise InvalidValue("a cache entry needs a positive time to live")
        t = s.metadata_cache

        def put(conn: Connection) -> CachedValue:
            now = self._db.now()
            entry = {"value": value, "fetched_at": now, "expires_at": now + ttl}
            upsert(conn, t, {"client_key": client_key, "kind": kind, "key": key}, entry)
            return CachedValue(value=value, fetched_at=now, expires_at=now + ttl)

        return await self._db.run(put)

    async def invalidate(self, client_key: str, kind: str | None = None) -> int:
        """Drop a site's entries (of one kind); the number dropped."""
        t = s.metadata_cache
        stmt = sa.delete(t).where(t.c.client_key == client_key)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        return await self._db.run(lambda conn: int(conn.execute(stmt).rowcount))

    async def purge_expired(self) -> int:
        """Drop expired entries; the number dropped."""
        t = s.metadata_cache
        return await self._db.run(
            lambda conn: int(
                conn.execute(sa.delete(t).where(t.c.expires_at <= self._db.now())).rowcount
            )
        )


class DeliveryLog(_Repository):
    """The outcome of each outbox message (Discord message id, status)."""

    async def record(
        self,
        message_id: str,
        *,
        channel_id: str,
        status: str,
        discord_message_id: str | None = None,
    ) -> Delivery:
        """Insert or update the outcome of a message."""
        t = s.delivery_log

        def record(conn: Connection) -> Delivery:
            values = _present(
                channel_id=channel_id,
                status=status,
                discord_message_id=discord_message_id,
                recorded_at=self._db.now(),
            )
            upsert(conn, t, {"message_id": message_id}, values)
            return _delivery(_one(conn, sa.select(t).where(t.c.message_id == message_id)))

        return await self._db.run(record)

    async def record_pack(
        self,
        message_ids: Sequence[str],
        *,
        channel_id: str,
        status: str,
        pack_head: str,
        pack_size: int,
        discord_message_id: str | None = None,
    ) -> None:
        """Write the outcome of the messages of one packed post, whole, in one transaction.

        ``pack_size`` goes on ``pack_head``'s row. Two statements whatever the size (delete,
        then one multi-row insert): delivery records a pack on every post.
        """
        if not message_ids:
            return
        if pack_size < 1:
            raise InvalidValue("a pack holds at least one message")
        t = s.delivery_log

        def record(conn: Connection) -> None:
            now = self._db.now()
            conn.execute(sa.delete(t).where(_any_id(t, message_ids)))
            rows = [
                {
                    "message_id": message_id,
                    "channel_id": channel_id,
                    "status": status,
                    "discord_message_id": discord_message_id,
                    "recorded_at": now,
                    "pack_head": pack_head,
                    "pack_size": pack_size if message_id == pack_head else None,
                }
                for message_id in message_ids
            ]
            conn.execute(sa.insert(t), rows)

        await self._db.run(record)

    async def get_many(self, message_ids: Sequence[str]) -> dict[str, Delivery]:
        """The outcomes recorded for any of ``message_ids``, by id, in one query."""
        if not message_ids:
            return {}
        t = s.delivery_log
        query = sa.select(t).where(_any_id(t, message_ids))
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return {row.message_id: _delivery(row) for row in rows}

    async def get(self, message_id: str) -> Delivery | None:
        """The outcome of a message."""
        t = s.delivery_log
        query = sa.select(t).where(t.c.message_id == message_id)
        row = await self._db.run(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else _delivery(row)

    async def purge_older_than(self, age: timedelta) -> int:
        """Drop records older than ``age``; the number dropped."""
        t = s.delivery_log
        return await self._db.run(
            lambda conn: int(
                conn.execute(sa.delete(t).where(t.c.recorded_at < self._db.now() - age)).rowcount
            )
        )


class IssueThreads(_Repository):
    """Which thread of a channel holds an issue's notifications (per-issue thread mode)."""

    async def get(self, channel_id: str, thread_key: str) -> IssueThread | None:
        """The thread for ``thread_key`` in ``channel_id``, if one was started."""
        t = s.issue_threads
        query = sa.select(t).where(
            key_clause(t, {"channel_id": channel_id, "thread_key": thread_key})
        )
        row = await self._db.run(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else _issue_thread(row)

    async def put(
        self, channel_id: str, thread_key: str, *, client_key: str, thread_id: str
    ) -> IssueThread:
        """Remember (or replace) the thread; ``UnknownReference`` for an unknown site."""
        t = s.issue_threads

        def put(conn: Connection) -> IssueThread:
            key = {"channel_id": channel_id, "thread_key": thread_key}
            upsert(
                conn,
                t,
                key,
                {"client_key": client_key, "thread_id": thread_id},
                insert_only={"created_at": self._db.now()},
            )
            return _issue_thread(_one(conn, sa.select(t).where(key_clause(t, key))))

        return await self._db.run(put)

    async def forget(self, channel_id: str, thread_key: str) -> bool:
        """Drop the mapping (the thread is gone); whether there was one."""
        t = s.issue_threads
        stmt = sa.delete(t).where(
            key_clause(t, {"channel_id": channel_id, "thread_key": thread_key})
        )
        return await self._db.run(lambda conn: bool(conn.execute(stmt).rowcount))


class Repositories:
    """Every repository over one database, for composition roots."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.installations = Installations(db)
        self.guild_connections = GuildConnections(db)
        self.user_links = UserLinks(db)
        self.subscriptions = Subscriptions(db)
        self.role_rules = RoleRules(db)
        self.feature_access = FeatureAccess(db)
        self.processed_ids = ProcessedIds(db)
        self.drafts = Drafts(db)
        self.oauth_states = OAuthStates(db)
        self.metadata_cache = MetadataCache(db)
        self.delivery_log = DeliveryLog(db)
        self.issue_threads = IssueThreads(db)


# --- helpers ------------------------------------------------------------------------------


def _present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _strings(values: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise InvalidValue(f"{name} must be a sequence of strings, not one string")
    out = [str(v) for v in values]
    if any(not v for v in out):
        raise InvalidValue(f"{name} must not contain empty strings")
    return out


def _any_id(t: sa.Table, message_ids: Sequence[str]) -> sa.ColumnElement[bool]:
    # ``id = :a OR id = :b …`` rather than an expanding ``IN``: plain binds on every backend,
    # for the handful of ids a pack holds.
    return sa.or_(*(t.c.message_id == m for m in message_ids))


def _one(conn: Connection, query: sa.Select[Any]) -> Row[Any]:
    return conn.execute(query).one()


def _installation(r: Row[Any]) -> Installation:
    return Installation(
        client_key=r.client_key,
        kind=InstallationKind(r.kind),
        state=InstallationState(r.state),
        created_at=r.created_at,
        updated_at=r.updated_at,
        app_key=r.app_key,
        base_url=r.base_url,
        display_url=r.display_url,
        oauth_client_id=r.oauth_client_id,
        shared_secret_ciphertext=_bytes(r.shared_secret_ciphertext),
        installation_id=r.installation_id,
        cloud_id=r.cloud_id,
        api_base_url=r.api_base_url,
        system_token_ciphertext=_bytes(r.system_token_ciphertext),
        system_token_expires_at=r.system_token_expires_at,
        environment_id=r.environment_id,
    )


def _bytes(value: bytes | bytearray | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)


def _guild(r: Row[Any]) -> GuildConnection:
    return GuildConnection(
        guild_id=r.guild_id,
        client_key=r.client_key,
        connected_by=r.connected_by,
        settings=dict(r.settings),
        connected_at=r.connected_at,
    )


def _link(r: Row[Any]) -> UserLink:
    return UserLink(
        client_key=r.client_key,
        account_id=r.account_id,
        discord_user_id=r.discord_user_id,
        linked_at=r.linked_at,
    )


def _subscription(r: Row[Any]) -> Subscription:
    return Subscription(
        id=r.id,
        guild_id=r.guild_id,
        channel_id=r.channel_id,
        client_key=r.client_key,
        project_key=r.project_key,
        event_types=tuple(r.event_types),
        issue_types=tuple(r.issue_types),
        jql=r.jql,
        delivery_mode=r.delivery_mode,
        created_by=r.created_by,
        created_at=r.created_at,
    )


def _draft(r: Row[Any]) -> Draft:
    return Draft(
        id=r.id,
        client_key=r.client_key,
        discord_user_id=r.discord_user_id,
        payload=dict(r.payload),
        created_at=r.created_at,
        expires_at=r.expires_at,
    )


def _delivery(r: Row[Any]) -> Delivery:
    return Delivery(
        message_id=r.message_id,
        channel_id=r.channel_id,
        discord_message_id=r.discord_message_id,
        status=r.status,
        recorded_at=r.recorded_at,
        pack_head=r.pack_head,
        pack_size=r.pack_size,
    )


def _issue_thread(r: Row[Any]) -> IssueThread:
    return IssueThread(
        channel_id=r.channel_id,
        thread_key=r.thread_key,
        client_key=r.client_key,
        thread_id=r.thread_id,
        created_at=r.created_at,
    )
