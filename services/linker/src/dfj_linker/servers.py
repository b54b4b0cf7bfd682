"""Discord servers and Jira sites: ``/jira connect CODE`` and ``/jira disconnect``.

A Jira admin opens the app's configuration page inside Jira (the gateway): it shows the bot's
install link and a one-time *connect code* for that site — a short code
(``dfj_common.derived_keys.short_code``, purpose ``connect-code``) that names the site only
through a MAC, expires in minutes, and fits the command's 64-character option. A member with
Manage Server runs ``/jira connect code:…`` in the server; here the code is opened against the
sites that have the app installed, used once (``OAuthStates.consume("connect:<code id>")``),
and the connection is stored. A server is connected to at most one site; a site may have many
servers. ``/jira disconnect`` (Manage Server) removes the connection, and with it the server's
subscriptions, role rules and access modes (the database cascades).

The order of checks keeps a code unspent when the answer is "no" for another reason (no
Manage Server, connected elsewhere already), so the admin's code still works once fixed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog

from dfj_common.clock import Clock
from dfj_common.derived_keys import SealError, ShortCode, open_short_code
from dfj_common.runtime import HandlerContext
from dfj_common.storage import (
    AlreadyExists,
    GuildConnections,
    Installation,
    Installations,
    InstallationState,
    OAuthStates,
    Subscriptions,
)
from dfj_linker.invocation import Invocation
from dfj_linker.replies import Replies

__all__ = ["CONNECT_CODE", "Servers"]

_log: Final = structlog.get_logger("dfj.linker.servers")

#: The gateway's configuration page issues these (``dfj_gateway.jira.routes``).
CONNECT_CODE: Final = "connect-code"
_LIVE: Final = (InstallationState.INSTALLED, InstallationState.ENABLED)
_MANAGE_ONLY: Final = "Only members with the Manage Server permission can {what} this server."


@dataclass(frozen=True, kw_only=True)
class Servers:
    """The connect and disconnect handlers."""

    installations: Installations
    connections: GuildConnections
    subscriptions: Subscriptions
    states: OAuthStates
    master_key: Callable[[], Awaitable[bytes]]
    replies: Replies
    clock: Clock

    async def connect(self, invocation: Invocation, context: HandlerContext) -> None:
        answer = self.replies.answer
        refusal = self._precondition(invocation, "connect")
        code = invocation.options.get("code")
        if refusal is None and (not isinstance(code, str) or not code.strip()):
            refusal = "Paste the code from the app's page in Jira."
        if refusal is not None:
            await answer(invocation, {"content": refusal})
            return
        assert isinstance(code, str) and invocation.guild_id is not None
        opened = await self._open(code, invocation.guild_id)
        if isinstance(opened, str):
            await answer(invocation, {"content": opened})
            return
        site = await self.installations.get(opened.subject)
        current = await self.connections.get(invocation.guild_id)
        if current is not None:
            if current.client_key == opened.subject:
                text = f"This server is already connected to {_site(site, opened.subject)}."
            else:
                text = (
                    "This server is connected to another Jira site. Run `/jira disconnect` "
                    "first, then connect again."
                )
            await answer(invocation, {"content": text}, tenant=current.client_key)
            return
        expires = datetime.fromtimestamp(opened.expires_at, UTC)
        fresh = await self.states.consume(f"connect:{opened.code_id}", expires_at=expires)
        if not fresh and context.delivery_count <= 1:
            _log.warning(
                "connect refused", reason="code already used", guild_id=invocation.guild_id
            )
            await answer(
                invocation,
                {"content": "This code was used already. Get a new one on the app's page in Jira."},
            )
            return
        try:
            await self.connections.connect(
                invocation.guild_id, opened.subject, connected_by=invocation.user_id
            )
        except AlreadyExists:  # connected to another site meanwhile
            await answer(invocation, {"content": "This server was just connected to another site."})
            return
        _log.info("connected", guild_id=invocation.guild_id, tenant=opened.subject)
        await answer(
            invocation,
            {
                "content": f"Connected this server to {_site(site, opened.subject)}. Next: "
                "`/jira subscribe` in a channel for its updates, and `/jira link` for each of you."
            },
            tenant=opened.subject,
        )

    def _precondition(self, invocation: Invocation, what: str) -> str | None:
        if invocation.guild_id is None:
            return f"Run `/jira {what}` in the server to {what}."
        if not invocation.may_manage_guild:
            return _MANAGE_ONLY.format(what=what)
        return None

    async def _open(self, code: str, guild_id: str) -> ShortCode | str:
        """The opened code, or what to tell the member about it."""
        sites = [key for state in _LIVE for key in await self.installations.client_keys(state)]
        try:
            return open_short_code(
                await self.master_key(), CONNECT_CODE, code, sites, now=self.clock.now()
            )
        except SealError as refused:
            _log.info("connect refused", reason=f"code {refused.reason}", guild_id=guild_id)
            if refused.reason == "expired":
                return "This code expired. Get a new one on the app's page in Jira."
            return "This code is not valid. Copy it again from the app's page in Jira."

    async def disconnect(self, invocation: Invocation) -> None:
        answer = self.replies.answer
        refusal = self._precondition(invocation, "disconnect")
        if refusal is not None:
            await answer(invocation, {"content": refusal})
            return
        assert invocation.guild_id is not None
        current = await self.connections.get(invocation.guild_id)
        if current is None:
            await answer(invocation, {"content": "This server is not connected to a Jira site."})
            return
        subscriptions = len(await self.subscriptions.list_for_guild(invocation.guild_id))
        await self.connections.disconnect(invocation.guild_id)
        _log.info(
            "disconnected",
            guild_id=invocation.guild_id,
            tenant=current.client_key,
            subscriptions=subscriptions,
        )
        site = await self.installations.get(current.client_key)
        await answer(
            invocation,
            {
                "content": f"Disconnected this server from {_site(site, current.client_key)}; "
                f"{subscriptions} subscription(s) removed. Links of members stay until they "
                "`/jira unlink`."
            },
            tenant=current.client_key,
        )


def _site(installation: Installation | None, client_key: str) -> str:
    if installation is None:
        return client_key
    return installation.display_url or installation.base_url or client_key
