"""The Jira Cloud simulator: sites under one loopback HTTP server, spoken to like Jira.

Layout of the server (``sim.url`` is ``http://127.0.0.1:<port>``):

- ``{sim.url}/sites/{name}`` is a site's ``baseUrl``; its REST API is
  ``{baseUrl}/rest/api/3/…``. App JWTs hash the path *relative to the base URL*
  (``/rest/api/3/issue/10001``), exactly as on ``https://{site}.atlassian.net``.
- ``{sim.url}/oauth`` is the authorization server (the app's ``DFJ_ATLASSIAN_OAUTH_URL``), with
  the token endpoint at ``{sim.url}/oauth/oauth2/token``.
- ``{sim.url}/install-keys/{kid}`` is the signed-install key server (the app's
  ``DFJ_ATLASSIAN_INSTALL_KEYS_URL`` is :attr:`JiraSimulator.install_keys_url`): the PEM public
  key of every key the simulator has signed with, current or rotated out.
- ``{baseUrl}/plugins/servlet/ac/{appKey}/{moduleKey}`` frames an app page for the site's
  signed-in user (:mod:`~dfj_sandbox.jira_sim.servlet`).
- ``{sim.url}/ex/jira/{cloudId}/…`` is Atlassian's API gateway for Forge (a site's
  ``apiBaseUrl``): the same REST API, the same checks, authenticated only by Forge's bearer
  tokens; ``{sim.url}/graphql`` mints offline user tokens; ``{sim.url}/forge/.well-known/
  jwks.json`` serves the keys Forge Invocation Tokens are signed with
  (:mod:`~dfj_sandbox.jira_sim.forge`).

Towards the app, the simulator behaves like Jira: :meth:`JiraSimulator.install_app` reads the
descriptor and posts the signed lifecycle callbacks (:mod:`~dfj_sandbox.jira_sim.connect`);
from then on every change on the site is a signed webhook, delivered in order and retried
(:mod:`~dfj_sandbox.jira_sim.dispatch`), recorded in :attr:`JiraSimulator.webhook_deliveries`.

Every request to a site goes through the same steps, in Jira's order: rate limit (429/503 with
``Retry-After`` when the site is throttled), authentication (401), the OpenAPI check (404/405
for a path or method the spec does not have, 400 for parameters or a body it does not allow —
recorded in :attr:`JiraSimulator.spec_violations`), the operation's Connect scope (403), then
the handler. Every request, whatever its fate, is recorded in :attr:`JiraSimulator.calls` with
the spec's path template, so a test can say "one ``jql/match`` per event" with
:meth:`JiraSimulator.count` (the path is matched against the spec first, silently, so even a
throttled or unauthenticated call is recorded under its template).

The OpenAPI document is loaded at :meth:`JiraSimulator.start` unless one was given (tests share
one loaded :class:`OpenApiSpec` between simulators, since loading takes a few hundred ms). With
``validate_responses=True`` the simulator also checks its own answers against the response
schemas and records mismatches in :attr:`JiraSimulator.response_violations`.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
from aiohttp import web

from dfj_common.clock import Clock, SystemClock
from dfj_sandbox.forge_signing import Algorithm
from dfj_sandbox.forge_signing import InstallKeyPair as ForgeKey
from dfj_sandbox.jira_signing import InstallKeyPair
from dfj_sandbox.jira_sim import connect
from dfj_sandbox.jira_sim.auth import (
    AuthFailure,
    Caller,
    GrantStore,
    Via,
    authenticate,
    scope_allows,
)
from dfj_sandbox.jira_sim.connect import AppInstallation, LifecyclePolicy
from dfj_sandbox.jira_sim.delivery import ForgeDelivery, LifecycleDelivery, WebhookDelivery
from dfj_sandbox.jira_sim.dispatch import WebhookDispatcher, WebhookPolicy, wait_idle
from dfj_sandbox.jira_sim.forge import JWKS_PATH, ForgePlatform, RemoteAnswer
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation, ForgePolicy
from dfj_sandbox.jira_sim.forge_tokens import REPORT_SCOPE, OfflineTokenRequest
from dfj_sandbox.jira_sim.jql import ParseCache
from dfj_sandbox.jira_sim.model import User
from dfj_sandbox.jira_sim.openapi import (
    OpenApiSpec,
    Operation,
    RouteError,
    SpecViolation,
    locate_spec,
)
from dfj_sandbox.jira_sim.privacy import REPORT_ACCOUNTS_PATH, report_accounts
from dfj_sandbox.jira_sim.routes import ROUTES, Limits, Refusal, Reply, RestRequest
from dfj_sandbox.jira_sim.servlet import SERVLET_TEMPLATE, serve_issue, serve_page
from dfj_sandbox.jira_sim.site import DEFAULT_SCOPES, Site
from dfj_sandbox.jira_sim.tokens import exchange

__all__ = ["INSTALL_KEYS_PATH", "TOKEN_PATH", "Call", "JiraSimulator"]

TOKEN_PATH: Final = "/oauth/oauth2/token"  # noqa: S105 - a URL path, not a secret
INSTALL_KEYS_PATH: Final = "/install-keys"
_INSTALLING: Final = "installing"
_PAUSED: Final = "paused"
_SITE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FORM: Final = "application/x-www-form-urlencoded"
API_PREFIX: Final = "/ex/jira"
_UNAUTHORIZED: Final = {"code": 401, "message": "Unauthorized"}

AuthKind = Literal["jwt", "bearer", "none", "other"]


@dataclass(frozen=True, kw_only=True)
class Call:
    """One request the simulator answered.

    ``path`` is relative to the site's base URL (``/rest/api/3/issue/DEMO-1``); ``template`` is
    the spec's path template it matched (None if none did); ``account_id`` is who it acted as
    (None when authentication failed or was not reached).
    """

    method: str
    path: str
    template: str | None
    query: tuple[tuple[str, str], ...]
    site: str | None
    auth: AuthKind
    account_id: str | None
    status: int


@dataclass(kw_only=True)
class _Pending:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    site: str | None
    auth: AuthKind
    template: str | None = None
    account_id: str | None = None


def _auth_kind(header: str | None) -> AuthKind:
    if not header:
        return "none"
    if header.startswith("JWT "):
        return "jwt"
    if header.lower().startswith("bearer "):
        return "bearer"
    return "other"


def _jira_error(status: int, *messages: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(
        status=status, body={"errorMessages": list(messages), "errors": {}}, headers=headers or {}
    )


class JiraSimulator:
    """A Jira Cloud stand-in on loopback; ``async with JiraSimulator() as sim: ...``.

    ``install_key`` is the first signed-install key (generated when first needed if not
    given: RSA generation costs tens of milliseconds, and most simulators in a test run
    never install an app). ``webhook_policy`` and ``lifecycle_policy`` say how calls to the
    app are retried (sandbox-short by default; either may be replaced on the instance);
    ``forge_policy`` how Forge calls the remote (``sim.forge.policy``). The Forge half is
    :attr:`forge` (:class:`~dfj_sandbox.jira_sim.forge.ForgePlatform`); the ``*forge*``
    methods here delegate to it.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        spec: OpenApiSpec | str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: int = 900,
        validate_responses: bool = False,
        limits: Limits | None = None,
        install_key: InstallKeyPair | None = None,
        webhook_policy: WebhookPolicy | None = None,
        lifecycle_policy: LifecyclePolicy | None = None,
        forge_policy: ForgePolicy | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self._spec_source = spec
        self._spec: OpenApiSpec | None = spec if isinstance(spec, OpenApiSpec) else None
        self._environ = environ
        self._host = host
        self._port = port
        self.token_lifetime = token_lifetime
        self.validate_responses = validate_responses
        self.limits = limits or Limits()
        self._grants = GrantStore()
        self._jql = ParseCache()
        self._sites: dict[str, Site] = {}
        self._runner: web.AppRunner | None = None
        self._url = ""
        self.calls: list[Call] = []
        self.spec_violations: list[SpecViolation] = []
        self.response_violations: list[SpecViolation] = []
        self.unserved: list[str] = []
        self.token_requests: list[Call] = []
        self.webhook_policy = webhook_policy or WebhookPolicy()
        self.lifecycle_policy = lifecycle_policy or LifecyclePolicy()
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.lifecycle_deliveries: list[LifecycleDelivery] = []
        self.install_key_requests: Counter[str] = Counter()
        self._install_keys: dict[str, InstallKeyPair] = {}
        self._install_key: InstallKeyPair | None = None
        if install_key is not None:
            self._add_install_key(install_key)
        self._dispatchers: dict[str, WebhookDispatcher] = {}
        self._paused = False
        self._http: aiohttp.ClientSession | None = None
        self.forge = ForgePlatform(
            grants=self._grants,
            now=self.clock.now,
            server_url=lambda: self.url,
            http=self._session,
            policy=forge_policy,
        )

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def spec(self) -> OpenApiSpec:
        """The loaded OpenAPI document (RuntimeError before :meth:`start` loads it)."""
        if self._spec is None:
            raise RuntimeError("the simulator is not started; the OpenAPI spec is not loaded")
        return self._spec

    async def start(self) -> None:
        """Load the spec (FileNotFoundError if it cannot be found) and start listening.

        The spec comes from the constructor's ``spec``, else ``DFJ_JIRA_OPENAPI`` in ``environ``
        (the process environment unless one was given), else ``shared/specs/`` beside the
        repository.
        """
        if self._spec is None:
            source = self._spec_source
            explicit = source if isinstance(source, str | Path) else None
            environ = os.environ if self._environ is None else self._environ
            self._spec = OpenApiSpec.load(locate_spec(explicit, environ))
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_get(INSTALL_KEYS_PATH + "/{kid}", self._install_key_pem)
        app.router.add_get(JWKS_PATH, self.forge.serve_jwks)
        app.router.add_post("/graphql", self.forge.graphql)
        app.router.add_route("*", API_PREFIX + "/{cloud_id}/{tail:.*}", self._api_rest)
        # Before the REST catch-all, which would otherwise take the servlet's paths.
        app.router.add_get("/sites/{site}/plugins/servlet/ac/{app_key}/{module_key}", self._servlet)
        app.router.add_get("/sites/{site}/browse/{key}", self._browse)
        app.router.add_route("*", "/sites/{site}", self._rest)
        app.router.add_route("*", "/sites/{site}/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = web.TCPSite(self._runner, self._host, self._port)
        await listener.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        """Cancel webhook deliveries (undelivered ones become ``cancelled``), stop listening."""
        for name in list(self._dispatchers):
            await self._stop_dispatcher(name)
        await self.forge.close()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> JiraSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (RuntimeError before :meth:`start`)."""
        if not self._url:
            raise RuntimeError("the Jira simulator is not started")
        return self._url

    @property
    def oauth_url(self) -> str:
        """The authorization server's URL: the app's ``DFJ_ATLASSIAN_OAUTH_URL`` and ``aud``."""
        return self.url + "/oauth"

    @property
    def token_url(self) -> str:
        """The token endpoint, ``{oauth_url}/oauth2/token``."""
        return self.url + TOKEN_PATH

    @property
    def install_keys_url(self) -> str:
        """The key server's base URL, no trailing slash: ``DFJ_ATLASSIAN_INSTALL_KEYS_URL``."""
        return self.url + INSTALL_KEYS_PATH

    # --- signed-install keys --------------------------------------------------------------

    @property
    def install_key(self) -> InstallKeyPair:
        """The key ``installed``/``uninstalled`` are signed with now (served by kid)."""
        key = self._install_key
        if key is None:
            key = InstallKeyPair.generate()
            self._add_install_key(key)
        return key

    def rotate_install_key(self, key: InstallKeyPair | None = None) -> InstallKeyPair:
        """Sign with a new key (a fresh one unless given) from now on; the old stays served.

        Atlassian gives a rotated key a new ``kid``, which is why apps may cache keys by kid.
        """
        new = key or InstallKeyPair.generate()
        self._add_install_key(new)
        return new

    def _add_install_key(self, key: InstallKeyPair) -> None:
        if key.kid in self._install_keys and self._install_keys[key.kid] is not key:
            raise ValueError(f"an install key with kid {key.kid} exists")
        self._install_keys[key.kid] = key
        self._install_key = key

    async def _install_key_pem(self, request: web.Request) -> web.StreamResponse:
        kid = request.match_info["kid"]
        self.install_key_requests[kid] += 1
        key = self._install_keys.get(kid)
        if key is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=key.public_pem, content_type="text/plain")

    # --- the app: install, uninstall, webhooks --------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the Jira simulator is not started")
        return self._http

    async def install_app(
        self, site: Site, descriptor_url: str, *, new_secret: bool = False
    ) -> AppInstallation:
        """Install (or re-install) the app on ``site`` from its descriptor, as Jira does.

        See :mod:`~dfj_sandbox.jira_sim.connect` for the flow and what is refused
        (:class:`~dfj_sandbox.jira_sim.connect.InstallRefused`). ``new_secret`` hands the app
        a fresh shared secret. Webhooks of the site are held until the install is over, so
        none overtakes ``installed`` or ``enabled``; they start with the first install.
        """
        http = self._session()
        dispatcher = self._dispatchers.get(site.name)
        if dispatcher is None:
            dispatcher = self._start_dispatcher(site)
        dispatcher.hold(_INSTALLING)
        try:
            return await connect.install_app(
                site,
                descriptor_url,
                http=http,
                key=self.install_key,
                policy=self.lifecycle_policy,
                records=self.lifecycle_deliveries,
                new_secret=new_secret,
            )
        finally:
            dispatcher.release(_INSTALLING)
            if site.app is None:
                await self._stop_dispatcher(site.name)

    async def uninstall_app(self, site: Site) -> LifecycleDelivery | None:
        """Stop the site's webhooks (queued ones become ``cancelled``), then post
        ``uninstalled``; the record of that callback, or None if the app has none.

        Call :meth:`webhooks_idle` first to have queued webhooks delivered. LookupError if the
        app is not installed on ``site``.
        """
        if site.app is None:
            raise LookupError(f"the app is not installed on {site.name}")
        await self._stop_dispatcher(site.name)
        return await connect.uninstall_app(
            site,
            http=self._session(),
            key=self.install_key,
            policy=self.lifecycle_policy,
            records=self.lifecycle_deliveries,
        )

    def _start_dispatcher(self, site: Site) -> WebhookDispatcher:
        dispatcher = WebhookDispatcher(
            site,
            http=self._session(),
            policy=lambda: self.webhook_policy,
            records=lambda: self.webhook_deliveries,
        )
        if self._paused:
            dispatcher.hold(_PAUSED)
        dispatcher.start()
        self._dispatchers[site.name] = dispatcher
        return dispatcher

    async def _stop_dispatcher(self, name: str) -> None:
        dispatcher = self._dispatchers.pop(name, None)
        if dispatcher is not None:
            await dispatcher.close()

    def pause_webhooks(self) -> None:
        """Send no webhook (changes still queue) until :meth:`resume_webhooks`."""
        self._paused = True
        for dispatcher in self._dispatchers.values():
            dispatcher.hold(_PAUSED)

    def resume_webhooks(self) -> None:
        """Deliver again, starting with what queued while paused."""
        self._paused = False
        for dispatcher in self._dispatchers.values():
            dispatcher.release(_PAUSED)

    async def webhooks_idle(self, timeout: float = 10.0) -> None:
        """Wait until no webhook is queued or in flight on any site.

        TimeoutError after ``timeout`` seconds — e.g. while :meth:`pause_webhooks` holds
        deliveries back, or a retried delivery is still within its budget.
        """
        await wait_idle(lambda: list(self._dispatchers.values()), timeout)

    def webhooks_for(self, site: Site | str | None = None) -> list[WebhookDelivery]:
        """The recorded webhook deliveries, of one site (by name or object) or of all."""
        name = site.name if isinstance(site, Site) else site
        return [d for d in self.webhook_deliveries if name is None or d.site == name]

    # --- the app as a Forge app -----------------------------------------------------------

    @property
    def forge_jwks_url(self) -> str:
        """Where the Forge signing keys are served (the gateway's JWKS URL)."""
        return self.url + JWKS_PATH

    @property
    def forge_key(self) -> ForgeKey:
        """The key Forge Invocation Tokens are signed with now."""
        return self.forge.key

    def rotate_forge_key(self, *, keep_old: bool = True) -> ForgeKey:
        """Sign FITs with a new key (new ``kid``); old keys stay served if ``keep_old``."""
        return self.forge.rotate_key(keep_old=keep_old)

    def forge_token(
        self,
        installation: ForgeInstallation,
        *,
        module_key: str,
        module_type: str = "core:endpoint",
        claims_override: Mapping[str, Any] | None = None,
        headers_override: Mapping[str, Any] | None = None,
        key: ForgeKey | None = None,
        algorithm: Algorithm = "RS256",
    ) -> str:
        """A FIT for ``installation`` (to build the tokens a verifier must refuse).

        See :func:`dfj_sandbox.forge_signing.sign_fit`: ``claims_override`` replaces top-level
        claims (None removes one), ``headers_override`` header fields, ``key`` signs with
        another key (one the JWKS does not list: an unknown ``kid``), ``algorithm`` HS256
        (keyed with the public key) or ``none``.
        """
        return self.forge.sign(
            installation,
            module_key=module_key,
            module_type=module_type,
            claims_override=claims_override,
            headers_override=headers_override,
            key=key,
            algorithm=algorithm,
        )

    async def install_forge_app(
        self,
        site: Site,
        manifest_path: str | Path,
        *,
        remote_base_url: str,
        app_id: str | None = None,
        installer: str | None = None,
    ) -> ForgeInstallation:
        """Install the app on ``site`` through Forge, from its ``manifest.yml``.

        ``remote_base_url`` is the remote's real base URL (the file's is a placeholder);
        ``app_id`` overrides ``app.id``; ``installer`` (default: the signed-in user) is the
        ``installerAccountId``. Posts ``avi:forge:installed:app``; from then on the site's
        changes are trigger calls. A manifest Forge would not take is a
        :class:`~dfj_sandbox.jira_sim.forge_manifest.ManifestRefused` (an InstallRefused).
        """
        return await self.forge.install(
            site, manifest_path, remote_base_url=remote_base_url, app_id=app_id, installer=installer
        )

    async def migrate_to_forge(
        self,
        site: Site,
        manifest_path: str | Path,
        *,
        remote_base_url: str,
        app_id: str | None = None,
        installer: str | None = None,
    ) -> ForgeInstallation:
        """Move ``site``'s Connect installation to Forge ("Connect on Forge").

        The manifest's ``app.connect.key`` must be the Connect app's key (InstallRefused
        otherwise, and without the app installed); the Connect webhooks stop, Forge's
        triggers take over, and the reserved ``connect_client_key_…`` app property answers
        the Connect clientKey.
        """

        async def adopt() -> None:
            await self._stop_dispatcher(site.name)

        return await self.forge.install(
            site,
            manifest_path,
            remote_base_url=remote_base_url,
            app_id=app_id,
            installer=installer,
            adopt=adopt,
        )

    async def upgrade_forge_app(
        self, installation: ForgeInstallation, *, upgrader: str | None = None
    ) -> list[ForgeDelivery]:
        """Deploy a new major version: ``avi:forge:upgraded:app`` to its triggers."""
        return await self.forge.upgrade(installation, upgrader=upgrader)

    async def run_scheduled_trigger(
        self, installation: ForgeInstallation, key: str | None = None
    ) -> ForgeDelivery:
        """Fire the ``scheduledTrigger`` ``key`` (default: the only one) once."""
        return await self.forge.run_scheduled(installation, key)

    async def uninstall_forge_app(self, installation: ForgeInstallation) -> list[ForgeDelivery]:
        """``preUninstall``, then no more events and every token of it revoked."""
        return await self.forge.uninstall(installation)

    async def invoke_remote(
        self,
        installation: ForgeInstallation,
        user: User | str,
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        module_key: str | None = None,
    ) -> RemoteAnswer:
        """The admin page's ``invokeRemote`` for ``user``: status and decoded JSON."""
        return await self.forge.invoke_remote(
            installation, user, path, method=method, body=body, module_key=module_key
        )

    def expire_system_tokens(self, installation: ForgeInstallation) -> int:
        """End every Forge token of ``installation`` now (system and user tokens)."""
        return self.forge.expire_tokens(installation)

    @property
    def forge_deliveries(self) -> list[ForgeDelivery]:
        """Every Forge call to a remote (events, lifecycle, scheduled, preUninstall)."""
        return self.forge.deliveries

    @property
    def offline_token_requests(self) -> list[OfflineTokenRequest]:
        """Every ``offlineUserAuthToken`` request, minted or refused."""
        return self.forge.offline_token_requests

    async def forge_idle(self, timeout: float = 10.0) -> None:
        """Wait until no Forge event is queued or in flight (TimeoutError after ``timeout``)."""
        await self.forge.idle(timeout)

    # --- sites ----------------------------------------------------------------------------

    def add_site(
        self,
        name: str | None = None,
        *,
        client_key: str | None = None,
        shared_secret: str | None = None,
        app_key: str = "discord-for-jira",
        oauth_client_id: str | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        with_defaults: bool = True,
    ) -> Site:
        """A new site at ``{url}/sites/{name}`` that knows the app's credentials.

        The app can call the site's REST API at once (its clientKey, shared secret and OAuth
        client id are set); :meth:`install_app` runs Jira's install flow against the app
        itself, after which the site sends webhooks.
        """
        name = name or f"site{len(self._sites) + 1}"
        if not _SITE_NAME.match(name):
            raise ValueError("a site name is lower-case letters, digits and dashes")
        if name in self._sites:
            raise ValueError(f"site {name} exists")
        site = Site(
            name=name,
            client_key=client_key or str(uuid.uuid4()),
            shared_secret=shared_secret or secrets.token_urlsafe(32),
            app_key=app_key,
            oauth_client_id=oauth_client_id or uuid.uuid4().hex,
            scopes=scopes,
            clock=self.clock,
            server_url=lambda: self.url,
            with_defaults=with_defaults,
        )
        self._sites[name] = site
        return site

    def site(self, name_or_client_key: str) -> Site:
        """The site with this name or client key (KeyError if none)."""
        found = self._sites.get(name_or_client_key)
        if found is not None:
            return found
        for site in self._sites.values():
            if site.client_key == name_or_client_key:
                return site
        raise KeyError(name_or_client_key)

    @property
    def sites(self) -> Mapping[str, Site]:
        """Every site, by name."""
        return dict(self._sites)

    # --- records --------------------------------------------------------------------------

    def count(
        self, method: str, template: str, *, site: str | None = None, status: int | None = None
    ) -> int:
        """How many recorded calls used ``method`` on the spec path ``template``."""
        return sum(
            1
            for call in self.calls
            if call.method == method.upper()
            and call.template == template
            and (site is None or call.site == site)
            and (status is None or call.status == status)
        )

    def reset_records(self) -> None:
        """Forget recorded calls, violations and token requests (the sites stay)."""
        self.calls.clear()
        self.spec_violations.clear()
        self.response_violations.clear()
        self.unserved.clear()
        self.token_requests.clear()
        self.webhook_deliveries.clear()
        self.lifecycle_deliveries.clear()
        self.install_key_requests.clear()
        self.forge.deliveries.clear()
        self.forge.offline_token_requests.clear()

    def _record(self, pending: _Pending, status: int) -> None:
        self.calls.append(
            Call(
                method=pending.method,
                path=pending.path,
                template=pending.template,
                query=pending.query,
                site=pending.site,
                auth=pending.auth,
                account_id=pending.account_id,
                status=status,
            )
        )

    # --- the token endpoint ---------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        pending = _Pending(
            method="POST",
            path=TOKEN_PATH,
            query=tuple(request.rel_url.query.items()),
            site=None,
            auth="none",
            template=TOKEN_PATH,
        )
        if request.content_type != _FORM:
            body: Mapping[str, Any] = {
                "error": "invalid_request",
                "error_description": f"The token request must be {_FORM}.",
            }
            status = 400
        else:
            form = await request.post()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            answer = exchange(
                fields,
                sites=self._sites.values(),
                audience=self.oauth_url,
                now=self.clock.now(),
                expires_in=self.token_lifetime,
                grants=self._grants,
            )
            body, status = answer.body, answer.status
            if answer.client_key is not None:
                pending.site = self.site(answer.client_key).name
            pending.account_id = answer.account_id if status == 200 else None
        self._record(pending, status)
        self.token_requests.append(self.calls[-1])
        return web.json_response(
            dict(body), status=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    # --- the page servlet -----------------------------------------------------------------

    async def _browse(self, request: web.Request) -> web.StreamResponse:
        site = self._sites.get(request.match_info["site"])
        if site is None:
            return web.Response(status=404, text="Site temporarily unavailable")
        return serve_issue(site, request.match_info["key"])

    async def _servlet(self, request: web.Request) -> web.StreamResponse:
        site = self._sites.get(request.match_info["site"])
        pending = _Pending(
            method="GET",
            path=request.path if site is None else request.path[len(site.base_path) :],
            query=tuple(request.rel_url.query.items()),
            site=None if site is None else site.name,
            auth="none",
            template=SERVLET_TEMPLATE,
        )
        if site is None:
            self._record(pending, 404)
            return web.Response(status=404, text="Site temporarily unavailable")
        pending.account_id = site.signed_in
        response = serve_page(
            site,
            request.match_info["app_key"],
            request.match_info["module_key"],
            {name: value for name, value in request.rel_url.query.items()},
        )
        self._record(pending, response.status)
        return response

    # --- REST -----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        query = tuple(request.rel_url.query.items())
        site = self._sites.get(request.match_info["site"])
        if site is None:
            pending = _Pending(
                method=request.method,
                path=request.path,
                query=query,
                site=None,
                auth=_auth_kind(header),
            )
            return self._send(pending, _jira_error(404, "Site temporarily unavailable"))
        raw_path = request.rel_url.raw_path[len(site.base_path) :] or "/"
        path = request.path[len(site.base_path) :] or "/"
        pending = _Pending(
            method=request.method, path=path, query=query, site=site.name, auth=_auth_kind(header)
        )
        body = await request.read()
        reply = self._serve(site, pending, request, raw_path, body)
        return self._send(pending, reply)

    async def _api_rest(self, request: web.Request) -> web.StreamResponse:
        """``/ex/jira/{cloudId}/…``: a site's REST API behind Atlassian's API gateway."""
        header = request.headers.get("Authorization")
        query = tuple(request.rel_url.query.items())
        cloud_id = request.match_info["cloud_id"]
        site = next((s for s in self._sites.values() if s.cloud_id == cloud_id), None)
        prefix = f"{API_PREFIX}/{cloud_id}"
        pending = _Pending(
            method=request.method,
            path=request.path[len(prefix) :] or "/",
            query=query,
            site=None if site is None else site.name,
            auth=_auth_kind(header),
        )
        if site is None:
            return self._send(
                pending, Reply(status=404, body={"code": 404, "message": "Not Found"})
            )
        raw_path = request.rel_url.raw_path[len(prefix) :] or "/"
        body = await request.read()
        return self._send(pending, self._serve(site, pending, request, raw_path, body, via="api"))

    def _serve(
        self,
        site: Site,
        pending: _Pending,
        request: web.Request,
        raw_path: str,
        body: bytes,
        *,
        via: Via = "site",
    ) -> Reply:
        if pending.path == REPORT_ACCOUNTS_PATH:
            return self._report_accounts(site, pending, request, raw_path, body, via=via)
        spec = self.spec
        operation: Operation | None = None
        path_params: Mapping[str, str] = {}
        route_error: RouteError | None = None
        try:
            operation, path_params = spec.match(request.method, pending.path)
            pending.template = operation.template
        except RouteError as missing:
            route_error = missing
        caller = self._gate(site, pending, request, raw_path, via)
        if isinstance(caller, Reply):
            return caller
        pending.account_id = caller.user.account_id
        if operation is None:
            message = route_error.message if route_error else "no operation"
            self._violation(pending, None, message)
            status = route_error.status if route_error else 404
            return _jira_error(status, message)
        return self._operate(
            site,
            pending,
            operation=operation,
            path_params=path_params,
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            caller=caller,
        )

    def _report_accounts(
        self,
        site: Site,
        pending: _Pending,
        request: web.Request,
        raw_path: str,
        body: bytes,
        *,
        via: Via,
    ) -> Reply:
        """The Personal Data Reporting API (not in the REST spec; see ``privacy``).

        Through the API gateway the app needs ``report:personal-data`` in its manifest.
        """
        pending.template = REPORT_ACCOUNTS_PATH
        if request.method != "POST":
            return _jira_error(405, "Use POST.")
        caller = self._gate(site, pending, request, raw_path, via)
        if isinstance(caller, Reply):
            return caller
        if via == "api" and caller.kind == "app" and REPORT_SCOPE not in caller.scopes:
            return _jira_error(403, "The app needs the report:personal-data scope.")
        return report_accounts(site.reporting, kind=caller.kind, body=body)

    def _gate(
        self, site: Site, pending: _Pending, request: web.Request, raw_path: str, via: Via
    ) -> Caller | Reply:
        """The site's rate limit, then the caller; the refusal when either says no."""
        rejection = site.limiter.check()
        if rejection is not None:
            return _jira_error(
                rejection.status, "Rate limit exceeded.", headers=rejection.headers()
            )
        try:
            return authenticate(
                site,
                header=request.headers.get("Authorization"),
                method=request.method,
                raw_path=raw_path,
                query=pending.query,
                now=self.clock.now(),
                grants=self._grants,
                via=via,
            )
        except AuthFailure as failure:
            if via == "api":  # the gateway's answer, which says no more
                return Reply(status=401, body=dict(_UNAUTHORIZED))
            return _jira_error(401, failure.message)

    def _operate(
        self,
        site: Site,
        pending: _Pending,
        *,
        operation: Operation,
        path_params: Mapping[str, str],
        body: bytes,
        content_type: str,
        caller: Caller,
    ) -> Reply:
        spec = self.spec
        valid, problems = spec.check_request(
            operation, pending.query, path_params, body, content_type
        )
        if problems:
            self._violation(pending, operation, "; ".join(problems))
            status = 415 if any(p.startswith("Content-Type") for p in problems) else 400
            return _jira_error(status, *problems)
        if not scope_allows(caller.scopes, operation.connect_scope):
            return _jira_error(
                403,
                f"The app is not allowed to call {operation.operation_id}: it needs the"
                f" {operation.connect_scope} scope.",
            )
        handler = ROUTES.get((operation.method, operation.template))
        if handler is None:
            self.unserved.append(f"{operation.method} {operation.template}")
            return _jira_error(404, f"The Jira simulator does not serve {operation.operation_id}.")
        rest = RestRequest(
            site=site,
            caller=caller,
            params=valid.params,
            path_params=valid.path_params,
            body=valid.body,
            jql=self._jql,
            limits=self.limits,
        )
        try:
            with self.forge.acting(site, caller):
                reply = handler(rest)
        except Refusal as refusal:
            reply = refusal.reply
        if self.validate_responses:
            for problem in spec.check_response(operation, reply.status, reply.body):
                self.response_violations.append(
                    SpecViolation(
                        method=operation.method,
                        path=pending.path,
                        template=operation.template,
                        operation_id=operation.operation_id,
                        message=f"{reply.status}: {problem}",
                    )
                )
        return reply

    def _violation(self, pending: _Pending, operation: Operation | None, message: str) -> None:
        self.spec_violations.append(
            SpecViolation(
                method=pending.method,
                path=pending.path,
                template=None if operation is None else operation.template,
                operation_id=None if operation is None else operation.operation_id,
                message=message,
            )
        )

    def _send(self, pending: _Pending, reply: Reply) -> web.StreamResponse:
        self._record(pending, reply.status)
        headers = dict(reply.headers)
        if pending.account_id is not None:
            headers["X-AACCOUNTID"] = pending.account_id
        if reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        return web.json_response(reply.body, status=reply.status, headers=headers)
