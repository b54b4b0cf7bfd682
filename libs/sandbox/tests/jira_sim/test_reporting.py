"""The Personal Data Reporting API of a simulated site."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient

PATH = "/app/report-accounts/"


def accounts(*ids: str) -> dict[str, Any]:
    return {"accounts": [{"accountId": a, "updatedAt": "2026-12-01T00:00:00Z"} for a in ids]}


async def test_the_app_reports_and_hears_of_closed_and_updated_accounts(jira: JiraClient) -> None:
    jira.site.reporting.closed.add("closed-1")
    jira.site.reporting.updated.add("updated-1")
    answer = await jira.app("POST", PATH, json=accounts("active-1", "closed-1", "updated-1"))
    assert answer.status == 200
    assert answer.body == {
        "accounts": [
            {"accountId": "closed-1", "status": "closed"},
            {"accountId": "updated-1", "status": "updated"},
        ]
    }
    assert answer.headers["Cycle-Period"] == "7"
    nothing = await jira.app("POST", PATH, json=accounts("active-1"))
    assert (nothing.status, nothing.body) == (204, None)
    assert jira.site.reporting.reported == ["active-1", "closed-1", "updated-1", "active-1"]


async def test_bad_reports_are_400_and_nothing_is_recorded(jira: JiraClient) -> None:
    bad = [
        {"accounts": []},
        accounts(*[f"a{n}" for n in range(91)]),
        {"accounts": [{"accountId": "a"}]},
        {"accounts": [{"accountId": "a", "updatedAt": "yesterday"}]},
        ["not", "an", "object"],
    ]
    for body in bad:
        assert (await jira.app("POST", PATH, json=body)).status == 400, body
    assert jira.site.reporting.reports == []


async def test_only_the_app_may_report(jira: JiraClient) -> None:
    unsigned = await jira.send("POST", PATH, authorization=None, json=accounts("a"))
    assert unsigned.status == 401
    token = jira.app_token("POST", "/app/other/")
    wrong_qsh = await jira.send("POST", PATH, authorization=f"JWT {token}", json=accounts("a"))
    assert wrong_qsh.status == 401
    assert jira.site.reporting.reports == []


async def test_the_sites_429_applies(jira: JiraClient) -> None:
    jira.site.limiter.throttle(retry_after=12.0)
    answer = await jira.app("POST", PATH, json=accounts("a"))
    assert answer.status == 429 and answer.headers["Retry-After"] == "12"


async def test_a_user_token_may_not_report(jira: JiraClient) -> None:
    token = await jira.user_token("alice")
    answer = await jira.send("POST", PATH, authorization=f"Bearer {token}", json=accounts("a"))
    assert answer.status == 403
    assert jira.site.reporting.reports == []
