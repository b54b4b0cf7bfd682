"""Routes: templates filled safely, major parameters as Discord defines them, tokens hidden."""

from __future__ import annotations

import pytest

from dfj_discord_worker.discord import Route
from dfj_discord_worker.discord.routes import (
    CREATE_DM,
    CREATE_FOLLOWUP,
    CREATE_MESSAGE,
    EDIT_ORIGINAL_RESPONSE,
)

TOKEN = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2VuLWZvci10ZXN0cw"


def test_a_channel_route_is_keyed_by_template_and_channel() -> None:
    """The bucket key is the template (not the filled path); the major is the channel."""
    route = CREATE_MESSAGE.compile(channel_id="123")
    assert route.key == "POST /channels/{channel_id}/messages"
    assert route.path == "/channels/123/messages"
    assert route.major == "channel:123"
    assert not route.has_secret


def test_guild_routes_use_the_guild_and_others_have_no_major() -> None:
    guild = Route.of("GET", "/guilds/{guild_id}/roles", {"guild_id": 9})
    assert guild.major == "guild:9"
    assert CREATE_DM.compile().major == ""


def test_an_interaction_webhook_is_keyed_by_application_and_token_digest() -> None:
    """Two interactions are two buckets; the token itself never appears in the key."""
    one = EDIT_ORIGINAL_RESPONSE.compile(application_id="77", interaction_token=TOKEN)
    other = EDIT_ORIGINAL_RESPONSE.compile(application_id="77", interaction_token=TOKEN + "x")
    assert one.major.startswith("webhook:77:")
    assert one.major != other.major
    assert TOKEN not in one.major
    assert one.has_secret
    assert TOKEN in one.path  # only the wire path carries it
    assert one.path.endswith("/messages/@original")


def test_a_token_never_shows_in_repr_or_str() -> None:
    route = CREATE_FOLLOWUP.compile(application_id="77", interaction_token=TOKEN)
    assert TOKEN not in repr(route)
    assert TOKEN not in str(route)
    assert str(route) == "POST /webhooks/{application_id}/{interaction_token}"


def test_values_are_encoded_as_one_segment() -> None:
    """A value cannot add a path segment or a query."""
    route = CREATE_MESSAGE.compile(channel_id="1/../2?x=y")
    assert route.path == "/channels/1%2F..%2F2%3Fx%3Dy/messages"


@pytest.mark.parametrize(
    ("method", "template", "params"),
    [
        ("POST", "/channels/{channel_id}/messages", {}),
        ("POST", "/channels/{channel_id}/messages", {"channel_id": "1", "extra": "2"}),
        ("POST", "/channels/{channel_id}/messages", {"channel_id": ""}),
        ("POST", "/channels/{channel_id}/messages", {"channel_id": True}),
        ("BREW", "/channels/{channel_id}", {"channel_id": "1"}),
        ("GET", "channels/{channel_id}", {"channel_id": "1"}),
    ],
)
def test_bad_routes_are_refused(method: str, template: str, params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Route.of(method, template, params)  # type: ignore[arg-type]
