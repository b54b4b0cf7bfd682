"""Storage: one schema for SQLite and Azure SQL, its migrations, and narrow async repositories.

- :mod:`.schema` — the tables (SQLAlchemy Core); :mod:`.types` — portable column types.
- :mod:`.engine` — ``create_engine(settings_or_url, credential=…)`` for SQLite or mssql+pyodbc.
- :mod:`.mssql` — ODBC connection strings, access-token packing, transient-error classification
  (pure; pyodbc is only imported by SQLAlchemy when an mssql engine is created).
- :mod:`.database` — ``Database``: units of work on a thread pool, with bounded retries.
- :mod:`.repositories` — ``Installations``, ``UserLinks``, ``Subscriptions``, … over a Database.
- :mod:`.errors` — ``AlreadyExists``, ``UnknownReference``, ``InvalidValue``.
- :mod:`.migrate` — ``upgrade`` / ``downgrade`` / ``current`` / ``render_sql`` (imported on its
  own, so services that never migrate do not load Alembic).

Typical composition root::

    async with Database.open(settings, clock=clock) as db:
        repos = Repositories(db)
        await repos.processed_ids.mark_processed("jira-worker", envelope.id)
"""

from __future__ import annotations

from dfj_common.storage.database import Database, is_transient_db_error
from dfj_common.storage.engine import create_engine
from dfj_common.storage.errors import (
    AlreadyExists,
    ConstraintViolation,
    InvalidValue,
    UnknownReference,
)
from dfj_common.storage.repositories import (
    CachedValue,
    Delivery,
    DeliveryLog,
    Draft,
    Drafts,
    FeatureAccess,
    GuildConnection,
    GuildConnections,
    Installation,
    Installations,
    IssueThread,
    IssueThreads,
    MetadataCache,
    OAuthStates,
    ProcessedIds,
    Repositories,
    RoleRules,
    Subscription,
    Subscriptions,
    UserLink,
    UserLinks,
)
from dfj_common.storage.schema import AccessMode, InstallationKind, InstallationState, metadata

__all__ = [
    "AccessMode",
    "AlreadyExists",
    "CachedValue",
    "ConstraintViolation",
    "Database",
    "Delivery",
    "DeliveryLog",
    "Draft",
    "Drafts",
    "FeatureAccess",
    "GuildConnection",
    "GuildConnections",
    "Installation",
    "InstallationKind",
    "InstallationState",
    "Installations",
    "InvalidValue",
    "IssueThread",
    "IssueThreads",
    "MetadataCache",
    "OAuthStates",
    "ProcessedIds",
    "Repositories",
    "RoleRules",
    "Subscription",
    "Subscriptions",
    "UnknownReference",
    "UserLink",
    "UserLinks",
    "create_engine",
    "is_transient_db_error",
    "metadata",
]
