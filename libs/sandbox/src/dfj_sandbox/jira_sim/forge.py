"""Installing and driving the app as a Forge app (Forge Remote), the way Atlassian's platform does.

:class:`ForgePlatform` is the Forge half of :class:`~dfj_sandbox.jira_sim.server.JiraSimulator`
(which delegates its ``*forge*`` methods here and serves its HTTP routes):

- **Keys.** RSA keys with a ``kid``; the public ones are served as a JWK set at
  ``{sim.url}/forge/.well-known/jwks.json`` (the stand-in for
  ``https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json``). :meth:`rotate_key`
  signs with a new key from then on, still serving the old one unless told not to.
- **Install** (:meth:`install`): the manifest is read and checked first
  (:mod:`~dfj_sandbox.jira_sim.forge_manifest`; a broken one is refused before anything is
  sent), then ``avi:forge:installed:app`` is posted to the endpoint of every trigger listing
  it, retried like a trigger. As on Forge the install stands whatever the remote answers —
  the record in :attr:`deliveries` says how it went. Product events are held until then, so
  none overtakes ``installed``; from then on every change on the site is a trigger call
  (:mod:`~dfj_sandbox.jira_sim.forge_dispatch`).
- **Migration** (:meth:`install` with ``adopt``): a site running the Connect app moves to
  Forge when the manifest's ``app.connect.key`` is the Connect key; its Connect webhooks stop,
  the Forge install proceeds as above, and the synthetic app property
  ``connect_client_key_…`` answers the Connect ``clientKey`` (forge.md §4).
- :meth:`upgrade` (``avi:forge:upgraded:app``, a new major version), :meth:`run_scheduled`
  (one firing of a ``scheduledTrigger``), :meth:`uninstall` (``preUninstall`` — one attempt,
  55 s, its outcome does not stop the uninstall — then events stop and every token of the
  installation is revoked) and :meth:`invoke_remote` (Custom UI's ``invokeRemote``: a UI FIT
  with ``context`` and ``principal``, 25 s, no retries).
- **Tokens**: :class:`~dfj_sandbox.jira_sim.forge_tokens.ForgeTokens`; ``POST
  {sim.url}/graphql`` mints offline user tokens (:meth:`graphql`).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from dfj_sandbox.forge_signing import (
    Algorithm,
    InstallKeyPair,
    UiContext,
    jwks,
    sign_fit,
)
from dfj_sandbox.jira_sim.auth import Caller, GrantStore
from dfj_sandbox.jira_sim.connect import InstallRefused
from dfj_sandbox.jira_sim.delivery import ForgeDelivery
from dfj_sandbox.jira_sim.dispatch import wait_idle
from dfj_sandbox.jira_sim.forge_dispatch import ForgeDispatcher, ForgeInvoker
from dfj_sandbox.jira_sim.forge_events import context_body, installed_body, upgraded_body
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation, ForgePolicy
from dfj_sandbox.jira_sim.forge_manifest import load_manifest
from dfj_sandbox.jira_sim.forge_tokens import ForgeTokens, OfflineTokenRequest
from dfj_sandbox.jira_sim.model import User
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "ADMIN_PAGE_MODULE",
    "CONNECT_CLIENT_KEY_PROPERTY",
    "JWKS_PATH",
    "ForgePlatform",
    "RemoteAnswer",
]

JWKS_PATH: Final = "/forge/.well-known/jwks.json"
ADMIN_PAGE_MODULE: Final = "jira:adminPage"
CONNECT_CLIENT_KEY_PROPERTY: Final = "connect_client_key_019cdff3-8bfb-71fe-9628-875b700aebb8"
"""The reserved, read-only app property holding an adopted installation's Connect clientKey."""
_INSTALLING: Final = "installing"


@dataclass(frozen=True, kw_only=True)
class RemoteAnswer:
    """What the remote answered an ``invokeRemote`` (``status`` None: no answer, ``error``)."""

    status: int | None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


class ForgePlatform:
    """Forge's side of the simulator (see the module docstring); owned by the simulator."""

    def __init__(
        self,
        *,
        grants: GrantStore,
        now: Callable[[], float],
        server_url: Callable[[], str],
        http: Callable[[], aiohttp.ClientSession],
        policy: ForgePolicy | None = None,
    ) -> None:
        self.policy = policy or ForgePolicy()
        self.tokens = ForgeTokens(grants)
        self.deliveries: list[ForgeDelivery] = []
        self.installations: list[ForgeInstallation] = []
        self.jwks_requests = 0
        self._now = now
        self._server_url = server_url
        self._http = http
        self._keys: dict[str, InstallKeyPair] = {}
        self._key: InstallKeyPair | None = None
        self._dispatchers: dict[str, ForgeDispatcher] = {}
        self._acting: set[str] = set()
        self.invoker = ForgeInvoker(
            http=http, key=lambda: self.key, tokens=self.tokens, policy=lambda: self.policy, now=now
        )

    # --- keys -----------------------------------------------------------------------------

    @property
    def key(self) -> InstallKeyPair:
        """The key FITs are signed with now (made when first needed: RSA costs time)."""
        if self._key is None:
            self._key = InstallKeyPair.generate()
            self._keys[self._key.kid] = self._key
        return self._key

    @property
    def served_keys(self) -> list[InstallKeyPair]:
        """The keys the JWKS lists (the current one and those kept on rotation)."""
        _ = self.key
        return list(self._keys.values())

    def rotate_key(self, *, keep_old: bool = True) -> InstallKeyPair:
        """Sign with a new key from now on; the old ones stay in the JWKS if ``keep_old``."""
        new = InstallKeyPair.generate()
        if not keep_old:
            self._keys.clear()
        self._keys[new.kid] = new
        self._key = new
        return new

    def sign(
        self,
        installation: ForgeInstallation,
        *,
        module_key: str,
        module_type: str = "core:endpoint",
        ui: UiContext | None = None,
        claims_override: Mapping[str, Any] | None = None,
        headers_override: Mapping[str, Any] | None = None,
        key: InstallKeyPair | None = None,
        algorithm: Algorithm = "RS256",
    ) -> str:
        """A FIT for ``installation`` as the platform would sign it, with any change a test
        needs (see :func:`~dfj_sandbox.forge_signing.sign_fit`)."""
        return sign_fit(
            key or self.key,
            installation.subject,
            module_key=module_key,
            module_type=module_type,
            ui=ui,
            now=self._now(),
            claims_override=claims_override,
            headers_override=headers_override,
            algorithm=algorithm,
        )

    async def serve_jwks(self, _request: web.Request) -> web.StreamResponse:
        """``GET /forge/.well-known/jwks.json``."""
        self.jwks_requests += 1
        return web.json_response(
            jwks(self.served_keys), headers={"Cache-Control": "public, max-age=300"}
        )

    # --- tokens ---------------------------------------------------------------------------

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        """``POST /graphql``: the ``offlineUserAuthToken`` mutation."""
        answer = self.tokens.answer_graphql(
            authorization=request.headers.get("Authorization"),
            body=await request.read(),
            installations=self.installations,
            now=self._now(),
        )
        return web.json_response(dict(answer.body), status=answer.status)

    @property
    def offline_token_requests(self) -> list[OfflineTokenRequest]:
        """Every ``offlineUserAuthToken`` request, minted or refused."""
        return self.tokens.offline_requests

    def expire_tokens(self, installation: ForgeInstallation) -> int:
        """End every token of ``installation`` now; the next invocation brings a new one."""
        return self.tokens.expire(installation, now=self._now())

    @contextlib.contextmanager
    def acting(self, site: Site, caller: Caller) -> Iterator[None]:
        """While a REST handler runs: whether its changes are the app's own (system token)."""
        own = caller.kind == "app" and caller.via == "api"
        if own:
            self._acting.add(site.name)
        try:
            yield
        finally:
            self._acting.discard(site.name)

    # --- installing -----------------------------------------------------------------------

    async def install(
        self,
        site: Site,
        manifest_path: str | Path,
        *,
        remote_base_url: str,
        app_id: str | None = None,
        installer: str | None = None,
        adopt: Callable[[], Awaitable[None]] | None = None,
    ) -> ForgeInstallation:
        """Install from ``manifest_path`` on ``site``; ``remote_base_url`` replaces every
        remote's ``baseUrl``. With ``adopt`` (migration), the site's Connect installation is
        adopted: its key must be the manifest's ``app.connect.key``, and ``adopt`` (stopping
        the Connect webhooks) runs once the manifest passed. InstallRefused otherwise."""
        manifest = load_manifest(manifest_path, app_id=app_id)
        if site.forge is not None and site.forge.installed:
            raise InstallRefused(f"the Forge app is already installed on {site.name}")
        if urlsplit(remote_base_url).scheme not in {"http", "https"}:
            raise InstallRefused("remote_base_url must be an absolute http(s) URL")
        connect_client_key = None
        if adopt is not None:
            if site.app is None:
                raise InstallRefused(f"the Connect app is not installed on {site.name}")
            if manifest.connect_key != site.app.key:
                raise InstallRefused(
                    f"app.connect.key {manifest.connect_key!r} is not the Connect app's"
                    f" key {site.app.key!r}"
                )
            connect_client_key = site.client_key
            await adopt()
        installation = ForgeInstallation(
            site=site,
            manifest=manifest,
            remote_base_url=remote_base_url,
            installation_uuid=str(uuid.uuid4()),
            environment_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, manifest.app_id)),
            api_base_url=f"{self._server_url()}/ex/jira/{site.cloud_id}",
            installed_at=self._now(),
            installer_account_id=installer or site.signed_in,
            connect_client_key=connect_client_key,
        )
        self.installations.append(installation)
        site.forge = installation
        dispatcher = self._start_dispatcher(site)
        dispatcher.hold(_INSTALLING)
        try:
            await self._lifecycle(
                installation, "avi:forge:installed:app", installed_body(installation)
            )
        finally:
            dispatcher.release(_INSTALLING)
        return installation

    async def upgrade(
        self, installation: ForgeInstallation, *, upgrader: str | None = None
    ) -> list[ForgeDelivery]:
        """A new major version (``appVersion`` +1): ``avi:forge:upgraded:app`` to its triggers."""
        self._require(installation)
        major = int(installation.app_version.split(".", 1)[0]) + 1
        installation.app_version = f"{major}.0.0"
        body = upgraded_body(installation, upgrader or installation.site.signed_in)
        return await self._lifecycle(installation, "avi:forge:upgraded:app", body)

    async def _lifecycle(
        self, installation: ForgeInstallation, event: str, body: Mapping[str, Any]
    ) -> list[ForgeDelivery]:
        records = []
        for trigger in installation.manifest.triggers_for(event):
            job = self.invoker.job(
                installation,
                endpoint=trigger.endpoint,
                module_key=trigger.key,
                event=event,
                body=body,
                records=self.deliveries,
            )
            records.append(await self.invoker.call(job, retries=True))
        return records

    async def run_scheduled(
        self, installation: ForgeInstallation, key: str | None = None
    ) -> ForgeDelivery:
        """One firing of the ``scheduledTrigger`` ``key`` (default: the only one)."""
        self._require(installation)
        triggers = installation.manifest.scheduled
        chosen = [t for t in triggers if key is None or t.key == key]
        if not chosen:
            raise LookupError(f"the manifest has no scheduledTrigger {key!r}")
        if len(chosen) > 1:
            raise ValueError("the manifest has several scheduledTriggers: name one")
        trigger = chosen[0]
        job = self.invoker.job(
            installation,
            endpoint=trigger.endpoint,
            module_key=trigger.key,
            event="scheduledTrigger",
            body=context_body(installation, trigger.key),
            records=self.deliveries,
        )
        return await self.invoker.call(job, retries=False)

    async def uninstall(self, installation: ForgeInstallation) -> list[ForgeDelivery]:
        """``preUninstall``, then no more events, every token revoked (see the module)."""
        self._require(installation)
        site = installation.site
        records = []
        for module in installation.manifest.pre_uninstall:
            body = {
                **context_body(installation, module.key),
                "contextToken": secrets.token_urlsafe(32),
            }
            job = self.invoker.job(
                installation,
                endpoint=module.endpoint,
                module_key=module.key,
                event="preUninstall",
                body=body,
                records=self.deliveries,
                timeout=lambda policy: policy.pre_uninstall_timeout,
            )
            records.append(await self.invoker.call(job, retries=False))
        installation.state = "uninstalled"
        await self._stop_dispatcher(site.name)
        self.tokens.revoke(installation)
        if site.forge is installation:
            site.forge = None
        return records

    # --- the admin page's invokeRemote ----------------------------------------------------

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
        """What ``invokeRemote({path, method, body})`` on a page does for ``user``.

        The page is the manifest's page module ``module_key`` (by default its first admin page).
        """
        self._require(installation)
        site = installation.site
        account_id = user.account_id if isinstance(user, User) else user
        viewer = site.user(account_id)
        if viewer is None or not viewer.active:
            raise LookupError(f"{account_id} is not an active user of {site.name}")
        pages = [
            p
            for p in installation.manifest.admin_pages
            if p.endpoint is not None and (module_key is None or p.key == module_key)
        ]
        if module_key is None:
            pages = [p for p in pages if p.module_type == ADMIN_PAGE_MODULE]
        if not pages or pages[0].endpoint is None:
            raise LookupError(f"the manifest has no page {module_key!r} with a resolver endpoint")
        page, endpoint = pages[0], pages[0].endpoint
        app_uuid = installation.app_id.rsplit("/", 1)[-1]
        ui = UiContext(
            site_url=site.base_url,
            module_key=page.key,
            extension_type=page.module_type,
            principal=viewer.account_id,
            local_id=(
                f"ari:cloud:ecosystem::extension/{app_uuid}/{installation.environment_uuid}"
                f"/static/{page.key}"
            ),
        )
        headers = self.invoker.headers(
            installation, endpoint, module_key=page.key, module_type=page.module_type, ui=ui
        )
        data = None if body is None else json.dumps(body).encode("utf-8")
        try:
            async with self._http().request(
                method.upper(),
                installation.endpoint_url(endpoint, path),
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.policy.ui_timeout),
            ) as response:
                text = await response.text()
                decoded: Any = None
                if text and response.content_type == "application/json":
                    decoded = json.loads(text)
                return RemoteAnswer(
                    status=response.status, body=decoded, headers=dict(response.headers)
                )
        except TimeoutError:
            return RemoteAnswer(status=None, error="timeout")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return RemoteAnswer(status=None, error=f"{type(exc).__name__}: {exc}")

    # --- events ---------------------------------------------------------------------------

    def _start_dispatcher(self, site: Site) -> ForgeDispatcher:
        dispatcher = ForgeDispatcher(
            site,
            invoker=self.invoker,
            policy=lambda: self.policy,
            records=lambda: self.deliveries,
            self_generated=lambda: site.name in self._acting,
        )
        dispatcher.start()
        self._dispatchers[site.name] = dispatcher
        return dispatcher

    async def _stop_dispatcher(self, name: str) -> None:
        dispatcher = self._dispatchers.pop(name, None)
        if dispatcher is not None:
            await dispatcher.close()

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no Forge event is queued or in flight (TimeoutError after ``timeout``)."""
        await wait_idle(lambda: list(self._dispatchers.values()), timeout)

    async def close(self) -> None:
        """Stop every site's events (undelivered ones become ``cancelled``)."""
        for name in list(self._dispatchers):
            await self._stop_dispatcher(name)

    def deliveries_for(self, site: Site | str | None = None) -> list[ForgeDelivery]:
        """The recorded Forge deliveries, of one site (by name or object) or of all."""
        name = site.name if isinstance(site, Site) else site
        return [d for d in self.deliveries if name is None or d.site == name]

    @staticmethod
    def _require(installation: ForgeInstallation) -> None:
        if not installation.installed:
            raise LookupError(f"{installation.installation_id} is uninstalled")
