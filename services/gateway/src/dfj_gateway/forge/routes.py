"""The Forge Remote routes (``/forge/...``), and the one table saying what each accepts.

Forge calls these as the endpoints of ``forge/manifest.yml`` (the tests hold the two
together). Every call carries a Forge Invocation Token in ``Authorization: Bearer``; the guard
verifies it (:mod:`.fit`, keys from :mod:`.jwks`) before the body is parsed, and a handler
learns the tenant only from the verified token. Order of checks: body size (413) → content
type (415) → token (401, the status Forge reserves for it) → JSON (400) → payload rules (400)
→ publish → 204 once the bus holds the event durably (503 when it cannot, which Forge retries;
it waits 5 seconds for an answer, and a durable local publish takes milliseconds).

Routes:

``POST /forge/events``
    Product events → the same ``jira.webhook`` events as Connect webhooks (:mod:`.payloads`),
    deduplicated across Forge's retries by a digest of the event.
``POST /forge/lifecycle``
    ``avi:forge:installed:app`` / ``avi:forge:upgraded:app`` → ``jira.forge.installed`` /
    ``jira.forge.upgraded``: the installation's ids and its API base URL.
``POST /forge/scheduled``
    The hourly trigger → ``jira.forge.token``: a fresh system token for the worker to keep.
``POST /forge/uninstall``
    ``preUninstall`` → ``jira.forge.uninstalled``: the site's data is purged after retention.
``GET /forge/ui/config``
    The admin page's ``invokeRemote``: only with a FIT of the ``jira:adminPage`` module
    :data:`ADMIN_PAGE_KEY` and a signed-in principal (Jira shows admin pages to admins only).
``POST /forge/ui/link``
    The link page (``jira:globalPage`` :data:`LINK_PAGE_KEY`, opened from the linker's "Link in
    Jira" button with ``?request=<link request>``): as the Connect link page, it binds the
    signed-in Jira user (the FIT's ``principal``) to the Discord user who asked, and answers
    Discord's authorize URL for the page to open.

A FIT does not sign the request it comes with, so a token caught in flight could carry another
body while it is valid. Each token's ``jti`` is therefore bound to the first request it came
with (method, path and body digest): the same request again (a resend) passes — the bus drops
the duplicate — and any other request with that token is refused as ``token already used``.
The record is per process, like Discord's replay guard; Forge's tokens live seconds.

Each call to an endpoint with ``appSystemToken`` brings the app's system token
(``x-forge-oauth-system``); it is sealed (:mod:`.system_token`) and published with the event
for the jira-worker to store — never logged, never on the bus in plain text.

The tenant key of an installation is the Connect ``clientKey`` of the site when the site moved
from Connect (its row holds the installation id), and the installation ARI otherwise, so a
migrated site keeps its subscriptions and links.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from dfj_common.bus import JIRA_EVENTS
from dfj_common.envelope import deterministic_id
from dfj_common.errors import ConfigError, TransientError
from dfj_common.storage import Installation, Installations
from dfj_gateway import events
from dfj_gateway.app import BUS, CIPHER, CLOCK, DATABASE, HTTP, SETTINGS
from dfj_gateway.discord.replay import TtlCache
from dfj_gateway.forge.fit import (
    ForgeAuthError,
    Invocation,
    installation_ari,
    read_header,
    verify_fit,
)
from dfj_gateway.forge.jwks import ForgeKeyOptions, ForgeKeys
from dfj_gateway.forge.payloads import (
    FORGE_INSTALLED,
    LIFECYCLE_EVENTS,
    body_digest,
    event_body,
    event_data,
    retry_count,
)
from dfj_gateway.forge.system_token import SealedToken, SealedTokens, well_formed
from dfj_gateway.jira.link_request import LinkRefused, start_link
from dfj_gateway.jira.payloads import BadPayload, short_text
from dfj_gateway.lookups import ReadCache
from dfj_gateway.middleware import add_route, json_error, note
from dfj_gateway.reads import Rejected as _Reject
from dfj_gateway.reads import json_object, read_body
from dfj_gateway.site_config import site_config

__all__ = [
    "ADMIN_PAGE_KEY",
    "FORGE_OPTIONS",
    "FORGE_STATE",
    "LINK_PAGE_KEY",
    "ROUTES",
    "ForgeCall",
    "ForgeOptions",
    "ForgeRoute",
    "ForgeState",
    "setup_forge_routes",
]

_log: Final = structlog.get_logger("dfj.gateway.forge")

EVENT_BODY_LIMIT: Final = 1024 * 1024
LIFECYCLE_BODY_LIMIT: Final = 64 * 1024
JSON: Final = "application/json"
SYSTEM_TOKEN_HEADER: Final = "x-forge-oauth-system"  # noqa: S105 - a header name
#: The ``jira:adminPage`` module of forge/manifest.yml whose page may read the site's config.
ADMIN_PAGE_KEY: Final = "config"
ADMIN_PAGE_TYPE: Final = "jira:adminPage"
#: The ``jira:globalPage`` module where a Jira user links their Discord account.
LINK_PAGE_KEY: Final = "link"
LINK_PAGE_TYPE: Final = "jira:globalPage"
LINK_BODY_LIMIT: Final = 8 * 1024
#: How long a token's first request is remembered: well past a FIT's life (Atlassian's example
#: token lives 25 s); bounded, so a flood of tokens cannot grow the gateway's memory.
TOKEN_USE_TTL: Final = 120.0
TOKEN_USE_ENTRIES: Final = 50_000
_EVENTS_PATH: Final = "/forge/events"


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgeCall:
    """What the guard established, handed to the handler."""

    invocation: Invocation
    tenant: str  # the installation's tenant key (see the module docstring)
    installation: Installation | None
    system_token: SealedToken | None
    token_digest: str = field(repr=False)
    body: bytes = field(default=b"", repr=False)
    now: float = 0.0


Handler = Callable[[web.Request, ForgeCall], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgeRoute:
    """One route: where, what body it takes, who handles it (every one needs a valid FIT)."""

    method: str
    path: str
    handler: Handler
    max_body: int = 0
    content_type: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgeOptions:
    """Tunables of the Forge routes (defaults suit production; tests shorten them)."""

    keys: ForgeKeyOptions = field(default_factory=ForgeKeyOptions)


@dataclass(kw_only=True, slots=True)
class ForgeState:
    """Per-app state: the key set and the installation reader."""

    keys: ForgeKeys
    installations: Installations
    # installation ARI → row (a migrated Connect site, or a Forge install the worker stored)
    by_installation: ReadCache[str, Installation]
    sealed_tokens: SealedTokens
    # jti → digest of the one request that token may carry
    token_uses: TtlCache[bytes]


FORGE_OPTIONS: Final = web.AppKey("forge_options", ForgeOptions)
FORGE_STATE: Final = web.AppKey("forge_state", ForgeState)


# --- setup --------------------------------------------------------------------------------


def setup_forge_routes(app: web.Application, options: ForgeOptions | None = None) -> None:
    """Register :data:`ROUTES` under the path of ``DFJ_PUBLIC_URL``.

    Without ``DFJ_FORGE_APP_ID`` the routes still exist and refuse every call (401): no token
    can name an audience we do not know.
    """
    if options is not None or FORGE_OPTIONS not in app:
        app[FORGE_OPTIONS] = options or ForgeOptions()
    base_path = urlsplit(app[SETTINGS].public_url).path.rstrip("/")
    for route in ROUTES:
        add_route(app, route.method, base_path + route.path, _endpoint(route))
    app.cleanup_ctx.append(_forge_context)


async def _forge_context(app: web.Application) -> AsyncIterator[None]:
    keys = ForgeKeys(
        app[SETTINGS].forge_jwks_url, clock=app[CLOCK], options=app[FORGE_OPTIONS].keys
    )
    app[FORGE_STATE] = ForgeState(
        keys=keys,
        installations=Installations(app[DATABASE]),
        by_installation=ReadCache(app[CLOCK], ttl=5.0, miss_ttl=1.0),
        sealed_tokens=SealedTokens(app[CLOCK]),
        token_uses=TtlCache(ttl=TOKEN_USE_TTL, max_entries=TOKEN_USE_ENTRIES, clock=app[CLOCK]),
    )
    yield
    await keys.close()


# --- the guard ----------------------------------------------------------------------------


def _endpoint(route: ForgeRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(
                request, max_body=route.max_body, content_type=route.content_type
            )
            call = await _verify(request, body)
            note(request, tenant=call.tenant)
            return await route.handler(request, call)
        except ForgeAuthError as exc:
            note(request, reason=exc.reason)
            return json_error(401, exc.reason)
        except _Reject as exc:
            note(request, reason=exc.reason)
            return json_error(exc.status, exc.reason)

    return endpoint


def _bearer(request: web.Request) -> str:
    headers = request.headers.getall("Authorization", [])
    if len(headers) != 1:
        raise ForgeAuthError("missing token" if not headers else "ambiguous token")
    scheme, _, token = headers[0].partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ForgeAuthError("missing token")
    return token.strip()


async def _verify(request: web.Request, body: bytes) -> ForgeCall:
    app = request.app
    settings = app[SETTINGS]
    state = app[FORGE_STATE]
    now = app[CLOCK].now()
    token = _bearer(request)
    header = read_header(token)
    if not settings.forge_app_id:
        raise ForgeAuthError("forge not configured")
    key = await state.keys.get(header.kid, app[HTTP])
    invocation = verify_fit(token, key, app_id=settings.forge_app_id, now=now)
    _bind_token(state, invocation, request, body)
    installation = await _installation(state, invocation.installation_id)
    tenant = installation.client_key if installation is not None else invocation.installation_id
    return ForgeCall(
        invocation=invocation,
        tenant=tenant,
        installation=installation,
        system_token=await _system_token(request, invocation, now),
        token_digest=hashlib.sha256(token.encode()).hexdigest(),
        body=body,
        now=now,
    )


def _bind_token(
    state: ForgeState, invocation: Invocation, request: web.Request, body: bytes
) -> None:
    """Refuse a token seen before with another request (see the module docstring)."""
    if invocation.token_id is None:
        return
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.rel_url.raw_path.encode() + b"\n" + body
    ).digest()[:16]
    seen = state.token_uses.get(invocation.token_id)
    if seen is not None and seen != digest:
        raise ForgeAuthError("token already used")
    if seen is None:
        state.token_uses.put(invocation.token_id, digest)


async def _installation(state: ForgeState, installation_id: str) -> Installation | None:
    try:
        return await state.by_installation.get(
            installation_id, lambda: state.installations.get_by_installation_id(installation_id)
        )
    except Exception as exc:  # any database failure is "try again later" to Forge
        _log.warning("installation lookup failed", error=type(exc).__name__)
        raise _Reject(503, "installations unavailable") from exc


async def _system_token(
    request: web.Request, invocation: Invocation, now: float
) -> SealedToken | None:
    raw = request.headers.get(SYSTEM_TOKEN_HEADER, "").strip()
    if not raw:
        return None
    if not well_formed(raw):
        note(request, reason="malformed system token")
        return None
    try:
        return await request.app[FORGE_STATE].sealed_tokens.get(
            request.app[CIPHER], invocation.installation_id, raw, now=now
        )
    except (ConfigError, TransientError) as exc:
        _log.warning("key store unavailable", error=type(exc).__name__)
        raise _Reject(503, "key store unavailable") from exc


# --- helpers for handlers -----------------------------------------------------------------


def _installation_data(call: ForgeCall) -> dict[str, Any]:
    """The installation's ids and, when Forge brought one, the sealed system token."""
    inv = call.invocation
    data: dict[str, Any] = {
        "installationId": inv.installation_id,
        "cloudId": inv.cloud_id,
        "apiBaseUrl": inv.api_base_url,
    }
    if inv.app_version is not None:
        data["appVersion"] = inv.app_version
    if inv.environment_type is not None:
        data["environmentType"] = inv.environment_type
    if inv.environment_id is not None:
        data["environmentId"] = inv.environment_id
    if call.system_token is not None:
        data["systemToken"] = {
            "sealed": call.system_token.sealed,
            "expiresAt": call.system_token.expires_at,
        }
    return data


async def _publish(
    request: web.Request,
    call: ForgeCall,
    *,
    event_type: str,
    event_id: str,
    data: Mapping[str, Any],
    session_key: str,
    subject: str | None = None,
) -> web.Response:
    envelope = events.jira_event(
        event_type=event_type,
        event_id=event_id,
        data=data,
        client_key=call.tenant,
        session_key=session_key,
        now=call.now,
        subject=subject,
    )
    try:
        await request.app[BUS].publish_envelope(JIRA_EVENTS, envelope)
    except Exception as exc:  # whatever the backend raised, Forge should try again later
        _log.warning("publish failed", event_id=event_id, error=type(exc).__name__)
        raise _Reject(503, "bus unavailable") from exc
    note(request, event_id=event_id)
    return web.Response(status=204)


# --- handlers -----------------------------------------------------------------------------


async def product_event(request: web.Request, call: ForgeCall) -> web.StreamResponse:
    """A Forge product event: the same ``jira.webhook`` event a Connect webhook becomes."""
    body = json_object(call.body)
    try:
        data = event_data(body, client_key=call.tenant, retry=retry_count(body))
    except BadPayload as exc:
        raise _Reject(400, str(exc)) from exc
    data["forge"] = _installation_data(call)
    issue_id: str = data["issue"]["id"]
    event_id = deterministic_id(
        "forge-event", call.invocation.installation_id, data["event"], body_digest(body)
    )
    return await _publish(
        request,
        call,
        event_type=events.JIRA_WEBHOOK,
        event_id=event_id,
        data=data,
        session_key=f"{call.tenant}:{issue_id}",
        subject=f"issue/{issue_id}",
    )


async def lifecycle(request: web.Request, call: ForgeCall) -> web.StreamResponse:
    """``installed`` / ``upgraded``: the installation's ids, for the jira-worker to store."""
    body = event_body(json_object(call.body))
    event_type = body.get("eventType")
    if event_type not in LIFECYCLE_EVENTS:
        raise _Reject(400, "eventType not handled")
    claimed = body.get("id")
    if claimed is not None and (
        not isinstance(claimed, str) or installation_ari(claimed) != call.invocation.installation_id
    ):
        raise _Reject(400, "installation id does not match the token")
    data = _installation_data(call)
    installer = body.get("installerAccountId") or body.get("upgraderAccountId")
    account = short_text(installer, 128)
    if account is not None:
        data["accountId"] = account
    kind = events.FORGE_INSTALLED if event_type == FORGE_INSTALLED else events.FORGE_UPGRADED
    event_id = deterministic_id(
        "forge-lifecycle", call.invocation.installation_id, str(event_type), body_digest(body)
    )
    return await _publish(
        request, call, event_type=kind, event_id=event_id, data=data, session_key=call.tenant
    )


async def scheduled(request: web.Request, call: ForgeCall) -> web.StreamResponse:
    """The hourly trigger: hand the fresh system token on; nothing else to do."""
    if call.system_token is None:
        note(request, reason="no system token")
        return web.Response(status=204)
    event_id = deterministic_id("forge-token", call.invocation.installation_id, call.token_digest)
    return await _publish(
        request,
        call,
        event_type=events.FORGE_TOKEN,
        event_id=event_id,
        data=_installation_data(call),
        session_key=call.tenant,
    )


async def uninstall(request: web.Request, call: ForgeCall) -> web.StreamResponse:
    """``preUninstall``: the site is going; its data is purged after the retention period."""
    event_id = deterministic_id("forge-uninstall", call.invocation.installation_id)
    data = {k: v for k, v in _installation_data(call).items() if k != "systemToken"}
    return await _publish(
        request,
        call,
        event_type=events.FORGE_UNINSTALLED,
        event_id=event_id,
        data=data,
        session_key=call.tenant,
    )


async def admin_config(request: web.Request, call: ForgeCall) -> web.StreamResponse:
    """What the admin page shows: the same content as the Connect configuration page."""
    inv = call.invocation
    if inv.module_type != ADMIN_PAGE_TYPE or inv.module_key != ADMIN_PAGE_KEY:
        raise _Reject(403, "only the admin page may read the configuration")
    if inv.principal is None:
        raise _Reject(403, "no Jira user")
    config = await site_config(request, call.tenant, now=call.now)
    installation = call.installation
    site_url = None if installation is None else installation.display_url or installation.base_url
    return web.json_response(
        config.to_json(site_url=site_url), headers={"Cache-Control": "no-store"}
    )


async def link(request: web.Request, call: ForgeCall) -> web.StreamResponse:
    """The link page: Discord's authorize URL for the signed-in Jira user (and the asker)."""
    inv = call.invocation
    if inv.module_type != LINK_PAGE_TYPE or inv.module_key != LINK_PAGE_KEY:
        raise _Reject(403, "only the link page may start a link")
    if inv.principal is None:
        raise _Reject(403, "no Jira user")
    body = json_object(call.body) if call.body else {}
    token = body.get("request")
    if token is not None and (not isinstance(token, str) or len(token) > 2048):
        raise _Reject(400, "request is malformed")
    try:
        url, state = await start_link(
            request.app,
            client_key=call.tenant,
            account_id=inv.principal,
            token=token or None,
            now=call.now,
        )
    except LinkRefused as exc:
        if exc.status == 503:
            raise _Reject(503, "linking is not set up on this server yet") from exc
        raise _Reject(exc.status, exc.reason) from exc
    note(request, state_id=state.state_id)
    return web.json_response(
        {"authorizeUrl": url},
        headers={"Cache-Control": "no-store"},
    )


# --- the route table ----------------------------------------------------------------------

ROUTES: Final[tuple[ForgeRoute, ...]] = (
    ForgeRoute(
        method="POST",
        path=_EVENTS_PATH,
        handler=product_event,
        max_body=EVENT_BODY_LIMIT,
        content_type=JSON,
    ),
    ForgeRoute(
        method="POST",
        path="/forge/lifecycle",
        handler=lifecycle,
        max_body=LIFECYCLE_BODY_LIMIT,
        content_type=JSON,
    ),
    ForgeRoute(
        method="POST", path="/forge/scheduled", handler=scheduled, max_body=LIFECYCLE_BODY_LIMIT
    ),
    ForgeRoute(
        method="POST", path="/forge/uninstall", handler=uninstall, max_body=LIFECYCLE_BODY_LIMIT
    ),
    ForgeRoute(method="GET", path="/forge/ui/config", handler=admin_config),
    ForgeRoute(method="POST", path="/forge/ui/link", handler=link, max_body=LINK_BODY_LIMIT),
)
