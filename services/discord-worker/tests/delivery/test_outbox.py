"""Reading outbox messages: what is accepted, and a clear reason for what is not."""

from __future__ import annotations

from typing import Any

import pytest

from dfj_common.envelope import Envelope
from dfj_discord_worker.delivery import (
    INTERACTION_REPLY,
    MESSAGE_POST,
    BadOutboxMessage,
    read_post,
    read_reply,
)

MESSAGE = {"embeds": [{"title": "DEV-1"}]}


def envelope(kind: str, data: Any) -> Envelope:
    return Envelope(
        id="m-1", source="test", type=kind, tenant="site-1", session_key="1200", data=data
    )


def test_a_channel_post_with_a_thread() -> None:
    post = read_post(
        envelope(
            MESSAGE_POST,
            {
                "client_key": "site-1",
                "guild_id": "1100",
                "channel_id": 1200,
                "message": MESSAGE,
                "thread": {"key": "site-1:10001", "name": "  DEV-1: " + "x" * 200},
            },
        )
    )
    assert (post.channel_id, post.guild_id, post.dm_user_id) == ("1200", "1100", None)
    assert post.thread is not None and len(post.thread.name) == 100
    assert post.target == ("1200", "site-1:10001")


def test_a_dm_post_defaults_the_site_to_the_tenant() -> None:
    post = read_post(envelope(MESSAGE_POST, {"dm_user_id": "1300", "message": MESSAGE}))
    assert (post.client_key, post.target) == ("site-1", ("dm:1300", None))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "data must be an object"),
        ({"message": MESSAGE}, "exactly one of channel_id and dm_user_id"),
        ({"channel_id": "1", "dm_user_id": "2", "message": MESSAGE}, "exactly one"),
        ({"channel_id": "12ab", "message": MESSAGE}, "channel_id must be a Discord id"),
        ({"channel_id": "1200"}, "message must be a non-empty object"),
        ({"channel_id": "1200", "message": MESSAGE, "thread": {"key": ""}}, "thread.key"),
        ({"dm_user_id": "1", "message": MESSAGE, "thread": {"key": "k", "name": "n"}}, "no thr"),
    ],
)
def test_bad_posts_are_refused_with_a_reason(data: Any, reason: str) -> None:
    with pytest.raises(BadOutboxMessage, match=reason) as caught:
        read_post(envelope(MESSAGE_POST, data))
    assert caught.value.reason == "BadOutboxMessage"


REPLY = {
    "application_id": "1400",
    "token": "aW50ZXJhY3Rpb24",
    "interaction_id": "1500",
    "channel_id": "1200",
    "guild_id": "1100",
    "message": MESSAGE,
    "ephemeral": True,
    "followup": False,
    "created_at": 1_700_000_000.5,
}


def test_a_reply_may_carry_files() -> None:
    file = {"name": "export.json", "content_type": "application/json", "text": '{"é": 1}'}
    reply = read_reply(envelope(INTERACTION_REPLY, {**REPLY, "files": [file]}))
    [upload] = reply.files
    assert (upload.filename, upload.content_type, upload.data) == (
        "export.json",
        "application/json",
        '{"é": 1}'.encode(),
    )
    assert read_reply(envelope(INTERACTION_REPLY, REPLY)).files == ()


def test_a_reply_keeps_its_token_out_of_repr() -> None:
    reply = read_reply(envelope(INTERACTION_REPLY, REPLY))
    assert (reply.application_id, reply.ephemeral, reply.followup) == ("1400", True, False)
    assert reply.created_at == 1_700_000_000.5
    assert "aW50ZXJhY3Rpb24" not in repr(reply)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"token": "a/b"}, "interaction token"),
        ({"token": None}, "interaction token"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"ephemeral": "yes"}, "ephemeral must be true or false"),
        ({"application_id": None}, "application_id"),
        ({"files": {"name": "a"}}, "files must be a list"),
        ({"files": [{"name": "../a", "content_type": "text/plain", "text": ""}]}, "plain name"),
        ({"files": [{"name": "a.txt", "content_type": "text", "text": ""}]}, "media type"),
        ({"files": [{"name": "a.txt", "content_type": "text/plain"}]}, "needs its text"),
        ({"files": [{"name": "a", "content_type": "text/plain", "text": ""}] * 11}, "at most 10"),
        (
            {"files": [{"name": "a", "content_type": "text/plain", "text": "x" * (9 << 20)}]},
            "8 MiB",
        ),
    ],
)
def test_bad_replies_are_refused_with_a_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadOutboxMessage, match=reason):
        read_reply(envelope(INTERACTION_REPLY, {**REPLY, **change}))
