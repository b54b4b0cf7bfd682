"""Creating issues: from ``/jira create`` or its form, and from a Discord message via a draft.

"Create issue from message" is two interactions apart. The command computes suggestions
(``suggest.py``) and stores them with the message's link as a ``Draft`` of the user for
:attr:`Creation.draft_ttl` (10 minutes) — the only place message text is kept, and only until
the draft expires — then answers with a "Review and create" button (``draft-review:<id>``). The
gateway opens the form prefilled from the draft (a read); its submit (``draft-create:<id>``)
lands here, creates the issue as the user with the description and a link back to the
message, and deletes the draft. The draft is read before the create and deleted only after it
succeeded, so a refusal by Jira (a required field, say) leaves it for another try.

The draft's id derives from the command's event id: a redelivered command finds the draft it
already stored instead of storing a second one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from dfj_common.envelope import deterministic_id
from dfj_common.storage import AlreadyExists, Drafts
from dfj_jira_worker.commands import replies
from dfj_jira_worker.commands.issues import IssueCommands, NewIssue
from dfj_jira_worker.commands.metadata import MetadataRefresher
from dfj_jira_worker.commands.replies import message_link
from dfj_jira_worker.commands.requests import CreateFromDraft, CreateFromMessage, CreateIssue
from dfj_jira_worker.commands.scope import Scope
from dfj_jira_worker.commands.suggest import Suggester

__all__ = ["Creation", "message_link"]

_NO_PROJECT: Final = (
    "Which project? Give the `project` option (its key, like `ABC`) — or a server admin can "
    "set a default project for this server."
)


def _text(payload: Any, key: str) -> str | None:
    value = payload.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Creation:
    """Issue creation, direct or through a draft."""

    issues: IssueCommands
    metadata: MetadataRefresher
    drafts: Drafts
    suggester: Suggester
    draft_ttl: timedelta = timedelta(minutes=10)

    async def from_fields(self, request: CreateIssue, scope: Scope) -> dict[str, Any]:
        """``/jira create`` or the ``create-issue`` form."""
        project = request.project or scope.default_project
        if project is None:
            return replies.text(_NO_PROJECT)
        issue_type = request.issue_type or await self.issues.default_issue_type(project, scope)
        return await self.issues.create(
            NewIssue(
                project=project,
                issue_type=issue_type,
                summary=request.summary,
                description=request.description,
            ),
            scope,
        )

    async def _default_project(self, scope: Scope) -> str | None:
        if scope.default_project:
            return scope.default_project
        projects = await self.metadata.projects(scope.client_key)
        return projects[0].key if len(projects) == 1 else None

    async def from_message(self, request: CreateFromMessage, scope: Scope) -> dict[str, Any]:
        """Suggest fields for the message, keep them as a draft, offer "Review and create"."""
        text = request.text.strip()
        if not text:
            return replies.no_text_to_suggest()
        invocation = scope.invocation
        await self.metadata.refresh_quietly(scope.client_key, scope.jira)
        project = await self._default_project(scope)
        suggestion = await self.suggester.suggest(
            text,
            projects=await self.metadata.projects(scope.client_key),
            issue_types=await self.metadata.issue_types(scope.client_key, project),
        )
        payload = {
            "summary": suggestion.summary,
            "description": suggestion.description,
            "project": project,
            "issuetype": suggestion.issue_type,
            "priority": suggestion.priority,
            "message_link": message_link(
                invocation.guild_id or "", invocation.channel_id, request.message_id
            ),
        }
        draft_id = deterministic_id("draft", invocation.event_id)
        # A redelivery finds the draft its first delivery stored under this very id.
        with contextlib.suppress(AlreadyExists):
            await self.drafts.put(
                client_key=scope.client_key,
                discord_user_id=invocation.user_id,
                payload={k: v for k, v in payload.items() if v is not None},
                ttl=self.draft_ttl,
                draft_id=draft_id,
            )
        minutes = max(int(self.draft_ttl.total_seconds() // 60), 1)
        return replies.draft_offered(draft_id, suggestion, project=project, minutes=minutes)

    async def from_draft(self, request: CreateFromDraft, scope: Scope) -> dict[str, Any]:
        """The reviewed form: create with a link back to the message, then drop the draft."""
        user_id = scope.invocation.user_id
        draft = await self.drafts.get(request.draft_id, discord_user_id=user_id)
        if draft is None:
            return replies.draft_expired()
        payload = draft.payload
        project = request.project or _text(payload, "project") or scope.default_project
        if project is None:
            return replies.text(_NO_PROJECT)
        issue_type = (
            request.issue_type
            or _text(payload, "issuetype")
            or await self.issues.default_issue_type(project, scope)
        )
        link = _text(payload, "message_link")
        description = request.description.strip()
        if link:
            description = f"{description}\n\nFrom Discord: {link}".strip()
        answer = await self.issues.create(
            NewIssue(
                project=project,
                issue_type=issue_type,
                summary=request.summary,
                description=description,
                priority=_text(payload, "priority"),
            ),
            scope,
        )
        await self.drafts.take(request.draft_id, discord_user_id=user_id)
        return answer
