"""The one schema (DESIGN §3): IDs, configuration and metadata only, for SQLite and SQL Server.

Portability rules this module keeps:

- Indexed text is ``String(n)`` (``VARCHAR(n)`` on SQL Server, which cannot index ``MAX``
  columns; index keys stay far below its 900/1700-byte limits). Ids are ASCII, so ``VARCHAR``;
  free text (JQL, JSON) is ``UnicodeText``. Discord snowflakes are 64-bit: ``String(32)``.
- Datetimes are :class:`~dfj_common.storage.types.UtcDateTime`; JSON is
  :class:`~dfj_common.storage.types.JsonText`; ciphertext is ``LargeBinary`` — encryption is the
  caller's job, this layer only stores bytes.
- SQL Server's ``UNIQUE`` treats NULLs as equal, so the optional Forge installation id is unique
  through a filtered index (``WHERE installation_id IS NOT NULL``), not a constraint.
- ``ON DELETE CASCADE`` runs along a single path per table (SQL Server refuses multiple cascade
  paths): installations → guild_connections → subscriptions / role_rules / feature_access, and
  installations → user_links / drafts / metadata_cache / issue_threads. Deleting an
  installation therefore purges that site's data in one statement; ``processed_ids``,
  ``oauth_states`` and ``delivery_log`` hold no tenant data and are purged by age.
- Every constraint and index is named (``NAMING_CONVENTION``), so migrations can address them.

``client_key`` is the tenant key everywhere: the Connect ``clientKey``, or for a Forge-only
installation the key its owner chose (normally the installation id), matching the envelope's
``tenant``. A guild is connected to at most one site; a site to any number of guilds.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import sqlalchemy as sa

from dfj_common.storage.types import JsonText, UtcDateTime

__all__ = [
    "NAMING_CONVENTION",
    "AccessMode",
    "InstallationKind",
    "InstallationState",
    "delivery_log",
    "drafts",
    "feature_access",
    "guild_connections",
    "installations",
    "issue_threads",
    "metadata",
    "metadata_cache",
    "oauth_states",
    "processed_ids",
    "role_rules",
    "subscriptions",
    "user_links",
]

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata: Final = sa.MetaData(naming_convention=NAMING_CONVENTION)

SNOWFLAKE: Final = 32  # Discord ids: 64-bit integers as decimal text
TENANT: Final = 255  # Connect clientKey / Forge installation id
URL_LENGTH: Final = 2048


class InstallationKind(StrEnum):
    """How the site installed us."""

    CONNECT = "connect"
    FORGE = "forge"


class InstallationState(StrEnum):
    """Lifecycle state of an installation."""

    INSTALLED = "installed"
    ENABLED = "enabled"
    DISABLED = "disabled"
    UNINSTALLED = "uninstalled"


class AccessMode(StrEnum):
    """Who may use a feature in a guild: linked users only, or everyone."""

    LINKED = "linked"
    ALL = "all"


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(m)) for m in enum)})"


installations: Final = sa.Table(
    "installations",
    metadata,
    sa.Column("client_key", sa.String(TENANT), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    # Connect
    sa.Column("app_key", sa.String(255)),
    sa.Column("base_url", sa.String(URL_LENGTH)),
    sa.Column("display_url", sa.String(URL_LENGTH)),
    sa.Column("oauth_client_id", sa.String(255)),
    sa.Column("shared_secret_ciphertext", sa.LargeBinary),
    # Forge (installation_id may also be set on a Connect row that reported it, for migration)
    sa.Column("installation_id", sa.String(TENANT)),
    sa.Column("cloud_id", sa.String(64)),
    sa.Column("api_base_url", sa.String(URL_LENGTH)),
    sa.Column("system_token_ciphertext", sa.LargeBinary),
    sa.Column("system_token_expires_at", UtcDateTime),
    sa.Column("environment_id", sa.String(255)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint(_in("kind", InstallationKind), name="kind"),
    sa.CheckConstraint(_in("state", InstallationState), name="state"),
    sa.CheckConstraint(
        "kind <> 'connect' OR (base_url IS NOT NULL AND shared_secret_ciphertext IS NOT NULL)",
        name="connect_fields",
    ),
    sa.CheckConstraint("kind <> 'forge' OR installation_id IS NOT NULL", name="forge_fields"),
    sa.Index(
        "ix_installations_installation_id",
        "installation_id",
        unique=True,
        mssql_where=sa.text("installation_id IS NOT NULL"),
        sqlite_where=sa.text("installation_id IS NOT NULL"),
    ),
    sa.Index("ix_installations_cloud_id", "cloud_id"),
)

guild_connections: Final = sa.Table(
    "guild_connections",
    metadata,
    sa.Column("guild_id", sa.String(SNOWFLAKE), primary_key=True),
    sa.Column(
        "client_key",
        sa.String(TENANT),
        sa.ForeignKey("installations.client_key", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("connected_by", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("settings", JsonText, nullable=False),
    sa.Column("connected_at", UtcDateTime, nullable=False),
    # The target of subscriptions' composite key: a subscription's site is its guild's site.
    sa.UniqueConstraint("guild_id", "client_key"),
    sa.Index("ix_guild_connections_client_key", "client_key"),
)

user_links: Final = sa.Table(
    "user_links",
    metadata,
    sa.Column(
        "client_key",
        sa.String(TENANT),
        sa.ForeignKey("installations.client_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("discord_user_id", sa.String(SNOWFLAKE), primary_key=True),
    sa.Column("account_id", sa.String(128), nullable=False),
    sa.Column("linked_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("client_key", "account_id"),
    sa.Index("ix_user_links_account_id", "account_id"),
    sa.Index("ix_user_links_discord_user_id", "discord_user_id"),
)

subscriptions: Final = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("guild_id", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("channel_id", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("client_key", sa.String(TENANT), nullable=False),
    sa.Column("project_key", sa.String(255), nullable=False),
    sa.Column("event_types", JsonText, nullable=False),
    sa.Column("issue_types", JsonText, nullable=False),
    sa.Column("jql", sa.UnicodeText),
    sa.Column("delivery_mode", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.ForeignKeyConstraint(
        ["guild_id", "client_key"],
        ["guild_connections.guild_id", "guild_connections.client_key"],
        ondelete="CASCADE",
    ),
    sa.Index("ix_subscriptions_guild_id_channel_id", "guild_id", "channel_id"),
    sa.Index("ix_subscriptions_client_key_project_key", "client_key", "project_key"),
)

role_rules: Final = sa.Table(
    "role_rules",
    metadata,
    sa.Column(
        "guild_id",
        sa.String(SNOWFLAKE),
        sa.ForeignKey("guild_connections.guild_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("capability", sa.String(64), primary_key=True),
    sa.Column("role_ids", JsonText, nullable=False),
)

feature_access: Final = sa.Table(
    "feature_access",
    metadata,
    sa.Column(
        "guild_id",
        sa.String(SNOWFLAKE),
        sa.ForeignKey("guild_connections.guild_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("feature", sa.String(64), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.CheckConstraint(_in("mode", AccessMode), name="mode"),
)

processed_ids: Final = sa.Table(
    "processed_ids",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("processed_at", UtcDateTime, nullable=False),
    sa.Index("ix_processed_ids_processed_at", "processed_at"),
)

drafts: Final = sa.Table(
    "drafts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "client_key",
        sa.String(TENANT),
        sa.ForeignKey("installations.client_key", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("discord_user_id", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("payload", JsonText, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Index("ix_drafts_client_key", "client_key"),
    sa.Index("ix_drafts_discord_user_id", "discord_user_id"),
    sa.Index("ix_drafts_expires_at", "expires_at"),
)

oauth_states: Final = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("state_id", sa.String(128), primary_key=True),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=False),
    sa.Index("ix_oauth_states_expires_at", "expires_at"),
)

metadata_cache: Final = sa.Table(
    "metadata_cache",
    metadata,
    sa.Column(
        "client_key",
        sa.String(TENANT),
        sa.ForeignKey("installations.client_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", JsonText, nullable=False),
    sa.Column("fetched_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Index("ix_metadata_cache_expires_at", "expires_at"),
)

delivery_log: Final = sa.Table(
    "delivery_log",
    metadata,
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("channel_id", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("discord_message_id", sa.String(SNOWFLAKE)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    # A message posted together with others (one Discord message for several): the id of the
    # first of them, and on that first one how many went into the post (migration 0002).
    sa.Column("pack_head", sa.String(255)),
    sa.Column("pack_size", sa.Integer),
    sa.Index("ix_delivery_log_channel_id_recorded_at", "channel_id", "recorded_at"),
    sa.Index("ix_delivery_log_recorded_at", "recorded_at"),
)

issue_threads: Final = sa.Table(
    "issue_threads",
    metadata,
    sa.Column("channel_id", sa.String(SNOWFLAKE), primary_key=True),
    sa.Column("thread_key", sa.String(255), primary_key=True),
    sa.Column(
        "client_key",
        sa.String(TENANT),
        sa.ForeignKey("installations.client_key", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("thread_id", sa.String(SNOWFLAKE), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_issue_threads_client_key", "client_key"),
)
