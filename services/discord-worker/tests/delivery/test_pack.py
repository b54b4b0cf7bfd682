"""Packing: order kept, Discord's limits kept (property tests with long Unicode input)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfj_discord_worker.delivery import limits
from dfj_discord_worker.delivery.pack import pack, packable

from .conftest import notification

NO_MENTIONS: dict[str, list[str]] = {"parse": []}


def titles(message: dict[str, Any]) -> list[str]:
    return [e["title"] for e in message["embeds"]]


def test_one_message_is_posted_as_it_is() -> None:
    message = notification("DEV-1")
    packed = pack([message])
    assert packed.size == 1 and packed.body == message
    assert packed.body is not message


def test_ten_notifications_pack_into_one_message_in_order() -> None:
    messages = [notification(f"DEV-{i}") for i in range(12)]
    packed = pack(messages)
    assert packed.size == 10
    assert titles(packed.body) == [f"DEV-{i}: summary" for i in range(10)]
    assert limits.problems(packed.body) == []
    assert len(packed.body["components"]) == 5, "the first five issues keep their buttons"
    first_row = packed.body["components"][0]["components"]
    assert [c["label"] for c in first_row] == [
        "DEV-0 · Open in Jira",
        "DEV-0 · Assign to me",
        "DEV-0 · Comment",
        "DEV-0 · Transition",
    ]
    assert packed.body["allowed_mentions"] == NO_MENTIONS


def test_the_same_issue_twice_keeps_one_row_of_buttons() -> None:
    packed = pack([notification("DEV-1"), notification("DEV-1"), notification("DEV-2")])
    assert packed.size == 3
    ids = limits.custom_ids(packed.body)
    assert len(ids) == len(set(ids)) == 6
    assert limits.problems(packed.body) == []


def test_the_character_total_closes_a_pack() -> None:
    long = "é" * 2500
    messages = [notification(f"DEV-{i}", text=long) for i in range(4)]
    packed = pack(messages)
    assert packed.size == 2, "three would hold over 6,000 characters"
    assert limits.problems(packed.body) == []


def test_most_caps_the_pack_and_unpackable_messages_stop_it() -> None:
    messages = [notification(f"DEV-{i}") for i in range(5)]
    assert pack(messages, most=3).size == 3
    assert pack(messages, most=1).body == messages[0]
    with_content = {**notification("DEV-9"), "content": "hello"}
    assert not packable(with_content)
    assert pack([messages[0], with_content, messages[1]]).size == 1
    assert pack([with_content, messages[0]]).size == 1
    mentions = {**notification("DEV-8"), "allowed_mentions": {"parse": ["users"]}}
    assert pack([messages[0], mentions]).size == 1


def test_problems_name_each_broken_limit() -> None:
    message = notification("DEV-1", title="t" * 257)
    message["embeds"] *= 11
    message["components"] *= 6
    found = " | ".join(limits.problems(message))
    assert "11 embeds" in found
    assert "title is over 256" in found
    assert "6 action rows" in found
    assert "custom_id values repeat" in found
    assert limits.problems({"allowed_mentions": NO_MENTIONS}) == [
        "nothing to show (no content, no embeds)"
    ]


# --- properties -----------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=4096
)
_keys = st.from_regex(r"[A-Z]{2,5}-[0-9]{1,6}", fullmatch=True)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(_keys)
    title = draw(_text.map(lambda t: t[:256]))
    description = draw(_text)
    message = notification(key, title=title or key, text=description or "·")
    fields = draw(st.lists(st.tuples(_text, _text), max_size=4))
    message["embeds"][0]["fields"] = [
        {"name": (n[:256] or "n"), "value": (v[:1024] or "v")} for n, v in fields
    ]
    # the jira-worker keeps every message within the limits on its own
    if limits.problems(message):
        message["embeds"][0]["description"] = "·"
        message["embeds"][0]["fields"] = []
    return message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(notifications(), min_size=1, max_size=25))
def test_every_pack_is_within_discords_limits_and_keeps_order(
    messages: list[dict[str, Any]],
) -> None:
    packed = pack(messages)
    assert 1 <= packed.size <= min(len(messages), limits.EMBEDS)
    assert limits.problems(packed.body) == []
    expected = [e for m in messages[: packed.size] for e in m["embeds"]]
    assert packed.body["embeds"] == expected, "every embed, in order, unchanged"
    if packed.size < len(messages) and packable(messages[packed.size]):
        # it stopped only because the next one would not fit
        nxt = messages[packed.size]["embeds"]
        total = sum(limits.embed_text_length(e) for e in expected + nxt)
        assert len(expected) + len(nxt) > limits.EMBEDS or total > limits.EMBEDS_TOTAL


@settings(max_examples=40, deadline=None)
@given(st.lists(notifications(), min_size=1, max_size=25), st.integers(min_value=1, max_value=10))
def test_packing_the_rest_again_delivers_everything_once(
    messages: list[dict[str, Any]], most: int
) -> None:
    """Packing the queue head after head posts every notification exactly once, in order."""
    posted: list[Any] = []
    rest = messages
    while rest:
        packed = pack(rest, most=most)
        assert limits.problems(packed.body) == []
        posted.extend(packed.body["embeds"])
        rest = rest[packed.size :]
    assert posted == [e for m in messages for e in m["embeds"]]
