"""The CloudEvents envelope round-trips, tolerates unknown fields and rejects garbage clearly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from dfj_common.envelope import Envelope, deterministic_id, ordered_id
from dfj_common.errors import MalformedMessage


def sample() -> Envelope:
    return Envelope(
        id=deterministic_id("webhook-123", "sub-9"),
        source="/jira/site-1",
        type="jira.issue.updated",
        data={"issueId": "10001"},
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        tenant="client-key-1",
        session_key="client-key-1:10001",
        schema_version=2,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def test_round_trip_keeps_every_attribute() -> None:
    """encode() then decode() gives back an equal envelope."""
    env = sample()
    assert Envelope.decode(env.encode()) == env


def test_structured_json_has_cloudevents_attributes() -> None:
    """The wire form is CloudEvents 1.0 with lower-case extension names."""
    obj = json.loads(sample().encode())
    assert obj["specversion"] == "1.0"
    assert obj["datacontenttype"] == "application/json"
    assert obj["time"] == "2026-01-02T03:04:05Z"
    assert obj["sessionkey"] == "client-key-1:10001"
    assert obj["schemaversion"] == 2
    assert all(k.isalnum() and k.islower() for k in obj)


def test_unknown_attributes_survive_a_round_trip() -> None:
    """A newer producer's extra attributes are kept, not dropped or rejected."""
    obj = json.loads(sample().encode())
    obj["futureflag"] = "yes"
    env = Envelope.decode(json.dumps(obj))
    assert env.extensions == {"futureflag": "yes"}
    assert json.loads(env.encode())["futureflag"] == "yes"


def test_deterministic_ids_are_stable_and_distinct() -> None:
    """The same parts give the same id; different parts a different one."""
    assert deterministic_id("a", "b") == deterministic_id("a", "b")
    assert deterministic_id("a", "b") != deterministic_id("ab")
    with pytest.raises(ValueError, match="non-empty"):
        deterministic_id("a", "")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "EnvelopeNotJson"),
        (b"[1,2]", "EnvelopeNotObject"),
        (b'{"specversion":"0.3","id":"1","source":"s","type":"t"}', "EnvelopeSpecVersion"),
        (b'{"specversion":"1.0","source":"s","type":"t"}', "EnvelopeMissingField"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":[1]}', "EnvelopeData"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","time":"noon"}', "EnvelopeTime"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","tenant":5}', "EnvelopeField"),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","schemaversion":"x"}',
            "EnvelopeSchema",
        ),
    ],
)
def test_malformed_envelopes_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    """Each kind of bad input raises MalformedMessage with its own reason code."""
    with pytest.raises(MalformedMessage) as info:
        Envelope.decode(raw)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "parts", [("a",), ("discord-interaction", "1300000000000000001"), ("x", "é", "z" * 300)]
)
def test_deterministic_id_is_rfc4122_uuid5(parts: tuple[str, ...]) -> None:
    """The fast derivation is exactly uuid5 over the parts joined by the unit separator."""
    from dfj_common.envelope import _NAMESPACE

    expected = uuid.uuid5(_NAMESPACE, "\x1f".join(parts))
    assert deterministic_id(*parts) == str(expected)
    assert uuid.UUID(deterministic_id(*parts)).version == 5


def test_ordered_id_is_a_stable_version_8_uuid_led_by_its_time() -> None:
    """Same inputs, same id; a valid RFC 9562 version 8 UUID; the first 48 bits are the time."""
    millis = 1_733_300_000_123
    made = ordered_id(millis, "discord-interaction", "1300000000000000001")
    assert made == ordered_id(millis, "discord-interaction", "1300000000000000001")
    parsed = uuid.UUID(made)
    assert (parsed.version, parsed.variant) == (8, uuid.RFC_4122)
    assert parsed.int >> 80 == millis
    assert made != ordered_id(millis, "discord-interaction", "1300000000000000002")
    # The hash part is deterministic_id's: other parts, other bits after the time.
    assert ordered_id(millis, "a")[14:] != ordered_id(millis, "b")[14:]


def test_ordered_ids_sort_by_time_whatever_the_parts() -> None:
    ids = [ordered_id(1_700_000_000_000 + step, f"part-{-step}") for step in range(0, 5000, 7)]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("millis", "parts"), [(-1, ("a",)), (1 << 48, ("a",)), (0, ()), (0, ("a", ""))]
)
def test_ordered_id_refuses_what_it_cannot_encode(millis: int, parts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        ordered_id(millis, *parts)


def test_encode_writes_utc_times_and_any_mapping_as_data() -> None:
    from datetime import timedelta, timezone
    from types import MappingProxyType

    plus_two = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))
    envelope = Envelope(
        id="x", source="s", type="t", time=plus_two, data=MappingProxyType({"a": 1})
    )
    obj = json.loads(envelope.encode())
    assert obj["time"] == "2026-01-01T10:00:00.250000Z"
    assert obj["data"] == {"a": 1}
    assert obj == envelope.to_dict() | {"data": {"a": 1}}
    assert Envelope.decode(envelope.encode()).time == plus_two


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 6, 1, 8, 30),  # naive: local time, as astimezone reads it
    ],
)
def test_encode_and_to_dict_write_the_same_time(when: datetime) -> None:
    """orjson writes the time in encode, isoformat in to_dict: the same RFC 3339 text."""
    envelope = Envelope(id="x", source="s", type="t", time=when)
    assert json.loads(envelope.encode())["time"] == envelope.to_dict()["time"]
    assert envelope.to_dict()["time"].endswith("Z")


def test_encode_takes_keys_that_are_not_strings() -> None:
    """Data with integer keys still encodes (as JSON's string keys); what JSON cannot hold
    still fails, as a TypeError."""
    envelope = Envelope(id="x", source="s", type="t", data={"counts": {1: "a", 2: "b"}})
    assert json.loads(envelope.encode())["data"] == {"counts": {"1": "a", "2": "b"}}
    with pytest.raises(TypeError):
        Envelope(id="x", source="s", type="t", data={"x": object()}).encode()
