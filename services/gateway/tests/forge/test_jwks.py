"""Forge's keys: fetched from the configured URL, cached by kid, refetched with restraint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from dfj_gateway.forge.jwks import ForgeKeyOptions, _keys_of
from dfj_sandbox.forge_signing import InstallKeyPair, public_jwk

if TYPE_CHECKING:
    from services.gateway.tests.forge.conftest import Harness, MakeHarness

PATH = "/forge/scheduled"
BODY: dict[str, Any] = {"context": {}}


async def status(h: Harness, key: InstallKeyPair | None = None) -> int:
    response = await h.call(PATH, BODY, token=h.fit("scheduled", key=key))
    return response.status


async def test_many_calls_cost_one_fetch(h: Harness) -> None:
    for _ in range(5):
        assert await status(h) == 204
    assert h.jwks.fetches == 1


async def test_forged_kids_cost_at_most_one_fetch_per_cool_down(
    h: Harness, other_key: InstallKeyPair
) -> None:
    assert await status(h) == 204
    assert await status(h, other_key) == 401
    assert h.jwks.fetches == 1  # the set was fetched a moment ago: not again yet
    h.clock.advance(31)
    for _ in range(5):
        assert await status(h, other_key) == 401
    assert h.jwks.fetches == 2  # the first sight of the unknown kid, then the cool-down holds
    h.clock.advance(31)
    assert await status(h, other_key) == 401
    assert h.jwks.fetches == 3


async def test_a_withdrawn_key_stops_verifying_once_the_set_is_refetched(
    make_harness: MakeHarness, other_key: InstallKeyPair
) -> None:
    h = await make_harness(keys=ForgeKeyOptions(max_age=60))
    h.jwks.keys.append(other_key)
    assert await status(h, other_key) == 204
    h.jwks.keys.remove(other_key)
    assert await status(h, other_key) == 204  # still fresh: cached
    h.clock.advance(61)
    assert await status(h, other_key) == 401
    assert await status(h) == 204


async def test_stale_keys_keep_verifying_while_the_key_server_is_down(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(keys=ForgeKeyOptions(max_age=60))
    assert await status(h) == 204
    h.jwks.status = 503
    h.clock.advance(61)
    assert await status(h) == 204
    assert h.jwks.fetches == 2


async def test_no_keys_at_all_is_a_401_forge_retries(h: Harness) -> None:
    h.jwks.status = 500
    response = await h.call(PATH, BODY, token=h.fit("scheduled"))
    assert response.status == 401
    assert (await response.json())["error"] == "signing keys unavailable"
    assert await h.queued() == 0


def test_keys_that_are_not_rsa_signing_keys_are_skipped(other_key: InstallKeyPair) -> None:
    """Only RSA signing keys of 2048 bits or more are kept from a JWKS document."""
    good = public_jwk(other_key)
    small = public_jwk(InstallKeyPair.generate(kid="small", bits=1024))
    encryption = {**public_jwk(InstallKeyPair.generate(kid="enc")), "use": "enc"}
    other_alg = {**public_jwk(InstallKeyPair.generate(kid="ps")), "alg": "PS256"}
    ec = {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"}
    broken = {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}
    document = {"keys": [good, small, encryption, other_alg, ec, broken, "junk", {"kty": "RSA"}]}
    assert list(_keys_of(orjson.dumps(document), 64)) == [other_key.kid]
    assert _keys_of(b"not json", 64) == {}
    assert _keys_of(b'{"keys": {}}', 64) == {}
