"""Pure helpers of the Service Bus backend: property decoding, ids, retry and replay plans.

Nothing here imports the Azure SDK or does I/O, so every rule is unit-tested on its own.

Bookkeeping properties carried in ``application_properties`` of the copies this backend sends
(a retry with a delay, or a replay from the dead-letter queue). They are stripped from what
consumers see in ``Delivery.properties``:

- ``dfj-original-id`` — the producer's message id. A copy cannot reuse it (duplicate detection
  would drop the copy), so copies get a derived id and ``Delivery.message_id`` reports this one.
- ``dfj-attempt`` — deliveries that earlier copies of the message already used up. The effective
  delivery count is ``dfj-attempt`` + the broker's count of this copy (the Python SDK's
  ``delivery_count`` is the AMQP header's, which counts *previous* deliveries: 0 on the first).
- ``dfj-retry`` — the ordinal of the retry copy; its id is ``<lineage>.r<ordinal>``, so a copy
  sent twice (the original's lock was lost after the copy went out and the message was retried
  again) is dropped by duplicate detection instead of running twice.
- ``dfj-lineage`` — base of the retry ids after a replay (``<id>.replay<sequence>``), so retries
  of a replayed message never collide with retry ids used before it was dead-lettered.
- ``dfj-enqueued-at`` — epoch seconds of the first enqueue, so ``enqueued_at`` of a retried
  message is the original's (as on the local bus), not the copy's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from dfj_common.bus.base import MAX_DELIVERY_REASON

__all__ = [
    "ATTEMPT_PROP",
    "BROKER_DEAD_LETTER_PROPS",
    "ENQUEUED_PROP",
    "LINEAGE_PROP",
    "MAX_ID_LENGTH",
    "ORIGINAL_ID_PROP",
    "RESERVED_PROPS",
    "RETRY_PROP",
    "DeadLetterInstead",
    "RetryCopy",
    "body_bytes",
    "connection_settings",
    "decode_properties",
    "derive_id",
    "effective_delivery_count",
    "enqueued_epoch",
    "epoch",
    "is_emulator_connection",
    "iso_duration",
    "original_id",
    "plan_replay",
    "plan_retry",
    "user_properties",
    "utc",
]

ORIGINAL_ID_PROP: Final = "dfj-original-id"
ATTEMPT_PROP: Final = "dfj-attempt"
RETRY_PROP: Final = "dfj-retry"
LINEAGE_PROP: Final = "dfj-lineage"
ENQUEUED_PROP: Final = "dfj-enqueued-at"
RESERVED_PROPS: Final = frozenset(
    {ORIGINAL_ID_PROP, ATTEMPT_PROP, RETRY_PROP, LINEAGE_PROP, ENQUEUED_PROP}
)
BROKER_DEAD_LETTER_PROPS: Final = frozenset({"DeadLetterReason", "DeadLetterErrorDescription"})
"""Added by the broker to a message it dead-letters; not the producer's."""

MAX_ID_LENGTH: Final = 128
DEAD_LETTER_REASON_LIMIT: Final = 200
DEAD_LETTER_DESCRIPTION_LIMIT: Final = 2000


# -- decoding what the SDK hands back ----------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def decode_properties(raw: Mapping[str | bytes, object] | None) -> dict[str, str]:
    """Application properties as ``str → str``: the SDK returns bytes keys and values, or None."""
    if not raw:
        return {}
    return {_text(key): _text(value) for key, value in raw.items() if value is not None}


def user_properties(decoded: Mapping[str, str]) -> dict[str, str]:
    """The producer's properties: without this backend's bookkeeping or the broker's DLQ keys."""
    return {
        k: v
        for k, v in decoded.items()
        if k not in RESERVED_PROPS and k not in BROKER_DEAD_LETTER_PROPS
    }


def body_bytes(body: object) -> bytes:
    """A received body as bytes: the SDK yields bytes, or an iterable of data sections."""
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, Iterable):
        parts: list[bytes] = []
        for part in body:
            if isinstance(part, bytes | bytearray | memoryview):
                parts.append(bytes(part))
            elif isinstance(part, str):
                parts.append(part.encode("utf-8"))
            else:
                raise TypeError(f"unsupported body section {type(part).__name__}")
        return b"".join(parts)
    raise TypeError(f"unsupported message body {type(body).__name__}")


def epoch(moment: datetime | None) -> float | None:
    """Epoch seconds of an SDK timestamp (naive datetimes are UTC, as the SDK means them)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def utc(seconds: float) -> datetime:
    """An aware UTC datetime for epoch seconds (``scheduled_enqueue_time_utc``)."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def _int(value: str | None, default: int = 0) -> int:
    if value is None:
        return default
    try:
        return max(int(value), 0)
    except ValueError:
        return default


def effective_delivery_count(broker_count: int | None, decoded: Mapping[str, str]) -> int:
    """Receipts so far, counting this one: earlier copies' deliveries + this copy's (1-based)."""
    return _int(decoded.get(ATTEMPT_PROP)) + max(broker_count or 0, 0) + 1


def original_id(broker_message_id: str | None, decoded: Mapping[str, str]) -> str:
    """The producer's id: kept in ``dfj-original-id`` on copies, else the broker's id."""
    return decoded.get(ORIGINAL_ID_PROP) or broker_message_id or ""


def enqueued_epoch(enqueued: datetime | None, decoded: Mapping[str, str]) -> float:
    """When the message was first enqueued (the original's time for a copy)."""
    first = decoded.get(ENQUEUED_PROP)
    if first is not None:
        try:
            return float(first)
        except ValueError:
            pass
    return epoch(enqueued) or 0.0


def derive_id(base: str, suffix: str) -> str:
    """``<base>.<suffix>``, hashed down to Service Bus's 128-character limit when too long."""
    candidate = f"{base}.{suffix}"
    if len(candidate) <= MAX_ID_LENGTH:
        return candidate
    digest = hashlib.sha256(base.encode("utf-8")).hexdigest()[:16]
    keep = MAX_ID_LENGTH - len(suffix) - len(digest) - 2
    if keep < 1:
        raise ValueError(f"id suffix {suffix!r} is too long")
    return f"{base[:keep]}~{digest}.{suffix}"


# -- retry and replay decisions ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RetryCopy:
    """Send this scheduled copy, then complete the original."""

    message_id: str
    properties: dict[str, str]
    scheduled_at: float


@dataclass(frozen=True, kw_only=True)
class DeadLetterInstead:
    """Deliveries are used up: dead-letter the original with this reason."""

    reason: str
    description: str


def plan_retry(
    *,
    broker_message_id: str | None,
    properties: Mapping[str, str],
    delivery_count: int,
    max_deliveries: int,
    delay: float,
    now: float,
    enqueued_at: float,
    reason: str = "",
) -> RetryCopy | DeadLetterInstead:
    """What ``Delivery.retry`` does: a scheduled copy, or dead-letter once deliveries are used up.

    ``properties`` are the decoded properties of the delivery (bookkeeping included) and
    ``delivery_count`` its effective count.
    """
    if delivery_count >= max_deliveries:
        description = f"retries used up after {delivery_count} deliveries"
        if reason:
            description += f"; last error: {reason}"
        return DeadLetterInstead(
            reason=MAX_DELIVERY_REASON, description=description[:DEAD_LETTER_DESCRIPTION_LIMIT]
        )
    original = original_id(broker_message_id, properties)
    lineage = properties.get(LINEAGE_PROP) or original
    ordinal = _int(properties.get(RETRY_PROP)) + 1
    copy = user_properties(properties)
    copy[ORIGINAL_ID_PROP] = original
    copy[ATTEMPT_PROP] = str(delivery_count)
    copy[RETRY_PROP] = str(ordinal)
    copy[ENQUEUED_PROP] = repr(float(enqueued_at))
    if lineage != original:
        copy[LINEAGE_PROP] = lineage
    return RetryCopy(
        message_id=derive_id(lineage, f"r{ordinal}"),
        properties=copy,
        scheduled_at=now + max(delay, 0.0),
    )


def plan_replay(
    *,
    broker_message_id: str | None,
    properties: Mapping[str, str],
    sequence_number: int,
    enqueued_at: float,
) -> tuple[str, dict[str, str]]:
    """Id and properties of the copy that puts a dead letter back on its queue.

    The id is ``<original>.replay<dead-letter sequence number>``: unique per dead letter (so the
    copy is not a duplicate of the original or of an earlier replay) and the same if replay is
    interrupted and run again (so that copy is dropped as a duplicate). Delivery counting starts
    afresh, as on the local bus.
    """
    original = original_id(broker_message_id, properties)
    replay_id = derive_id(original, f"replay{sequence_number}")
    copy = user_properties(properties)
    copy[ORIGINAL_ID_PROP] = original
    copy[LINEAGE_PROP] = replay_id
    copy[ENQUEUED_PROP] = repr(float(enqueued_at))
    return replay_id, copy


# -- configuration -----------------------------------------------------------------------------


def iso_duration(seconds: float) -> str:
    """ISO-8601 duration in whole seconds, as Service Bus and its emulator write them.

    ``30 → PT30S``, ``600 → PT10M``, ``3600 → PT1H``, ``90 → PT1M30S``, ``1209600 → P14D``.
    Fractions round up (a lock must not get shorter); the emulator's schema allows no fractions.
    """
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"duration must be a finite, non-negative number, not {seconds!r}")
    total = math.ceil(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{days}D"
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if secs:
        time_part += f"{secs}S"
    if time_part:
        out += "T" + time_part
    elif not days:
        out += "T0S"
    return out


def connection_settings(connection_string: str) -> dict[str, str]:
    """``Key=value;…`` pairs of a connection string, keys lower-cased (as the SDK reads them)."""
    settings: dict[str, str] = {}
    for part in connection_string.strip().rstrip(";").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError("the Service Bus connection string is malformed")
        settings[key.strip().lower()] = value.strip()
    if "endpoint" not in settings:
        raise ValueError("the Service Bus connection string has no Endpoint")
    return settings


def is_emulator_connection(connection_string: str) -> bool:
    """Whether the string points at the Service Bus emulator (``UseDevelopmentEmulator=true``)."""
    return connection_settings(connection_string).get("usedevelopmentemulator") == "true"
