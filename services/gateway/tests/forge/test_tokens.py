"""Every way a Forge Invocation Token is refused: 401 with a short reason, nothing published."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dfj_sandbox.forge_signing import InstallKeyPair, fit_claims, sign_token

if TYPE_CHECKING:
    from services.gateway.tests.forge.conftest import Harness, MakeHarness

from services.gateway.tests.forge.conftest import NOW, SUBJECT

SCHEDULED = "/forge/scheduled"


def body() -> dict[str, Any]:
    return {"context": {"cloudId": SUBJECT.cloud_id, "moduleKey": "token-refresh"}}


async def refused(h: Harness, token: str | None, reason: str, **kwargs: Any) -> None:
    response = await h.call(SCHEDULED, body(), token=token, system_token="sys.tok.en", **kwargs)
    assert response.status == 401, await response.text()
    assert (await response.json())["error"] == reason
    assert await h.queued() == 0


async def test_a_valid_token_is_accepted(h: Harness) -> None:
    """The baseline the refusals below differ from by one thing each."""
    response = await h.call(SCHEDULED, body(), token=h.fit("scheduled"), system_token="a.b.c")
    assert response.status == 204, await response.text()
    [event] = await h.published()
    assert event.type == "jira.forge.token"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (
            {"aud": "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"},
            "wrong audience",
        ),
        ({"aud": None}, "token lacks aud"),
        ({"iss": "forge/someone-else"}, "wrong issuer"),
        ({"iss": None}, "token lacks iss"),
        ({"exp": int(NOW) - 11}, "token expired"),
        ({"exp": None}, "token lacks exp"),
        ({"nbf": int(NOW) + 60}, "token not yet valid"),
        ({"nbf": None}, "token lacks nbf"),
        ({"iat": int(NOW) + 60}, "token not yet valid"),
        ({"iat": None}, "token lacks iat"),
        ({"exp": "soon"}, "malformed exp"),
        ({"app": None}, "token lacks app.installationId"),
    ],
)
async def test_claims_that_are_wrong_or_missing_are_refused(
    h: Harness, override: dict[str, Any], reason: str
) -> None:
    await refused(h, h.fit("scheduled", claims_override=override), reason)


async def test_leeway_is_small_but_there(h: Harness) -> None:
    """A token a few seconds past ``exp`` still passes (clock skew); well past, it does not."""
    ok = h.fit("scheduled", claims_override={"exp": int(NOW) - 5})
    response = await h.call(SCHEDULED, body(), token=ok, system_token="a.b.c")
    assert response.status == 204


async def test_an_audience_list_holding_our_app_is_accepted(h: Harness) -> None:
    token = h.fit("scheduled", claims_override={"aud": ["other", SUBJECT.app_id]})
    response = await h.call(SCHEDULED, body(), token=token, system_token="a.b.c")
    assert response.status == 204


async def test_a_token_lacking_the_api_base_url_is_refused(h: Harness) -> None:
    claims = fit_claims(SUBJECT, module_type="core:endpoint", module_key="scheduled", now=NOW)
    del claims["app"]["apiBaseUrl"]
    await refused(h, sign_token(claims, h.key), "token lacks app.apiBaseUrl")


async def test_hs256_signed_with_the_public_key_is_refused(h: Harness) -> None:
    """The key-confusion attack: the public key's PEM used as an HMAC secret."""
    await refused(h, h.fit("scheduled", algorithm="HS256"), "algorithm not allowed")


async def test_alg_none_is_refused(h: Harness) -> None:
    await refused(h, h.fit("scheduled", algorithm="none"), "algorithm not allowed")


async def test_a_bad_signature_is_refused(h: Harness) -> None:
    token = h.fit("scheduled")
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    await refused(h, f"{head}.{payload}.{flipped}", "bad signature")


async def test_a_key_forge_never_published_is_an_unknown_kid(
    h: Harness, other_key: InstallKeyPair
) -> None:
    await refused(h, h.fit("scheduled", key=other_key), "unknown kid")


async def test_a_token_signed_by_another_key_under_our_kid_is_refused(
    h: Harness, other_key: InstallKeyPair
) -> None:
    impostor = InstallKeyPair(kid=h.key.kid, private_key=other_key.private_key)
    await refused(h, h.fit("scheduled", key=impostor), "bad signature")


async def test_a_missing_kid_is_refused(h: Harness) -> None:
    await refused(h, h.fit("scheduled", headers_override={"kid": None}), "missing or malformed kid")


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    h: Harness, other_key: InstallKeyPair
) -> None:
    """Forge rotates: the new kid is unknown to our cache, so the set is fetched again."""
    assert (await h.call(SCHEDULED, body(), token=h.fit("scheduled"))).status == 204
    fetched = h.jwks.fetches
    h.jwks.keys.append(other_key)
    h.clock.advance(31)  # Forge publishes a new key well before it signs with it
    response = await h.call(SCHEDULED, body(), token=h.fit("scheduled", key=other_key))
    assert response.status == 204
    assert h.jwks.fetches == fetched + 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing token"),
        ({"Authorization": "JWT abc.def.ghi"}, "missing token"),
        ({"Authorization": "Bearer "}, "missing token"),
        ({"Authorization": "Bearer not-a-jwt"}, "malformed token"),
    ],
)
async def test_a_missing_or_misplaced_token_is_refused(
    h: Harness, headers: dict[str, str], reason: str
) -> None:
    await refused(h, None, reason, headers=headers)


async def test_two_authorization_headers_are_ambiguous(h: Harness) -> None:
    token = h.fit("scheduled")
    response = await h.client.post(
        SCHEDULED,
        data=b"{}",
        headers=[
            ("Authorization", f"Bearer {token}"),
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", "application/json"),
        ],
    )
    assert response.status == 401
    assert (await response.json())["error"] == "ambiguous token"
    assert await h.queued() == 0


async def test_without_an_app_id_every_call_is_refused(make_harness: MakeHarness) -> None:
    h = await make_harness(env={"DFJ_FORGE_APP_ID": ""})
    await refused(h, h.fit("scheduled"), "forge not configured")


async def test_a_token_larger_than_aiohttps_default_header_limit_is_read(h: Harness) -> None:
    """UI tokens embed their context and run past 8 KiB; the gateway's limit is raised."""
    token = h.fit("scheduled", claims_override={"padding": "x" * 20_000})
    assert len(token) > 20_000
    response = await h.call(SCHEDULED, body(), token=token, system_token="a.b.c")
    assert response.status == 204


async def test_the_token_never_reaches_the_logs(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    token = h.fit("scheduled", claims_override={"aud": "wrong"})
    await refused(h, token, "wrong audience")
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text


async def test_a_token_carries_one_request_only(h: Harness) -> None:
    """A FIT does not sign its body: caught in flight, it must not carry another request."""
    token = h.fit("scheduled")
    first = await h.call(SCHEDULED, body(), token=token, system_token="a.b.c")
    assert first.status == 204
    again = await h.call(SCHEDULED, body(), token=token, system_token="a.b.c")
    assert again.status == 204  # the same request resent: accepted, the bus keeps one
    other = await h.call(SCHEDULED, {"context": {"other": True}}, token=token)
    assert other.status == 401
    elsewhere = await h.call("/forge/uninstall", body(), token=token)
    assert elsewhere.status == 401
    assert (await elsewhere.json())["error"] == "token already used"
    [event] = await h.published()
    assert event.type == "jira.forge.token"
