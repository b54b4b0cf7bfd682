"""``/jira privacy``: what we keep about the caller, as a summary, an export, or erased.

What is kept about a Discord user: their links (per site: the Jira accountId and since when)
and their drafts (the text of a message they asked to turn into an issue, for minutes). Server
settings they made — subscriptions they created, servers they connected — hold their id as
"who did this"; they belong to the server, are listed in the export, and stay on delete (a
server admin removes them with ``/jira unsubscribe`` / ``/jira disconnect``). There are no
personal notification settings yet; when there are, they join this list.

Delete erases links and drafts at once, is idempotent (a second delete finds nothing), and is
logged by ids only. The export is a JSON file attached to the ephemeral answer (only the
caller sees it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import structlog

from dfj_common.storage import Drafts, GuildConnections, Subscriptions, UserLinks
from dfj_linker.invocation import Invocation
from dfj_linker.replies import Replies

__all__ = ["Privacy"]

_log: Final = structlog.get_logger("dfj.linker.privacy")

EXPORT_NAME: Final = "discord-for-jira-privacy-export.json"


@dataclass(frozen=True, kw_only=True)
class Privacy:
    """Show, export and erase a Discord user's data."""

    links: UserLinks
    drafts: Drafts
    subscriptions: Subscriptions
    connections: GuildConnections
    replies: Replies

    async def handle(self, invocation: Invocation) -> None:
        action = invocation.options.get("action") or "show"
        files: list[dict[str, str]] = []
        if action == "delete":
            text = await self._delete(invocation.user_id)
        elif action == "export":
            data = await self.collect(invocation.user_id, invocation.guild_id)
            text = "Everything Discord for Jira keeps about you, attached as JSON."
            files.append(
                {"name": EXPORT_NAME, "content_type": "application/json", "text": _json(data)}
            )
        else:
            text = await self._summary(invocation.user_id, invocation.guild_id)
        await self.replies.answer(
            invocation, {"content": text, "allowed_mentions": {"parse": []}}, files=files
        )

    async def collect(self, user_id: str, guild_id: str | None) -> dict[str, Any]:
        """Everything stored about ``user_id``, as plain JSON-able data."""
        links = await self.links.list_for_discord_user(user_id)
        drafts = await self.drafts.list_for_discord_user(user_id)
        created: list[dict[str, Any]] = []
        connected: list[dict[str, Any]] = []
        if guild_id is not None:
            created = [
                {"subscription": s.id, "channel_id": s.channel_id, "project": s.project_key}
                for s in await self.subscriptions.list_for_guild(guild_id)
                if s.created_by == user_id
            ]
            connection = await self.connections.get(guild_id)
            if connection is not None and connection.connected_by == user_id:
                connected = [{"guild_id": guild_id, "connected_at": connection.connected_at}]
        return {
            "discord_user_id": user_id,
            "links": [
                {
                    "site": link.client_key,
                    "jira_account_id": link.account_id,
                    "since": link.linked_at,
                }
                for link in links
            ],
            "drafts": [
                {
                    "draft": d.id,
                    "site": d.client_key,
                    "created_at": d.created_at,
                    "expires_at": d.expires_at,
                    "content": dict(d.payload),
                }
                for d in drafts
            ],
            "server_settings_by_you": {"subscriptions": created, "connections": connected},
        }

    async def _summary(self, user_id: str, guild_id: str | None) -> str:
        data = await self.collect(user_id, guild_id)
        links, drafts = data["links"], data["drafts"]
        lines = ["What Discord for Jira keeps about you:"]
        lines.append(
            f"- {len(links)} link(s) to a Jira account: "
            + (
                ", ".join(f"`{link['jira_account_id']}` on {link['site']}" for link in links)
                or "none"
            )
        )
        lines.append(f"- {len(drafts)} draft(s) of issues from messages (deleted within minutes)")
        by_you = data["server_settings_by_you"]
        lines.append(
            f"- as the one who set them up here: {len(by_you['subscriptions'])} subscription(s), "
            f"{len(by_you['connections'])} server connection(s) (server settings, kept on delete)"
        )
        lines.append("`/jira privacy action:Export` shows it all; `action:Delete` erases it.")
        return "\n".join(lines)

    async def _delete(self, user_id: str) -> str:
        links = await self.links.erase_discord_user(user_id)
        drafts = await self.drafts.erase_discord_user(user_id)
        _log.info("erased", discord_user_id=user_id, links=links, drafts=drafts, reason="request")
        return (
            f"Deleted: {links} link(s) and {drafts} draft(s). Server settings you made stay with "
            "the server. Commands that act in Jira will ask you to link again."
        )


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, default=lambda v: v.isoformat(), ensure_ascii=False)
