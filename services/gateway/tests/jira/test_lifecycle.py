"""Lifecycle callbacks: RS256 signed install/uninstall, HS256 enable/disable, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from dfj_common.bus import JIRA_EVENTS
from dfj_common.bus.local import LocalBus
from dfj_common.envelope import Envelope
from dfj_common.storage import InstallationState
from dfj_gateway.jira.install_keys import InstallKeyOptions
from dfj_gateway.jira.routes import JiraOptions
from dfj_sandbox.jira_signing import InstallKeyPair, installed_payload

if TYPE_CHECKING:
    from services.gateway.tests.jira.conftest import Harness, MakeHarness

ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
APP_KEY = "discord-for-jira"
CLIENT_KEY = "8d4f7a52-1f0e-4c3b-9a6d-2b5e9c7f1a03"
INSTALLED = "/jira/lifecycle/installed"
UNINSTALLED = "/jira/lifecycle/uninstalled"
ENABLED = "/jira/lifecycle/enabled"
DISABLED = "/jira/lifecycle/disabled"
PUBLIC_URL = "https://dfj.example.test"
SECRET = "cmVhbC1sb29raW5nLXNoYXJlZC1zZWNyZXQtZm9yLXRlc3RzLTAx"
SITE_URL = "https://acme.atlassian.net"


async def rejected(h: Harness, status: int, reason: str, response: Any) -> None:
    """Assert the status and JSON reason, and that nothing reached the bus."""
    assert response.status == status
    assert (await response.json()) == {"error": reason}
    assert await h.queued() == 0


# --- installed ----------------------------------------------------------------------------


async def test_installed_publishes_the_ids_and_the_sealed_secret(h: Harness) -> None:
    """A signed install is published to jira-events with ids only and the secret sealed."""
    response = await h.install()
    assert response.status == 204
    [event] = await h.published()
    assert event.type == "jira.lifecycle.installed"
    assert event.session_key == CLIENT_KEY
    assert event.tenant == CLIENT_KEY
    assert event.time.timestamp() == h.clock.now()
    data = dict(event.data)
    sealed = data.pop("sharedSecretSealed")
    assert data == {
        "clientKey": CLIENT_KEY,
        "eventType": "installed",
        "key": APP_KEY,
        "baseUrl": SITE_URL,
        "displayUrl": SITE_URL,
        "oauthClientId": "oauth-client-1",
        "signedInstall": {
            "kid": h.key.kid,
            "issuedAt": int(h.clock.now()),
            "accountId": ACCOUNT_ID,
        },
    }
    assert await h.open_sealed(CLIENT_KEY, sealed) == SECRET


async def test_the_shared_secret_never_travels_in_plain_text(h: Harness) -> None:
    """The published bytes hold neither the secret nor the fields we drop."""
    assert (await h.install()).status == 204
    delivery = (await h.receiver.receive(1, timeout=1))[0]
    raw = delivery.body.decode()
    await delivery.complete()
    for dropped in (SECRET, 'sharedSecret"', "serviceEntitlementNumber", "description"):
        assert dropped not in raw


async def test_reinstall_carries_the_new_sealed_secret(h: Harness) -> None:
    """A second install (secret rotated) publishes the new secret, sealed for the same tenant."""
    assert (await h.install(secret=SECRET)).status == 204
    h.clock.advance(5)
    assert (await h.install(secret=SECRET + "-rotated")).status == 204
    first, second = await h.published(2)
    assert await h.open_sealed(CLIENT_KEY, first.data["sharedSecretSealed"]) == SECRET
    assert await h.open_sealed(CLIENT_KEY, second.data["sharedSecretSealed"]) == SECRET + "-rotated"
    assert first.id != second.id


async def test_the_sealed_secret_is_bound_to_its_tenant(h: Harness) -> None:
    """The sealed blob does not open under another clientKey's associated data."""
    assert (await h.install()).status == 204
    [event] = await h.published()
    with pytest.raises(Exception, match="authentication failed"):
        await h.open_sealed("another-tenant", event.data["sharedSecretSealed"])


async def test_204_comes_only_after_the_publish_is_durable(h: Harness, tmp_path: Path) -> None:
    """Right after the 204 another connection to the bus file can receive the message."""
    assert (await h.install()).status == 204
    other = await LocalBus.open(h.settings.bus_path)
    try:
        receiver = other.receiver(JIRA_EVENTS)
        got = await receiver.receive(1, timeout=0)
        assert len(got) == 1
        assert Envelope.decode(got[0].body).type == "jira.lifecycle.installed"
        await got[0].complete()
        await receiver.close()
    finally:
        await other.close()


async def test_a_bus_that_cannot_publish_gives_503(h: Harness) -> None:
    """When the bus fails the install is answered 503 (Jira retries), never 204 or 500."""
    await h.bus.close()
    response = await h.install()
    assert response.status == 503
    assert (await response.json()) == {"error": "bus unavailable"}


async def test_uninstalled_is_signed_install_too(h: Harness) -> None:
    """An RS256 uninstall is published with the tenant's ids, no secret."""
    body = installed_payload(
        client_key=CLIENT_KEY, base_url=SITE_URL, app_key=APP_KEY, event_type="uninstalled"
    )
    response = await h.post(UNINSTALLED, body, token=h.install_token(UNINSTALLED))
    assert response.status == 204
    [event] = await h.published()
    assert event.type == "jira.lifecycle.uninstalled"
    assert "sharedSecretSealed" not in event.data
    assert event.data["signedInstall"]["kid"] == h.key.kid


async def test_uninstalled_with_an_hs256_token_is_refused(h: Harness) -> None:
    """The shared secret cannot uninstall: only Atlassian's RS256 signature can."""
    await h.seed()
    body = installed_payload(
        client_key=CLIENT_KEY, base_url=SITE_URL, app_key=APP_KEY, event_type="uninstalled"
    )
    response = await h.post(UNINSTALLED, body, token=h.sign("POST", UNINSTALLED))
    await rejected(h, 401, "algorithm not allowed", response)


# --- signed-install rejections ------------------------------------------------------------


async def test_an_hs256_token_cannot_install(h: Harness) -> None:
    """installed refuses a token signed with a shared secret (alg pinned to RS256)."""
    await rejected(
        h, 401, "algorithm not allowed", await h.install(token=h.sign("POST", INSTALLED))
    )


async def test_alg_none_cannot_install(h: Harness) -> None:
    """An unsigned token (alg none) is refused."""
    claims = {"iss": CLIENT_KEY, "aud": PUBLIC_URL, "iat": int(h.clock.now()), "exp": 2**31}
    token = jwt.encode(claims, "", algorithm="none", headers={"kid": h.key.kid})
    await rejected(h, 401, "algorithm not allowed", await h.install(token=token))


async def test_a_missing_token_cannot_install(h: Harness) -> None:
    """No Authorization header: 401."""
    body = installed_payload(
        client_key=CLIENT_KEY, base_url=SITE_URL, app_key=APP_KEY, shared_secret=SECRET
    )
    await rejected(h, 401, "missing token", await h.post(INSTALLED, body))


async def test_another_scheme_is_a_missing_token(h: Harness) -> None:
    """``Authorization: Bearer`` is not a Connect token."""
    body = installed_payload(
        client_key=CLIENT_KEY, base_url=SITE_URL, app_key=APP_KEY, shared_secret=SECRET
    )
    response = await h.post(INSTALLED, body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    await rejected(h, 401, "missing token", response)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "e30.e30.", "x" * 8000, "a b.c.d"])
async def test_a_malformed_token_cannot_install(h: Harness, token: str) -> None:
    """Garbage in the Authorization header is a 401, not a 500."""
    response = await h.install(token=token)
    assert response.status == 401
    assert await h.queued() == 0


async def test_a_token_from_another_key_cannot_install(h: Harness) -> None:
    """A token signed by a key other than the one served for its kid fails the signature."""
    forger = InstallKeyPair.generate(kid=h.key.kid)
    await rejected(h, 401, "bad signature", await h.install(token=h.install_token(key=forger)))


async def test_an_unknown_kid_cannot_install(h: Harness) -> None:
    """A kid the key server does not know (404) is refused."""
    stranger = InstallKeyPair.generate()
    await rejected(h, 401, "unknown kid", await h.install(token=h.install_token(key=stranger)))


@pytest.mark.parametrize("kid", ["../etc/passwd", "a/b", "%2e%2e", "", "k" * 200, "https://x"])
async def test_a_malformed_kid_is_refused_without_a_fetch(h: Harness, kid: str) -> None:
    """A kid that could steer the key URL is refused before any request is made."""
    token = jwt.encode(
        {"iss": CLIENT_KEY, "aud": PUBLIC_URL, "iat": 1, "exp": 2},
        h.key.private_key,
        algorithm="RS256",
        headers={"kid": kid},
    )
    await rejected(h, 401, "missing or malformed kid", await h.install(token=token))
    assert sum(h.key_server.requests.values()) == 0


async def test_keys_are_fetched_once_per_kid(h: Harness) -> None:
    """Three installs signed with one kid cause one fetch from the key server."""
    for n in range(3):
        h.clock.advance(1)
        assert (await h.install(client_key=f"tenant-{n}")).status == 204
    assert h.key_server.requests == {h.key.kid: 1}
    assert len(await h.published(3)) == 3


async def test_concurrent_installs_share_one_fetch(h: Harness) -> None:
    """Installs racing on an uncached kid wait for the same single fetch."""
    h.key_server.delay = 0.2
    responses = await asyncio.gather(*(h.install(client_key=f"race-{n}") for n in range(4)))
    assert [r.status for r in responses] == [204] * 4
    assert h.key_server.requests == {h.key.kid: 1}


async def test_a_key_fetch_timeout_is_401_not_500(make_harness: MakeHarness) -> None:
    """A key server slower than the timeout makes the install 401, quickly; nothing cached."""
    h = await make_harness(options=JiraOptions(install_keys=InstallKeyOptions(timeout=0.2)))
    h.key_server.delay = 0.5
    started = asyncio.get_running_loop().time()
    await rejected(h, 401, "install key unavailable", await h.install())
    assert asyncio.get_running_loop().time() - started < 0.45
    h.key_server.delay = 0
    assert (await h.install()).status == 204  # a time-out is not remembered


async def test_a_failing_key_server_is_401(h: Harness) -> None:
    """A 5xx from the key server makes the install 401 (it cannot be authenticated)."""
    h.key_server.fail_with = 500
    await rejected(h, 401, "install key unavailable", await h.install())


async def test_the_audience_must_be_our_base_url(h: Harness) -> None:
    """A token for another app's base URL is refused."""
    token = h.install_token(audience="https://other-app.example.test")
    await rejected(h, 401, "wrong audience", await h.install(token=token))


@pytest.mark.parametrize("audience", [PUBLIC_URL + "/", [PUBLIC_URL], [PUBLIC_URL + "/"]])
async def test_the_audience_may_end_in_a_slash_or_be_a_list(h: Harness, audience: Any) -> None:
    """``aud`` as a string with a trailing slash, or a list holding our base URL, is accepted."""
    token = h.install_token(claims={"aud": audience})
    assert (await h.install(token=token)).status == 204


async def test_a_token_without_audience_is_refused(h: Harness) -> None:
    """No ``aud`` claim: refused."""
    token = h.install_token(claims={"aud": None})
    await rejected(h, 401, "wrong audience", await h.install(token=token))


async def test_the_qsh_must_match_the_install_request(h: Harness) -> None:
    """A token whose qsh is for another path (here: uninstalled) cannot install."""
    token = h.install_token(UNINSTALLED)
    await rejected(h, 401, "wrong qsh", await h.install(token=token))


async def test_a_context_qsh_cannot_install(h: Harness) -> None:
    """``qsh: context-qsh`` is not accepted on a lifecycle route."""
    token = h.install_token(claims={"qsh": "context-qsh"})
    await rejected(h, 401, "wrong qsh", await h.install(token=token))


async def test_expiry_has_30_seconds_of_leeway(h: Harness) -> None:
    """A token 29 s past exp is accepted; one 30 s past exp is refused."""
    issued = h.clock.now() - 180
    token = h.install_token(now=issued - 29)  # exp = now - 29
    assert (await h.install(token=token)).status == 204
    token = h.install_token(now=issued - 30)  # exp = now - 30
    await h.published()
    await rejected(h, 401, "token expired", await h.install(token=token))


async def test_a_token_issued_in_the_future_is_refused(h: Harness) -> None:
    """iat more than 30 s ahead of our clock is refused; 30 s ahead is accepted."""
    assert (await h.install(token=h.install_token(now=h.clock.now() + 30))).status == 204
    await h.published()
    token = h.install_token(now=h.clock.now() + 31)
    await rejected(h, 401, "token issued in the future", await h.install(token=token))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss"])
async def test_required_claims(h: Harness, claim: str) -> None:
    """exp, iat and iss are required."""
    response = await h.install(token=h.install_token(claims={claim: None}))
    assert response.status == 401
    assert await h.queued() == 0


async def test_the_issuer_must_be_the_body_client_key(h: Harness) -> None:
    """A token for tenant A cannot install tenant B."""
    body = installed_payload(
        client_key="someone-else", base_url=SITE_URL, app_key=APP_KEY, shared_secret=SECRET
    )
    response = await h.post(INSTALLED, body, token=h.install_token())
    await rejected(h, 401, "clientKey does not match the token", response)


# --- site allow-list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://acme.atlassian.net.evil.example",
        "https://evilatlassian.net",
        "http://acme.atlassian.net",
        "https://user@acme.atlassian.net",
        "http://127.0.0.1:8999",
    ],
)
async def test_sites_outside_the_allow_list_cannot_install(h: Harness, base_url: str) -> None:
    """The default allow-list admits only https *.atlassian.net hosts."""
    await rejected(h, 403, "site not allowed", await h.install(base_url=base_url))


async def test_a_loopback_sandbox_may_install_over_http(make_harness: MakeHarness) -> None:
    """An allow-list naming 127.0.0.1 admits the Jira simulator on http://127.0.0.1:<port>."""
    h = await make_harness(env={"DFJ_JIRA_SITE_ALLOWLIST": "*.atlassian.net,127.0.0.1"})
    assert (await h.install(base_url="http://127.0.0.1:8999")).status == 204
    assert (await h.install(base_url="https://acme.atlassian.net")).status == 204
    await h.published(2)
    await rejected(h, 403, "site not allowed", await h.install(base_url="http://localhost:8999"))


async def test_a_wildcard_never_admits_plain_http(make_harness: MakeHarness) -> None:
    """``127.0.0.*`` matches the host, but plain http needs the host named exactly."""
    h = await make_harness(env={"DFJ_JIRA_SITE_ALLOWLIST": "127.0.0.*"})
    await rejected(h, 403, "site not allowed", await h.install(base_url="http://127.0.0.1:8999"))


# --- body checks --------------------------------------------------------------------------


async def test_bad_json_is_400(h: Harness) -> None:
    """A body that is not JSON (after a valid token) is a 400."""
    response = await h.post(INSTALLED, b"{not json", token=h.install_token())
    await rejected(h, 400, "body is not valid JSON", response)


async def test_a_json_array_is_400(h: Harness) -> None:
    """A JSON body that is not an object is a 400."""
    response = await h.post(INSTALLED, b"[1, 2]", token=h.install_token())
    await rejected(h, 400, "body is not a JSON object", response)


async def test_deeply_nested_json_is_400_not_500(h: Harness) -> None:
    """JSON nested past the parser's recursion limit is a 400."""
    response = await h.post(INSTALLED, b"[" * 30_000 + b"]" * 30_000, token=h.install_token())
    await rejected(h, 400, "body is not valid JSON", response)


async def test_the_wrong_event_type_is_400(h: Harness) -> None:
    """An install body saying eventType 'enabled' is refused."""
    body = installed_payload(
        client_key=CLIENT_KEY,
        base_url=SITE_URL,
        app_key=APP_KEY,
        shared_secret=SECRET,
        event_type="enabled",
    )
    response = await h.post(INSTALLED, body, token=h.install_token())
    await rejected(h, 400, "eventType does not match the route", response)


async def test_another_apps_key_is_400(h: Harness) -> None:
    """An install for another app key is refused."""
    body = installed_payload(
        client_key=CLIENT_KEY, base_url=SITE_URL, app_key="other-app", shared_secret=SECRET
    )
    response = await h.post(INSTALLED, body, token=h.install_token())
    await rejected(h, 400, "key is not this app's key", response)


async def test_an_install_without_a_shared_secret_is_400(h: Harness) -> None:
    """installed must carry the shared secret."""
    body = installed_payload(client_key=CLIENT_KEY, base_url=SITE_URL, app_key=APP_KEY)
    response = await h.post(INSTALLED, body, token=h.install_token())
    await rejected(h, 400, "sharedSecret missing or malformed", response)


async def test_the_content_type_must_be_json(h: Harness) -> None:
    """A form-encoded or missing content type is a 415."""
    body = json.dumps({"clientKey": CLIENT_KEY}).encode()
    for content_type in ("application/x-www-form-urlencoded", None):
        response = await h.post(INSTALLED, body, token=h.install_token(), content_type=content_type)
        assert response.status == 415
    assert await h.queued() == 0


async def test_a_json_content_type_with_charset_is_accepted(h: Harness) -> None:
    """``application/json; charset=UTF-8`` (as Jira sends it) is JSON."""
    body = installed_payload(
        client_key=CLIENT_KEY, base_url=SITE_URL, app_key=APP_KEY, shared_secret=SECRET
    )
    response = await h.post(
        INSTALLED, body, token=h.install_token(), content_type="application/json; charset=UTF-8"
    )
    assert response.status == 204


async def test_an_oversized_body_is_413(h: Harness) -> None:
    """Lifecycle bodies are capped at 64 KiB, announced or streamed."""
    big = b'{"pad": "' + b"x" * (65 * 1024) + b'"}'
    await rejected(h, 413, "body too large", await h.post(INSTALLED, big, token=h.install_token()))

    async def chunks() -> Any:
        for _ in range(70):
            yield b"x" * 1024

    response = await h.client.post(
        INSTALLED,
        data=chunks(),
        headers={"Authorization": "JWT " + h.install_token(), "Content-Type": "application/json"},
    )
    await rejected(h, 413, "body too large", response)


# --- enabled / disabled (HS256) -----------------------------------------------------------


def _enable_body(event_type: str, client_key: str = CLIENT_KEY) -> dict[str, Any]:
    return installed_payload(
        client_key=client_key, base_url=SITE_URL, app_key=APP_KEY, event_type=event_type
    )


@pytest.mark.parametrize(("path", "event_type"), [(ENABLED, "enabled"), (DISABLED, "disabled")])
async def test_enabled_and_disabled_use_the_shared_secret(
    h: Harness, path: str, event_type: str
) -> None:
    """enabled/disabled are HS256 with the stored secret and publish without any secret."""
    await h.seed(state=InstallationState.INSTALLED)
    response = await h.post(path, _enable_body(event_type), token=h.sign("POST", path))
    assert response.status == 204
    [event] = await h.published()
    assert event.type == f"jira.lifecycle.{event_type}"
    assert event.session_key == CLIENT_KEY
    assert dict(event.data) == {
        "clientKey": CLIENT_KEY,
        "eventType": event_type,
        "key": APP_KEY,
        "baseUrl": SITE_URL,
        "displayUrl": SITE_URL,
        "oauthClientId": "oauth-client-1",
    }


async def test_a_disabled_site_can_be_enabled_again(h: Harness) -> None:
    """enabled is accepted from the disabled state."""
    await h.seed(state=InstallationState.DISABLED)
    response = await h.post(ENABLED, _enable_body("enabled"), token=h.sign("POST", ENABLED))
    assert response.status == 204


async def test_enabled_for_an_unknown_site_is_401(h: Harness) -> None:
    """No installation for the token's iss: 401."""
    response = await h.post(ENABLED, _enable_body("enabled"), token=h.sign("POST", ENABLED))
    await rejected(h, 401, "unknown installation", response)


async def test_enabled_after_uninstall_is_401(h: Harness) -> None:
    """An uninstalled site's secret no longer enables it."""
    await h.seed(state=InstallationState.UNINSTALLED)
    response = await h.post(ENABLED, _enable_body("enabled"), token=h.sign("POST", ENABLED))
    await rejected(h, 401, "installation uninstalled", response)


async def test_enabled_with_the_wrong_secret_is_401(h: Harness) -> None:
    """A token signed with another secret fails the signature."""
    await h.seed()
    token = h.sign("POST", ENABLED, secret="not-the-secret-but-long-enough-32b")
    response = await h.post(ENABLED, _enable_body("enabled"), token=token)
    await rejected(h, 401, "bad signature", response)


async def test_enabled_for_another_tenant_in_the_body_is_401(h: Harness) -> None:
    """Tenant A's token cannot enable tenant B."""
    await h.seed()
    body = _enable_body("enabled", client_key="someone-else")
    response = await h.post(ENABLED, body, token=h.sign("POST", ENABLED))
    await rejected(h, 401, "clientKey does not match the token", response)


async def test_enabled_with_an_rs256_token_is_401(h: Harness) -> None:
    """enabled is pinned to HS256: a signed-install token is refused."""
    await h.seed()
    response = await h.post(ENABLED, _enable_body("enabled"), token=h.install_token(ENABLED))
    await rejected(h, 401, "algorithm not allowed", response)


async def test_lifecycle_events_are_not_deduplicated_across_deliveries(h: Harness) -> None:
    """Two distinct disabled callbacks are two messages; the exact same request is one."""
    await h.seed()
    token = h.sign("POST", DISABLED)
    assert (await h.post(DISABLED, _enable_body("disabled"), token=token)).status == 204
    assert (await h.post(DISABLED, _enable_body("disabled"), token=token)).status == 204
    h.clock.advance(1)
    again = h.sign("POST", DISABLED)
    assert (await h.post(DISABLED, _enable_body("disabled"), token=again)).status == 204
    assert len(await h.published(2)) == 2
    assert await h.queued() == 0
