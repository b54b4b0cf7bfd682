"""The Jira (Atlassian Connect) routes, and the one table saying how each is authenticated.

Every route is one :class:`JiraRoute` in :data:`ROUTES`: method, path (relative to the app's
``baseUrl``), its :class:`Auth` kind, its body limit and content type, the installation states
it accepts, and its handler. :func:`setup_jira_routes` registers the table; the verifier a
request meets is chosen from the table entry, never by the handler, so a route cannot forget
to authenticate and cannot authenticate the wrong way.

Auth kinds (reference §1 to §3, DESIGN §4):

``SIGNED_INSTALL``
    ``installed`` / ``uninstalled``. ``Authorization: JWT`` RS256 token, key fetched by ``kid``
    from ``DFJ_ATLASSIAN_INSTALL_KEYS_URL`` (``install_keys.py``), ``aud`` = ``DFJ_PUBLIC_URL``,
    computed ``qsh``; then the body's ``clientKey`` must equal the token's ``iss`` and its
    ``baseUrl`` must pass ``DFJ_JIRA_SITE_ALLOWLIST`` (``sites.py``).
``HS256_QSH``
    Webhooks, ``enabled`` / ``disabled``. ``Authorization: JWT`` HS256 token signed with the
    installation's shared secret (looked up by ``iss``), computed ``qsh``.
``PAGE_QSH``
    Pages Jira loads in an iframe: HS256, token in ``?jwt=``, computed ``qsh`` (so a context
    token, whose qsh is ``context-qsh``, is refused).
``CONTEXT_QSH``
    JSON routes our own page scripts call with ``AP.context.getToken()``: HS256,
    ``Authorization: JWT``, and ``qsh`` must be exactly ``context-qsh`` (so a token lifted from
    an iframe URL, bound to that URL, is refused).
``NONE``
    The descriptor.

Order of checks for every request: body size (413) → content type (415) → token (401) →
JSON (400) → payload rules (400, 403 for a site outside the allow-list) → publish → 204. A
token travels in exactly one place; a second one anywhere (another header, a ``jwt`` query
parameter on a header route) is refused as ambiguous. Nothing is published unless every check
passed, and 204 is answered only after the bus said the message is durable; if the bus (or
the installations table, or the key store) cannot be reached the answer is 503, which Jira
retries — never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from dfj_common.bus import JIRA_EVENTS
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import ConfigError, TransientError
from dfj_common.qsh import CONTEXT_QSH, qsh
from dfj_common.secrets import SecretError
from dfj_common.storage import (
    Installation,
    InstallationKind,
    Installations,
    InstallationState,
)
from dfj_gateway import events
from dfj_gateway.app import BUS, CIPHER, CLOCK, DATABASE, HTTP, SETTINGS
from dfj_gateway.browser.pages import html_response
from dfj_gateway.jira import paths
from dfj_gateway.jira.config_page import config_document
from dfj_gateway.jira.connect_jwt import (
    Claims,
    JiraAuthError,
    read_unverified,
    verify_hs256,
    verify_rs256,
)
from dfj_gateway.jira.descriptor import build_descriptor
from dfj_gateway.jira.install_keys import InstallKeyOptions, InstallKeys
from dfj_gateway.jira.link_request import LinkRefused, link_page_response, start_link
from dfj_gateway.jira.payloads import (
    BadPayload,
    WebhookDelivery,
    lifecycle_body,
    webhook_data,
)
from dfj_gateway.jira.sites import site_allowed
from dfj_gateway.jira.tenants import SecretCache, SecretCacheOptions, seal_shared_secret
from dfj_gateway.lookups import ReadCache
from dfj_gateway.middleware import add_route, json_error, note
from dfj_gateway.reads import Rejected as _Reject
from dfj_gateway.reads import json_object, read_body
from dfj_gateway.site_config import site_config

__all__ = [
    "JIRA_OPTIONS",
    "JIRA_STATE",
    "ROUTES",
    "Auth",
    "JiraOptions",
    "JiraRoute",
    "JiraState",
    "Verified",
    "setup_jira_routes",
]

_log: Final = structlog.get_logger("dfj.gateway.jira")

LIFECYCLE_BODY_LIMIT: Final = 64 * 1024
WEBHOOK_BODY_LIMIT: Final = 1024 * 1024  # issue bodies with many custom fields run large
JSON: Final = "application/json"
_TOKEN_CHARS: Final = re.compile(r"^[A-Za-z0-9._-]+$")
_ORIGIN: Final = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
ALL_JS: Final = "https://connect-cdn.atl-paas.net/all.js"

ACTIVE: Final = frozenset({InstallationState.INSTALLED, InstallationState.ENABLED})
NOT_UNINSTALLED: Final = ACTIVE | {InstallationState.DISABLED}


class Auth(StrEnum):
    """How a route's caller proves who it is (see the module docstring)."""

    NONE = "none"
    SIGNED_INSTALL = "signed-install"
    HS256_QSH = "hs256-qsh"
    PAGE_QSH = "page-qsh"
    CONTEXT_QSH = "context-qsh"


@dataclass(frozen=True, kw_only=True, slots=True)
class Verified:
    """What the route's verifier established, handed to the handler."""

    claims: Claims | None = None
    installation: Installation | None = None
    kid: str | None = None
    token: str = field(default="", repr=False)
    body: bytes = field(default=b"", repr=False)
    now: float = 0.0

    @property
    def client_key(self) -> str:
        """The authenticated tenant (the token's ``iss``)."""
        if self.claims is None:
            raise RuntimeError("route has no authenticated tenant")
        return self.claims.issuer


Handler = Callable[[web.Request, Verified], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True, slots=True)
class JiraRoute:
    """One route: where, how it is authenticated, what body it takes, who handles it."""

    method: str
    path: str
    auth: Auth
    handler: Handler
    max_body: int = 0
    content_type: str | None = None
    states: frozenset[InstallationState] = ACTIVE
    # Jira posts `enabled` right after `installed` is answered, possibly before the jira-worker
    # has stored the installation; such a route waits briefly for it instead of refusing.
    await_install: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class JiraOptions:
    """Tunables of the Jira routes (defaults suit production; tests shorten time-outs)."""

    install_keys: InstallKeyOptions = field(default_factory=InstallKeyOptions)
    secret_cache: SecretCacheOptions = field(default_factory=SecretCacheOptions)


@dataclass(kw_only=True, slots=True)
class JiraState:
    """Per-app state of the Jira routes: key and secret caches, the installations reader."""

    keys: InstallKeys
    secrets: SecretCache
    installations: Installations
    base_path: str
    # Installation rows change on install, enable, disable and uninstall; a few seconds' delay
    # before a change is seen spares a database read on every webhook.
    installation_cache: ReadCache[str, Installation]


JIRA_OPTIONS: Final = web.AppKey("jira_options", JiraOptions)
JIRA_STATE: Final = web.AppKey("jira_state", JiraState)


# --- setup --------------------------------------------------------------------------------


def setup_jira_routes(app: web.Application, options: JiraOptions | None = None) -> None:
    """Register :data:`ROUTES` under the path of ``DFJ_PUBLIC_URL`` and the state they share.

    Options already on the app (``app[JIRA_OPTIONS]``, set before it starts) win over the
    defaults, so a test can shorten time-outs on the app ``create_app`` built.
    """
    if options is not None or JIRA_OPTIONS not in app:
        app[JIRA_OPTIONS] = options or JiraOptions()
    base_path = _base_path(app[SETTINGS].public_url)
    for route in ROUTES:
        add_route(app, route.method, base_path + route.path, _endpoint(route))
    app.cleanup_ctx.append(_jira_context)


def _base_path(public_url: str) -> str:
    return urlsplit(public_url).path.rstrip("/")


async def _jira_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    options = app[JIRA_OPTIONS]
    keys = InstallKeys(
        settings.atlassian_install_keys_url, clock=app[CLOCK], options=options.install_keys
    )
    app[JIRA_STATE] = JiraState(
        keys=keys,
        secrets=SecretCache(app[CLOCK], options.secret_cache),
        installations=Installations(app[DATABASE]),
        base_path=_base_path(settings.public_url),
        installation_cache=ReadCache(app[CLOCK], ttl=5.0, miss_ttl=1.0),
    )
    yield
    await keys.close()
    app[JIRA_STATE].secrets.clear()


# --- the guard every route passes ---------------------------------------------------------


def _endpoint(route: JiraRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(
                request, max_body=route.max_body, content_type=route.content_type
            )
            verified = await _verify(request, route, body)
            if verified.claims is not None:
                note(request, tenant=verified.client_key)
            return await route.handler(request, verified)
        except JiraAuthError as exc:
            note(request, reason=exc.reason)
            return json_error(401, exc.reason)
        except _Reject as exc:
            note(request, reason=exc.reason)
            return json_error(exc.status, exc.reason)

    return endpoint


def _token(request: web.Request, *, in_query: bool) -> str:
    """The one JWT of the request, from the carrier the route expects."""
    headers = request.headers.getall("Authorization", [])
    params = request.rel_url.query.getall("jwt", [])
    if len(headers) + len(params) > 1:
        raise JiraAuthError("ambiguous token")
    if in_query:
        raw = params[0] if params else ""
    else:
        scheme, _, raw = headers[0].partition(" ") if headers else ("", "", "")
        if headers and scheme.lower() != "jwt":
            raise JiraAuthError("missing token")
    if not raw:
        raise JiraAuthError("missing token")
    if not _TOKEN_CHARS.match(raw):
        raise JiraAuthError("malformed token")
    return raw


def _request_qsh(request: web.Request, state: JiraState) -> str:
    url = request.rel_url
    return qsh(request.method, url.raw_path, url.query.items(), state.base_path)


async def _verify(request: web.Request, route: JiraRoute, body: bytes) -> Verified:
    app = request.app
    now = app[CLOCK].now()
    if route.auth is Auth.NONE:
        return Verified(body=body, now=now)
    state = app[JIRA_STATE]
    token = _token(request, in_query=route.auth is Auth.PAGE_QSH)
    if route.auth is Auth.SIGNED_INSTALL:
        unverified = read_unverified(token, expect_alg="RS256")
        public_key = await state.keys.get(unverified.kid, app[HTTP])
        claims = verify_rs256(
            unverified,
            public_key,
            now=now,
            expected_qsh=_request_qsh(request, state),
            audience=app[SETTINGS].public_url,
        )
        return Verified(claims=claims, kid=unverified.kid, token=token, body=body, now=now)
    unverified = read_unverified(token, expect_alg="HS256")
    expected = CONTEXT_QSH if route.auth is Auth.CONTEXT_QSH else _request_qsh(request, state)

    async def attempt() -> tuple[Installation, Claims]:
        installation = await _installation(state, unverified.issuer)
        secret = await _shared_secret(request, state, installation)
        return installation, verify_hs256(unverified, secret, now=now, expected_qsh=expected)

    try:
        installation, claims = await attempt()
    except JiraAuthError:
        # The cached row may be stale: a re-install rotated the secret, or the install landed
        # a moment ago. Look once more, fresh from the database, before refusing.
        state.installation_cache.invalidate(unverified.issuer)
        installation, claims = await _attempt_while_installing(
            attempt, state, unverified.issuer, route.await_install
        )
    # The state is told only to a caller holding a valid token for this tenant.
    if installation.state not in route.states:
        raise JiraAuthError(f"installation {installation.state.value}")
    return Verified(claims=claims, installation=installation, token=token, body=body, now=now)


AWAIT_INSTALL_SECONDS: Final = 3.0
_AWAIT_INSTALL_STEP: Final = 0.1


async def _attempt_while_installing(
    attempt: Callable[[], Awaitable[tuple[Installation, Claims]]],
    state: JiraState,
    client_key: str,
    patience: float,
) -> tuple[Installation, Claims]:
    """``attempt()``; while the site is still unknown, retry for up to ``patience`` seconds.

    Only an *unknown installation* is worth waiting for (its installed event is on its way to
    the database); every other refusal is final at once. The site is unknown before any
    signature can be checked, so a made-up clientKey also waits: only routes that set
    ``await_install`` (``enabled``) do this, for at most ``patience`` seconds.
    """
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        try:
            return await attempt()
        except JiraAuthError as exc:
            if exc.reason != "unknown installation" or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(_AWAIT_INSTALL_STEP)
        state.installation_cache.invalidate(client_key)


async def _installation(state: JiraState, client_key: str) -> Installation:
    try:
        installation = await state.installation_cache.get(
            client_key, lambda: state.installations.get(client_key)
        )
    except Exception as exc:  # any failure of the database is "try again later" to Jira
        _log.warning("installation lookup failed", error=type(exc).__name__)
        raise _Reject(503, "installations unavailable") from exc
    if (
        installation is None
        or installation.kind is not InstallationKind.CONNECT
        or not installation.shared_secret_ciphertext
    ):
        raise JiraAuthError("unknown installation")
    return installation


async def _shared_secret(
    request: web.Request, state: JiraState, installation: Installation
) -> bytes:
    sealed = installation.shared_secret_ciphertext
    assert sealed is not None  # checked by _installation
    try:
        return await state.secrets.secret(request.app[CIPHER], installation.client_key, sealed)
    except SecretError as exc:
        _log.error("shared secret does not open", tenant=installation.client_key, why=exc.reason)
        raise JiraAuthError("installation secret unusable") from exc
    except (ConfigError, TransientError) as exc:
        _log.warning("key store unavailable", error=type(exc).__name__)
        raise _Reject(503, "key store unavailable") from exc


# --- helpers for handlers -----------------------------------------------------------------


async def _publish(request: web.Request, envelope: Envelope) -> web.Response:
    """Publish to ``jira-events``; 204 only once the bus holds it durably, else 503."""
    try:
        await request.app[BUS].publish_envelope(JIRA_EVENTS, envelope)
    except Exception as exc:  # whatever the backend raised, Jira should try again later
        _log.warning("publish failed", event_id=envelope.id, error=type(exc).__name__)
        note(request, reason="bus unavailable")
        return json_error(503, "bus unavailable")
    note(request, event_id=envelope.id)
    return web.Response(status=204)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


# --- handlers -----------------------------------------------------------------------------

SIGNED_LIFECYCLE: Final = frozenset({"installed", "uninstalled"})
_LIFECYCLE_TYPES: Final = {
    "installed": events.JIRA_INSTALLED,
    "uninstalled": events.JIRA_UNINSTALLED,
    "enabled": events.JIRA_ENABLED,
    "disabled": events.JIRA_DISABLED,
}


async def descriptor(request: web.Request, verified: Verified) -> web.Response:
    """The Connect descriptor, built from settings."""
    return web.json_response(
        build_descriptor(request.app[SETTINGS]), headers={"Cache-Control": "no-cache"}
    )


def lifecycle(event_type: str) -> Handler:
    """The handler of one lifecycle callback (``installed``, ``enabled``, …)."""

    async def handle(request: web.Request, verified: Verified) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        body = json_object(verified.body)
        if body.get("clientKey") != verified.client_key:
            raise JiraAuthError("clientKey does not match the token")
        try:
            fields = lifecycle_body(body, event_type=event_type)
        except BadPayload as exc:
            raise _Reject(400, str(exc)) from exc
        if fields.key != settings.app_key:
            raise _Reject(400, "key is not this app's key")
        signed = event_type in SIGNED_LIFECYCLE
        if signed and not site_allowed(fields.base_url, settings.jira_site_allowlist):
            raise _Reject(403, "site not allowed")
        data: dict[str, Any] = {
            "clientKey": fields.client_key,
            "eventType": event_type,
            "key": fields.key,
            "baseUrl": fields.base_url,
        }
        if fields.display_url is not None:
            data["displayUrl"] = fields.display_url
        if fields.oauth_client_id is not None:
            data["oauthClientId"] = fields.oauth_client_id
        if fields.shared_secret is not None:
            sealed = await _seal(request, fields.client_key, fields.shared_secret)
            data["sharedSecretSealed"] = base64.b64encode(sealed).decode("ascii")
        if signed and verified.claims is not None:
            data["signedInstall"] = {
                k: v
                for k, v in {
                    "kid": verified.kid,
                    "issuedAt": verified.claims.issued_at,
                    "accountId": verified.claims.account_id,
                }.items()
                if v is not None
            }
        event_id = deterministic_id(
            "jira-lifecycle",
            fields.client_key,
            event_type,
            _digest(verified.token.encode(), verified.body),
        )
        envelope = events.jira_event(
            event_type=_LIFECYCLE_TYPES[event_type],
            event_id=event_id,
            data=data,
            client_key=fields.client_key,
            session_key=fields.client_key,
            now=verified.now,
        )
        return await _publish(request, envelope)

    return handle


async def _seal(request: web.Request, client_key: str, secret: str) -> bytes:
    try:
        return await seal_shared_secret(request.app[CIPHER], client_key, secret)
    except (ConfigError, TransientError) as exc:
        _log.warning("key store unavailable", error=type(exc).__name__)
        raise _Reject(503, "key store unavailable") from exc


def webhook(event: str) -> Handler:
    """The handler of one webhook event (``jira:issue_created``, ``comment_deleted``, …)."""

    async def handle(request: web.Request, verified: Verified) -> web.StreamResponse:
        client_key = verified.client_key
        body = json_object(verified.body)
        try:
            delivery = WebhookDelivery.from_headers(request.headers)
            data = webhook_data(body, client_key=client_key, event=event, delivery=delivery)
        except BadPayload as exc:
            raise _Reject(400, str(exc)) from exc
        issue_id: str = data["issue"]["id"]
        if delivery.identifier is not None:
            # Same identifier on every retry of one delivery: the bus drops the repeats. The
            # event is part of the id in case one Jira change is delivered to two of our
            # webhooks under one identifier (not ruled out by Atlassian's docs).
            event_id = deterministic_id("jira-webhook", client_key, event, delivery.identifier)
        else:
            event_id = deterministic_id("jira-webhook-body", client_key, _digest(verified.body))
        envelope = events.jira_event(
            event_type=events.JIRA_WEBHOOK,
            event_id=event_id,
            data=data,
            client_key=client_key,
            session_key=f"{client_key}:{issue_id}",
            now=verified.now,
            subject=f"issue/{issue_id}",
        )
        return await _publish(request, envelope)

    return handle


def _frame_origin(installation: Installation | None) -> str:
    base_url = installation.base_url if installation is not None else None
    if base_url:
        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if _ORIGIN.match(origin):
            return origin
    return "https://*.atlassian.net"


async def config_page(request: web.Request, verified: Verified) -> web.Response:
    """The configuration page (see ``site_config``): bot install link and a connect code."""
    config = await site_config(request, verified.client_key, now=verified.now)
    nonce = secrets.token_urlsafe(16)
    csp = (
        "default-src 'none'; "
        f"script-src {ALL_JS}; "
        f"style-src 'nonce-{nonce}'; "
        "img-src 'self'; "
        "connect-src 'self'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        f"frame-ancestors {_frame_origin(verified.installation)}"
    )
    document = config_document(
        all_js=ALL_JS,
        install_url=config.install_url,
        code=config.code,
        connections=config.connections,
        style_nonce=nonce,
    )
    return html_response(document, csp=csp, framed=True)


async def link_page(request: web.Request, verified: Verified) -> web.Response:
    """The link page inside Jira (see ``link_request``): the Discord authorize button."""
    origin = _frame_origin(verified.installation)

    def page(message: str, status: int, url: str | None = None) -> web.Response:
        return link_page_response(
            authorize_url=url, message=message, frame_origin=origin, all_js=ALL_JS, status=status
        )

    claims = verified.claims
    assert claims is not None
    if claims.account_id is None:
        note(request, reason="no Jira user")
        return page("Sign in to Jira to link your Discord account.", 400)
    token = request.query.get("request") or request.query.get("ac.request") or ""
    try:
        url, state = await start_link(
            request.app,
            client_key=verified.client_key,
            account_id=claims.account_id,
            token=token,
            now=verified.now,
        )
    except LinkRefused as exc:
        note(request, reason=exc.reason)
        return page(exc.message, exc.status)
    note(request, state_id=state.state_id)
    return page(
        "Continue to Discord and authorize Discord for Jira; you come back here when it is done.",
        200,
        url,
    )


async def context(request: web.Request, verified: Verified) -> web.Response:
    """Who is calling from our page inside Jira: the verified clientKey and accountId."""
    claims = verified.claims
    assert claims is not None
    return web.json_response(
        {"clientKey": claims.issuer, "accountId": claims.account_id},
        headers={"Cache-Control": "no-store"},
    )


# --- the route table ----------------------------------------------------------------------

ROUTES: Final[tuple[JiraRoute, ...]] = (
    JiraRoute(method="GET", path=paths.DESCRIPTOR, auth=Auth.NONE, handler=descriptor),
    JiraRoute(
        method="POST",
        path=paths.LIFECYCLE["installed"],
        auth=Auth.SIGNED_INSTALL,
        handler=lifecycle("installed"),
        max_body=LIFECYCLE_BODY_LIMIT,
        content_type=JSON,
    ),
    JiraRoute(
        method="POST",
        path=paths.LIFECYCLE["uninstalled"],
        auth=Auth.SIGNED_INSTALL,
        handler=lifecycle("uninstalled"),
        max_body=LIFECYCLE_BODY_LIMIT,
        content_type=JSON,
    ),
    JiraRoute(
        method="POST",
        path=paths.LIFECYCLE["enabled"],
        auth=Auth.HS256_QSH,
        handler=lifecycle("enabled"),
        max_body=LIFECYCLE_BODY_LIMIT,
        content_type=JSON,
        states=NOT_UNINSTALLED,
        await_install=AWAIT_INSTALL_SECONDS,
    ),
    JiraRoute(
        method="POST",
        path=paths.LIFECYCLE["disabled"],
        auth=Auth.HS256_QSH,
        handler=lifecycle("disabled"),
        max_body=LIFECYCLE_BODY_LIMIT,
        content_type=JSON,
        states=NOT_UNINSTALLED,
    ),
    *(
        JiraRoute(
            method="POST",
            path=paths.webhook_path(slug),
            auth=Auth.HS256_QSH,
            handler=webhook(event),
            max_body=WEBHOOK_BODY_LIMIT,
            content_type=JSON,
        )
        for slug, event in paths.WEBHOOKS.items()
    ),
    JiraRoute(method="GET", path=paths.CONFIG_PAGE, auth=Auth.PAGE_QSH, handler=config_page),
    JiraRoute(method="GET", path=paths.LINK_PAGE, auth=Auth.PAGE_QSH, handler=link_page),
    JiraRoute(method="GET", path=paths.CONTEXT_API, auth=Auth.CONTEXT_QSH, handler=context),
)
