"""System tokens on /ex/jira, offline user tokens from /graphql, and what refuses them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt

from dfj_common.clock import ManualClock
from dfj_sandbox.jira_sim import ForgeInstallation, JiraSimulator, Site

from .conftest import APP_ID, write_manifest

if TYPE_CHECKING:
    from .conftest import FakeRemote

MUTATION = (
    "mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) {"
    " offlineUserAuthToken(input: $input) { success errors { message } authToken { token ttl } } }"
)


async def _system_token(fast: JiraSimulator, forge: ForgeInstallation, remote: FakeRemote) -> str:
    await fast.run_scheduled_trigger(forge)
    return remote.calls("/forge/scheduled")[-1].headers["x-forge-oauth-system"]


async def _call(
    url: str, token: str | None, *, method: str = "GET", json: Any = None
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, json=json) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def _mint(
    fast: JiraSimulator, token: str | None, user: str, contexts: list[str]
) -> tuple[int, Any]:
    body = {"query": MUTATION, "variables": {"input": {"contextIds": contexts, "userId": user}}}
    return await _call(fast.url + "/graphql", token, method="POST", json=body)


async def test_the_system_token_acts_as_the_app_on_the_api_base_url(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """Same REST handlers as the site's URL; serverInfo names the site's baseUrl."""
    token = await _system_token(fast, forge, remote)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - fast.clock.now() >= 2 * 3600
    issue = site.create_issue(summary="Via Forge", reporter="alice")
    status, body = await _call(f"{forge.api_base_url}/rest/api/3/issue/{issue.key}", token)
    assert (status, body["fields"]["summary"]) == (200, "Via Forge")
    status, body = await _call(f"{forge.api_base_url}/rest/api/3/serverInfo", token)
    assert (status, body["baseUrl"]) == (200, site.base_url)
    call = fast.calls[-1]
    assert (call.template, call.site, call.account_id) == (
        "/rest/api/3/serverInfo",
        site.name,
        site.app_user.account_id,
    )
    # The spec check applies on this path too.
    status, _ = await _call(f"{forge.api_base_url}/rest/api/3/nothing-here", token)
    assert status == 404
    status, _ = await _call(
        f"{forge.api_base_url}/app/report-accounts/",
        token,
        method="POST",
        json={"accounts": [{"accountId": "alice", "updatedAt": "2026-01-01T00:00:00Z"}]},
    )
    assert status == 204


async def test_the_system_token_is_refused_elsewhere_and_once_expired(
    fast: JiraSimulator,
    site: Site,
    remote: FakeRemote,
    forge: ForgeInstallation,
    clock: ManualClock,
) -> None:
    """Another cloudId, the site's own URL, after expiry or expire_system_tokens: 401."""
    token = await _system_token(fast, forge, remote)
    other = fast.add_site("other")
    unauthorized = (401, {"code": 401, "message": "Unauthorized"})
    info = "/rest/api/3/serverInfo"
    assert await _call(f"{fast.url}/ex/jira/{other.cloud_id}{info}", token) == unauthorized
    assert (await _call(site.base_url + info, token))[0] == 401
    assert await _call(forge.api_base_url + info, None) == unauthorized
    assert fast.expire_system_tokens(forge) >= 1
    assert await _call(forge.api_base_url + info, token) == unauthorized
    fresh = await _system_token(fast, forge, remote)
    assert fresh != token
    assert (await _call(forge.api_base_url + info, fresh))[0] == 200
    clock.advance(3 * 3600 + 1)
    assert await _call(forge.api_base_url + info, fresh) == unauthorized


async def test_forge_caches_the_system_token_until_less_than_two_hours_are_left(
    fast: JiraSimulator, remote: FakeRemote, forge: ForgeInstallation, clock: ManualClock
) -> None:
    """Re-used for an hour, replaced once < 2 h are left; every one delivered lasts ≥ 2 h."""
    first = await _system_token(fast, forge, remote)
    clock.advance(3000)
    assert await _system_token(fast, forge, remote) == first
    clock.advance(1000)
    second = await _system_token(fast, forge, remote)
    assert second != first
    expiry = jwt.decode(second, options={"verify_signature": False})["exp"]
    assert expiry - clock.now() >= 2 * 3600


async def test_offline_user_tokens_act_as_the_user(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """Both contextId spellings mint; the token sees what the user sees, no more."""
    token = await _system_token(fast, forge, remote)
    hidden = site.create_issue(summary="Staff only", reporter="alice", security_level="Staff")
    for context in (
        f"ari:cloud:jira::site/{site.cloud_id}",
        f"ari:cloud:jira:{site.cloud_id}:workspace/{site.cloud_id}",
    ):
        status, body = await _mint(fast, token, "bob", [context])
        answer = body["data"]["offlineUserAuthToken"]
        assert (status, answer["success"], answer["errors"]) == (200, True, None)
        assert answer["authToken"]["ttl"] == 3600
    user_token = answer["authToken"]["token"]
    status, body = await _call(f"{forge.api_base_url}/rest/api/3/myself", user_token)
    assert (status, body["accountId"]) == (200, "bob")
    status, _ = await _call(f"{forge.api_base_url}/rest/api/3/issue/{hidden.key}", user_token)
    assert status == 404  # bob is not in the Staff level
    status, _ = await _call(f"{forge.api_base_url}/rest/api/3/issue/{hidden.key}", token)
    assert status == 200
    status, _ = await _call(
        f"{forge.api_base_url}/rest/api/3/issue",
        user_token,
        method="POST",
        json={
            "fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Task"}, "summary": "x"}
        },
    )
    assert status == 403  # bob may only browse and comment
    assert [(r.account_id, r.success) for r in fast.offline_token_requests] == [
        ("bob", True),
        ("bob", True),
    ]


async def test_offline_token_refusals(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """Unknown or inactive users, other contexts: success false; no system token: 401."""
    token = await _system_token(fast, forge, remote)
    mine = [f"ari:cloud:jira::site/{site.cloud_id}"]
    other = fast.add_site("other")
    for user, contexts in (
        ("nobody", mine),
        ("gone", mine),
        ("alice", [f"ari:cloud:jira::site/{other.cloud_id}"]),
        ("alice", []),
    ):
        status, body = await _mint(fast, token, user, contexts)
        answer = body["data"]["offlineUserAuthToken"]
        assert (status, answer["success"], answer["authToken"]) == (200, False, None)
        assert answer["errors"][0]["message"]
    assert await _mint(fast, None, "alice", mine) == (401, {"code": 401, "message": "Unauthorized"})
    assert (await _mint(fast, "forged", "alice", mine))[0] == 401
    assert [r.success for r in fast.offline_token_requests] == [False] * 4


async def test_offline_tokens_need_a_scope_that_allows_impersonation(
    fast: JiraSimulator, site: Site, remote: FakeRemote, tmp_path: Path
) -> None:
    """A manifest without allowImpersonation gets ``success: false``."""

    def plain(document: dict[str, Any]) -> None:
        document["permissions"]["scopes"] = {name: {} for name in document["permissions"]["scopes"]}

    installation = await fast.install_forge_app(
        site, write_manifest(tmp_path, plain), remote_base_url=remote.base_url, app_id=APP_ID
    )
    token = await _system_token(fast, installation, remote)
    _, body = await _mint(fast, token, "alice", [f"ari:cloud:jira::site/{site.cloud_id}"])
    assert body["data"]["offlineUserAuthToken"]["success"] is False
