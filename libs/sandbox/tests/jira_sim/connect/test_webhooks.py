"""Webhooks for every change: signed per attempt, identified, retried like Jira, in order."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.jira_sim import (
    JiraSimulator,
    OpenApiSpec,
    Site,
    WebhookPolicy,
    adf,
)

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient
    from libs.sandbox.tests.jira_sim.connect.conftest import FakeApp


def _events(app: FakeApp) -> list[tuple[str, str, str | None]]:
    """(path, webhookEvent, issue_event_type_name) of every webhook the app verified."""
    return [
        (r.path, r.json()["webhookEvent"], r.json().get("issue_event_type_name"))
        for r in app.webhooks()
    ]


async def test_every_change_sends_its_webhook(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """One webhook per change kind, to its module's path, valid HS256 + qsh, in order."""
    site = installed
    issue = site.create_issue(summary="Webhooks", reporter="alice")
    site.update_issue(issue, by="alice", summary="Webhooks!")
    site.transition_issue(issue, "21", by="dora")
    site.update_issue(issue, summary="Webhooks!")  # nothing changed: no webhook
    comment = site.add_comment(issue, "First", author="bob")
    site.update_comment(issue, comment.id, "First, edited", by="bob")
    site.delete_comment(issue, comment.id, by="dora")
    site.delete_issue(issue, by="dora")
    await fast.webhooks_idle()

    assert _events(app) == [
        ("/webhooks/issue-created", "jira:issue_created", "issue_created"),
        ("/webhooks/issue-updated", "jira:issue_updated", "issue_updated"),
        ("/webhooks/issue-updated", "jira:issue_updated", "issue_generic"),
        ("/webhooks/comment-created", "comment_created", None),
        ("/webhooks/issue-updated", "jira:issue_updated", "issue_commented"),
        ("/webhooks/comment-updated", "comment_updated", None),
        ("/webhooks/comment-deleted", "comment_deleted", None),
        ("/webhooks/issue-deleted", "jira:issue_deleted", "issue_deleted"),
    ]
    received = app.webhooks()
    assert all(r.claims["iss"] == site.client_key for r in received)
    assert all(r.headers["X-Atlassian-Webhook-Retry"] == "0" for r in received)
    assert all(r.headers["X-Atlassian-Webhook-Flow"] == "Primary" for r in received)
    assert all(r.headers["Content-Type"] == "application/json" for r in received)
    identifiers = [r.headers["X-Atlassian-Webhook-Identifier"] for r in received]
    assert len(set(identifiers)) == len(identifiers)
    bodies = [r.json() for r in received]
    assert bodies[0]["user"]["accountId"] == "alice"
    assert bodies[2]["changelog"]["items"][0]["toString"] == "In Progress"
    assert bodies[2]["user"]["accountId"] == "dora"
    assert bodies[4]["comment"]["id"] == comment.id
    assert bodies[5]["comment"]["body"] == "First, edited"
    assert bodies[7]["issue"]["key"] == issue.key
    assert bodies[7]["user"]["accountId"] == "dora"
    records = fast.webhooks_for(site)
    assert [(d.identifier, d.outcome) for d in records] == [(i, "delivered") for i in identifiers]
    assert records[0].url == app.base_url + "/webhooks/issue-created"


async def test_changes_made_through_rest_send_webhooks(
    fast: JiraSimulator, installed: Site, app: FakeApp, jira: JiraClient
) -> None:
    """The REST handlers change the site through the same methods, so webhooks follow."""
    created = await jira.as_user(
        "alice",
        "POST",
        "/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "DEMO"},
                "issuetype": {"name": "Task"},
                "summary": "From REST",
            }
        },
    )
    assert created.status == 201, created.body
    key = created.body["key"]
    commented = await jira.as_user(
        "alice", "POST", f"/rest/api/3/issue/{key}/comment", json={"body": adf.document("Hi")}
    )
    assert commented.status == 201, commented.body
    moved = await jira.as_user(
        "alice", "POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "31"}}
    )
    assert moved.status == 204, moved.body
    deleted = await jira.app("DELETE", f"/rest/api/3/issue/{key}")
    assert deleted.status == 204, deleted.body
    await fast.webhooks_idle()
    assert [(event, kind) for _, event, kind in _events(app)] == [
        ("jira:issue_created", "issue_created"),
        ("comment_created", None),
        ("jira:issue_updated", "issue_commented"),
        ("jira:issue_updated", "issue_generic"),
        ("jira:issue_deleted", "issue_deleted"),
    ]
    bodies = [r.json() for r in app.webhooks()]
    assert bodies[0]["user"]["accountId"] == "alice"
    assert bodies[-1]["user"]["accountId"] == installed.app_user.account_id


async def test_only_registered_events_are_sent(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """With only comment_created registered, a comment sends no jira:issue_updated."""
    app.document["modules"]["webhooks"] = [
        {"event": "comment_created", "url": "/webhooks/comment-created"}
    ]
    await fast.install_app(site, app.descriptor_url)
    issue = site.create_issue(summary="Quiet")
    site.add_comment(issue, "Loud")
    await fast.webhooks_idle()
    assert [path for path, _, _ in _events(app)] == ["/webhooks/comment-created"]


async def test_module_query_and_variables_are_signed(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """A module URL's query is part of the qsh; ``${issue.key}`` is filled; excludeBody."""
    app.document["modules"]["webhooks"] = [
        {"event": "jira:issue_created", "url": "/webhooks/created?user_id=admin&tag=a b"},
        {"event": "jira:issue_created", "url": "/webhooks/keyed/${issue.key}", "excludeBody": True},
    ]
    await fast.install_app(site, app.descriptor_url)
    issue = site.create_issue(summary="Signed")
    await fast.webhooks_idle()
    plain, keyed = app.webhooks()
    assert plain.path == "/webhooks/created"
    assert plain.query == {"user_id": "admin", "tag": "a b"}
    assert keyed.path == f"/webhooks/keyed/{issue.key}"
    assert keyed.body == b""
    assert keyed.headers.get("Content-Type") != "application/json"
    assert (
        plain.headers["X-Atlassian-Webhook-Identifier"]
        != keyed.headers["X-Atlassian-Webhook-Identifier"]
    )


async def test_retries_keep_the_identifier_and_count_up(
    fast: JiraSimulator, installed: Site, app: FakeApp, clock: ManualClock
) -> None:
    """503, 500, 429, then 204: four attempts, one identifier, Retry 0..3, fresh tokens."""
    app.answers["/webhooks/issue-created"] = [503, 500, 429]
    installed.create_issue(summary="Flaky")
    await fast.webhooks_idle()
    attempts = app.webhooks()
    assert len({r.headers["X-Atlassian-Webhook-Identifier"] for r in attempts}) == 1
    assert [r.headers["X-Atlassian-Webhook-Retry"] for r in attempts] == ["0", "1", "2", "3"]
    (record,) = fast.webhook_deliveries
    assert record.statuses == [503, 500, 429, 204]
    assert [a.retry for a in record.attempts] == [0, 1, 2, 3]
    assert record.outcome == "delivered"


async def test_each_attempt_is_signed_afresh(
    fast: JiraSimulator, installed: Site, app: FakeApp, clock: ManualClock
) -> None:
    """A retry is signed at its own time (the token is not reused).

    The simulator's clock is moved back, not forward, between the attempts: PyJWT checks
    ``iat`` against the real clock and refuses one from the future.
    """
    app.answers["/webhooks/issue-created"] = [503]
    app.stalls["/webhooks/issue-created"] = [0.2]  # holds the first answer back
    before = len(app.received)
    installed.create_issue(summary="Later")
    await app.wait_for_calls(before + 1)  # the first attempt has been signed and received
    clock.advance(-30)
    await fast.webhooks_idle()
    first, second = app.webhooks()
    assert second.claims["iat"] == first.claims["iat"] - 30


async def test_a_final_4xx_is_not_retried_and_the_queue_moves_on(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """400 is recorded as refused after one attempt; the next webhook still goes out."""
    app.answers["/webhooks/issue-created"] = [400]
    issue = installed.create_issue(summary="Refused")
    installed.add_comment(issue, "Still delivered")
    await fast.webhooks_idle()
    assert [(d.event, d.statuses, d.outcome) for d in fast.webhook_deliveries] == [
        ("jira:issue_created", [400], "refused"),
        ("comment_created", [204], "delivered"),
        ("jira:issue_updated", [204], "delivered"),
    ]


async def test_a_delivery_that_keeps_failing_is_given_up(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """After max_retries the delivery is failed, and later ones are not held up by it."""
    fast.webhook_policy = WebhookPolicy(first_delay=0.01, max_delay=0.01, max_retries=2)
    app.answers["/webhooks/issue-created"] = [503] * 10
    issue = installed.create_issue(summary="Doomed")
    installed.update_issue(issue, summary="Next")
    await fast.webhooks_idle()
    doomed, following = fast.webhook_deliveries
    assert doomed.statuses == [503, 503, 503]
    assert doomed.outcome == "failed"
    assert following.outcome == "delivered"


async def test_order_is_kept_while_a_delivery_is_retried(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """A retried webhook blocks the site's later ones until it is delivered."""
    app.answers["/webhooks/issue-created"] = [503, 503]
    issue = installed.create_issue(summary="First")
    installed.update_issue(issue, summary="Second")
    installed.update_issue(issue, summary="Third")
    await fast.webhooks_idle()
    assert [(r.path, r.headers["X-Atlassian-Webhook-Retry"]) for r in app.webhooks()] == [
        ("/webhooks/issue-created", "0"),
        ("/webhooks/issue-created", "1"),
        ("/webhooks/issue-created", "2"),
        ("/webhooks/issue-updated", "0"),
        ("/webhooks/issue-updated", "0"),
    ]
    summaries = [r.json()["issue"]["fields"]["summary"] for r in app.webhooks()[3:]]
    assert summaries == ["Second", "Third"]


async def test_a_timeout_is_retried(fast: JiraSimulator, installed: Site, app: FakeApp) -> None:
    """An app slower than the attempt's timeout gets the same delivery again."""
    fast.webhook_policy = WebhookPolicy(first_delay=0.01, max_delay=0.01, timeout=0.1)
    app.stalls["/webhooks/issue-created"] = [0.5]
    installed.create_issue(summary="Slow")
    await fast.webhooks_idle()
    (record,) = fast.webhook_deliveries
    assert record.statuses == [None, 204]
    assert record.attempts[0].error == "timeout"


async def test_a_connection_failure_is_retried_until_given_up(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """Nobody listening: every attempt fails to connect, and the delivery is failed."""
    fast.webhook_policy = WebhookPolicy(first_delay=0.01, max_delay=0.01, max_retries=1)
    await app.close()
    installed.create_issue(summary="Nobody home")
    await fast.webhooks_idle()
    (record,) = fast.webhook_deliveries
    assert record.statuses == [None, None]
    assert record.outcome == "failed"
    assert all(a.error for a in record.attempts)


async def test_pause_holds_deliveries_until_resumed(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """While paused, changes queue and webhooks_idle times out; resume sends them in order."""
    fast.pause_webhooks()
    issue = installed.create_issue(summary="Held")
    installed.update_issue(issue, summary="Held too")
    with pytest.raises(TimeoutError):
        await fast.webhooks_idle(timeout=0.1)
    assert app.webhooks() == []
    assert [d.outcome for d in fast.webhook_deliveries] == ["pending", "pending"]
    fast.resume_webhooks()
    await fast.webhooks_idle()
    assert [r.path for r in app.webhooks()] == [
        "/webhooks/issue-created",
        "/webhooks/issue-updated",
    ]


async def test_a_site_without_the_app_sends_nothing(fast: JiraSimulator, app: FakeApp) -> None:
    """Sites the app is not installed on have no dispatcher and no records."""
    other = fast.add_site("other")
    other.create_issue(summary="Unwatched")
    await fast.webhooks_idle()
    assert fast.webhook_deliveries == []
    assert other.observers == []


async def test_closing_the_simulator_cancels_deliveries(
    spec: OpenApiSpec, clock: ManualClock, app: FakeApp
) -> None:
    """Queued webhooks are recorded as cancelled; no task outlives the simulator."""
    async with JiraSimulator(clock=clock, spec=spec) as sim:
        app.sim = sim  # the fake app fetches keys from this simulator
        site = sim.add_site("closing", app_key="discord-for-jira")
        await sim.install_app(site, app.descriptor_url)
        sim.pause_webhooks()
        site.create_issue(summary="Never sent")
    assert [d.outcome for d in sim.webhook_deliveries] == ["cancelled"]
    assert site.observers == []
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("jira-webhooks:")]
