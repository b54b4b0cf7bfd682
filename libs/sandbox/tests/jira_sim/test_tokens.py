"""The JWT-bearer token endpoint: who may get a token, and what the token then allows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.jira_sim import JiraSimulator, OpenApiSpec
from dfj_sandbox.jira_sim.tokens import GRANT_TYPE

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient

MYSELF = "/rest/api/3/myself"


async def test_a_good_assertion_gets_a_bearer_token_that_acts_as_the_user(
    jira: JiraClient,
) -> None:
    """200 with Atlassian's three fields; the token then reads ``/myself`` as alice."""
    answer = await jira.token_request(
        {"grant_type": GRANT_TYPE, "assertion": jira.assertion("alice")}
    )
    assert answer.status == 200
    assert set(answer.body) == {"access_token", "expires_in", "token_type"}
    assert answer.body["token_type"] == "Bearer"
    assert answer.body["expires_in"] == 900
    assert answer.headers["Cache-Control"] == "no-store"
    me = await jira.send("GET", MYSELF, authorization=f"Bearer {answer.body['access_token']}")
    assert me.status == 200
    assert me.body["accountId"] == "alice"
    assert me.body["displayName"] == "Alice Example"
    call = jira.sim.calls[-1]
    assert (call.auth, call.account_id) == ("bearer", "alice")


async def test_token_requests_are_counted(jira: JiraClient) -> None:
    """Each exchange, good or bad, is one recorded token request naming the site."""
    await jira.user_token("alice")
    await jira.token_request({"grant_type": GRANT_TYPE, "assertion": jira.assertion("nobody")})
    assert [(c.site, c.account_id, c.status) for c in jira.sim.token_requests] == [
        ("acme", "alice", 200),
        ("acme", None, 401),
    ]


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        (
            {"secret": "a-different-secret-that-is-long-enough"},
            "The assertion signature does not verify.",
        ),
        (
            {"sub": "urn:atlassian:connect:useraccountid:nobody"},
            "The assertion subject is not an active user.",
        ),
        (
            {"sub": "urn:atlassian:connect:userkey:alice"},
            "The assertion subject is not an active user.",
        ),
        (
            {"sub": "urn:atlassian:connect:useraccountid:gone"},
            "The assertion subject is not an active user.",
        ),
        (
            {"iss": "urn:atlassian:connect:clientid:someone-else"},
            "The assertion issuer is not this app's client.",
        ),
        (
            {"aud": "https://oauth-2-authorization-server.services.atlassian.com"},
            "The assertion audience is not this server.",
        ),
        ({"tnt": "https://elsewhere.atlassian.net"}, "The assertion names no known tenant."),
        ({"qsh": "abc"}, "An assertion must not carry a qsh."),
        ({"exp": None}, "The assertion has no 'exp' claim."),
    ],
)
async def test_assertions_that_do_not_hold_are_invalid_grants(
    jira: JiraClient, claims: dict[str, Any], description: str
) -> None:
    """401 ``invalid_grant`` with a description of what failed."""
    answer = await jira.token_request(
        {"grant_type": GRANT_TYPE, "assertion": jira.assertion("alice", **claims)}
    )
    assert answer.status == 401
    assert answer.body == {"error": "invalid_grant", "error_description": description}


async def test_an_assertion_may_live_at_most_sixty_seconds(jira: JiraClient) -> None:
    """``exp`` = ``iat`` + 61 is refused, + 60 accepted."""
    now = int(jira.clock.now())
    too_long = jira.assertion("alice", iat=now, exp=now + 61)
    answer = await jira.token_request({"grant_type": GRANT_TYPE, "assertion": too_long})
    assert answer.status == 401
    assert "at most 60 seconds" in answer.body["error_description"]
    fine = jira.assertion("alice", iat=now, exp=now + 60)
    assert (await jira.token_request({"grant_type": GRANT_TYPE, "assertion": fine})).status == 200


async def test_a_stale_assertion_is_refused(jira: JiraClient, clock: ManualClock) -> None:
    """Once the clock passes ``exp`` the assertion is dead."""
    assertion = jira.assertion("alice")
    clock.advance(61)
    answer = await jira.token_request({"grant_type": GRANT_TYPE, "assertion": assertion})
    assert answer.status == 401
    assert answer.body["error_description"] == "The assertion has expired."


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials", "assertion": "x"}, "unsupported_grant_type"),
        ({"grant_type": GRANT_TYPE}, "invalid_request"),
        ({"grant_type": GRANT_TYPE, "assertion": "not.a.jwt"}, "invalid_request"),
    ],
)
async def test_malformed_requests_are_400(
    jira: JiraClient, form: dict[str, str], error: str
) -> None:
    """OAuth error objects for requests that are not a JWT-bearer grant."""
    answer = await jira.token_request(form)
    assert answer.status == 400
    assert answer.body["error"] == error


async def test_the_request_must_be_a_form(jira: JiraClient) -> None:
    """A JSON token request is not what Atlassian takes."""
    body = {"grant_type": GRANT_TYPE, "assertion": jira.assertion("alice")}
    async with jira.http.post(jira.sim.token_url, json=body) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_tokens_expire_on_the_simulators_clock(jira: JiraClient, clock: ManualClock) -> None:
    """After ``expires_in`` the bearer token is refused."""
    token = await jira.user_token("alice")
    clock.advance(899)
    assert (await jira.send("GET", MYSELF, authorization=f"Bearer {token}")).status == 200
    clock.advance(1)
    expired = await jira.send("GET", MYSELF, authorization=f"Bearer {token}")
    assert expired.status == 401
    assert expired.body["errorMessages"] == ["The access token has expired."]


async def test_a_deactivated_user_loses_their_token(jira: JiraClient) -> None:
    """Deactivation takes effect on the next request."""
    token = await jira.user_token("alice")
    jira.site.set_active("alice", False)
    assert (await jira.send("GET", MYSELF, authorization=f"Bearer {token}")).status == 401


async def test_a_read_scoped_token_cannot_write(jira: JiraClient) -> None:
    """The operation's Connect scope (``WRITE`` for addComment) must be granted."""
    issue = jira.site.create_issue(summary="Scoped")
    answer = await jira.token_request(
        {"grant_type": GRANT_TYPE, "assertion": jira.assertion("alice"), "scope": "READ"}
    )
    assert answer.status == 200
    assert answer.body["scope"] == "READ"
    token = answer.body["access_token"]
    read = await jira.send("GET", f"/rest/api/3/issue/{issue.key}", authorization=f"Bearer {token}")
    assert read.status == 200
    write = await jira.send(
        "POST",
        f"/rest/api/3/issue/{issue.key}/comment",
        authorization=f"Bearer {token}",
        json={"body": {"type": "doc", "version": 1, "content": []}},
    )
    assert write.status == 403
    assert "WRITE" in write.body["errorMessages"][0]


async def test_a_scope_the_app_lacks_is_invalid(jira: JiraClient) -> None:
    """Asking for more than the descriptor grants is ``invalid_scope``."""
    answer = await jira.token_request(
        {"grant_type": GRANT_TYPE, "assertion": jira.assertion("alice"), "scope": "READ ADMIN"}
    )
    assert answer.status == 400
    assert answer.body["error"] == "invalid_scope"


async def test_an_app_without_act_as_user_cannot_impersonate(jira: JiraClient) -> None:
    """The error Atlassian answers when the descriptor lacks ``ACT_AS_USER``."""
    site = jira.sim.add_site("readonly", scopes=("READ", "WRITE"))
    site.add_user("alice", "Alice")
    payload = {
        "iss": f"urn:atlassian:connect:clientid:{site.oauth_client_id}",
        "sub": "urn:atlassian:connect:useraccountid:alice",
        "tnt": site.base_url,
        "aud": jira.sim.oauth_url,
        "iat": int(jira.clock.now()),
        "exp": int(jira.clock.now()) + 60,
    }
    assertion = jwt.encode(payload, site.shared_secret.encode(), algorithm="HS256")
    answer = await jira.token_request({"grant_type": GRANT_TYPE, "assertion": assertion})
    assert answer.status == 400
    assert answer.body["error"] == "unauthorized_client"


async def test_a_token_is_bound_to_its_site(jira: JiraClient) -> None:
    """alice's acme token opens nothing on another site, even one where she exists."""
    other = jira.sim.add_site("globex")
    other.add_user("alice", "Alice Elsewhere")
    token = await jira.user_token("alice")
    async with jira.http.get(
        other.base_url + MYSELF, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 401


async def test_the_token_lifetime_is_configurable(spec: OpenApiSpec, clock: ManualClock) -> None:
    """``token_lifetime`` is what ``expires_in`` says."""
    async with JiraSimulator(clock=clock, spec=spec, token_lifetime=60) as sim:
        site = sim.add_site("short")
        site.add_user("alice", "Alice")
        now = int(clock.now())
        payload = {
            "iss": f"urn:atlassian:connect:clientid:{site.oauth_client_id}",
            "sub": "urn:atlassian:connect:useraccountid:alice",
            "tnt": site.base_url,
            "aud": sim.oauth_url,
            "iat": now,
            "exp": now + 60,
        }
        assertion = jwt.encode(payload, site.shared_secret.encode(), algorithm="HS256")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                sim.token_url, data={"grant_type": GRANT_TYPE, "assertion": assertion}
            ) as response,
        ):
            body = await response.json()
    assert body["expires_in"] == 60
