"""Calls as a user: the JWT-bearer grant, its token cache, single flight and the 401 retry.

The fake authorization server verifies each assertion (signature, ``iss``/``sub``/``tnt``/
``aud``, a fresh ``jti``, lifetime ≤ 60 s) and issues random tokens that the fake site then
requires; tokens expire on the shared :class:`ManualClock`, so expiry is tested by moving it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from dfj_common.clock import ManualClock
from dfj_common.secrets import EnvelopeCipher
from dfj_common.storage import Installation
from dfj_jira_worker.jira import (
    JiraClient,
    JiraRateLimited,
    JiraUnauthorized,
    JiraUnavailable,
)

if TYPE_CHECKING:
    from conftest import FakeJira

ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
OTHER_ACCOUNT = "5b10a2844c20165700ede21g"
OAUTH_CLIENT_ID = "oauth-client-7f3e"


async def test_the_token_request_carries_the_grant_the_scopes_and_a_good_assertion(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Form fields and assertion claims are what Atlassian's token endpoint expects."""
    me = await client.as_user(site, ACCOUNT_ID).get_myself()
    assert me["actor"] == ACCOUNT_ID
    (request,) = fake.token_requests
    assert request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert request.form["scope"] == "READ WRITE"
    claims = request.claims
    assert claims["iss"] == f"urn:atlassian:connect:clientid:{OAUTH_CLIENT_ID}"
    assert claims["sub"] == f"urn:atlassian:connect:useraccountid:{ACCOUNT_ID}"
    assert claims["tnt"] == fake.base_url
    assert claims["aud"] == fake.oauth_url
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"]


async def test_a_token_is_fetched_once_and_reused_until_near_expiry(
    client: JiraClient, site: Installation, fake: FakeJira, clock: ManualClock
) -> None:
    """900 s tokens are reused for 840 s (60 s margin), then fetched again."""
    api = client.as_user(site, ACCOUNT_ID)
    for _ in range(5):
        await api.get_myself()
    assert len(fake.token_requests) == 1
    clock.advance(839)
    await client.as_user(site, ACCOUNT_ID).get_myself()  # a new view shares the cache
    assert len(fake.token_requests) == 1
    clock.advance(2)
    await api.get_myself()
    assert len(fake.token_requests) == 2
    assert client.token_requests == 2
    assert len(fake.requests_to("/rest/api/3/myself")) == 7


async def test_short_tokens_keep_a_tenth_of_their_life_as_margin(
    client: JiraClient, site: Installation, fake: FakeJira, clock: ManualClock
) -> None:
    """A 100 s token is reused for 90 s, not 40."""
    fake.token_lifetime = 100
    api = client.as_user(site, ACCOUNT_ID)
    await api.get_myself()
    clock.advance(89)
    await api.get_myself()
    assert len(fake.token_requests) == 1
    clock.advance(2)
    await api.get_myself()
    assert len(fake.token_requests) == 2


async def test_tokens_are_per_account_and_per_scope_set(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Another account or other scopes need their own token; scope order and case do not."""
    await client.as_user(site, ACCOUNT_ID).get_myself()
    await client.as_user(site, ACCOUNT_ID, scopes=["write", "READ"]).get_myself()
    await client.as_user(site, OTHER_ACCOUNT).get_myself()
    await client.as_user(site, ACCOUNT_ID, scopes=["READ"]).get_myself()
    assert [r.form.get("scope") for r in fake.token_requests] == [
        "READ WRITE",
        "READ WRITE",
        "READ",
    ]
    assert [s.actor for s in fake.seen] == [ACCOUNT_ID, ACCOUNT_ID, OTHER_ACCOUNT, ACCOUNT_ID]
    assert fake.token_requests[1].claims["sub"].endswith(OTHER_ACCOUNT)


async def test_concurrent_callers_share_one_token_request(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Twenty calls racing for a cold cache make one token request between them."""
    fake.token_gate = asyncio.Event()
    calls = [asyncio.create_task(client.as_user(site, ACCOUNT_ID).get_myself()) for _ in range(20)]
    await fake.token_arrived.wait()
    fake.token_gate.set()
    results = await asyncio.gather(*calls)
    assert all(r["actor"] == ACCOUNT_ID for r in results)
    assert len(fake.token_requests) == 1
    assert len(fake.seen) == 20


async def test_a_caller_giving_up_does_not_cancel_the_shared_token_request(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """The request is shielded: the remaining waiter still gets its answer."""
    fake.token_gate = asyncio.Event()
    first = asyncio.create_task(client.as_user(site, ACCOUNT_ID).get_myself())
    second = asyncio.create_task(client.as_user(site, ACCOUNT_ID).get_myself())
    await fake.token_arrived.wait()
    first.cancel()
    fake.token_gate.set()
    assert (await second)["actor"] == ACCOUNT_ID
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(fake.token_requests) == 1


async def test_a_401_drops_the_token_and_retries_once_with_a_fresh_one(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """A token revoked early (Jira says 401) is replaced, and the call still succeeds."""
    api = client.as_user(site, ACCOUNT_ID)
    await api.get_myself()
    fake.revoke_all()
    assert (await api.get_myself())["actor"] == ACCOUNT_ID
    assert len(fake.token_requests) == 2
    assert len(fake.requests_to("/rest/api/3/myself")) == 2  # the refused one is not recorded
    await api.get_myself()
    assert len(fake.token_requests) == 2  # the fresh token is cached


async def test_a_persistent_401_is_retried_exactly_once(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Two requests, two tokens, then JiraUnauthorized with a message about the link."""
    fake.respond("GET", "/rest/api/3/myself", 401, body={"errorMessages": ["no"]})
    with pytest.raises(JiraUnauthorized) as caught:
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert len(fake.requests_to("/rest/api/3/myself")) == 2
    assert len(fake.token_requests) == 2
    assert caught.value.status == 401
    assert "link" in caught.value.user_message


@pytest.mark.parametrize("status", [400, 401])
async def test_the_token_endpoint_refusing_means_the_user_cannot_be_impersonated(
    client: JiraClient, site: Installation, fake: FakeJira, status: int
) -> None:
    """An OAuth error (the user is gone, the scope was withdrawn) is permanent."""
    fake.respond_token(status, body={"error": "invalid_grant", "error_description": "gone"})
    with pytest.raises(JiraUnauthorized) as caught:
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert caught.value.reason == "JiraUnauthorized"
    assert caught.value.status == status
    assert "invalid_grant" in str(caught.value)
    assert "linking your Jira account again" in caught.value.user_message
    assert fake.seen == []
    # Refusals are not cached: the next call asks again.
    with pytest.raises(JiraUnauthorized):
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert len(fake.token_requests) == 2


async def test_the_token_endpoint_failing_or_throttling_is_transient(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """5xx → JiraUnavailable; 429 → JiraRateLimited with its Retry-After."""
    fake.respond_token(502)
    with pytest.raises(JiraUnavailable) as unavailable:
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert unavailable.value.status == 502
    fake.respond_token(429, headers={"Retry-After": "12"})
    with pytest.raises(JiraRateLimited) as limited:
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert limited.value.retry_after == 12.0


@pytest.mark.parametrize(
    "body",
    [{"access_token": "", "expires_in": 900}, {"access_token": "x"}, {"expires_in": 5}, ["x"]],
)
async def test_a_token_answer_without_a_usable_token_is_transient(
    client: JiraClient, site: Installation, fake: FakeJira, body: object
) -> None:
    """A 200 that does not hold a token and a positive lifetime is not trusted."""
    fake.respond_token(200, body=body)
    with pytest.raises(JiraUnavailable):
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert fake.seen == []


async def test_the_cache_is_dropped_on_close(
    fake: FakeJira, cipher: EnvelopeCipher, clock: ManualClock, site: Installation
) -> None:
    """After close, further calls are refused rather than silently reopening a session."""
    client = JiraClient(
        app_key="discord-for-jira", oauth_url=fake.oauth_url, cipher=cipher, clock=clock
    )
    await client.as_user(site, ACCOUNT_ID).get_myself()
    await client.close()
    with pytest.raises(RuntimeError):
        await client.as_user(site, ACCOUNT_ID).get_myself()
