"""The discord-worker's delivery state: packed posts in ``delivery_log``, per-issue threads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

``delivery_log.pack_head``/``pack_size`` say which outbox messages went out in one Discord
message, so a redelivery re-sends exactly that post under the same nonce. ``issue_threads``
maps (channel, issue) to the thread the first notification started; it belongs to the site
and goes with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mssql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SNOWFLAKE = 32
TENANT = 255


def _utc() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(
        mssql.DATETIME2(precision=6),  # type: ignore[no-untyped-call]
        "mssql",
    )


def upgrade() -> None:
    with op.batch_alter_table("delivery_log") as batch:
        batch.add_column(sa.Column("pack_head", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pack_size", sa.Integer(), nullable=True))
    op.create_table(
        "issue_threads",
        sa.Column("channel_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("thread_key", sa.String(255), nullable=False),
        sa.Column("client_key", sa.String(TENANT), nullable=False),
        sa.Column("thread_id", sa.String(SNOWFLAKE), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_key"],
            ["installations.client_key"],
            name=op.f("fk_issue_threads_client_key_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", "thread_key", name=op.f("pk_issue_threads")),
    )
    op.create_index(op.f("ix_issue_threads_client_key"), "issue_threads", ["client_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_issue_threads_client_key"), table_name="issue_threads")
    op.drop_table("issue_threads")
    with op.batch_alter_table("delivery_log") as batch:
        batch.drop_column("pack_size")
        batch.drop_column("pack_head")
