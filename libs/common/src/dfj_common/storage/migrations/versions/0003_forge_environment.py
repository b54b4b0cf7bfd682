"""Forge installations remember their environment, for links to the app's pages in Jira.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A Forge app's full page lives at ``{site}/jira/apps/{appId}/{environmentId}``; the linker's
"Link in Jira" button on a Forge site needs the environment the site installed. It comes with
every Forge Invocation Token (``app.environment.id``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.add_column(sa.Column("environment_id", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.drop_column("environment_id")
