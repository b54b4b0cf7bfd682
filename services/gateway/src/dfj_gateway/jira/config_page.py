"""The configuration page inside Jira: add the bot, connect a server, see what is connected.

Jira shows ``configurePage`` only to site admins (Manage apps), and loads it with a page JWT
bound to its URL, so only an admin of this site can see what it renders: the bot's install
link, and a fresh one-time **connect code** for this site (``short_code``, purpose
``connect-code``, 10 minutes; the linker opens it on ``/jira connect code:…`` and uses it
once). The code is rendered into the page, never offered by a JSON route that any page's
context token could call. Servers already connected are listed by id (names are not kept).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlencode

from dfj_common.storage import GuildConnection

__all__ = [
    "BOT_PERMISSIONS",
    "CONNECT_CODE",
    "CONNECT_CODE_TTL",
    "bot_install_url",
    "config_document",
]

CONNECT_CODE: Final = "connect-code"
CONNECT_CODE_TTL: Final = 600
#: What the bot asks for when added; the discord-worker's ``BOT_PERMISSIONS`` (a test keeps
#: the two equal): view channels, send messages and embeds, threads, read history.
BOT_PERMISSIONS: Final = 309237730304
_SCOPES: Final = "bot applications.commands"


def bot_install_url(web_url: str, application_id: str) -> str:
    """Discord's page that adds the bot, with its commands, to a server the admin picks."""
    query = urlencode(
        {"client_id": application_id, "scope": _SCOPES, "permissions": str(BOT_PERMISSIONS)}
    )
    return f"{web_url.rstrip('/')}/oauth2/authorize?{query}"


def config_document(
    *,
    all_js: str,
    install_url: str | None,
    code: str | None,
    connections: Sequence[GuildConnection],
    style_nonce: str,
) -> str:
    """The page's HTML; every interpolated value escaped."""
    if install_url is None or code is None:
        steps = (
            "<p>Discord is not set up on this server yet: the operator sets the Discord "
            "application (<code>DFJ_DISCORD_APPLICATION_ID</code>) and the state-signing key."
            "</p>"
        )
    else:
        steps = (
            "<ol>"
            f'<li><a id="install" href="{html.escape(install_url)}" target="_blank" '
            'rel="noopener noreferrer">Add the bot to your Discord server</a>.</li>'
            "<li>In that server, someone with Manage Server runs:"
            f'<pre id="command">/jira connect code:{html.escape(code)}</pre>'
            f"The code works once, for {CONNECT_CODE_TTL // 60} minutes; reload this page for "
            "another.</li></ol>"
        )
    if connections:
        rows = "".join(
            f"<li><code>{html.escape(c.guild_id)}</code> since "
            f"{html.escape(c.connected_at.date().isoformat())}</li>"
            for c in connections
        )
        connected = f'<h2>Connected servers</h2><ul id="connected">{rows}</ul>'
    else:
        connected = '<h2>Connected servers</h2><p id="connected">None yet.</p>'
    style = (
        "body{font:14px/1.5 system-ui,sans-serif;margin:1.5rem;color:#172b4d}"
        "pre{background:#f4f5f7;padding:.5rem;user-select:all}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>Discord for Jira</title><style nonce="{style_nonce}">{style}</style>'
        f'<script src="{html.escape(all_js)}" async></script></head><body><main>'
        f"<h1>Discord for Jira</h1><h2>Connect a Discord server</h2>{steps}{connected}"
        "</main></body></html>"
    )
