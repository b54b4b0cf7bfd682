"""Signature verification: the shared Ed25519 vectors, malformed headers, freshness."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from dfj_common.clock import ManualClock
from dfj_common.errors import ConfigError
from dfj_gateway.discord.verify import InteractionVerifier, Rejection, signature_is_valid

TS = "1700000000"
Vectors = dict[str, dict[str, Any]]


def test_rfc8032_sanity(vector_file: dict[str, Any]) -> None:
    """PyNaCl reproduces RFC 8032 TEST 1's signature of the empty message (wiring check)."""
    seed = bytes.fromhex(vector_file["keys"]["A"]["seed_hex"])
    expected = vector_file["rfc8032_test1_empty_message_signature"]
    assert SigningKey(seed).sign(b"").signature.hex() == expected


def test_vector(vector_name: str, vectors: Vectors) -> None:
    """The verifier agrees with every shared vector (clock frozen at the vectors' time)."""
    vector = vectors[vector_name]
    verifier = InteractionVerifier.from_hex(
        vector["public_key"], clock=ManualClock(1_700_000_000.0), window=300
    )
    got = verifier.check(
        signature=vector["signature"],
        timestamp=vector["timestamp"],
        body=bytes.fromhex(vector["body_hex"]),
    )
    assert (got is None) is vector["expected_valid"], got


def test_vector_with_freshness_off(vector_name: str, vectors: Vectors) -> None:
    """With freshness switched off the vectors give the same answers (signature alone)."""
    vector = vectors[vector_name]
    verifier = InteractionVerifier.from_hex(
        vector["public_key"], clock=ManualClock(0.0), window=None
    )
    got = verifier.check(
        signature=vector["signature"],
        timestamp=vector["timestamp"],
        body=bytes.fromhex(vector["body_hex"]),
    )
    assert (got is None) is vector["expected_valid"]


def _signed(key: SigningKey, ts: str, body: bytes) -> str:
    return key.sign(ts.encode() + body).signature.hex()


@pytest.fixture(name="key")
def _key() -> SigningKey:
    return SigningKey.generate()


def _verifier(key: SigningKey, now: float = 1_700_000_000.0) -> InteractionVerifier:
    return InteractionVerifier(key.verify_key, ManualClock(now), 300)


@pytest.mark.parametrize(
    ("signature", "timestamp", "expected"),
    [
        (None, TS, Rejection.MISSING_HEADERS),
        ("ab" * 64, None, Rejection.MISSING_HEADERS),
        ("", TS, Rejection.MISSING_HEADERS),
        ("ab" * 63, TS, Rejection.MALFORMED_SIGNATURE),
        ("ab" * 65, TS, Rejection.MALFORMED_SIGNATURE),
        ("zz" * 64, TS, Rejection.MALFORMED_SIGNATURE),
        ("ab " * 42 + "ab", TS, Rejection.MALFORMED_SIGNATURE),
        ("ab" * 63 + "  ", TS, Rejection.MALFORMED_SIGNATURE),  # 128 long, 63 bytes of hex
        ("ab" * 63 + "٣٤", TS, Rejection.MALFORMED_SIGNATURE),  # digits, not ASCII ones
        ("ab" * 64, "1" * 40, Rejection.MALFORMED_TIMESTAMP),
        ("ab" * 64, "17000 00000", Rejection.MALFORMED_TIMESTAMP),
        ("ab" * 64, "17000000é0", Rejection.MALFORMED_TIMESTAMP),
        ("ab" * 64, TS, Rejection.BAD_SIGNATURE),
    ],
)
def test_malformed_headers_are_rejections(
    key: SigningKey, signature: str | None, timestamp: str | None, expected: Rejection
) -> None:
    """Missing, short, long, non-hex or spaced signatures and odd timestamps are rejections."""
    got = _verifier(key).check(signature=signature, timestamp=timestamp, body=b"{}")
    assert got is expected


@pytest.mark.parametrize(
    ("offset", "ok"), [(0, True), (-300, True), (300, True), (-301, False), (301, False)]
)
def test_freshness_window(key: SigningKey, offset: int, ok: bool) -> None:
    """A valid signature over a timestamp more than 300 s from now, either way, is stale."""
    ts = str(1_700_000_000 + offset)
    got = _verifier(key).check(signature=_signed(key, ts, b"{}"), timestamp=ts, body=b"{}")
    assert got is (None if ok else Rejection.STALE_TIMESTAMP)


def test_millisecond_timestamps_are_read_as_such(key: SigningKey) -> None:
    """A 13-digit timestamp (Discord's old helper) is milliseconds, checked for freshness too."""
    fresh, stale = "1700000000123", "1699999000000"
    verifier = _verifier(key)
    assert verifier.check(signature=_signed(key, fresh, b"{}"), timestamp=fresh, body=b"{}") is None
    got = verifier.check(signature=_signed(key, stale, b"{}"), timestamp=stale, body=b"{}")
    assert got is Rejection.STALE_TIMESTAMP


def test_signed_non_numeric_timestamp_is_malformed(key: SigningKey) -> None:
    """A correctly signed timestamp that is not a number cannot be checked: rejected."""
    ts = "yesterday"
    got = _verifier(key).check(signature=_signed(key, ts, b"{}"), timestamp=ts, body=b"{}")
    assert got is Rejection.MALFORMED_TIMESTAMP


def test_signature_is_valid_never_raises(key: SigningKey) -> None:
    """The bare check answers False for junk instead of raising."""
    for signature in ("", "00", "x" * 128, "ab" * 64):
        assert not signature_is_valid(key.verify_key, signature=signature, timestamp=TS, body=b"")


@pytest.mark.parametrize("bad", ["", "abc", "zz" * 32, "ab" * 33])
def test_public_key_must_be_64_hex_digits(bad: str) -> None:
    """A malformed DFJ_DISCORD_PUBLIC_KEY fails at start-up, naming the setting."""
    with pytest.raises(ConfigError, match="DFJ_DISCORD_PUBLIC_KEY"):
        InteractionVerifier.from_hex(bad, clock=ManualClock())


def test_vector_names_cover_the_file(vectors: Vectors) -> None:
    """The parametrisation runs all 15 vectors (6 valid, 9 invalid)."""
    assert len(vectors) == 15
    assert sum(v["expected_valid"] for v in vectors.values()) == 6
