"""The ``jira-commands`` consumer: gate, run as the linked user, answer through the outbox.

For every ``discord.command``, ``discord.component`` and ``discord.modal_submit``:

1. parse who asked and how to answer (:func:`~.requests.parse_invocation`) — an event that
   cannot be answered is a ``MalformedMessage`` and is dead-lettered;
2. the tenant: the guild's connection, whose installation must be installed or enabled;
3. the request (bad user input is answered, not dead-lettered), the guild's role rule for its
   capability, then — when it calls Jira — the user's link; Jira is called only as that
   account (``as_user``), never as the app;
4. the answer is published to ``discord-outbox`` as ``discord.interaction.reply``, id
   ``deterministic_id("reply", <event id>)``, session = the channel.

Errors: a ``JiraError`` (400/401/403/404) is answered with its ``user_message`` and the
message completes; ``JiraRateLimited`` / ``JiraUnavailable`` (any ``TransientError``)
propagate so the runtime retries — on the last attempt the user is told Jira is busy instead.

Idempotency. The bus delivers at least once, and a redelivered ``create`` would make a second
issue (Jira has no idempotency key). Requests that change something are recorded in
``ProcessedIds`` *after* Jira accepted them and *before* the reply is published; a delivery
whose id is recorded does not act again and answers "already done" under the same reply id
(the bus drops it if the first answer went out). The remaining gap — a crash between Jira's
success and the record — can still duplicate; recording *before* the call would instead lose
the action on such a crash and tell the user it was done, which is worse. Reads simply run
again. The reply id is deterministic, so a repeated answer is deduplicated by the bus.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import structlog

from dfj_common.bus import DISCORD_OUTBOX, Bus
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import TransientError
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import (
    Database,
    Drafts,
    FeatureAccess,
    GuildConnection,
    GuildConnections,
    Installation,
    Installations,
    InstallationState,
    MetadataCache,
    ProcessedIds,
    RoleRules,
    Subscriptions,
    UserLinks,
)
from dfj_jira_worker.commands import replies
from dfj_jira_worker.commands.access import AccessCheck, Verdict
from dfj_jira_worker.commands.creation import Creation
from dfj_jira_worker.commands.issues import IssueCommands
from dfj_jira_worker.commands.metadata import MetadataRefresher
from dfj_jira_worker.commands.ports import JiraImpersonation
from dfj_jira_worker.commands.requests import (
    DISCORD_COMMAND,
    DISCORD_COMPONENT,
    DISCORD_MODAL_SUBMIT,
    AssignIssue,
    CommentHint,
    CommentIssue,
    CreateFromDraft,
    CreateFromMessage,
    CreateIssue,
    InvalidInput,
    Invocation,
    ListSubscriptions,
    Request,
    SearchIssues,
    Subscribe,
    TransitionIssue,
    Unsubscribe,
    Unsupported,
    ViewIssue,
    WatchIssue,
    parse_invocation,
    parse_request,
)
from dfj_jira_worker.commands.scope import Scope
from dfj_jira_worker.commands.subscriptions import SubscriptionCommands
from dfj_jira_worker.commands.suggest import HeuristicSuggester, Suggester
from dfj_jira_worker.jira import JiraError, JiraUnauthorized

__all__ = ["CONSUMER", "INTERACTION_REPLY", "SOURCE", "Commands"]

_log: Final = structlog.get_logger("dfj.jira_worker.commands")

SOURCE: Final = "dfj-jira-worker"
INTERACTION_REPLY: Final = "discord.interaction.reply"
#: The ``ProcessedIds`` consumer name of this handler.
CONSUMER: Final = "jira-worker.commands"
EPHEMERAL_FLAG: Final = 1 << 6
_LIVE_STATES: Final = frozenset({InstallationState.ENABLED, InstallationState.INSTALLED})
_DM_ONLY: Final = (
    "Discord for Jira works inside a server that is connected to a Jira site; run the "
    "command there."
)
_ALREADY_DONE: Final = "Already done: this request reached me twice, and I carried it out once."


@dataclass(frozen=True, kw_only=True, slots=True)
class _Answer:
    message: Mapping[str, Any]
    outcome: str
    tenant: str | None = None
    scope: Scope | None = None


@dataclass(frozen=True, kw_only=True)
class Commands:
    """Handlers for the ``jira-commands`` event types (see the module docstring)."""

    installations: Installations
    connections: GuildConnections
    access: AccessCheck
    processed: ProcessedIds
    metadata: MetadataRefresher
    issues: IssueCommands
    creation: Creation
    subscriptions: SubscriptionCommands
    jira: JiraImpersonation
    bus: Bus

    @classmethod
    def build(
        cls,
        database: Database,
        *,
        bus: Bus,
        jira: JiraImpersonation,
        suggester: Suggester | None = None,
        draft_ttl: timedelta = timedelta(minutes=10),
        metadata_ttl: timedelta = timedelta(minutes=15),
    ) -> Commands:
        """Every collaborator over one database (the composition root's entry point)."""
        access = AccessCheck(
            role_rules=RoleRules(database),
            links=UserLinks(database),
            access=FeatureAccess(database),
        )
        metadata = MetadataRefresher(cache=MetadataCache(database), ttl=metadata_ttl)
        issues = IssueCommands(access=access, metadata=metadata)
        return cls(
            installations=Installations(database),
            connections=GuildConnections(database),
            access=access,
            processed=ProcessedIds(database),
            metadata=metadata,
            issues=issues,
            creation=Creation(
                issues=issues,
                metadata=metadata,
                drafts=Drafts(database),
                suggester=suggester or HeuristicSuggester(),
                draft_ttl=draft_ttl,
            ),
            subscriptions=SubscriptionCommands(subscriptions=Subscriptions(database)),
            jira=jira,
            bus=bus,
        )

    def table(self) -> HandlerTable:
        return {
            DISCORD_COMMAND: self.handle,
            DISCORD_COMPONENT: self.handle,
            DISCORD_MODAL_SUBMIT: self.handle,
        }

    async def handle(self, envelope: Envelope, ctx: HandlerContext) -> None:
        """Answer one command event (its settlement follows from what this raises)."""
        started = time.perf_counter()
        invocation = parse_invocation(envelope)
        try:
            answer = await self._answer(envelope, invocation)
        except JiraUnauthorized as exc:
            answer = _Answer(
                message=replies.link_prompt(exc.user_message),
                outcome=exc.reason,
                tenant=envelope.tenant,
            )
        except JiraError as exc:
            answer = _Answer(
                message=replies.text(exc.user_message), outcome=exc.reason, tenant=envelope.tenant
            )
        except TransientError as exc:
            if not ctx.last_attempt:
                raise
            _log.warning("giving up on a command; telling the user", error=type(exc).__name__)
            answer = _Answer(message=replies.busy(), outcome="busy", tenant=envelope.tenant)
        await self._reply(invocation, answer)
        _log.info(
            "command handled",
            outcome=answer.outcome,
            tenant=answer.tenant,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if answer.scope is not None:
            await self.metadata.refresh_quietly(answer.scope.client_key, answer.scope.jira)

    async def _tenant(
        self, invocation: Invocation
    ) -> tuple[GuildConnection, Installation] | _Answer:
        if invocation.guild_id is None:
            return _Answer(message=replies.text(_DM_ONLY), outcome="not-in-guild")
        connection = await self.connections.get(invocation.guild_id)
        if connection is None:
            return _Answer(message=replies.not_connected(), outcome="not-connected")
        installation = await self.installations.get(connection.client_key)
        if installation is None or installation.state not in _LIVE_STATES:
            return _Answer(
                message=replies.site_unavailable(),
                outcome="site-unavailable",
                tenant=connection.client_key,
            )
        return connection, installation

    async def _gate(
        self, request: Request, invocation: Invocation, client_key: str
    ) -> _Answer | None:
        """Why the request stops before running (None: it may run)."""
        refusal: tuple[dict[str, Any], str] | None = None
        if isinstance(request, Unsupported):
            refusal = replies.unsupported(request.what), "unsupported"
        elif request.capability is not None:
            verdict = await self.access.verdict(invocation, request.capability, client_key)
            if verdict is Verdict.FORBIDDEN:
                refusal = replies.forbidden(request.capability.value), "forbidden"
            elif verdict is Verdict.LINK_FIRST:
                refusal = replies.link_prompt(), "not-linked"
        if (
            refusal is None
            and request.mutates
            and await self.processed.is_processed(CONSUMER, invocation.event_id)
        ):
            refusal = replies.text(_ALREADY_DONE), "duplicate"
        if refusal is None:
            return None
        return _Answer(message=refusal[0], outcome=refusal[1], tenant=client_key)

    async def _answer(self, envelope: Envelope, invocation: Invocation) -> _Answer:
        tenant = await self._tenant(invocation)
        if isinstance(tenant, _Answer):
            return tenant
        connection, installation = tenant
        client_key = installation.client_key
        try:
            request = parse_request(envelope)
        except InvalidInput as exc:
            return _Answer(
                message=replies.text(exc.user_message), outcome="invalid", tenant=client_key
            )
        structlog.contextvars.bind_contextvars(request=type(request).__name__)
        refused = await self._gate(request, invocation, client_key)
        if refused is not None:
            return refused
        scope: Scope | None = None
        if request.calls_jira:
            link = await self.access.link_of(client_key, invocation.user_id)
            if link is None:
                return _Answer(
                    message=replies.link_prompt(), outcome="not-linked", tenant=client_key
                )
            scope = Scope(
                invocation=invocation,
                installation=installation,
                connection=connection,
                account_id=link.account_id,
                jira=self.jira.as_user(installation, link.account_id),
            )
            message = await self._run(request, scope)
        else:
            message = await self._local(request, invocation)
        if request.mutates:
            await self.processed.mark_processed(CONSUMER, invocation.event_id)
        return _Answer(message=message, outcome="ok", tenant=client_key, scope=scope)

    async def _local(self, request: Request, invocation: Invocation) -> dict[str, Any]:
        """Requests answered from our own tables, without calling Jira."""
        match request:
            case Unsubscribe():
                return await self.subscriptions.unsubscribe(request, invocation)
            case ListSubscriptions():
                return await self.subscriptions.list(invocation)
            case CommentHint():
                return replies.comment_hint(request.key)
        return replies.unsupported("that")  # pragma: no cover - the request types are closed

    async def _run(  # noqa: PLR0911 - one return per request type reads best as a match
        self, request: Request, scope: Scope
    ) -> dict[str, Any]:
        """Requests that call Jira as the user."""
        match request:
            case CreateIssue():
                return await self.creation.from_fields(request, scope)
            case CreateFromMessage():
                return await self.creation.from_message(request, scope)
            case CreateFromDraft():
                return await self.creation.from_draft(request, scope)
            case ViewIssue():
                return await self.issues.view(request, scope)
            case SearchIssues():
                return await self.issues.search(request, scope)
            case AssignIssue():
                return await self.issues.assign(request, scope)
            case TransitionIssue():
                return await self.issues.transition(request, scope)
            case CommentIssue():
                return await self.issues.comment(request, scope)
            case WatchIssue():
                return await self.issues.watch(request, scope)
            case Subscribe():
                return await self.subscriptions.subscribe(
                    request, scope.invocation, client_key=scope.client_key, jira=scope.jira
                )
        return replies.unsupported("that")  # pragma: no cover - the request types are closed

    async def _reply(self, invocation: Invocation, answer: _Answer) -> None:
        message = dict(answer.message)
        if invocation.followup and invocation.ephemeral:
            message["flags"] = EPHEMERAL_FLAG
        await self.bus.publish_envelope(
            DISCORD_OUTBOX,
            Envelope(
                id=deterministic_id("reply", invocation.event_id),
                source=SOURCE,
                type=INTERACTION_REPLY,
                tenant=answer.tenant,
                session_key=invocation.channel_id,
                data={
                    "application_id": invocation.application_id,
                    "token": invocation.token,
                    "interaction_id": invocation.interaction_id,
                    "channel_id": invocation.channel_id,
                    "guild_id": invocation.guild_id,
                    "message": message,
                    "ephemeral": invocation.ephemeral,
                    "followup": invocation.followup,
                    "created_at": invocation.created_at,
                },
            ),
        )
