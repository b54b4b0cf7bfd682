"""What the command tests drive: real storage and bus, a fake Jira at the I/O edge.

Each test gets (from ``conftest.py``) a :class:`Harness`: a migrated SQLite database (copied
from a template migrated once per session) on a :class:`ManualClock`, the real ``LocalBus``
(tmp_path), a site seeded through the repositories (an enabled installation, a guild connected
to it, linked users, fresh metadata caches), and :class:`FakeJira` — a small in-test Jira that
keeps issues, answers with Jira-shaped JSON, enforces per-account permissions the way Jira
reports them (403 with a ``user_message``, 404 for what an account cannot see) and records
every call with the identity it ran as. The :class:`~dfj_jira_worker.commands.Commands` under
test publishes its answers on the bus; the harness reads them back from ``discord-outbox``.

The test directory is a package (it has an ``__init__.py``), so this module is importable as
``commands.harness`` under pytest's importlib mode and type checkers name it the same way (the
``jira-worker`` directory is not a valid package name, and a second top-level ``conftest``
would collide with the other test directories').
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dfj_common.bus import DISCORD_OUTBOX
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.runtime import HandlerContext
from dfj_common.storage import Database, InstallationState, Repositories
from dfj_common.storage.repositories import Installation
from dfj_jira_worker.commands import Commands
from dfj_jira_worker.commands.metadata import ALL, ISSUE_TYPES, PROJECTS
from dfj_jira_worker.commands.suggest import Suggester
from dfj_jira_worker.jira import (
    JiraBadRequest,
    JiraForbidden,
    JiraNotFound,
)

NOW = 1_750_000_000.0
SITE = "jira:3f2a9c1e-7b4d-4e8a-9c55-1d2e3f4a5b6c"
BASE_URL = "https://acme.atlassian.net"
APPLICATION_ID = "1300000000000000001"
GUILD = "1100000000000000001"
OTHER_GUILD = "1100000000000000002"
CHANNEL = "1200000000000000001"
ALICE = "1400000000000000001"  # linked as ACC_ALICE
BOB = "1400000000000000002"  # linked as ACC_BOB
CAROL = "1400000000000000003"  # not linked
ACC_ALICE = "5b10a2844c20165700ede21g"
ACC_BOB = "5b10ac8d82e05b22cc7d4ef5"
ROLE_DEV = "1500000000000000001"
ROLE_OTHER = "1500000000000000002"
MANAGE_SERVER = str(1 << 5)
TOKEN = "interaction-token-for-tests"

MESSAGE_COMMAND = 3
BUTTON = 2
STRING_SELECT = 3


# --- the fake Jira ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JiraCall:
    """One call: who it ran as (an account id, or ``"app"``), the method and its arguments."""

    actor: str
    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


def _user(account_id: str) -> dict[str, Any]:
    names = {ACC_ALICE: "Alice Example", ACC_BOB: "Bob Example"}
    return {
        "accountId": account_id,
        "displayName": names.get(account_id, "Someone"),
        "active": True,
    }


TODO = {"id": "1", "name": "To Do", "statusCategory": {"key": "new", "name": "To Do"}}
IN_PROGRESS = {
    "id": "3",
    "name": "In Progress",
    "statusCategory": {"key": "indeterminate", "name": "In Progress"},
}
DONE = {"id": "10001", "name": "Done", "statusCategory": {"key": "done", "name": "Done"}}
TRANSITIONS = [
    {"id": "11", "name": "Start progress", "to": IN_PROGRESS, "hasScreen": False},
    {"id": "31", "name": "Done", "to": DONE, "hasScreen": False},
]
ISSUE_TYPES_ABC = [
    {"id": "10001", "name": "Task", "subtask": False},
    {"id": "10002", "name": "Bug", "subtask": False},
    {"id": "10003", "name": "Story", "subtask": False},
    {"id": "10004", "name": "Sub-task", "subtask": True},
]
PROJECT_ABC = {"id": "10000", "key": "ABC", "name": "Alpha"}
PROJECT_XYZ = {"id": "10010", "key": "XYZ", "name": "Secret"}


@dataclass
class FakeJiraSite:
    """The state behind the fake: issues, who may do what, failures to inject."""

    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: account → method names that answer 403 for it
    forbidden: dict[str, set[str]] = field(default_factory=dict)
    #: account → issue keys it cannot see (404, as Jira hides existence)
    hidden: dict[str, set[str]] = field(default_factory=dict)
    #: account → project keys it may browse
    browsable: dict[str, set[str]] = field(default_factory=dict)
    #: method → errors raised by its next calls, in order
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    calls: list[JiraCall] = field(default_factory=list)
    comments: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    watchers: list[tuple[str, str]] = field(default_factory=list)
    created: list[Mapping[str, Any]] = field(default_factory=list)
    _next_id: itertools.count[int] = field(default_factory=lambda: itertools.count(10100))

    def add_issue(self, key: str, summary: str, **fields: Any) -> dict[str, Any]:
        issue_id = str(next(self._next_id))
        issue = {
            "id": issue_id,
            "key": key,
            "self": f"{BASE_URL}/rest/api/3/issue/{issue_id}",
            "fields": {
                "summary": summary,
                "status": TODO,
                "assignee": None,
                "priority": {"id": "3", "name": "Medium"},
                "issuetype": {"id": "10001", "name": "Task"},
                "project": PROJECT_ABC,
                "description": {
                    "type": "doc",
                    "version": 1,
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "Details."}]}
                    ],
                },
                **fields,
            },
        }
        self.issues[key] = issue
        return issue

    def fail(self, method: str, error: Exception, *, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend([error] * times)

    def forbid(self, account: str, *methods: str) -> None:
        self.forbidden.setdefault(account, set()).update(methods)

    def calls_to(self, method: str) -> list[JiraCall]:
        return [c for c in self.calls if c.method == method]


class FakeJiraApi:
    """Jira REST as one identity, over a :class:`FakeJiraSite` (the ``JiraCalls`` surface)."""

    def __init__(self, site: FakeJiraSite, actor: str, installation: Installation) -> None:
        self._site = site
        self.actor = actor
        self.installation = installation

    def _enter(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._site.calls.append(JiraCall(self.actor, method, args, kwargs))
        queued = self._site.failures.get(method)
        if queued:
            raise queued.pop(0)
        if method in self._site.forbidden.get(self.actor, set()):
            raise JiraForbidden(
                f"Jira answered 403 to {method}",
                status=403,
                user_message="You don't have permission to do that in Jira.",
            )

    def _issue(self, key: str) -> dict[str, Any]:
        issue = self._site.issues.get(key)
        if issue is None or key in self._site.hidden.get(self.actor, set()):
            raise JiraNotFound(
                "Jira answered 404",
                status=404,
                user_message="That issue was not found in Jira, or you can't see it.",
            )
        return issue

    async def get_issue(
        self, issue: str, *, fields: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> dict[str, Any]:
        self._enter("get_issue", issue, fields=tuple(fields))
        found = self._issue(issue)
        wanted = set(fields) or set(found["fields"])
        return {**found, "fields": {k: v for k, v in found["fields"].items() if k in wanted}}

    async def create_issue(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        self._enter("create_issue", dict(fields))
        project = fields.get("project", {})
        if project.get("key") not in ("ABC", "XYZ") and project.get("id") not in ("10000",):
            raise JiraBadRequest(
                "Jira answered 400", status=400, user_message="project: valid project is required"
            )
        key = f"{project.get('key', 'ABC')}-{len(self._site.issues) + 1}"
        issue = self._site.add_issue(key, str(fields.get("summary")))
        self._site.created.append(dict(fields))
        return {"id": issue["id"], "key": key, "self": issue["self"]}

    async def assign_issue(self, issue: str, account_id: str | None) -> None:
        self._enter("assign_issue", issue, account_id)
        found = self._issue(issue)
        found["fields"]["assignee"] = None if account_id is None else _user(account_id)

    async def get_transitions(self, issue: str) -> list[dict[str, Any]]:
        self._enter("get_transitions", issue)
        self._issue(issue)
        return [dict(t) for t in TRANSITIONS]

    async def transition_issue(self, issue: str, transition_id: str) -> None:
        self._enter("transition_issue", issue, transition_id)
        found = self._issue(issue)
        chosen = next((t for t in TRANSITIONS if t["id"] == transition_id), None)
        if chosen is None:
            raise JiraBadRequest(
                "Jira answered 400",
                status=400,
                user_message="Transition id '99' is not valid for this issue.",
            )
        found["fields"]["status"] = chosen["to"]

    async def add_comment(self, issue: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._enter("add_comment", issue, dict(body))
        self._issue(issue)
        self._site.comments.append((issue, body))
        return {"id": str(10200 + len(self._site.comments)), "body": dict(body)}

    async def add_watcher(self, issue: str, account_id: str) -> None:
        self._enter("add_watcher", issue, account_id)
        self._issue(issue)
        self._site.watchers.append((issue, account_id))

    async def search_jql(
        self, jql: str, *, fields: Sequence[str], max_results: int = 10
    ) -> dict[str, Any]:
        self._enter("search_jql", jql, fields=tuple(fields), max_results=max_results)
        if "broken" in jql:
            raise JiraBadRequest(
                "Jira answered 400",
                status=400,
                user_message="Error in the JQL Query: 'broken' is a reserved word.",
            )
        hidden = self._site.hidden.get(self.actor, set())
        found = [i for k, i in sorted(self._site.issues.items()) if k not in hidden]
        page = found[:max_results]
        return {"issues": page, "isLast": len(found) <= max_results}

    async def parse_jql(self, queries: Sequence[str]) -> list[dict[str, Any]]:
        self._enter("parse_jql", tuple(queries))
        out: list[dict[str, Any]] = []
        for query in queries:
            if "broken" in query:
                out.append({"query": query, "errors": ["Error in the JQL Query: 'broken'."]})
            else:
                out.append({"query": query, "structure": {"where": {}}})
        return out

    async def search_projects(self, *, max_results: int = 50) -> list[dict[str, Any]]:
        self._enter("search_projects", max_results=max_results)
        return [PROJECT_ABC][:max_results]

    async def issue_types_for_project(self, project: str) -> list[dict[str, Any]]:
        self._enter("issue_types_for_project", project)
        return [dict(t) for t in ISSUE_TYPES_ABC]

    async def my_permissions(
        self, permissions: Sequence[str], *, project_key: str | None = None
    ) -> dict[str, bool]:
        self._enter("my_permissions", tuple(permissions), project_key=project_key)
        browsable = self._site.browsable.get(self.actor, set())
        return {p: p == "BROWSE_PROJECTS" and project_key in browsable for p in permissions}


class FakeJira:
    """The client: ``as_user`` (what commands must use) and ``as_app`` (which they must not)."""

    def __init__(self) -> None:
        self.site = FakeJiraSite()

    def as_user(self, installation: Installation, account_id: str) -> FakeJiraApi:
        return FakeJiraApi(self.site, account_id, installation)

    def as_app(self, installation: Installation) -> FakeJiraApi:
        return FakeJiraApi(self.site, "app", installation)


# --- the harness ------------------------------------------------------------------------------


def context(*, delivery_count: int = 1, max_deliveries: int = 10) -> HandlerContext:
    return HandlerContext(
        queue="jira-commands",
        message_id="m",
        delivery_count=delivery_count,
        max_deliveries=max_deliveries,
        enqueued_at=NOW,
    )


@dataclass
class InteractionEvents:
    """Builds the events the gateway publishes on ``jira-commands``, as it shapes them."""

    clock: ManualClock
    site: str = SITE
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _envelope(
        self,
        event_type: str,
        extra: Mapping[str, Any],
        *,
        user: str,
        roles: Sequence[str],
        permissions: str,
        guild: str | None,
        interaction_id: str | None,
    ) -> Envelope:
        interaction = interaction_id or str(1_600_000_000_000_000_000 + next(self._ids))
        data: dict[str, Any] = {
            "interaction_id": interaction,
            "interaction_type": {"discord.command": 2, "discord.component": 3}.get(event_type, 5),
            "application_id": APPLICATION_ID,
            "token": TOKEN,
            "guild_id": guild,
            "channel_id": CHANNEL,
            "user_id": user,
            "roles": list(roles),
            "permissions": permissions,
            "app_permissions": "0",
            "locale": "en-US",
            "guild_locale": "en-US",
            "context": 0,
            **extra,
        }
        return Envelope(
            id=deterministic_id("discord-interaction", interaction),
            source="dfj-gateway",
            type=event_type,
            time=datetime.fromtimestamp(self.clock.now(), UTC),
            tenant=self.site,
            data=data,
        )

    def command(
        self,
        subcommand: str,
        *,
        member: str = ALICE,
        roles: Sequence[str] = (),
        permissions: str = "0",
        guild: str | None = GUILD,
        interaction_id: str | None = None,
        **options: Any,
    ) -> Envelope:
        """A ``/jira <subcommand>`` event with ``options``."""
        command = {
            "id": "1700000000000000001",
            "name": "jira",
            "type": 1,
            "group": None,
            "subcommand": subcommand,
            "options": options,
            "target_id": None,
        }
        return self._envelope(
            "discord.command",
            {"command": command},
            user=member,
            roles=roles,
            permissions=permissions,
            guild=guild,
            interaction_id=interaction_id,
        )

    def message_command(
        self, text: str, *, message_id: str = "1800000000000000001", member: str = ALICE
    ) -> Envelope:
        """The "Create issue from message" context-menu command on a message with ``text``."""
        command = {
            "id": "1700000000000000002",
            "name": "Create issue from message",
            "type": MESSAGE_COMMAND,
            "group": None,
            "subcommand": None,
            "options": {},
            "target_id": message_id,
        }
        return self._envelope(
            "discord.command",
            {"command": command, "message": {"id": message_id, "text": text}},
            user=member,
            roles=(),
            permissions="0",
            guild=GUILD,
            interaction_id=None,
        )

    def component(
        self,
        custom_id: str,
        *,
        values: Sequence[str] = (),
        component_type: int = BUTTON,
        member: str = ALICE,
        roles: Sequence[str] = (),
    ) -> Envelope:
        """A click on one of our components."""
        component = {
            "custom_id": custom_id,
            "component_type": component_type,
            "values": list(values),
        }
        return self._envelope(
            "discord.component",
            {"component": component, "message_id": "1800000000000000009"},
            user=member,
            roles=roles,
            permissions="0",
            guild=GUILD,
            interaction_id=None,
        )

    def modal(self, custom_id: str, fields: Mapping[str, Any], *, member: str = ALICE) -> Envelope:
        """A submit of one of our forms."""
        return self._envelope(
            "discord.modal_submit",
            {"modal": {"custom_id": custom_id, "fields": dict(fields)}, "message_id": None},
            user=member,
            roles=(),
            permissions="0",
            guild=GUILD,
            interaction_id=None,
        )


@dataclass(kw_only=True)
class Harness(InteractionEvents):
    """Everything one test drives: the commands, their stores, the bus and the fake Jira."""

    db: Database
    bus: LocalBus
    repos: Repositories
    jira: FakeJira
    commands: Commands

    @property
    def calls(self) -> list[JiraCall]:
        return self.jira.site.calls

    def with_suggester(self, suggester: Suggester) -> Harness:
        """The same harness, with commands using ``suggester``."""
        self.commands = Commands.build(self.db, bus=self.bus, jira=self.jira, suggester=suggester)
        return self

    # -- running and reading -------------------------------------------------------------------

    async def send(self, envelope: Envelope, *, last_attempt: bool = False) -> None:
        """Hand ``envelope`` to the handler, as the runtime would."""
        ctx = context(delivery_count=10 if last_attempt else 1)
        await self.commands.handle(envelope, ctx)

    async def replies(self) -> list[Envelope]:
        """Every message waiting on ``discord-outbox`` (completed as they are read)."""
        receiver = self.bus.receiver(DISCORD_OUTBOX)
        out: list[Envelope] = []
        try:
            while True:
                got = await receiver.receive(10, timeout=0)
                if not got:
                    return out
                for delivery in got:
                    out.append(Envelope.decode(delivery.body))
                    await delivery.complete()
        finally:
            await receiver.close()

    async def reply(self, envelope: Envelope | None = None) -> Envelope:
        """Run ``envelope`` (if given), then the one reply it produced."""
        if envelope is not None:
            await self.send(envelope)
        got = await self.replies()
        assert len(got) == 1, [r.data.get("message") for r in got]
        return got[0]

    async def answer(self, envelope: Envelope) -> dict[str, Any]:
        """Run ``envelope`` and return its reply's message body."""
        reply = await self.reply(envelope)
        message: dict[str, Any] = reply.data["message"]
        return message


def content(message: Mapping[str, Any]) -> str:
    """The message's content (or "")."""
    return str(message.get("content", ""))


def custom_ids(message: Mapping[str, Any]) -> list[str]:
    """Every custom id on the message's components, in order."""
    return [
        str(c["custom_id"])
        for row in message.get("components", [])
        for c in row["components"]
        if "custom_id" in c
    ]


async def seed(repos: Repositories) -> None:
    """The site, a guild connected to it, Alice and Bob linked, fresh metadata caches."""
    await repos.installations.save_connect(
        SITE,
        base_url=BASE_URL,
        shared_secret_ciphertext=b"sealed-elsewhere",
        app_key="discord-for-jira",
        oauth_client_id="oauth-client-for-tests",
        state=InstallationState.ENABLED,
    )
    await repos.guild_connections.connect(GUILD, SITE, connected_by=ALICE)
    await repos.user_links.link(SITE, account_id=ACC_ALICE, discord_user_id=ALICE)
    await repos.user_links.link(SITE, account_id=ACC_BOB, discord_user_id=BOB)
    ttl = timedelta(minutes=15)
    cache = repos.metadata_cache
    await cache.put(SITE, PROJECTS, ALL, [{"key": "ABC", "name": "Alpha"}], ttl=ttl)
    types = [{"id": t["id"], "name": t["name"]} for t in ISSUE_TYPES_ABC if not t["subtask"]]
    await cache.put(SITE, ISSUE_TYPES, "ABC", types, ttl=ttl)
    await cache.put(SITE, ISSUE_TYPES, ALL, types, ttl=ttl)
