"""Product events to the trigger's endpoint: shapes, order, retries, ignoreSelf, uninstall."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from dfj_sandbox.jira_sim import ForgeInstallation, ForgePolicy, JiraSimulator, Site

from .conftest import APP_ID, write_manifest

if TYPE_CHECKING:
    from .conftest import FakeRemote


async def test_every_change_is_a_trigger_call_in_order(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """Issue and comment events, Forge's names and bodies, one at a time in order."""
    issue = site.create_issue(summary="Forge", reporter="alice")
    site.update_issue(issue, by="alice", summary="Forge!")
    comment = site.add_comment(issue, "First", author="bob")
    site.update_comment(issue, comment.id, "First, edited", by="bob")
    site.delete_comment(issue, comment.id, by="dora")
    site.delete_issue(issue, by="dora")
    await fast.forge_idle()

    bodies = [r.json() for r in remote.events()]
    assert [(b["eventType"], b["atlassianId"]) for b in bodies] == [
        ("avi:jira:created:issue", "alice"),
        ("avi:jira:updated:issue", "alice"),
        ("avi:jira:commented:issue", "bob"),
        ("avi:jira:commented:issue", "bob"),
        ("avi:jira:deleted:comment", "dora"),
        ("avi:jira:deleted:issue", "dora"),
    ]
    created = bodies[0]
    assert created["issue"]["id"] == issue.id and created["issue"]["key"] == issue.key
    fields = created["issue"]["fields"]
    assert fields["project"]["key"] == "DEMO"
    assert fields["reporter"]["accountId"] == "alice"
    assert fields["summary"] == "Forge"
    assert {"issuetype", "status", "priority", "created", "updated"} <= set(fields)
    assert created["selfGenerated"] is False
    assert created["associatedUsers"] == [{"accountId": "alice"}]
    assert "changelog" not in created
    [item] = bodies[1]["changelog"]["items"]
    assert (item["field"], item["fromString"], item["toString"]) == ("summary", "Forge", "Forge!")
    assert bodies[2]["comment"]["id"] == comment.id
    assert bodies[2]["comment"]["author"]["accountId"] == "bob"
    assert bodies[3]["comment"]["body"] == "First, edited"
    assert bodies[4]["comment"]["id"] == comment.id
    calls = remote.events()
    assert all(c.claims["app"]["module"]["key"] == "jira-events" for c in calls)
    assert all(c.headers["x-forge-oauth-system"] for c in calls)
    records = [d for d in fast.forge_deliveries if d.endpoint == "events"]
    assert [d.outcome for d in records] == ["delivered"] * 6


async def test_failed_deliveries_are_retried_with_their_reason_and_hold_the_queue(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """500, then a timeout, then 2xx; the next event waits its turn."""
    fast.forge.policy = ForgePolicy(retry_delay=0.01, timeout=0.2)
    remote.answers["/forge/events"] = [500]
    remote.stalls["/forge/events"] = [0, 0.5]
    first = site.create_issue(summary="One", reporter="alice")
    site.create_issue(summary="Two", reporter="alice")
    await fast.forge_idle()
    calls = remote.events()
    summaries = [c.json()["issue"]["fields"]["summary"] for c in calls]
    assert summaries == ["One", "One", "One", "Two"]
    assert [c.json().get("retryContext") for c in calls[:3]] == [
        None,
        {"retryCount": 1, "retryReason": "INVALID_REMOTE_INVOCATION_ERROR", "retryData": None},
        {"retryCount": 2, "retryReason": "TIMEOUT_ERROR", "retryData": None},
    ]
    assert len({c.claims["jti"] for c in calls}) == 4
    records = [d for d in fast.forge_deliveries if d.endpoint == "events"]
    assert records[0].body is not None and records[0].body["issue"]["id"] == first.id
    assert [d.statuses for d in records] == [[500, None, 204], [204]]
    assert records[0].attempts[1].error == "timeout"


async def test_a_dead_remote_is_given_up_after_four_retries(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """Five attempts in all, then ``failed``; the next event is delivered."""
    remote.answers["/forge/events"] = [502] * 5
    site.create_issue(summary="Lost", reporter="alice")
    site.create_issue(summary="Kept", reporter="alice")
    await fast.forge_idle()
    records = [d for d in fast.forge_deliveries if d.endpoint == "events"]
    assert [(len(d.attempts), d.outcome) for d in records] == [(5, "failed"), (1, "delivered")]
    assert remote.events()[4].json()["retryContext"]["retryCount"] == 4


async def test_the_payload_wrapper_is_a_policy(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """``wrap_payload`` nests the event under ``payload``, retryContext inside it."""
    fast.forge.policy = ForgePolicy(retry_delay=0.01, timeout=1.0, wrap_payload=True)
    remote.answers["/forge/events"] = [500]
    site.create_issue(summary="Wrapped", reporter="alice")
    await fast.forge_idle()
    first, second = (c.json() for c in remote.events())
    assert set(first) == {"payload"}
    assert first["payload"]["eventType"] == "avi:jira:created:issue"
    assert second["payload"]["retryContext"]["retryCount"] == 1


async def test_ignore_self_skips_only_changes_made_with_the_system_token(
    fast: JiraSimulator, site: Site, remote: FakeRemote, tmp_path: Path
) -> None:
    """The app's own REST change (system token) is not sent; a user's change is.

    Our manifest does not filter (see its comment); a copy with ``ignoreSelf`` shows the
    simulator honours the filter as Forge does.
    """

    def ignore_self(document: Any) -> None:
        for trigger in document["modules"]["trigger"]:
            if any(e.startswith("avi:jira:") for e in trigger["events"]):
                trigger["filter"] = {"ignoreSelf": True}

    site.sign_in("dora")
    forge = await fast.install_forge_app(
        site, write_manifest(tmp_path, ignore_self), remote_base_url=remote.base_url, app_id=APP_ID
    )
    site.sign_out()
    await fast.run_scheduled_trigger(forge)
    token = remote.calls("/forge/scheduled")[-1].headers["x-forge-oauth-system"]
    issue = site.create_issue(summary="Quiet", reporter="alice")
    await fast.forge_idle()
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{forge.api_base_url}/rest/api/3/issue/{issue.key}",
            json={"fields": {"summary": "Changed by the app"}},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 204
    site.update_issue(issue, by="alice", summary="Changed by Alice")
    await fast.forge_idle()
    summaries = [c.json()["issue"]["fields"]["summary"] for c in remote.events()]
    assert summaries == ["Quiet", "Changed by Alice"]


async def test_uninstall_posts_pre_uninstall_then_stops_events_and_tokens(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """preUninstall body; afterwards no event is sent and the system token is refused."""
    await fast.run_scheduled_trigger(forge)
    token = remote.calls("/forge/scheduled")[-1].headers["x-forge-oauth-system"]
    [record] = await fast.uninstall_forge_app(forge)
    assert record.outcome == "delivered"
    [call] = remote.calls("/forge/uninstall")
    body = call.json()
    assert body["context"] == {"cloudId": site.cloud_id, "moduleKey": "uninstall"}
    assert isinstance(body["contextToken"], str) and body["contextToken"]
    assert call.claims["app"]["module"]["key"] == "uninstall"
    assert not forge.installed and site.forge is None
    site.create_issue(summary="After", reporter="alice")
    await fast.forge_idle()
    assert remote.events() == []
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{forge.api_base_url}/rest/api/3/serverInfo",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 401
