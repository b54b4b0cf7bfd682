"""The link page inside Jira: where a Discord user's ``/jira link`` meets their Jira account.

``/jira link`` (the linker) answers with a button to
``<site>/plugins/servlet/ac/<app key>/dfj-link?ac.request=<link request>``; Jira opens our
``generalPage`` in an iframe with a page JWT whose ``sub`` is the signed-in Jira user, and
passes the request on (``/jira/pages/link?request=…``). The page checks both, mints the OAuth
state bound to that Jira account, that site and the Discord user who asked, and shows a button
to Discord's authorize page (``target=_top``: Discord refuses to be framed).

A **link request** is a sealed token (``dfj_common.derived_keys.seal``, purpose
``link-request``) the linker issues and only this page accepts: ``ck`` (the site the Discord
server is connected to), ``du`` (the Discord user who ran the command), ``gid`` (the server),
``iat``, ``exp`` (10 minutes). A request for another site than the page's JWT is refused, so a
button from one server cannot link an account on another site. Without a request (the page
opened from Jira itself) the state names no Discord user, and whoever authorizes in Discord is
linked — the Jira user chose that account themselves.
"""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from dfj_common.derived_keys import STATE_SIGNING_KEY_SECRET, SealError, unseal
from dfj_common.errors import ConfigError, DfjError
from dfj_gateway.browser.pages import html_response
from dfj_gateway.browser.state import LinkState, StateError, begin_link, signing_key

__all__ = [
    "LINK_REQUEST",
    "LinkRefused",
    "LinkRequest",
    "link_page_response",
    "start_link",
    "verify_link_request",
]

LINK_REQUEST: Final = "link-request"
CLOCK_SKEW: Final = 60
_SNOWFLAKE: Final = re.compile(r"^[0-9]{1,20}$")
_STYLE: Final = (
    "body{font:14px/1.5 system-ui,sans-serif;margin:1.5rem;color:#172b4d}"
    "a.button{display:inline-block;padding:.5rem 1rem;background:#5865f2;color:#fff;"
    "border-radius:4px;text-decoration:none}.muted{color:#626f86}"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkRequest:
    """What a verified link request says."""

    client_key: str
    discord_user_id: str
    guild_id: str | None
    expires_at: int


def verify_link_request(key: bytes, token: str, *, now: float) -> LinkRequest:
    """The request sealed in ``token``; :class:`StateError` (``malformed``, ``bad signature``,
    ``expired``) otherwise."""
    try:
        payload = unseal(key, LINK_REQUEST, token)
    except SealError as exc:
        raise StateError(exc.reason) from None
    client_key, user, guild = payload.get("ck"), payload.get("du"), payload.get("gid")
    issued, expires = payload.get("iat"), payload.get("exp")
    if (
        not isinstance(client_key, str)
        or not client_key
        or not isinstance(user, str)
        or not _SNOWFLAKE.match(user)
        or (guild is not None and (not isinstance(guild, str) or not _SNOWFLAKE.match(guild)))
        or not isinstance(issued, int)
        or not isinstance(expires, int)
    ):
        raise StateError("malformed")
    if issued > now + CLOCK_SKEW:
        raise StateError("malformed")
    if expires <= now:
        raise StateError("expired")
    return LinkRequest(
        client_key=client_key, discord_user_id=user, guild_id=guild, expires_at=expires
    )


def link_page_response(
    *, authorize_url: str | None, message: str, frame_origin: str, all_js: str, status: int = 200
) -> web.Response:
    """The page: a message, and the button to Discord when there is somewhere to go."""
    nonce = secrets.token_urlsafe(16)
    button = (
        f'<p><a class="button" id="continue" href="{html.escape(authorize_url)}" '
        'target="_top" rel="noopener noreferrer">Continue to Discord</a></p>'
        '<p class="muted">Discord asks you to authorize reading your user id only '
        "(scope <code>identify</code>). Nothing else is shared.</p>"
        if authorize_url
        else ""
    )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Link your Discord account</title>"
        f'<style nonce="{nonce}">{_STYLE}</style>'
        f'<script src="{html.escape(all_js)}" async></script></head><body>'
        f"<h1>Link your Discord account</h1><p>{html.escape(message)}</p>{button}</body></html>"
    )
    csp = (
        f"default-src 'none'; script-src {all_js}; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {frame_origin}"
    )
    return html_response(document, csp=csp, status=status, framed=True)


class LinkRefused(Exception):
    """A link page cannot start a link: ``status``, a log ``reason`` and the user's ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.message = message


NOT_SET_UP: Final = "Linking is not set up on this server yet."


async def start_link(
    app: web.Application,
    *,
    client_key: str,
    account_id: str,
    token: str | None,
    now: float,
) -> tuple[str, LinkState]:
    """Discord's authorize URL and the state for a Jira user on a link page (Connect or Forge).

    ``client_key`` and ``account_id`` come from the page's verified token; ``token`` is the
    linker's link request from the page URL, if any (see the module docstring).
    """
    from dfj_gateway.app import SECRETS, SETTINGS  # here: app.py imports the route modules

    try:
        secret = await app[SECRETS].get(STATE_SIGNING_KEY_SECRET)
        key = signing_key(secret.reveal())
    except DfjError as exc:
        raise LinkRefused(503, "state signing key unavailable", NOT_SET_UP) from exc
    asker: str | None = None
    if token:
        try:
            asked = verify_link_request(key, token, now=now)
        except StateError as exc:
            text = "expired" if exc.reason == "expired" else "is not valid"
            raise LinkRefused(
                400,
                f"link request {exc.reason}",
                f"This link request {text}. Run /jira link in Discord again.",
            ) from exc
        if asked.client_key != client_key:
            raise LinkRefused(
                400,
                "link request for another site",
                "This link request was made for another Jira site.",
            )
        asker = asked.discord_user_id
    try:
        return begin_link(
            key,
            app[SETTINGS],
            client_key=client_key,
            account_id=account_id,
            now=now,
            discord_user_id=asker,
        )
    except ConfigError as exc:
        raise LinkRefused(503, "linking not configured", NOT_SET_UP) from exc
