"""Initial schema: installations, guilds, links, subscriptions, rules and short-lived state.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen copy of ``dfj_common.storage.schema`` at this revision, in plain SQLAlchemy types:
``UtcDateTime`` is ``DATETIME2(6)`` on SQL Server (``DATETIME`` elsewhere) holding UTC, and
``JsonText`` is ``UnicodeText``. A test compares it with the models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mssql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SNOWFLAKE = 32
TENANT = 255
URL_LENGTH = 2048


def _utc() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(
        mssql.DATETIME2(precision=6),  # type: ignore[no-untyped-call]
        "mssql",
    )


def _json() -> sa.UnicodeText:
    return sa.UnicodeText()


def upgrade() -> None:
    op.create_table(
        "installations",
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("app_key", sa.String(255), nullable=True),
        sa.Column("base_url", sa.String(URL_LENGTH), nullable=True),
        sa.Column("display_url", sa.String(URL_LENGTH), nullable=True),
        sa.Column("oauth_client_id", sa.String(255), nullable=True),
        sa.Column("shared_secret_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("installation_id", sa.String(TENANT), nullable=True),
        sa.Column("cloud_id", sa.String(64), nullable=True),
        sa.Column("api_base_url", sa.String(URL_LENGTH), nullable=True),
        sa.Column("system_token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("system_token_expires_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("client_key", name=op.f("pk_installations")),
        sa.CheckConstraint("kind IN ('connect', 'forge')", name=op.f("ck_installations_kind")),
        sa.CheckConstraint(
            "state IN ('installed', 'enabled', 'disabled', 'uninstalled')",
            name=op.f("ck_installations_state"),
        ),
        sa.CheckConstraint(
            "kind <> 'connect' OR (base_url IS NOT NULL AND shared_secret_ciphertext IS NOT NULL)",
            name=op.f("ck_installations_connect_fields"),
        ),
        sa.CheckConstraint(
            "kind <> 'forge' OR installation_id IS NOT NULL",
            name=op.f("ck_installations_forge_fields"),
        ),
    )
    op.create_index(
        op.f("ix_installations_installation_id"),
        "installations",
        ["installation_id"],
        unique=True,
        mssql_where=sa.text("installation_id IS NOT NULL"),
        sqlite_where=sa.text("installation_id IS NOT NULL"),
    )
    op.create_index(op.f("ix_installations_cloud_id"), "installations", ["cloud_id"])

    op.create_table(
        "guild_connections",
        sa.Column("guild_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("connected_by", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("connected_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_connections")),
        sa.ForeignKeyConstraint(
            ["client_key"],
            ["installations.client_key"],
            name=op.f("fk_guild_connections_client_key_installations"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "guild_id", "client_key", name=op.f("uq_guild_connections_guild_id_client_key")
        ),
    )
    op.create_index(op.f("ix_guild_connections_client_key"), "guild_connections", ["client_key"])

    op.create_table(
        "user_links",
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("discord_user_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("linked_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("client_key", "discord_user_id", name=op.f("pk_user_links")),
        sa.ForeignKeyConstraint(
            ["client_key"],
            ["installations.client_key"],
            name=op.f("fk_user_links_client_key_installations"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "client_key", "account_id", name=op.f("uq_user_links_client_key_account_id")
        ),
    )
    op.create_index(op.f("ix_user_links_account_id"), "user_links", ["account_id"])
    op.create_index(op.f("ix_user_links_discord_user_id"), "user_links", ["discord_user_id"])

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("guild_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("channel_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("project_key", sa.String(255), nullable=False),
        sa.Column("event_types", _json(), nullable=False),
        sa.Column("issue_types", _json(), nullable=False),
        sa.Column("jql", sa.UnicodeText(), nullable=True),
        sa.Column("delivery_mode", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.ForeignKeyConstraint(
            ["guild_id", "client_key"],
            ["guild_connections.guild_id", "guild_connections.client_key"],
            name=op.f("fk_subscriptions_guild_id_client_key_guild_connections"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_subscriptions_guild_id_channel_id"), "subscriptions", ["guild_id", "channel_id"]
    )
    op.create_index(
        op.f("ix_subscriptions_client_key_project_key"),
        "subscriptions",
        ["client_key", "project_key"],
    )

    op.create_table(
        "role_rules",
        sa.Column("guild_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("capability", sa.String(64), nullable=False),
        sa.Column("role_ids", _json(), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "capability", name=op.f("pk_role_rules")),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guild_connections.guild_id"],
            name=op.f("fk_role_rules_guild_id_guild_connections"),
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "feature_access",
        sa.Column("guild_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "feature", name=op.f("pk_feature_access")),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guild_connections.guild_id"],
            name=op.f("fk_feature_access_guild_id_guild_connections"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("mode IN ('linked', 'all')", name=op.f("ck_feature_access_mode")),
    )

    op.create_table(
        "processed_ids",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("processed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_processed_ids")),
    )
    op.create_index(op.f("ix_processed_ids_processed_at"), "processed_ids", ["processed_at"])

    op.create_table(
        "drafts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("discord_user_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drafts")),
        sa.ForeignKeyConstraint(
            ["client_key"],
            ["installations.client_key"],
            name=op.f("fk_drafts_client_key_installations"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_drafts_client_key"), "drafts", ["client_key"])
    op.create_index(op.f("ix_drafts_discord_user_id"), "drafts", ["discord_user_id"])
    op.create_index(op.f("ix_drafts_expires_at"), "drafts", ["expires_at"])

    op.create_table(
        "oauth_states",
        sa.Column("state_id", sa.String(128), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("used_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("state_id", name=op.f("pk_oauth_states")),
    )
    op.create_index(op.f("ix_oauth_states_expires_at"), "oauth_states", ["expires_at"])

    op.create_table(
        "metadata_cache",
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.Column("fetched_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("client_key", "kind", "key", name=op.f("pk_metadata_cache")),
        sa.ForeignKeyConstraint(
            ["client_key"],
            ["installations.client_key"],
            name=op.f("fk_metadata_cache_client_key_installations"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_metadata_cache_expires_at"), "metadata_cache", ["expires_at"])

    op.create_table(
        "delivery_log",
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("channel_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("discord_message_id", sa.String(SNOWFLAKE), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("recorded_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_delivery_log")),
    )
    op.create_index(
        op.f("ix_delivery_log_channel_id_recorded_at"),
        "delivery_log",
        ["channel_id", "recorded_at"],
    )
    op.create_index(op.f("ix_delivery_log_recorded_at"), "delivery_log", ["recorded_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_log_recorded_at"), table_name=op.f("delivery_log"))
    op.drop_index(op.f("ix_delivery_log_channel_id_recorded_at"), table_name=op.f("delivery_log"))
    op.drop_table("delivery_log")
    op.drop_index(op.f("ix_metadata_cache_expires_at"), table_name=op.f("metadata_cache"))
    op.drop_table("metadata_cache")
    op.drop_index(op.f("ix_oauth_states_expires_at"), table_name=op.f("oauth_states"))
    op.drop_table("oauth_states")
    op.drop_index(op.f("ix_drafts_expires_at"), table_name=op.f("drafts"))
    op.drop_index(op.f("ix_drafts_discord_user_id"), table_name=op.f("drafts"))
    op.drop_index(op.f("ix_drafts_client_key"), table_name=op.f("drafts"))
    op.drop_table("drafts")
    op.drop_index(op.f("ix_processed_ids_processed_at"), table_name=op.f("processed_ids"))
    op.drop_table("processed_ids")
    op.drop_table("feature_access")
    op.drop_table("role_rules")
    op.drop_index(op.f("ix_subscriptions_client_key_project_key"), table_name=op.f("subscriptions"))
    op.drop_index(op.f("ix_subscriptions_guild_id_channel_id"), table_name=op.f("subscriptions"))
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_user_links_discord_user_id"), table_name=op.f("user_links"))
    op.drop_index(op.f("ix_user_links_account_id"), table_name=op.f("user_links"))
    op.drop_table("user_links")
    op.drop_index(op.f("ix_guild_connections_client_key"), table_name=op.f("guild_connections"))
    op.drop_table("guild_connections")
    op.drop_index(op.f("ix_installations_cloud_id"), table_name=op.f("installations"))
    op.drop_index(op.f("ix_installations_installation_id"), table_name=op.f("installations"))
    op.drop_table("installations")
