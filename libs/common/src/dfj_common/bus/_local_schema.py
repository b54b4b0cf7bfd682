"""Schema of the embedded bus file (its own SQLite file, not the application database)."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 3

# ``available_at`` folds visibility and locking into one column: a message can be claimed when
# it is active (state 0) and ``available_at`` has passed. Claiming moves it to now + lock
# duration; a scheduled or retried message sits in the future; release sets it to now.
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue          TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    session_id     TEXT,
    body           BLOB    NOT NULL,
    properties     TEXT    NOT NULL DEFAULT '{}',
    content_type   TEXT    NOT NULL,
    enqueued_at    REAL    NOT NULL,
    available_at   REAL    NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token     TEXT,
    state          INTEGER NOT NULL DEFAULT 0,
    dl_reason      TEXT,
    dl_description TEXT,
    dl_at          REAL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, state, seq);
CREATE INDEX IF NOT EXISTS messages_session ON messages (queue, session_id, state, seq);
-- Scheduled messages are not in the queue until they are due (as on Service Bus), so one
-- scheduled for later never holds up its session. When due they join at the tail.
CREATE TABLE IF NOT EXISTS scheduled (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    session_id   TEXT,
    body         BLOB    NOT NULL,
    properties   TEXT    NOT NULL DEFAULT '{}',
    content_type TEXT    NOT NULL,
    due_at       REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (queue, due_at);
CREATE TABLE IF NOT EXISTS dedupe (
    queue      TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (queue, message_id)
) WITHOUT ROWID;
-- Version 3: expired entries are found by time, a few at a time, not by scanning the table.
CREATE INDEX IF NOT EXISTS dedupe_expiry ON dedupe (expires_at);
CREATE TABLE IF NOT EXISTS listeners (
    queue      TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    registered REAL    NOT NULL,
    PRIMARY KEY (queue, address)
) WITHOUT ROWID;
"""

STATE_ACTIVE: Final = 0
STATE_DEAD: Final = 1
