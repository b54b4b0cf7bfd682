"""The notification pipeline: one ``jira.webhook`` event in, one Discord post per subscription out.

Steps, each of which may end the handling early (the message is then completed, with a debug
log saying why — nothing to do is not a failure):

1. the site must be installed or enabled and have a base URL; the issue's project must have
   subscriptions (``Subscriptions.list_for_project``);
2. subscriptions are filtered by event type and issue type (:mod:`.routing`);
3. those with JQL are checked with **one** ``jql/match`` call as the app for all their distinct
   JQLs (answers cached briefly, :mod:`.jql_cache`); a JQL Jira calls invalid skips its
   subscription with a warning. Deletions skip JQL subscriptions (see :mod:`.routing`);
4. **one** issue read as the app, with just :data:`~.reads.ISSUE_FIELDS` (not for deletions),
   and for comment events one comment read; a 404 means the issue or comment is gone or
   hidden from the app — there is nothing to show;
5. the audience rule: restricted events are withheld or reduced to the key
   (:func:`.routing.presentation`);
6. render (:mod:`.render`) and publish ``discord.message.post`` to ``discord-outbox``, one per
   subscription, with the id ``deterministic_id("notify", event id, subscription id)`` and the
   channel as session key, so a redelivered event yields the same messages and the bus drops
   the copies. Subscriptions of the same channel that would post the same message post once.

Errors: ``JiraRateLimited`` / ``JiraUnavailable`` propagate (the runtime retries);
``JiraUnauthorized`` / ``JiraForbidden`` on an app read are permanent and propagate too (the
message is dead-lettered with the reason). Logs carry ids only: no JQL, summary or names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from dfj_common.bus import DISCORD_OUTBOX, Bus
from dfj_common.clock import Clock
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import Installation, Installations, InstallationState, Subscriptions
from dfj_common.storage import Subscription as Sub
from dfj_jira_worker.jira import JiraBadRequest, JiraNotFound
from dfj_jira_worker.notify import routing
from dfj_jira_worker.notify.events import WEBHOOK_EVENT_TYPE, Change, EventKind, read_change
from dfj_jira_worker.notify.jql_cache import JqlKey, JqlMatchCache, JqlOutcome
from dfj_jira_worker.notify.reads import (
    ISSUE_FIELDS,
    CommentView,
    IssueView,
    comment_view,
    issue_view,
)
from dfj_jira_worker.notify.render import render_key_only, render_notification, thread_name
from dfj_jira_worker.notify.routing import Presentation

__all__ = ["MESSAGE_POST", "SOURCE", "AppReads", "JiraAsApp", "Notifier"]

_log: Final = structlog.get_logger("dfj.jira_worker.notify")
SOURCE: Final = "dfj-jira-worker"
MESSAGE_POST: Final = "discord.message.post"
_LIVE: Final = frozenset({InstallationState.INSTALLED, InstallationState.ENABLED})


class AppReads(Protocol):
    """The Jira calls the notifier makes, as the app (``JiraApi`` satisfies it)."""

    async def get_issue(
        self, issue: str, *, fields: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> dict[str, Any]: ...

    async def get_comment(self, issue: str, comment_id: str) -> dict[str, Any]: ...

    async def match_jql(
        self, issue_ids: Sequence[int], jqls: Sequence[str]
    ) -> list[dict[str, Any]]: ...


class JiraAsApp(Protocol):
    """Hands out :class:`AppReads` for an installation (``JiraClient`` satisfies it)."""

    def as_app(self, installation: Installation) -> AppReads: ...


@dataclass(frozen=True, slots=True)
class _Reads:
    issue: IssueView | None
    comment: CommentView | None


@dataclass(frozen=True, slots=True)
class _Post:
    subscription: Sub
    message: dict[str, Any]
    thread_name: str


@dataclass(frozen=True, kw_only=True)
class Notifier:
    """The ``jira.webhook`` handler, over the installations and subscriptions, Jira and the bus."""

    installations: Installations
    subscriptions: Subscriptions
    jira: JiraAsApp
    bus: Bus
    clock: Clock
    #: Shared by the notifiers of a process; by default a new one on ``clock``.
    jql_cache: JqlMatchCache | None = None
    _cache: JqlMatchCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cache = self.jql_cache if self.jql_cache is not None else JqlMatchCache(self.clock)
        object.__setattr__(self, "_cache", cache)

    def table(self) -> HandlerTable:
        return {WEBHOOK_EVENT_TYPE: self.handle}

    async def handle(self, envelope: Envelope, ctx: HandlerContext) -> None:
        """Fan one webhook event out to the subscribed channels (see the module docstring)."""
        change = read_change(envelope)
        log = _log.bind(
            tenant=change.client_key,
            event_id=envelope.id,
            issue_id=change.issue_id,
            kind=change.kind.value,
            delivery_attempt=ctx.delivery_count,
        )
        installation = await self.installations.get(change.client_key)
        if installation is None or installation.state not in _LIVE or not installation.base_url:
            log.debug("notification skipped: site not installed, disabled or incomplete")
            return
        if change.project_key is None:
            log.debug("notification skipped: the event names no project")
            return
        candidates = await self._candidates(change, change.project_key)
        if not candidates:
            log.debug("notification skipped: no subscription wants this event")
            return
        api = self.jira.as_app(installation)
        candidates = await self._match_jql(api, change, candidates, log)
        if routing.restricted(change) and not any(routing.key_only(s) for s in candidates):
            candidates = []
        if not candidates:
            log.debug("notification skipped: no subscription left after JQL and audience")
            return
        reads = await self._read(api, change, log)
        if reads is None:
            return
        issue = reads.issue
        type_id = change.issue_type_id or (issue.issue_type_id if issue is not None else None)
        type_name = issue.issue_type_name if issue is not None else None
        # Still undecided (a deleted issue is never read): a name filter does not match.
        candidates = [
            s for s in candidates if routing.issue_type_matches(s, type_id, type_name) is True
        ]
        is_restricted = routing.restricted(change, issue, reads.comment)
        posts = self._posts(change, installation, reads, candidates, is_restricted)
        for post in posts:
            await self._publish(envelope, change, installation, post)
        log.info(
            "notification fanned out",
            posted=len(posts),
            restricted=is_restricted,
            subscriptions=[p.subscription.id for p in posts],
        )

    # --- steps ------------------------------------------------------------------------------

    async def _candidates(self, change: Change, project_key: str) -> list[Sub]:
        kinds = routing.event_kinds(change)
        if not kinds:
            return []
        found = await self.subscriptions.list_for_project(change.client_key, project_key)
        return [
            s
            for s in found
            if routing.subscribed_to(s, kinds)
            # Undecided (a name filter before the read) stays in; decided after the read.
            and routing.issue_type_matches(s, change.issue_type_id, None) is not False
            and not (change.kind is EventKind.ISSUE_DELETED and s.jql)
        ]

    async def _match_jql(
        self,
        api: AppReads,
        change: Change,
        candidates: list[Sub],
        log: structlog.typing.FilteringBoundLogger,
    ) -> list[Sub]:
        jqls = list(dict.fromkeys(s.jql for s in candidates if s.jql))
        if not jqls:
            return candidates
        outcomes = await self._outcomes(api, change, jqls, log)
        kept: list[Sub] = []
        for subscription in candidates:
            if not subscription.jql:
                kept.append(subscription)
                continue
            outcome = outcomes.get(subscription.jql, JqlOutcome.ERROR)
            if outcome is JqlOutcome.MATCHED:
                kept.append(subscription)
            elif outcome is JqlOutcome.ERROR:
                log.warning(
                    "subscription skipped: Jira refused its JQL", subscription=subscription.id
                )
        return kept

    async def _outcomes(
        self,
        api: AppReads,
        change: Change,
        jqls: list[str],
        log: structlog.typing.FilteringBoundLogger,
    ) -> dict[str, JqlOutcome]:
        def key(jql: str) -> JqlKey | None:
            if change.updated is None:
                return None
            return JqlKey(change.client_key, change.issue_id, change.updated, jql)

        outcomes: dict[str, JqlOutcome] = {}
        for jql in jqls:
            cache_key = key(jql)
            cached = self._cache.get(cache_key) if cache_key is not None else None
            if cached is not None:
                outcomes[jql] = cached
        missing = [j for j in jqls if j not in outcomes]
        if not missing:
            return outcomes
        try:
            matches = await api.match_jql([change.numeric_issue_id], missing)
        except JiraBadRequest:
            # Too many JQLs or issue ids for one call: JQL subscriptions miss this event, the
            # others are still served.
            log.warning("JQL matching refused by Jira", jqls=len(missing))
            return outcomes
        for jql, match in zip(missing, _padded(matches, len(missing)), strict=True):
            outcome = _outcome(match, change.numeric_issue_id)
            outcomes[jql] = outcome
            cache_key = key(jql)
            if cache_key is not None:
                self._cache.put(cache_key, outcome)
        return outcomes

    async def _read(
        self, api: AppReads, change: Change, log: structlog.typing.FilteringBoundLogger
    ) -> _Reads | None:
        if change.kind is EventKind.ISSUE_DELETED:
            return _Reads(None, None)
        try:
            issue = issue_view(await api.get_issue(change.issue_id, fields=ISSUE_FIELDS))
        except JiraNotFound:
            log.debug("notification skipped: the issue is gone or hidden from the app")
            return None
        comment = None
        wants_comment = change.kind in {EventKind.COMMENT_CREATED, EventKind.COMMENT_UPDATED}
        # A restricted event shows no comment text anywhere: no need to read it.
        if wants_comment and change.comment is not None and not routing.restricted(change, issue):
            try:
                comment = comment_view(await api.get_comment(change.issue_id, change.comment.id))
            except JiraNotFound:
                log.debug("notification skipped: the comment is gone or hidden from the app")
                return None
        return _Reads(issue, comment)

    def _posts(
        self,
        change: Change,
        installation: Installation,
        reads: _Reads,
        candidates: list[Sub],
        is_restricted: bool,
    ) -> list[_Post]:
        site = installation.display_url or installation.base_url or ""
        issue = reads.issue
        key = change.issue_key or (issue.key if issue is not None else None)
        label = key or f"Issue {change.issue_id}"
        rendered: dict[Presentation, tuple[dict[str, Any], str]] = {}
        posts: list[_Post] = []
        seen: set[tuple[str, str, Presentation]] = set()
        for subscription in candidates:
            shown = routing.presentation(subscription, is_restricted=is_restricted)
            once = (subscription.channel_id, subscription.delivery_mode, shown)
            if shown is Presentation.WITHHELD or once in seen:
                continue
            seen.add(once)
            if shown not in rendered:
                if shown is Presentation.FULL:
                    message = render_notification(
                        change, issue=issue, comment=reads.comment, site_url=site
                    )
                    summary = issue.summary if issue is not None else None
                    rendered[shown] = (message, thread_name(label, summary))
                else:
                    message = render_key_only(change, issue_key=key, site_url=site)
                    rendered[shown] = (message, thread_name(label, None))
            message, name = rendered[shown]
            posts.append(_Post(subscription, message, name))
        return posts

    async def _publish(
        self, envelope: Envelope, change: Change, installation: Installation, post: _Post
    ) -> None:
        subscription = post.subscription
        data: dict[str, Any] = {
            "client_key": change.client_key,
            "guild_id": subscription.guild_id,
            "channel_id": subscription.channel_id,
            "message": post.message,
        }
        if subscription.delivery_mode == "thread":
            data["thread"] = {
                "key": f"{change.client_key}:{change.issue_id}",
                "name": post.thread_name,
            }
        await self.bus.publish_envelope(
            DISCORD_OUTBOX,
            Envelope(
                id=deterministic_id("notify", envelope.id, subscription.id),
                source=SOURCE,
                type=MESSAGE_POST,
                tenant=installation.client_key,
                session_key=subscription.channel_id,
                subject=change.issue_id,
                data=data,
            ),
        )


def _padded(matches: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    # Jira answers one entry per JQL, in order; a short answer counts as errors for the rest.
    return (matches + [{"errors": ["no answer"]}] * count)[:count]


def _outcome(match: dict[str, Any], issue_id: int) -> JqlOutcome:
    errors = match.get("errors")
    if isinstance(errors, list) and errors:
        return JqlOutcome.ERROR
    matched = match.get("matchedIssues")
    if not isinstance(matched, list):
        return JqlOutcome.ERROR
    found = {str(i) for i in matched if isinstance(i, int | str) and not isinstance(i, bool)}
    return JqlOutcome.MATCHED if str(issue_id) in found else JqlOutcome.NOT_MATCHED
