"""Forge installations from the gateway's Forge events: installed, upgraded, token, uninstalled.

The gateway has verified each Forge call and sealed the app system token that came with it
(AAD = installation ARI + ``forge-system-token``); the blob is stored as it came, with its
expiry, and only when it outlives the one already stored, so the freshest token wins whatever
order events arrive in. Events (``jira.forge.*`` and the ``forge`` part of a product event's
``jira.webhook`` data) all carry ``installationId``, ``cloudId`` and ``apiBaseUrl``.

**Which row.** An installation is found by its installation ARI. When none holds it yet, this
may be a site moving from Connect to Forge: the app asks Jira, with the new system token, for
the reserved app property holding the site's Connect ``clientKey`` (forge.md §4); if a Connect
row has that key, the Forge ids are written onto it, so its subscriptions, links and settings
stay. Otherwise a new row is keyed by the installation ARI.

**A re-install.** Forge gives a site that installs the app again a new installation id (its
``cloudId`` stays). A row of the same site and environment still within its retention period
(uninstalled, not yet erased) is taken over, so a re-install restores what the site had, as a
Connect re-install does under its unchanged clientKey.

**The site URL.** Forge does not tell the site's URL (notifications link to it); it is read
once from ``GET {apiBaseUrl}/rest/api/3/serverInfo``. Right after install Jira may refuse the
app for a few minutes while its permissions propagate, so a refusal there is retried.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

import structlog

from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage, TransientError
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import (
    Installation,
    InstallationKind,
    Installations,
    InstallationState,
)
from dfj_jira_worker.jira import JiraClient
from dfj_jira_worker.jira.errors import JiraForbidden, JiraNotFound, JiraUnauthorized
from dfj_jira_worker.lifecycle import Lifecycle

__all__ = [
    "CONNECT_CLIENT_KEY_PROPERTY",
    "FORGE_INSTALLED",
    "FORGE_TOKEN",
    "FORGE_UNINSTALLED",
    "FORGE_UPGRADED",
    "ForgeLifecycle",
]

_log: Final = structlog.get_logger("dfj.jira_worker.forge")
FORGE_INSTALLED: Final = "jira.forge.installed"
FORGE_UPGRADED: Final = "jira.forge.upgraded"
FORGE_TOKEN: Final = "jira.forge.token"  # noqa: S105 - an event type
FORGE_UNINSTALLED: Final = "jira.forge.uninstalled"
#: Jira's reserved, read-only app property that holds a Connect site's clientKey (forge.md §4).
CONNECT_CLIENT_KEY_PROPERTY: Final = "connect_client_key_019cdff3-8bfb-71fe-9628-875b700aebb8"


@dataclass(frozen=True, slots=True)
class _Delivered:
    installation_id: str
    cloud_id: str
    api_base_url: str
    sealed_token: bytes | None
    expires_at: datetime | None
    environment_id: str | None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"forge event lacks {key!r}", reason="ForgeField")
    return value


def _delivered(data: Mapping[str, Any]) -> _Delivered:
    token = data.get("systemToken")
    sealed: bytes | None = None
    expires: datetime | None = None
    if token is not None:
        if not isinstance(token, Mapping):
            raise MalformedMessage("systemToken is not an object", reason="ForgeField")
        raw, when = token.get("sealed"), token.get("expiresAt")
        if not isinstance(raw, str) or isinstance(when, bool) or not isinstance(when, int):
            raise MalformedMessage("systemToken lacks sealed/expiresAt", reason="ForgeField")
        try:
            sealed = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedMessage("systemToken is not base64", reason="ForgeField") from exc
        expires = datetime.fromtimestamp(when, UTC)
    return _Delivered(
        installation_id=_text(data, "installationId"),
        cloud_id=_text(data, "cloudId"),
        api_base_url=_text(data, "apiBaseUrl"),
        sealed_token=sealed,
        expires_at=expires,
        environment_id=env if isinstance(env := data.get("environmentId"), str) and env else None,
    )


def _fresher(delivered: _Delivered, row: Installation | None) -> bool:
    if delivered.sealed_token is None or delivered.expires_at is None:
        return False
    stored = None if row is None else row.system_token_expires_at
    return stored is None or delivered.expires_at > stored


@dataclass(frozen=True, kw_only=True)
class ForgeLifecycle:
    """Handlers of the ``jira.forge.*`` events, and the token keeper for product events."""

    installations: Installations
    lifecycle: Lifecycle
    jira: JiraClient
    connect_key: str  # DFJ_APP_KEY: the Connect app a migrating site had installed
    # installation ARI → the latest token expiry this process stored or read: Forge brings the
    # same token with every event for hours, and the row need not be read again to learn so.
    _kept: dict[str, datetime] = field(default_factory=dict, init=False, repr=False)

    def table(self) -> HandlerTable:
        return {
            FORGE_INSTALLED: self.installed,
            FORGE_UPGRADED: self.installed,
            FORGE_TOKEN: self.token,
            FORGE_UNINSTALLED: self.uninstalled,
        }

    async def installed(self, envelope: Envelope, _ctx: HandlerContext) -> None:
        """Store (or adopt) the installation and learn its site URL."""
        delivered = _delivered(envelope.data)
        row = await self.installations.get_by_installation_id(delivered.installation_id)
        await self._adopt(delivered, row)

    async def token(self, envelope: Envelope, ctx: HandlerContext) -> None:
        """Keep the fresh system token; a site we have not stored yet is stored now."""
        delivered = _delivered(envelope.data)
        row = await self.installations.get_by_installation_id(delivered.installation_id)
        if row is None or row.state is InstallationState.UNINSTALLED or not row.base_url:
            await self._adopt(delivered, row)
        elif _fresher(delivered, row):
            await self._keep_token(row, delivered)

    async def remember(self, envelope: Envelope) -> None:
        """Keep the system token a product event brought, when it is fresher than ours."""
        forge = envelope.data.get("forge")
        if not isinstance(forge, Mapping) or forge.get("systemToken") is None:
            return
        delivered = _delivered(forge)
        known = self._kept.get(delivered.installation_id)
        if known is not None and delivered.expires_at is not None and delivered.expires_at <= known:
            return
        row = await self.installations.get_by_installation_id(delivered.installation_id)
        if row is None:
            return
        if _fresher(delivered, row):
            await self._keep_token(row, delivered)
        elif row.system_token_expires_at is not None:
            self._kept[delivered.installation_id] = row.system_token_expires_at

    async def uninstalled(self, envelope: Envelope, _ctx: HandlerContext) -> None:
        """``preUninstall``: as a Connect ``uninstalled`` — marked, then purged by the linker."""
        installation_id = _text(envelope.data, "installationId")
        row = await self.installations.get_by_installation_id(installation_id)
        await self.lifecycle.site_uninstalled(
            installation_id if row is None else row.client_key, envelope
        )

    # --- steps ----------------------------------------------------------------------------

    async def _keep_token(self, row: Installation, delivered: _Delivered) -> None:
        assert delivered.sealed_token is not None and delivered.expires_at is not None
        await self.installations.update_system_token(
            row.client_key, ciphertext=delivered.sealed_token, expires_at=delivered.expires_at
        )
        self._kept[delivered.installation_id] = delivered.expires_at
        _log.info("forge system token kept", tenant=row.client_key, expires_at=delivered.expires_at)

    async def _adopt(self, delivered: _Delivered, row: Installation | None) -> None:
        client_key = None if row is None else row.client_key
        if row is None:
            client_key = await self._connect_site(delivered) or await self._reinstalled(delivered)
        keep_token = _fresher(delivered, row)
        saved = await self.installations.save_forge(
            delivered.installation_id,
            client_key=client_key,
            cloud_id=delivered.cloud_id,
            api_base_url=delivered.api_base_url,
            system_token_ciphertext=delivered.sealed_token if keep_token else None,
            system_token_expires_at=delivered.expires_at if keep_token else None,
            environment_id=delivered.environment_id,
            state=InstallationState.ENABLED,
        )
        if not saved.base_url:
            base_url = await self._site_url(saved)
            saved = await self.installations.save_forge(
                delivered.installation_id,
                base_url=base_url,
                display_url=base_url,
                state=InstallationState.ENABLED,
            )
        _log.info(
            "forge site installed",
            tenant=saved.client_key,
            migrated=saved.client_key != delivered.installation_id,
        )

    async def _connect_site(self, delivered: _Delivered) -> str | None:
        """The clientKey of this site's Connect installation, when we hold one (migration)."""
        never = datetime.fromtimestamp(0, UTC)  # the probe is only called with, never stored
        probe = Installation(
            client_key=delivered.installation_id,
            kind=InstallationKind.FORGE,
            state=InstallationState.INSTALLED,
            created_at=never,
            updated_at=never,
            installation_id=delivered.installation_id,
            cloud_id=delivered.cloud_id,
            api_base_url=delivered.api_base_url,
            system_token_ciphertext=delivered.sealed_token,
            system_token_expires_at=delivered.expires_at,
        )
        path = (
            f"/rest/atlassian-connect/1/addons/{quote(self.connect_key, safe='')}"
            f"/properties/{CONNECT_CLIENT_KEY_PROPERTY}"
        )
        try:
            found = await self.jira.as_app(probe).request("GET", path)
        except JiraNotFound:
            return None  # never a Connect site (or the aid is gone): a new installation
        except (JiraUnauthorized, JiraForbidden) as exc:
            raise TransientError(f"Jira refused the new app for now: {exc}") from exc
        client_key = found.get("value") if isinstance(found, dict) else None
        if not isinstance(client_key, str) or not client_key:
            return None
        connect = await self.installations.get(client_key)
        if connect is None or connect.installation_id not in (None, delivered.installation_id):
            return None
        _log.info("connect site moves to forge", tenant=client_key)
        return client_key

    async def _reinstalled(self, delivered: _Delivered) -> str | None:
        """The tenant of this site's earlier installation, when it is still kept (re-install)."""
        for earlier in await self.installations.by_cloud_id(delivered.cloud_id):
            if (
                earlier.kind is InstallationKind.FORGE
                and earlier.state is InstallationState.UNINSTALLED
                and earlier.environment_id in (None, delivered.environment_id)
            ):
                _log.info("forge site re-installed", tenant=earlier.client_key)
                return earlier.client_key
        return None

    async def _site_url(self, installation: Installation) -> str:
        try:
            info = await self.jira.as_app(installation).request("GET", "/rest/api/3/serverInfo")
        except (JiraUnauthorized, JiraForbidden) as exc:
            raise TransientError(f"Jira refused the new app for now: {exc}") from exc
        base_url = info.get("baseUrl") if isinstance(info, dict) else None
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("https", "http"):
            raise MalformedMessage("serverInfo has no usable baseUrl", reason="ForgeSiteUrl")
        return base_url.rstrip("/")
