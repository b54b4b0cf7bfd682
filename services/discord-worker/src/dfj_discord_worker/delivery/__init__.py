"""Delivery of ``discord-outbox`` messages: posts (packed, threaded, exactly once) and
interaction answers."""

from __future__ import annotations

from dfj_discord_worker.delivery.outbox import (
    INTERACTION_REPLY,
    MESSAGE_POST,
    BadOutboxMessage,
    Post,
    Reply,
    ThreadTarget,
    read_post,
    read_reply,
)
from dfj_discord_worker.delivery.pack import Pack, pack, packable
from dfj_discord_worker.delivery.poster import Poster, nonce_for
from dfj_discord_worker.delivery.replies import TOKEN_LIFE, Replier

__all__ = [
    "INTERACTION_REPLY",
    "MESSAGE_POST",
    "TOKEN_LIFE",
    "BadOutboxMessage",
    "Pack",
    "Post",
    "Poster",
    "Replier",
    "Reply",
    "ThreadTarget",
    "nonce_for",
    "pack",
    "packable",
    "read_post",
    "read_reply",
]
