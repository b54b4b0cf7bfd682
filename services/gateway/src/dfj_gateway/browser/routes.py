"""Browser routes of the account-link flow: Discord's OAuth redirect and the link-status poll.

``GET /oauth/discord/callback?code=…&state=…`` checks the signed state (``state.py``: ours,
untampered, unexpired — single use is the linker's job), publishes ``link.oauth_callback`` to
the linker and answers a page that polls ``GET /oauth/discord/status/<state id>?ticket=…``
until the linker has stored the link. Refusals are 400 pages (Discord's ``error=…`` redirect
when the user cancels, missing or oversized parameters, a bad or expired state) and publish
nothing; a missing signing key or an unavailable bus is a 503 page. HEAD is not routed to the
callback, so a link prefetcher cannot publish.

The authorization code is a credential: it goes into the event and nowhere else — not into
the log line, not into the page (whose script also wipes it from the address bar). The message
id derives from the state id, so a reloaded callback page publishes nothing new (bus dedupe)
and the linker's single-use check refuses a second code for the same state.

The status endpoint reads ``UserLinks`` (the gateway never writes) and counts a link only if it
was made after the state was issued (or is the Discord user the state names). Answers are cached
per state for the poll interval and say when to ask again (``retry_after``, ``Retry-After``), so
an eager page costs at most one read per interval.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

import structlog
from aiohttp import web

from dfj_common.bus.topology import LINKER
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import DfjError
from dfj_common.storage.repositories import MetadataCache, UserLink, UserLinks
from dfj_gateway.app import BUS, CLOCK, DATABASE, SECRETS, SETTINGS
from dfj_gateway.browser import pages
from dfj_gateway.browser.state import (
    CALLBACK_PATH,
    STATE_ID_PATTERN,
    LinkState,
    StateError,
    StatusTicket,
    issue_status_ticket,
    redirect_uri,
    signing_key,
    verify_state,
    verify_status_ticket,
)
from dfj_gateway.discord.replay import TtlCache
from dfj_gateway.events import LINK_OAUTH_CALLBACK, SCHEMA_VERSIONS, SOURCE
from dfj_gateway.middleware import add_route, json_error, note
from dfj_gateway.reads import bounded
from dfj_gateway.settings import STATE_SIGNING_KEY_SECRET, GatewaySettings

__all__ = ["BROWSER", "STATUS_PATH", "BrowserState", "setup_browser_routes"]

T = TypeVar("T")
_log: Final = structlog.get_logger("dfj.gateway.browser")

STATUS_PATH: Final = "/oauth/discord/status/{state_id}"
_MAX_CODE: Final = 512
_CODE: Final = re.compile(r"^[A-Za-z0-9._~-]+$")
_ERROR_CODE: Final = re.compile(r"^[a-z_]{1,64}$")
_MAX_BODY: Final = 1024
_STATUS_CACHE_ENTRIES: Final = 10_000


@dataclass(kw_only=True)
class BrowserState:
    """What the browser routes keep on the app: settings and the short status-answer cache."""

    settings: GatewaySettings
    status_cache: TtlCache[dict[str, Any]]


BROWSER: Final = web.AppKey("browser", BrowserState)


def setup_browser_routes(app: web.Application, *, environ: Mapping[str, str] | None = None) -> None:
    """Register the OAuth callback and the link-status routes."""
    gateway = GatewaySettings.from_env(environ or {})
    app[BROWSER] = BrowserState(
        settings=gateway,
        status_cache=TtlCache(
            ttl=gateway.link_status_poll_seconds,
            max_entries=_STATUS_CACHE_ENTRIES,
            clock=app[CLOCK],
        ),
    )
    add_route(app, "GET", CALLBACK_PATH, oauth_callback)
    add_route(app, "GET", STATUS_PATH, link_status, head=True)


class _Refused(Exception):
    """A request turned away: status, what the browser is told, and the log line's reason."""

    def __init__(self, status: int, message: str, reason: str, *, title: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.message = message
        self.reason = reason
        self.title = title or "Link not completed"

    def page(self) -> web.Response:
        return pages.message_page(self.title, self.message, status=self.status)


async def _key(request: web.Request) -> bytes:
    try:
        secret = await request.app[SECRETS].get(STATE_SIGNING_KEY_SECRET)
        return signing_key(secret.reveal())
    except DfjError as exc:
        _log.warning("state signing key unavailable", error=type(exc).__name__)
        raise _Refused(
            503,
            "Linking is not set up on this server yet.",
            "state signing key unavailable",
            title="Linking is unavailable",
        ) from None


def _check_body(request: web.Request) -> None:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise _Refused(413, "This page takes no body.", "body too large", title="Too large")


def _callback_event(state: LinkState, code: str, *, now: float, public_url: str) -> Envelope:
    return Envelope(
        id=deterministic_id("link-oauth-callback", state.state_id),
        source=SOURCE,
        type=LINK_OAUTH_CALLBACK,
        time=datetime.fromtimestamp(now, UTC),
        tenant=state.client_key,
        schema_version=SCHEMA_VERSIONS[LINK_OAUTH_CALLBACK],
        data={
            "code": code,
            "state_id": state.state_id,
            "client_key": state.client_key,
            "account_id": state.account_id,
            "discord_user_id": state.discord_user_id,
            "nonce": state.nonce,
            "issued_at": state.issued_at,
            "expires_at": state.expires_at,
            "redirect_uri": redirect_uri(public_url),
        },
    )


def _callback_params(request: web.Request) -> tuple[str, str]:
    """The code and state of Discord's redirect; :class:`_Refused` when they are not there."""
    query = request.query
    if "error" in query:
        error = query.get("error", "")
        shown = error if _ERROR_CODE.match(error) else "unknown"
        raise _Refused(
            400,
            f"Discord did not authorize the link ({shown}). Run /jira link in Discord to try "
            "again.",
            f"authorization refused: {shown}",
            title="Linking was cancelled",
        )
    code, token = query.get("code", ""), query.get("state", "")
    if not code or not token:
        raise _Refused(400, "The link is missing its code or state.", "missing code or state")
    if len(code) > _MAX_CODE or not _CODE.match(code):
        raise _Refused(400, "The code is not valid.", "malformed code")
    return code, token


def _verified_state(key: bytes, token: str, *, now: float) -> LinkState:
    try:
        return verify_state(key, token, now=now)
    except StateError as exc:
        message = (
            "This link has expired. Run /jira link in Discord to start again."
            if exc.reason == "expired"
            else "This link is not valid. Run /jira link in Discord to start again."
        )
        raise _Refused(400, message, f"state {exc.reason}") from None


async def oauth_callback(request: web.Request) -> web.Response:
    """Check the state, hand the code to the linker, answer the polling page."""
    browser = request.app[BROWSER]
    now = request.app[CLOCK].now()
    try:
        _check_body(request)
        code, token = _callback_params(request)
        key = await _key(request)
        state = _verified_state(key, token, now=now)
        public_url = request.app[SETTINGS].public_url
        envelope = _callback_event(state, code, now=now, public_url=public_url)
        note(request, tenant=state.client_key, event_id=envelope.id)
        try:
            await asyncio.wait_for(
                request.app[BUS].publish_envelope(LINKER, envelope),
                browser.settings.gateway_publish_timeout_seconds,
            )
        except (TimeoutError, DfjError, OSError) as exc:
            note(request, error=type(exc).__name__)
            raise _Refused(
                503,
                "We could not finish the link just now.",
                "publish failed",
                title="Please try again",
            ) from None
    except _Refused as refused:
        note(request, reason=refused.reason)
        return refused.page()
    ticket = issue_status_ticket(key, state, now=now, ttl=browser.settings.link_status_ttl_seconds)
    status_url = f"/oauth/discord/status/{quote(state.state_id)}?ticket={ticket}"
    return pages.link_pending_page(
        status_url, poll_seconds=browser.settings.link_status_poll_seconds
    )


def _status(
    body: dict[str, Any], *, status: int = 200, retry_after: float | None = None
) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return web.json_response(body, status=status, headers=headers)


def _is_linked(link: UserLink | None, ticket: StatusTicket) -> bool:
    if link is None:
        return False
    if ticket.discord_user_id is not None and link.discord_user_id == ticket.discord_user_id:
        return True
    return link.linked_at.timestamp() >= ticket.requested_at


def _ticket(request: web.Request, key: bytes) -> StatusTicket:
    state_id = request.match_info["state_id"]
    text = request.query.get("ticket", "")
    if not STATE_ID_PATTERN.match(state_id) or not text:
        raise _Refused(400, "missing or malformed ticket", "missing or malformed ticket")
    try:
        ticket = verify_status_ticket(key, text, now=request.app[CLOCK].now())
    except StateError as exc:
        status = 410 if exc.reason == "expired" else 400
        raise _Refused(
            status, "expired" if status == 410 else "invalid ticket", f"ticket {exc.reason}"
        ) from None
    if ticket.state_id != state_id:
        raise _Refused(400, "invalid ticket", "ticket for another state")
    return ticket


#: Where the linker leaves why a link was refused (``dfj_linker.linking``), for this page.
LINK_OUTCOME_KIND: Final = "link-outcome"
_MAX_MESSAGE: Final = 300


async def _refusal(request: web.Request, ticket: StatusTicket) -> str | None:
    """The linker's reason this link request was refused, if it left one."""
    cache = MetadataCache(request.app[DATABASE])
    ok, entry = await bounded(
        request,
        "link outcome",
        cache.get(ticket.client_key, LINK_OUTCOME_KIND, ticket.state_id),
        timeout=request.app[BROWSER].settings.gateway_lookup_timeout_seconds,
    )
    value = entry.value if ok and entry is not None else None
    message = value.get("message") if isinstance(value, dict) else None
    return message[:_MAX_MESSAGE] if isinstance(message, str) and message else None


async def link_status(request: web.Request) -> web.Response:
    """``pending`` until the linker stored the link, then ``linked`` — or ``refused`` with the
    linker's reason; ``expired`` after the ticket's life."""
    browser = request.app[BROWSER]
    poll = browser.settings.link_status_poll_seconds
    try:
        _check_body(request)
        ticket = _ticket(request, await _key(request))
    except _Refused as refused:
        note(request, reason=refused.reason)
        if refused.status == 410:
            return _status({"status": "expired"}, status=410)
        return json_error(
            refused.status, refused.message if refused.status < 500 else "linking is not configured"
        )
    note(request, tenant=ticket.client_key)
    cached = browser.status_cache.get(ticket.state_id)
    if cached is not None:
        return _status(cached, retry_after=poll if cached["status"] == "pending" else None)
    links = UserLinks(request.app[DATABASE])
    ok, link = await bounded(
        request,
        "user link",
        links.get_by_account(ticket.client_key, ticket.account_id),
        timeout=request.app[BROWSER].settings.gateway_lookup_timeout_seconds,
    )
    body: dict[str, Any] = {"status": "pending", "retry_after": poll}
    if ok and _is_linked(link, ticket):
        body = {"status": "linked"}
    else:
        reason = await _refusal(request, ticket)
        if reason is not None:
            body = {"status": "refused", "message": reason}
    browser.status_cache.put(ticket.state_id, body)
    return _status(body, retry_after=poll if body["status"] == "pending" else None)
