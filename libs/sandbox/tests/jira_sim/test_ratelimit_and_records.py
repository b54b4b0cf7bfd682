"""Rate limiting on demand, and the record of every call (what tests count)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from dfj_common.clock import ManualClock

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient

MYSELF = "/rest/api/3/myself"


async def test_throttle_answers_429_with_jiras_headers_then_recovers(jira: JiraClient) -> None:
    """The next two requests get 429 and Retry-After; the third goes through."""
    jira.site.throttle(2, retry_after=7)
    for _ in range(2):
        answer = await jira.app("GET", MYSELF)
        assert answer.status == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.headers["RateLimit-Reason"] == "jira-burst-based"
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        assert answer.headers["X-RateLimit-NearLimit"] == "true"
        assert answer.headers["X-RateLimit-Reset"] == "2027-01-15T08:00:07Z"
        assert "X-RateLimit-Limit" in answer.headers
    assert (await jira.app("GET", MYSELF)).status == 200
    assert jira.sim.count("GET", MYSELF, status=429) == 2


async def test_throttle_can_shed_load_with_503(jira: JiraClient) -> None:
    """503 with Retry-After, another reason."""
    jira.site.throttle(1, retry_after=30, status=503, reason="jira-quota-tenant-based")
    answer = await jira.app("GET", MYSELF)
    assert answer.status == 503
    assert (answer.headers["Retry-After"], answer.headers["RateLimit-Reason"]) == (
        "30",
        "jira-quota-tenant-based",
    )


async def test_throttling_is_per_site(jira: JiraClient) -> None:
    """Another site is not affected."""
    other = jira.sim.add_site("globex")
    other.throttle(5)
    assert (await jira.app("GET", MYSELF)).status == 200


def test_throttle_takes_only_jiras_statuses(jira: JiraClient) -> None:
    """Jira throttles with 429 or 503, nothing else."""
    with pytest.raises(ValueError, match="429 or 503"):
        jira.site.throttle(1, status=500)


async def test_a_steady_rate_limit_uses_the_clock(jira: JiraClient, clock: ManualClock) -> None:
    """Two requests per second: the third within the second is refused until it passes."""
    jira.site.limit_rate(2, per=1.0)
    assert [(await jira.app("GET", MYSELF)).status for _ in range(3)] == [200, 200, 429]
    clock.advance(1.0)
    assert (await jira.app("GET", MYSELF)).status == 200
    jira.site.limit_rate(None)
    assert [(await jira.app("GET", MYSELF)).status for _ in range(3)] == [200, 200, 200]


async def test_every_call_is_recorded_with_its_template_auth_and_account(jira: JiraClient) -> None:
    """Method, path, template, query, site, auth kind, account and status."""
    issue = jira.site.create_issue(summary="Recorded")
    await jira.app("GET", f"/rest/api/3/issue/{issue.key}", params=[("fields", "summary")])
    await jira.as_user("alice", "GET", f"/rest/api/3/issue/{issue.key}")
    await jira.send("GET", MYSELF, authorization=None)
    rest = [c for c in jira.sim.calls if c.template != "/oauth/oauth2/token"]
    first, second, third = rest
    assert first.path == f"/rest/api/3/issue/{issue.key}"
    assert first.template == "/rest/api/3/issue/{issueIdOrKey}"
    assert first.query == (("fields", "summary"),)
    assert (first.site, first.auth, first.status) == ("acme", "jwt", 200)
    assert (second.auth, second.account_id) == ("bearer", "alice")
    assert (third.auth, third.account_id, third.status) == ("none", None, 401)
    assert jira.sim.count("GET", "/rest/api/3/issue/{issueIdOrKey}") == 2
    assert jira.sim.count("GET", "/rest/api/3/issue/{issueIdOrKey}", site="other") == 0
    jira.sim.reset_records()
    assert jira.sim.calls == []
    assert jira.sim.token_requests == []


async def test_an_unknown_site_is_404(jira: JiraClient) -> None:
    """Only registered sites answer."""
    async with jira.http.get(jira.sim.url + "/sites/nowhere/rest/api/3/myself") as response:
        assert response.status == 404
    assert jira.sim.calls[-1].site is None
