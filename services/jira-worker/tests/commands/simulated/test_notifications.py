"""Webhook events → Discord messages, with the real client against the simulated site.

The events carry what the gateway keeps of Jira's webhooks (ids only, see
``dfj_gateway.jira.payloads``); the worker reads the rest from Jira as the app.
"""

from __future__ import annotations

import pytest

from commands.harness import GUILD
from commands.simulated.conftest import World
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.runtime import HandlerContext
from dfj_jira_worker.jira import JiraRateLimited
from dfj_jira_worker.notify import Notifier
from dfj_sandbox.jira_sim import Issue

CH_ALL, CH_HIGH, CH_OPS = "1200000000000000011", "1200000000000000012", "1200000000000000013"


def webhook(world: World, issue: Issue, *, identifier: str = "wh-1") -> Envelope:
    """A ``jira:issue_created`` event as the gateway publishes it."""
    data = {
        "clientKey": world.site.client_key,
        "event": "jira:issue_created",
        "delivery": {"identifier": identifier, "retry": 0},
        "issue": {
            "id": issue.id,
            "key": issue.key,
            "projectId": issue.project_id,
            "projectKey": issue.key.split("-")[0],
            "issueTypeId": issue.issue_type_id,
            "statusId": issue.status_id,
            **({"securityLevelId": issue.security_level_id} if issue.security_level_id else {}),
        },
    }
    return Envelope(
        id=deterministic_id("jira-webhook", identifier),
        source="dfj-gateway",
        type="jira.webhook",
        tenant=world.site.client_key,
        session_key=f"{world.site.client_key}:{issue.id}",
        data=data,
    )


def notifier(world: World) -> Notifier:
    return Notifier(
        installations=world.repos.installations,
        subscriptions=world.repos.subscriptions,
        jira=world.jira,
        bus=world.bus,
        clock=world.clock,
    )


async def handle(world: World, envelope: Envelope, delivery: int = 1) -> None:
    ctx = HandlerContext(
        queue="jira-events",
        message_id=envelope.id,
        delivery_count=delivery,
        max_deliveries=10,
        enqueued_at=world.clock.now(),
    )
    await notifier(world).handle(envelope, ctx)


async def subscribe(world: World, channel: str, jql: str | None, *extra: str) -> None:
    await world.repos.subscriptions.add(
        guild_id=GUILD,
        channel_id=channel,
        client_key=world.site.client_key,
        project_key="DEMO",
        event_types=("issue_created", *extra),
        created_by="1400000000000000001",
        jql=jql,
    )


async def test_jql_filters_with_one_match_call_and_one_issue_read(world: World) -> None:
    await subscribe(world, CH_ALL, None)
    await subscribe(world, CH_HIGH, "priority = High")
    await subscribe(world, CH_OPS, "labels = ops")
    issue = world.site.create_issue("DEMO", "Checkout is down", priority="High")
    await handle(world, webhook(world, issue))
    posted = await world.replies()
    assert sorted(p.data["channel_id"] for p in posted) == [CH_ALL, CH_HIGH]
    assert all(p.session_key == p.data["channel_id"] for p in posted)
    title = posted[0].data["message"]["embeds"][0]["title"]
    assert issue.key in title and "Checkout is down" in title
    assert world.sim.count("POST", "/rest/api/3/jql/match") == 1
    assert world.sim.count("GET", "/rest/api/3/issue/{issueIdOrKey}") == 1
    assert {c.auth for c in world.sim.calls} == {"jwt"}


async def test_security_level_is_withheld_unless_key_only_is_allowed(world: World) -> None:
    level = world.site.add_security_level("DEMO", "Staff only")
    await subscribe(world, CH_ALL, None)
    await subscribe(world, CH_OPS, None, "restricted:key-only")
    issue = world.site.create_issue("DEMO", "Payroll export leaks", security_level=level.id)
    await handle(world, webhook(world, issue))
    [posted] = await world.replies()
    assert posted.data["channel_id"] == CH_OPS
    raw = posted.encode().decode()
    assert issue.key in raw and "Payroll" not in raw


async def test_retry_after_from_jira_reaches_the_runtime(world: World) -> None:
    await subscribe(world, CH_ALL, None)
    issue = world.site.create_issue("DEMO", "Busy")
    world.site.throttle(1, retry_after=7.0)
    with pytest.raises(JiraRateLimited) as caught:
        await handle(world, webhook(world, issue))
    assert caught.value.retry_after == pytest.approx(7.0)
    assert await world.replies() == []
    await handle(world, webhook(world, issue), delivery=2)  # the retry, after the wait
    assert len(await world.replies()) == 1


async def test_redelivered_webhook_posts_once(world: World) -> None:
    await subscribe(world, CH_ALL, None)
    await subscribe(world, CH_HIGH, None)
    issue = world.site.create_issue("DEMO", "Once")
    await handle(world, webhook(world, issue))
    await handle(world, webhook(world, issue), delivery=2)
    assert len(await world.replies()) == 2  # one per channel; the second run's ids were deduped
