"""The notification pipeline over a real database and bus, with Jira at the I/O edge.

Each test hands the notifier a ``jira.webhook`` envelope shaped as the gateway publishes it,
then reads what reached ``discord-outbox`` from the bus. The ``world`` fixture is a migrated
SQLite database (tmp_path), the real ``LocalBus``, a manual clock, one enabled Connect site, a
connected guild, and a :class:`FakeJira` — a stand-in for ``JiraClient`` that implements
``as_app(...)`` and the three reads the notifier makes, records every call, and answers with
Jira-shaped JSON checked against the pinned Jira OpenAPI spec on the way out, so the fake
cannot drift from what Jira sends.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from dfj_common.bus import DISCORD_OUTBOX, JIRA_EVENTS, TOPOLOGY
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import MalformedMessage
from dfj_common.runtime import HandlerContext, Worker
from dfj_common.storage import (
    Database,
    GuildConnections,
    Installation,
    Installations,
    InstallationState,
    Subscription,
    Subscriptions,
)
from dfj_common.storage.migrate import upgrade
from dfj_jira_worker.jira import (
    JiraBadRequest,
    JiraForbidden,
    JiraNotFound,
    JiraRateLimited,
    JiraUnauthorized,
    JiraUnavailable,
)
from dfj_jira_worker.notify import MESSAGE_POST, Notifier
from dfj_jira_worker.notify.reads import ISSUE_FIELDS

if TYPE_CHECKING:
    from notify.conftest import SpecCheck

SITE = "jira:5c0e1d2a-7b3f-4e11-9d8a-2f6b4c3a1e90"
BASE_URL = "https://acme.atlassian.net"
DISPLAY_URL = "https://jira.acme.example"
GUILD = "1100000000000000001"
CHANNEL = "1200000000000000001"
OTHER_CHANNEL = "1200000000000000002"
CREATOR = "1300000000000000001"

CTX = HandlerContext(
    queue=JIRA_EVENTS, message_id="m", delivery_count=1, max_deliveries=10, enqueued_at=0.0
)
UPDATED = "2024-05-01T12:00:00.000+0000"


# --- Jira at the edge, and the world --------------------------------------------------------------


def issue_json(
    issue_id: str = "10001",
    key: str = "ABC-7",
    *,
    summary: str = "Checkout fails for guests",
    status: tuple[str, str, str] = ("3", "In Progress", "indeterminate"),
    assignee: tuple[str, str] | None = ("acc-ann", "Ann Lee"),
    priority: tuple[str, str] | None = ("2", "High"),
    issue_type: tuple[str, str] = ("10004", "Bug"),
    security: tuple[str, str] | None = None,
    project: tuple[str, str, str] = ("10000", "ABC", "Alphabet"),
    reporter: tuple[str, str] = ("acc-bo", "Bo Chen"),
) -> dict[str, Any]:
    """A ``GET /rest/api/3/issue`` answer with the notifier's fields, shaped as Jira sends it."""

    def user(who: tuple[str, str]) -> dict[str, Any]:
        return {
            "accountId": who[0],
            "displayName": who[1],
            "active": True,
            "accountType": "atlassian",
            "self": f"{BASE_URL}/rest/api/3/user?accountId={who[0]}",
        }

    fields: dict[str, Any] = {
        "summary": summary,
        "status": {
            "id": status[0],
            "name": status[1],
            "self": f"{BASE_URL}/rest/api/3/status/{status[0]}",
            "statusCategory": {"id": 4, "key": status[2], "name": status[2].title()},
        },
        "assignee": user(assignee) if assignee else None,
        "priority": {"id": priority[0], "name": priority[1]} if priority else None,
        "issuetype": {"id": issue_type[0], "name": issue_type[1], "subtask": False},
        "project": {"id": project[0], "key": project[1], "name": project[2]},
        "reporter": user(reporter),
    }
    if security is not None:
        fields["security"] = {"id": security[0], "name": security[1]}
    return {
        "id": issue_id,
        "key": key,
        "self": f"{BASE_URL}/rest/api/3/issue/{issue_id}",
        "fields": fields,
    }


def comment_json(
    comment_id: str = "20001",
    *,
    text: str = "Reproduced on staging.",
    author: tuple[str, str] = ("acc-cy", "Cy Diaz"),
    visibility: dict[str, str] | None = None,
    jsd_public: bool = True,
) -> dict[str, Any]:
    """A ``GET /rest/api/3/issue/{id}/comment/{id}`` answer (body in ADF)."""
    body = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }
    comment: dict[str, Any] = {
        "id": comment_id,
        "self": f"{BASE_URL}/rest/api/3/issue/10001/comment/{comment_id}",
        "author": {"accountId": author[0], "displayName": author[1], "active": True},
        "body": body,
        "created": "2024-05-01T12:00:00.000+0000",
        "updated": "2024-05-01T12:00:00.000+0000",
        "jsdPublic": jsd_public,
    }
    if visibility is not None:
        comment["visibility"] = visibility
    return comment


@dataclass
class FakeJira:
    """Stands where ``JiraClient`` stands: ``as_app(installation)`` → the reads, recorded."""

    spec: SpecCheck
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: JQL → the issue ids it matches, or a string: Jira's error for that JQL.
    jql: dict[str, set[int] | str] = field(default_factory=dict)
    #: method name → an exception it raises instead of answering.
    failures: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def as_app(self, installation: Installation) -> FakeApi:
        self.calls.append(("as_app", installation.client_key))
        return FakeApi(self)

    def named(self, method: str) -> list[tuple[Any, ...]]:
        """The recorded calls of one method."""
        return [c for c in self.calls if c[0] == method]

    @property
    def rest_calls(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] != "as_app"]


class FakeApi:
    """The app's view: answers from the fake's tables, in Jira's shapes."""

    def __init__(self, jira: FakeJira) -> None:
        self._jira = jira

    def _maybe_fail(self, method: str) -> None:
        error = self._jira.failures.get(method)
        if error is not None:
            raise error

    async def get_issue(
        self, issue: str, *, fields: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> dict[str, Any]:
        self._jira.calls.append(("get_issue", issue, tuple(fields), tuple(expand)))
        await asyncio.sleep(0)
        self._maybe_fail("get_issue")
        found = self._jira.issues.get(issue)
        if found is None:
            raise JiraNotFound(
                "Jira answered 404 to GET /rest/api/3/issue/{issueIdOrKey}", status=404
            )
        answer = copy.deepcopy(found)
        if fields:
            answer["fields"] = {k: v for k, v in answer["fields"].items() if k in fields}
        self._check_issue(answer)
        return answer

    def _check_issue(self, answer: dict[str, Any]) -> None:
        self._jira.spec("IssueBean", answer)
        parts = answer["fields"]
        for name, schema in (
            ("status", "StatusDetails"),
            ("assignee", "UserDetails"),
            ("reporter", "UserDetails"),
            ("priority", "Priority"),
            ("issuetype", "IssueTypeDetails"),
            ("security", "SecurityLevel"),
            ("project", "ProjectDetails"),
        ):
            if parts.get(name) is not None:
                self._jira.spec(schema, parts[name])

    async def get_comment(self, issue: str, comment_id: str) -> dict[str, Any]:
        self._jira.calls.append(("get_comment", issue, comment_id))
        await asyncio.sleep(0)
        self._maybe_fail("get_comment")
        found = self._jira.comments.get((issue, comment_id))
        if found is None:
            raise JiraNotFound("Jira answered 404 to GET …/comment/{id}", status=404)
        self._jira.spec("Comment", found)
        return copy.deepcopy(found)

    async def match_jql(
        self, issue_ids: Sequence[int], jqls: Sequence[str]
    ) -> list[dict[str, Any]]:
        self._jira.calls.append(("match_jql", tuple(issue_ids), tuple(jqls)))
        await asyncio.sleep(0)
        request = {"issueIds": list(issue_ids), "jqls": list(jqls)}
        self._jira.spec("IssuesAndJQLQueries", request)
        self._maybe_fail("match_jql")
        matches: list[dict[str, Any]] = []
        for jql in jqls:
            rule = self._jira.jql.get(jql, set())
            if isinstance(rule, str):
                matches.append({"matchedIssues": [], "errors": [rule]})
            else:
                matches.append({"matchedIssues": [i for i in issue_ids if i in rule], "errors": []})
        self._jira.spec("IssueMatches", {"matches": matches})
        return matches


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    """Everything a notifier test needs, real except for Jira."""

    database: Database
    bus: LocalBus
    clock: ManualClock
    jira: FakeJira
    notifier: Notifier
    installations: Installations
    subscriptions: Subscriptions
    guilds: GuildConnections
    counter: int = 0

    async def subscribe(
        self,
        *event_types: str,
        channel: str = CHANNEL,
        issue_types: Sequence[str] = (),
        jql: str | None = None,
        delivery_mode: str = "message",
        project: str = "ABC",
    ) -> Subscription:
        self.counter += 1
        return await self.subscriptions.add(
            guild_id=GUILD,
            channel_id=channel,
            client_key=SITE,
            project_key=project,
            event_types=event_types,
            issue_types=issue_types,
            jql=jql,
            delivery_mode=delivery_mode,
            created_by=CREATOR,
            subscription_id=f"sub-{self.counter:02d}",
        )

    async def outbox(self) -> list[Envelope]:
        """Everything published to discord-outbox, received and completed, in publish order."""
        stats = {s.queue: s for s in await self.bus.stats()}
        waiting = stats[DISCORD_OUTBOX].active
        receiver = self.bus.receiver(DISCORD_OUTBOX)
        got: list[tuple[float, Envelope]] = []
        try:
            while len(got) < waiting:
                batch = await receiver.receive(waiting - len(got), timeout=1.0)
                if not batch:
                    break
                for delivery in batch:
                    got.append((delivery.enqueued_at, Envelope.decode(delivery.body)))
                    await delivery.complete()
        finally:
            await receiver.close()
        assert len(got) == waiting
        return [e for _, e in sorted(got, key=lambda pair: pair[0])]


@pytest.fixture(name="world")
async def _world(tmp_path: Path, jira_spec: SpecCheck) -> AsyncIterator[World]:
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    await asyncio.to_thread(upgrade, url)
    clock = ManualClock()
    database = Database.open(url, clock=clock)
    bus = await LocalBus.open(tmp_path / "bus.sqlite")
    installations = Installations(database)
    subscriptions = Subscriptions(database)
    guilds = GuildConnections(database)
    await installations.save_connect(
        SITE,
        base_url=BASE_URL,
        display_url=DISPLAY_URL,
        shared_secret_ciphertext=b"sealed-elsewhere",
        app_key="discord-for-jira",
        state=InstallationState.ENABLED,
    )
    await guilds.connect(GUILD, SITE, connected_by=CREATOR)
    jira = FakeJira(spec=jira_spec)
    jira.issues["10001"] = issue_json()
    notifier = Notifier(
        installations=installations,
        subscriptions=subscriptions,
        jira=jira,
        bus=bus,
        clock=clock,  # the default JQL cache runs on it: the TTL test moves it
    )
    try:
        yield World(
            database=database,
            bus=bus,
            clock=clock,
            jira=jira,
            notifier=notifier,
            installations=installations,
            subscriptions=subscriptions,
            guilds=guilds,
        )
    finally:
        await bus.close()
        await database.close()


def webhook(
    event: str = "jira:issue_updated",
    *,
    event_id: str = "evt-1",
    client_key: str = SITE,
    issue: Mapping[str, Any] | None = None,
    items: list[dict[str, str]] | None = None,
    comment: Mapping[str, Any] | None = None,
    **issue_fields: Any,
) -> Envelope:
    """A ``jira.webhook`` envelope as the gateway publishes it (ids only)."""
    fields = {
        "id": "10001",
        "key": "ABC-7",
        "projectId": "10000",
        "projectKey": "ABC",
        "issueTypeId": "10004",
        "statusId": "3",
        "updated": UPDATED,
        **(issue or {}),
        **issue_fields,
    }
    data: dict[str, Any] = {
        "clientKey": client_key,
        "event": event,
        "timestamp": 1_714_564_800_000,
        "actorAccountId": "acc-ann",
        "delivery": {"identifier": event_id},
        "issue": {k: v for k, v in fields.items() if v is not None},
    }
    if items is not None:
        data["changelog"] = {"id": "9", "items": items}
    if comment is not None:
        data["comment"] = dict(comment)
    return Envelope(
        id=event_id,
        source="dfj-gateway",
        type="jira.webhook",
        tenant=client_key,
        session_key=f"{client_key}:{fields['id']}",
        data=data,
    )


STATUS_TO_DONE = [{"field": "status", "fieldId": "status", "from": "3", "to": "5"}]
PRIORITY_UP = [{"field": "priority", "fieldId": "priority", "from": "3", "to": "2"}]


def text_of(envelope: Envelope) -> str:
    return json.dumps(envelope.to_dict(), ensure_ascii=False)


# --- the happy path -------------------------------------------------------------------------------


async def test_a_created_issue_reaches_every_subscribed_channel(
    world: World, discord_spec: SpecCheck, violations: Callable[[Mapping[str, Any]], list[str]]
) -> None:
    """One post per subscription: deterministic id, channel session, the contract's data."""
    first = await world.subscribe("issue_created")
    second = await world.subscribe("issue_created", channel=OTHER_CHANNEL, delivery_mode="thread")
    await world.subscribe("comment_created")  # another event type: not this one
    await world.notifier.handle(webhook("jira:issue_created"), CTX)

    posts = {e.session_key: e for e in await world.outbox()}
    assert set(posts) == {CHANNEL, OTHER_CHANNEL}
    post, threaded = posts[CHANNEL], posts[OTHER_CHANNEL]
    assert post.type == threaded.type == MESSAGE_POST
    assert post.id == deterministic_id("notify", "evt-1", first.id)
    assert threaded.id == deterministic_id("notify", "evt-1", second.id)
    assert post.tenant == SITE
    assert post.data["client_key"] == SITE
    assert post.data["guild_id"] == GUILD
    assert post.data["channel_id"] == CHANNEL
    assert "thread" not in post.data
    assert threaded.data["thread"] == {
        "key": f"{SITE}:10001",
        "name": "ABC-7: Checkout fails for guests",
    }
    message = post.data["message"]
    assert message == threaded.data["message"]
    assert message["allowed_mentions"] == {"parse": []}
    embed = message["embeds"][0]
    assert embed["title"] == "ABC-7: Checkout fails for guests"
    assert embed["url"] == f"{DISPLAY_URL}/browse/ABC-7"
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Status": "In Progress",
        "Priority": "High",
        "Assignee": "Ann Lee",
        "Reporter": "Bo Chen",
    }
    custom_ids = [c.get("custom_id") for c in message["components"][0]["components"]]
    assert custom_ids == [None, "assign-me:ABC-7", "comment:ABC-7", "transition:ABC-7"]
    assert violations(message) == []
    discord_spec("MessageCreateRequest", message)

    # One read, as the app, with only the render's fields; no JQL without JQL subscriptions.
    assert world.jira.rest_calls == [("get_issue", "10001", ISSUE_FIELDS, ())]
    assert world.jira.named("as_app") == [("as_app", SITE)]


async def test_redelivery_yields_the_same_ids_and_the_bus_drops_the_copies(world: World) -> None:
    """Handling the same event twice publishes each message once."""
    await world.subscribe("issue_updated")
    await world.subscribe("status_changed", channel=OTHER_CHANNEL)
    event = webhook(items=STATUS_TO_DONE)
    await world.notifier.handle(event, CTX)
    await world.notifier.handle(event, CTX)
    posts = await world.outbox()
    assert len(posts) == 2
    assert len({p.id for p in posts}) == 2


async def test_an_update_shows_its_changes_with_names_read_now(world: World) -> None:
    """Status, assignee and priority changes are fields; other fields are listed by name."""
    world.jira.issues["10001"] = issue_json(
        status=("5", "Done", "done"), assignee=("acc-dee", "Dee Ek"), priority=("2", "High")
    )
    await world.subscribe("issue_updated")
    items = [
        *STATUS_TO_DONE,
        {"field": "assignee", "fieldId": "assignee", "to": "acc-dee"},
        *PRIORITY_UP,
        {"field": "Sprint", "fieldId": "customfield_10020", "to": "4"},
        {"field": "labels", "fieldId": "labels"},
    ]
    await world.notifier.handle(webhook(items=items), CTX)
    (post,) = await world.outbox()
    embed = post.data["message"]["embeds"][0]
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Status": "→ Done",
        "Assignee": "Unassigned → Dee Ek",
        "Priority": "→ High",
    }
    assert "Changed: Sprint, Labels" in embed["description"]
    assert embed["footer"] == {"text": "Alphabet · Bug"}
    assert embed["timestamp"] == "2024-05-01T12:00:00Z"


async def test_a_comment_carries_an_excerpt_and_its_author(world: World) -> None:
    """The comment is read as the app; its text is quoted, escaped and capped."""
    world.jira.comments[("10001", "20001")] = comment_json(text="**Fixed** in " + "x" * 400)
    await world.subscribe("comment_created")
    await world.notifier.handle(
        webhook("comment_created", comment={"id": "20001", "authorAccountId": "acc-cy"}), CTX
    )
    (post,) = await world.outbox()
    embed = post.data["message"]["embeds"][0]
    lines = embed["description"].split("\n")
    assert lines[0] == "Cy Diaz commented"
    assert lines[2].startswith("> \\*\\*Fixed\\*\\* in xxx")
    assert lines[2].endswith("…")
    assert len(lines[2]) <= 2 + 300 + 4  # the quote, at most 300 characters, four escapes
    assert world.jira.named("get_comment") == [("get_comment", "10001", "20001")]


async def test_a_deleted_issue_is_rendered_from_its_key_without_reads(world: World) -> None:
    """No issue read for a deletion; JQL subscriptions and name filters cannot decide: skipped."""
    plain = await world.subscribe("issue_deleted")
    await world.subscribe("issue_deleted", channel=OTHER_CHANNEL, jql="priority = High")
    await world.subscribe("issue_deleted", channel=OTHER_CHANNEL, issue_types=["Bug"])
    await world.subscribe("issue_deleted", channel=OTHER_CHANNEL, issue_types=["10001"])
    await world.notifier.handle(webhook("jira:issue_deleted", event_id="evt-del"), CTX)
    (post,) = await world.outbox()
    assert post.id == deterministic_id("notify", "evt-del", plain.id)
    embed = post.data["message"]["embeds"][0]
    assert embed["title"] == "ABC-7"
    assert "url" not in embed
    assert post.data["message"]["components"] == []
    assert world.jira.rest_calls == []


# --- nothing to do --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [InstallationState.DISABLED, InstallationState.UNINSTALLED])
async def test_a_site_that_is_not_live_gets_no_notifications(
    world: World, state: InstallationState
) -> None:
    """Disabled or uninstalled: complete quietly, no Jira call, nothing published."""
    await world.subscribe("issue_created")
    await world.installations.set_state(SITE, state)
    await world.notifier.handle(webhook("jira:issue_created"), CTX)
    assert await world.outbox() == []
    assert world.jira.calls == []


async def test_an_unknown_site_or_project_gets_no_notifications(world: World) -> None:
    """An event of another tenant, of a project nobody follows, or with no project: nothing."""
    await world.subscribe("issue_created")
    with capture_logs() as logs:
        await world.notifier.handle(webhook("jira:issue_created", client_key="other-site"), CTX)
        await world.notifier.handle(webhook("jira:issue_created", projectKey="XYZ"), CTX)
        await world.notifier.handle(webhook("jira:issue_created", projectKey=None), CTX)
    assert await world.outbox() == []
    assert world.jira.calls == []
    assert [e["log_level"] for e in logs] == ["debug"] * 3


async def test_filters_that_leave_nothing_make_no_jira_call(world: World) -> None:
    """Another event type, a finer kind that did not happen, an issue type id that differs."""
    await world.subscribe("issue_created")
    await world.subscribe("status_changed")
    await world.subscribe("issue_updated", issue_types=["10001"])
    await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    # Jira's companion event of a comment: an update without a changelog.
    await world.notifier.handle(webhook(event_id="evt-2", items=[]), CTX)
    assert await world.outbox() == []
    assert world.jira.calls == []


async def test_issue_type_names_are_decided_after_the_read(world: World) -> None:
    """A name filter keeps the event until the read says the type's name."""
    bugs = await world.subscribe("issue_updated", issue_types=["bug"])
    await world.subscribe("issue_updated", channel=OTHER_CHANNEL, issue_types=["Story"])
    await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    (post,) = await world.outbox()
    assert post.id == deterministic_id("notify", "evt-1", bugs.id)
    assert len(world.jira.named("get_issue")) == 1


async def test_a_vanished_issue_or_comment_completes_without_posting(world: World) -> None:
    """404 on the read (gone, or hidden from the app): nothing to show, not a failure."""
    await world.subscribe("issue_updated", "comment_created")
    del world.jira.issues["10001"]
    with capture_logs() as logs:
        await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    assert any("gone or hidden" in e["event"] for e in logs)
    world.jira.issues["10001"] = issue_json()
    await world.notifier.handle(
        webhook("comment_created", event_id="evt-2", comment={"id": "20009"}), CTX
    )
    assert await world.outbox() == []
    assert world.jira.named("get_comment") == [("get_comment", "10001", "20009")]


async def test_same_channel_subscriptions_post_once(world: World) -> None:
    """Two subscriptions of one channel that both match do not post the event twice."""
    first = await world.subscribe("issue_updated")
    await world.subscribe("status_changed")
    await world.notifier.handle(webhook(items=STATUS_TO_DONE), CTX)
    (post,) = await world.outbox()
    assert post.id == deterministic_id("notify", "evt-1", first.id)


# --- JQL ------------------------------------------------------------------------------------------


async def test_jql_is_matched_in_one_call_for_all_distinct_queries(world: World) -> None:
    """Matching, non-matching and invalid JQL; one call as the app for the distinct queries."""
    world.jira.jql = {"priority = High": {10001}, "labels = ui": set(), "broken ==": "Invalid JQL"}
    high = await world.subscribe("issue_updated", jql="priority = High")
    also_high = await world.subscribe("issue_updated", channel=OTHER_CHANNEL, jql="priority = High")
    await world.subscribe("issue_updated", jql="labels = ui")
    broken = await world.subscribe("issue_updated", jql="broken ==")
    open_to_all = await world.subscribe("issue_updated", channel="1200000000000000009")
    with capture_logs() as logs:
        await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    assert world.jira.named("match_jql") == [
        ("match_jql", (10001,), ("priority = High", "labels = ui", "broken =="))
    ]
    ids = {p.id for p in await world.outbox()}
    assert ids == {
        deterministic_id("notify", "evt-1", s.id) for s in (high, also_high, open_to_all)
    }
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [w["subscription"] for w in warnings] == [broken.id]
    assert "broken" not in json.dumps(logs, default=str)  # the JQL itself is never logged


async def test_jql_outcomes_are_cached_by_issue_state_for_a_short_while(world: World) -> None:
    """Same issue state within the TTL: no call. A new ``updated`` or an expired entry: a call."""
    world.jira.jql = {"priority = High": {10001}}
    await world.subscribe("issue_updated", jql="priority = High")
    await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    await world.notifier.handle(webhook(event_id="evt-2", items=PRIORITY_UP), CTX)
    assert len(world.jira.named("match_jql")) == 1
    await world.notifier.handle(
        webhook(event_id="evt-3", items=PRIORITY_UP, updated="2024-05-01T12:05:00.000+0000"), CTX
    )
    assert len(world.jira.named("match_jql")) == 2
    world.clock.advance(31)
    await world.notifier.handle(webhook(event_id="evt-4", items=PRIORITY_UP), CTX)
    assert len(world.jira.named("match_jql")) == 3
    assert len(await world.outbox()) == 4


async def test_jql_refused_as_a_whole_still_serves_the_others(world: World) -> None:
    """A 400 on the match (too many queries): JQL subscriptions miss it, the others do not."""
    world.jira.failures["match_jql"] = JiraBadRequest("Jira answered 400", status=400)
    await world.subscribe("issue_updated", jql="priority = High")
    plain = await world.subscribe("issue_updated", channel=OTHER_CHANNEL)
    await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    (post,) = await world.outbox()
    assert post.id == deterministic_id("notify", "evt-1", plain.id)


# --- the audience rule ----------------------------------------------------------------------------


async def test_an_issue_with_a_security_level_is_withheld_or_reduced_to_its_key(
    world: World, violations: Callable[[Mapping[str, Any]], list[str]]
) -> None:
    """Without the marker nothing is posted; with it, the key and a link and nothing else."""
    world.jira.issues["10001"] = issue_json(security=("10100", "Staff only"))
    await world.subscribe("issue_updated")
    marked = await world.subscribe(
        "issue_updated", "restricted:key-only", channel=OTHER_CHANNEL, delivery_mode="thread"
    )
    await world.notifier.handle(webhook(items=PRIORITY_UP, securityLevelId="10100"), CTX)
    (post,) = await world.outbox()
    assert post.id == deterministic_id("notify", "evt-1", marked.id)
    message = post.data["message"]
    embed = message["embeds"][0]
    assert embed["title"] == "ABC-7"
    assert embed["url"] == f"{DISPLAY_URL}/browse/ABC-7"
    assert "fields" not in embed and "footer" not in embed
    (row,) = message["components"]
    assert [c["style"] for c in row["components"]] == [5]
    assert post.data["thread"]["name"] == "ABC-7"
    shown = text_of(post)
    for private in ("Checkout", "Ann Lee", "Bo Chen", "High", "Alphabet", "Bug", "Staff"):
        assert private not in shown
    assert violations(message) == []


async def test_a_security_level_seen_only_in_the_read_still_restricts(world: World) -> None:
    """The webhook said nothing, the issue read shows a security level: withheld."""
    world.jira.issues["10001"] = issue_json(security=("10100", "Staff only"))
    await world.subscribe("issue_updated")
    await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    assert await world.outbox() == []


async def test_restricted_without_any_marker_makes_no_jira_call(world: World) -> None:
    """If nobody could be shown even the key, Jira is not asked at all."""
    await world.subscribe("issue_updated")
    await world.notifier.handle(webhook(items=PRIORITY_UP, securityLevelId="10100"), CTX)
    assert await world.outbox() == []
    assert world.jira.rest_calls == []


@pytest.mark.parametrize(
    ("in_event", "in_read"),
    [
        ({"visibility": {"type": "role", "value": "Developers"}}, {}),
        ({}, {"visibility": {"type": "group", "value": "staff", "identifier": "g-1"}}),
        ({}, {"jsd_public": False}),
    ],
)
async def test_a_restricted_comment_never_shows_its_text(
    world: World, in_event: dict[str, Any], in_read: dict[str, Any]
) -> None:
    """Visibility (from the webhook or the read) or an internal note: key only, no text."""
    world.jira.comments[("10001", "20001")] = comment_json(text="internal secret plan", **in_read)
    await world.subscribe("comment_created")
    await world.subscribe("comment_created", "restricted:key-only", channel=OTHER_CHANNEL)
    await world.notifier.handle(
        webhook("comment_created", comment={"id": "20001", **in_event}), CTX
    )
    (post,) = await world.outbox()
    assert post.session_key == OTHER_CHANNEL
    shown = text_of(post)
    assert "internal secret plan" not in shown and "Cy Diaz" not in shown
    assert "restricted" in post.data["message"]["embeds"][0]["description"]
    if in_event:  # the webhook already said so: the comment is not even read
        assert world.jira.named("get_comment") == []


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        JiraRateLimited("Jira answered 429", retry_after=3.0),
        JiraUnavailable("Jira answered 502", status=502),
        JiraUnauthorized("Jira answered 401", status=401),
        JiraForbidden("Jira answered 403", status=403),
    ],
)
async def test_jira_failures_propagate_for_the_runtime_to_settle(
    world: World, error: Exception
) -> None:
    """Retryable and permanent Jira errors are not swallowed; nothing is half-posted."""
    world.jira.failures["get_issue"] = error
    await world.subscribe("issue_updated")
    with pytest.raises(type(error)):
        await world.notifier.handle(webhook(items=PRIORITY_UP), CTX)
    assert await world.outbox() == []


async def test_an_unknown_webhook_event_is_malformed(world: World) -> None:
    """An event kind this version cannot handle is dead-lettered, kept for replay."""
    with pytest.raises(MalformedMessage):
        await world.notifier.handle(webhook("worklog_created"), CTX)


async def test_under_the_worker_runtime_posts_complete_and_forbidden_dead_letters(
    world: World,
) -> None:
    """Through the real runtime: a good event completes, a 403 on the read dead-letters."""
    await world.subscribe("issue_updated")
    worker = Worker(world.bus, TOPOLOGY[JIRA_EVENTS], world.notifier.table(), receive_timeout=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await world.bus.publish_envelope(JIRA_EVENTS, webhook(items=PRIORITY_UP))
        for _ in range(200):
            if worker.stats.completed:
                break
            await asyncio.sleep(0.02)
        world.jira.failures["get_issue"] = JiraForbidden("Jira answered 403", status=403)
        other = webhook(event_id="evt-9", items=PRIORITY_UP, id="10002", key="ABC-8")
        await world.bus.publish_envelope(JIRA_EVENTS, other)
        for _ in range(200):
            if worker.stats.dead_lettered:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await running
    assert worker.stats.completed == 1
    (dead,) = await world.bus.dead_letters(JIRA_EVENTS)
    assert dead.reason == "JiraForbidden"
    assert len(await world.outbox()) == 1


async def test_the_table_names_the_webhook_type(world: World) -> None:
    """The handler table the composition root merges into jira-events'."""
    assert list(world.notifier.table()) == ["jira.webhook"]
    assert BASE_URL.startswith("https://")
