"""What the other services ask the discord-worker to send, read from ``discord-outbox``.

Two event types, both with the channel (or, for a DM, the user) as the session key so a
channel's messages go out in the order they were published:

- ``discord.message.post`` (the jira-worker's notifications, the linker's notices):
  ``client_key``, ``guild_id``, ``channel_id`` *or* ``dm_user_id``, ``message`` (a Discord
  message body) and optionally ``thread`` {``key``, ``name``}: post into the issue's thread.
- ``discord.interaction.reply`` (answers to commands and clicks): ``application_id``,
  ``token``, ``interaction_id``, ``channel_id``, ``guild_id``, ``message``, ``ephemeral``,
  ``followup`` (false: edit the deferred response; true: a follow-up), ``created_at`` (epoch
  seconds of the interaction, for the token's 15-minute life) and optionally ``files``: up to
  10 ``{"name", "content_type", "text"}`` to attach (UTF-8 text, 8 MiB in all; e.g. the
  linker's privacy export).

A body that does not match is a ``BadOutboxMessage``: dead-lettered with what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dfj_common.envelope import Envelope
from dfj_common.errors import PermanentError
from dfj_discord_worker.discord.client import Upload

__all__ = [
    "INTERACTION_REPLY",
    "MESSAGE_POST",
    "BadOutboxMessage",
    "Post",
    "Reply",
    "ThreadTarget",
    "read_post",
    "read_reply",
]

MESSAGE_POST: Final = "discord.message.post"
INTERACTION_REPLY: Final = "discord.interaction.reply"
_SNOWFLAKE: Final = re.compile(r"[0-9]{1,20}")
_THREAD_NAME: Final = 100
_TOKEN_LIMIT: Final = 500


class BadOutboxMessage(PermanentError):
    """The outbox message cannot be sent as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="BadOutboxMessage")


@dataclass(frozen=True, slots=True)
class ThreadTarget:
    """Post into the channel's thread for ``key`` (started, named ``name``, when missing)."""

    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Post:
    """A message for a channel, an issue's thread in it, or a user's DMs."""

    client_key: str
    guild_id: str | None
    channel_id: str | None
    dm_user_id: str | None
    message: Mapping[str, Any] = field(repr=False)
    thread: ThreadTarget | None = None

    @property
    def target(self) -> tuple[str, str | None]:
        """Posts with the same target may share one Discord message."""
        where = self.channel_id if self.channel_id is not None else f"dm:{self.dm_user_id}"
        return where, (self.thread.key if self.thread is not None else None)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to an interaction, through its webhook token."""

    application_id: str
    token: str = field(repr=False)
    interaction_id: str
    channel_id: str | None
    guild_id: str | None
    message: Mapping[str, Any] = field(repr=False)
    ephemeral: bool
    followup: bool
    created_at: float
    files: tuple[Upload, ...] = field(default=(), repr=False)


def _snowflake(data: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _SNOWFLAKE.fullmatch(value):
        raise BadOutboxMessage(f"{name} must be a Discord id")
    return value


def _message(data: Mapping[str, Any]) -> Mapping[str, Any]:
    message = data.get("message")
    if not isinstance(message, Mapping) or not message:
        raise BadOutboxMessage("message must be a non-empty object")
    return message


def read_post(envelope: Envelope) -> Post:
    """The post an envelope asks for; ``BadOutboxMessage`` when it does not say one."""
    data = envelope.data
    if not isinstance(data, Mapping):
        raise BadOutboxMessage("data must be an object")
    client_key = data.get("client_key", envelope.tenant)
    if not isinstance(client_key, str) or not client_key:
        raise BadOutboxMessage("client_key is missing")
    channel_id = _snowflake(data, "channel_id", required=False)
    dm_user_id = _snowflake(data, "dm_user_id", required=False)
    if (channel_id is None) == (dm_user_id is None):
        raise BadOutboxMessage("give exactly one of channel_id and dm_user_id")
    thread: ThreadTarget | None = None
    raw_thread = data.get("thread")
    if raw_thread is not None:
        if dm_user_id is not None:
            raise BadOutboxMessage("a DM has no threads")
        if not isinstance(raw_thread, Mapping):
            raise BadOutboxMessage("thread must be an object")
        key, name = raw_thread.get("key"), raw_thread.get("name")
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise BadOutboxMessage("thread.key must be 1 to 255 characters")
        if not isinstance(name, str) or not name.strip():
            raise BadOutboxMessage("thread.name must be a non-empty string")
        thread = ThreadTarget(key=key, name=name.strip()[:_THREAD_NAME])
    return Post(
        client_key=client_key,
        guild_id=_snowflake(data, "guild_id", required=False),
        channel_id=channel_id,
        dm_user_id=dm_user_id,
        message=_message(data),
        thread=thread,
    )


def read_reply(envelope: Envelope) -> Reply:
    """The interaction answer an envelope asks for; ``BadOutboxMessage`` when malformed."""
    data = envelope.data
    if not isinstance(data, Mapping):
        raise BadOutboxMessage("data must be an object")
    token = data.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= _TOKEN_LIMIT or "/" in token:
        raise BadOutboxMessage("token must be an interaction token")
    created_at = data.get("created_at")
    if not isinstance(created_at, int | float) or isinstance(created_at, bool):
        raise BadOutboxMessage("created_at must be epoch seconds")
    flags = {}
    for name in ("ephemeral", "followup"):
        value = data.get(name, False)
        if not isinstance(value, bool):
            raise BadOutboxMessage(f"{name} must be true or false")
        flags[name] = value
    application_id = _snowflake(data, "application_id", required=True)
    interaction_id = _snowflake(data, "interaction_id", required=True)
    assert application_id is not None and interaction_id is not None
    return Reply(
        application_id=application_id,
        token=token,
        interaction_id=interaction_id,
        channel_id=_snowflake(data, "channel_id", required=False),
        guild_id=_snowflake(data, "guild_id", required=False),
        message=_message(data),
        ephemeral=flags["ephemeral"],
        followup=flags["followup"],
        created_at=float(created_at),
        files=_files(data.get("files")),
    )


_MAX_FILES: Final = 10
_MAX_UPLOAD: Final = 8 * 1024 * 1024
_FILE_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,100}")
_MEDIA_TYPE: Final = re.compile(r"[a-z]+/[a-z0-9.+-]+")


def _files(value: object) -> tuple[Upload, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > _MAX_FILES:
        raise BadOutboxMessage(f"files must be a list of at most {_MAX_FILES}")
    out: list[Upload] = []
    for item in value:
        name = item.get("name") if isinstance(item, Mapping) else None
        media = item.get("content_type") if isinstance(item, Mapping) else None
        text = item.get("text") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise BadOutboxMessage("each file needs a plain name")
        if not isinstance(media, str) or not _MEDIA_TYPE.fullmatch(media):
            raise BadOutboxMessage(f"file {name} needs a media type")
        if not isinstance(text, str):
            raise BadOutboxMessage(f"file {name} needs its text")
        out.append(Upload(filename=name, content_type=media, data=text.encode("utf-8")))
    if sum(len(u.data) for u in out) > _MAX_UPLOAD:
        raise BadOutboxMessage("files are larger than 8 MiB in all")
    return tuple(out)
