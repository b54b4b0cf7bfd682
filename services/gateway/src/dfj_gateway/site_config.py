"""What a site admin's configuration page shows, for the Connect page and the Forge admin page.

Both pages — the Connect ``configurePage`` rendered by the gateway, and the Forge Custom UI
``jira:adminPage`` that asks ``/forge/ui/config`` — show the same three things: the bot's
install link, a fresh one-time connect code for the site (``short_code``, purpose
``connect-code``, 10 minutes; the linker opens it on ``/jira connect code:…``) and the Discord
servers already connected (by id: names are not kept). Both routes are reachable only with a
token Jira issues for a page admins alone can open (a page JWT bound to the Connect page's
URL; a FIT for the admin page module), never with a general context token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dfj_common.derived_keys import STATE_SIGNING_KEY_SECRET, short_code
from dfj_common.errors import DfjError
from dfj_common.storage import GuildConnection, GuildConnections
from dfj_gateway.app import DATABASE, SECRETS, SETTINGS
from dfj_gateway.browser.state import signing_key
from dfj_gateway.jira.config_page import CONNECT_CODE, CONNECT_CODE_TTL, bot_install_url
from dfj_gateway.middleware import note

__all__ = ["SiteConfig", "site_config"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteConfig:
    """The page's content; ``install_url``/``code`` are None until Discord is set up here."""

    install_url: str | None
    code: str | None
    code_expires_at: int | None
    connections: Sequence[GuildConnection]

    def to_json(self, *, site_url: str | None) -> dict[str, Any]:
        """The JSON the Forge admin page reads."""
        return {
            "site": {"url": site_url},
            "discord": {"installUrl": self.install_url},
            "connectCode": None
            if self.code is None
            else {"code": self.code, "expiresAt": self.code_expires_at},
            "connections": [
                {
                    "guildId": c.guild_id,
                    "connectedAt": c.connected_at.isoformat().replace("+00:00", "Z"),
                }
                for c in self.connections
            ],
        }


async def site_config(request: web.Request, client_key: str, *, now: float) -> SiteConfig:
    """The configuration of ``client_key``'s site as its admin sees it at ``now``."""
    settings = request.app[SETTINGS]
    install_url = code = None
    expires: int | None = None
    try:
        secret = await request.app[SECRETS].get(STATE_SIGNING_KEY_SECRET)
        key: bytes | None = signing_key(secret.reveal())
    except DfjError as exc:
        note(request, reason="state signing key unavailable", error=type(exc).__name__)
        key = None
    if key is not None and settings.discord_application_id:
        install_url = bot_install_url(settings.discord_web_url, settings.discord_application_id)
        expires = int(now) + CONNECT_CODE_TTL
        code = short_code(key, CONNECT_CODE, client_key, expires_at=expires)
    connections = await GuildConnections(request.app[DATABASE]).list_for_site(client_key)
    return SiteConfig(
        install_url=install_url,
        code=code,
        code_expires_at=expires if code is not None else None,
        connections=connections,
    )
