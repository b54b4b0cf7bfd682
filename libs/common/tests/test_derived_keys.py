"""Keys derived from the state-signing secret, sealed tokens and short codes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from dfj_common.derived_keys import (
    SealError,
    b64url,
    master_key,
    open_short_code,
    pkce_challenge,
    pkce_verifier,
    seal,
    short_code,
    unseal,
)
from dfj_common.errors import ConfigError

MASTER = master_key("a-state-signing-key-of-at-least-32-bytes")
NOW = 1_800_000_000


def test_the_master_key_must_be_long_enough() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        master_key("short")


def test_the_pkce_verifier_is_the_documented_construction() -> None:
    """Gateway and linker both derive it; this pins the formula both rely on."""
    subkey = hmac.new(MASTER, b"dfj/pkce/v1", hashlib.sha256).digest()
    expected = b64url(hmac.new(subkey, b"sid.nonce", hashlib.sha256).digest())
    verifier = pkce_verifier(MASTER, "sid", "nonce")
    assert verifier == expected and len(verifier) == 43
    assert pkce_challenge(verifier) == b64url(hashlib.sha256(verifier.encode()).digest())


def test_sealed_tokens_round_trip_and_refuse_tampering_and_other_purposes() -> None:
    token = seal(MASTER, "link-request", {"ck": "site", "n": 1})
    assert unseal(MASTER, "link-request", token) == {"ck": "site", "n": 1}
    head, _body, mac = token.split(".")
    forged = seal(MASTER, "link-request", {"ck": "other", "n": 1}).split(".")[1]
    cases: dict[str, list[tuple[bytes, str, object]]] = {
        "bad signature": [
            (MASTER, "oauth-state", token),  # another purpose's key
            (master_key("another-signing-key-of-at-least-32-bytes"), "link-request", token),
            (MASTER, "link-request", f"{head}.{forged}.{mac}"),
        ],
        "malformed": [
            (MASTER, "link-request", "v2." + token[3:]),
            (MASTER, "link-request", token + ".x"),
            (MASTER, "link-request", ""),
            (MASTER, "link-request", "v1." + "a" * 3000 + ".b"),
            (MASTER, "link-request", None),
        ],
    }
    for reason, attempts in cases.items():
        for key, purpose, candidate in attempts:
            with pytest.raises(SealError) as refused:
                unseal(key, purpose, candidate)
            assert refused.value.reason == reason


def test_a_short_code_opens_against_its_subject_and_fits_a_command_option() -> None:
    code = short_code(MASTER, "connect-code", "jira:site-b", expires_at=NOW + 600)
    assert len(code) <= 64 and code.count("-") == 7
    opened = open_short_code(MASTER, "connect-code", code, ["jira:site-a", "jira:site-b"], now=NOW)
    assert (opened.subject, opened.expires_at) == ("jira:site-b", NOW + 600)
    sloppy = f"  {code.lower().replace('-', ' ')} "
    assert open_short_code(MASTER, "connect-code", sloppy, ["jira:site-b"], now=NOW) == opened
    again = short_code(MASTER, "connect-code", "jira:site-b", expires_at=NOW + 600)
    assert open_short_code(MASTER, "connect-code", again, ["jira:site-b"], now=NOW).code_id != (
        opened.code_id
    )  # each code is its own single use


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda c: ("1" if c[0] != "1" else "2") + c[1:], "bad signature"),  # one character off
        (lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"), "bad signature"),
        (lambda c: c[:-5], "malformed"),
        (lambda c: c.replace(c[0], "U", 1), "malformed"),  # not Crockford base32
    ],
)
def test_a_changed_code_is_refused(mangle: Callable[[str], str], reason: str) -> None:
    code = short_code(MASTER, "connect-code", "jira:site", expires_at=NOW + 600)
    with pytest.raises(SealError) as refused:
        open_short_code(MASTER, "connect-code", mangle(code), ["jira:site"], now=NOW)
    assert refused.value.reason == reason


def test_a_code_is_refused_when_expired_for_another_purpose_or_an_unknown_site() -> None:
    code = short_code(MASTER, "connect-code", "jira:site", expires_at=NOW + 600)
    for purpose, candidates, now, reason in [
        ("connect-code", ["jira:site"], NOW + 600, "expired"),
        ("other-code", ["jira:site"], NOW, "bad signature"),
        ("connect-code", ["jira:uninstalled"], NOW, "bad signature"),
        ("connect-code", [], NOW, "bad signature"),
    ]:
        with pytest.raises(SealError) as refused:
            open_short_code(MASTER, purpose, code, candidates, now=now)
        assert refused.value.reason == reason


def test_a_token_spelled_differently_is_refused_even_if_it_decodes_to_the_same_mac() -> None:
    """The MAC's last base64url character carries two spare bits; a lenient decoder ignores
    them (and drops characters outside the alphabet), so these would pass as the original."""
    import base64

    token = seal(MASTER, "oauth-state", {"ck": "site"})
    head, body, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = alphabet[alphabet.index(mac[-1]) ^ 1]  # flips a bit the decoder throws away
    respelled = mac[:-1] + spare
    lenient = base64.urlsafe_b64decode(respelled + "=")
    assert lenient == base64.urlsafe_b64decode(mac + "="), "same bytes, other spelling"
    for candidate in (f"{head}.{body}.{respelled}", f"{head}.{body}.{mac[:5]}!{mac[5:]}"):
        with pytest.raises(SealError):
            unseal(MASTER, "oauth-state", candidate)
    assert unseal(MASTER, "oauth-state", token) == {"ck": "site"}
