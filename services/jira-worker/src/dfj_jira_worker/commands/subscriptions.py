"""``/jira subscribe``, ``/jira unsubscribe``, ``/jira subscriptions``: a channel's feeds.

A subscription says which events of a project a channel gets (``Subscriptions`` rows, read by
the notifier). Creating one is checked twice, as the asking user: they must be able to browse
the project in Jira (``mypermissions`` with ``BROWSE_PROJECTS``) — a channel must not become a
window onto a project its manager cannot see — and an optional JQL filter must parse
(``jql/parse`` with strict validation); a query with errors is refused with Jira's words.

Redelivery is harmless: the subscription's id derives from the command's event id, so a
second insert finds the first. An identical subscription already in the channel is reported,
not duplicated. Removing and listing touch only our own table, so they need no Jira call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from dfj_common.envelope import deterministic_id
from dfj_common.storage import AlreadyExists, Subscription, Subscriptions
from dfj_jira_worker.commands import replies
from dfj_jira_worker.commands.ports import JiraCalls
from dfj_jira_worker.commands.requests import Invocation, Subscribe, Unsubscribe

__all__ = ["SubscriptionCommands"]

BROWSE: Final = "BROWSE_PROJECTS"
_MAX_JQL_ERROR: Final = 300


def _jql_errors(parsed: list[dict[str, Any]]) -> list[str]:
    if not parsed:
        return ["Jira did not return a parse result."]
    errors = parsed[0].get("errors")
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, str) and e.strip()]


def _same(existing: Subscription, request: Subscribe, mode: str) -> bool:
    return (
        existing.project_key == request.project
        and set(existing.event_types) == set(request.event_types)
        and set(existing.issue_types) == set(request.issue_types)
        and (existing.jql or None) == request.jql
        and existing.delivery_mode == mode
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SubscriptionCommands:
    """The three subscription commands over the ``Subscriptions`` repository."""

    subscriptions: Subscriptions

    async def subscribe(
        self, request: Subscribe, invocation: Invocation, *, client_key: str, jira: JiraCalls
    ) -> dict[str, Any]:
        """Check the project and JQL as the user, then add the subscription."""
        guild_id = invocation.guild_id or ""
        if request.project.isdigit():
            return replies.text("Use the project's key (like `ABC`), not its numeric id.")
        allowed = await jira.my_permissions([BROWSE], project_key=request.project)
        if not allowed.get(BROWSE):
            return replies.text(
                f"You can't browse project **{request.project}** in Jira (or it doesn't "
                "exist), so this channel can't subscribe to it through you."
            )
        if request.jql:
            errors = _jql_errors(await jira.parse_jql([request.jql]))
            if errors:
                return replies.text(
                    "Jira refused that JQL: " + replies.clip(" ".join(errors), _MAX_JQL_ERROR)
                )
        mode = "thread" if request.thread else "message"
        for existing in await self.subscriptions.list_for_channel(guild_id, invocation.channel_id):
            if _same(existing, request, mode):
                return replies.subscribed(existing, existed=True)
        subscription_id = deterministic_id("subscription", invocation.event_id)
        try:
            added = await self.subscriptions.add(
                guild_id=guild_id,
                channel_id=invocation.channel_id,
                client_key=client_key,
                project_key=request.project,
                event_types=request.event_types,
                issue_types=request.issue_types,
                jql=request.jql,
                delivery_mode=mode,
                created_by=invocation.user_id,
                subscription_id=subscription_id,
            )
        except AlreadyExists:
            found = await self.subscriptions.get(subscription_id)
            if found is None:
                raise
            added = found
        return replies.subscribed(added)

    async def unsubscribe(self, request: Unsubscribe, invocation: Invocation) -> dict[str, Any]:
        """Remove a subscription by id, or every subscription of the channel to a project."""
        guild_id = invocation.guild_id or ""
        by_id = await self.subscriptions.get(request.target)
        if by_id is not None and by_id.guild_id == guild_id:
            removed = (
                [by_id] if await self.subscriptions.remove(by_id.id, guild_id=guild_id) else []
            )
            return replies.unsubscribed(removed, request.target)
        project = request.target.upper()
        removed = []
        for existing in await self.subscriptions.list_for_channel(guild_id, invocation.channel_id):
            if existing.project_key == project and await self.subscriptions.remove(
                existing.id, guild_id=guild_id
            ):
                removed.append(existing)
        return replies.unsubscribed(removed, request.target)

    async def list(self, invocation: Invocation) -> dict[str, Any]:
        """This channel's subscriptions."""
        found = await self.subscriptions.list_for_channel(
            invocation.guild_id or "", invocation.channel_id
        )
        return replies.subscription_list(found)
