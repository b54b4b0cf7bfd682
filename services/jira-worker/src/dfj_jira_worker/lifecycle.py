"""Installations from Connect lifecycle events: installed, enabled, disabled, uninstalled.

The gateway has verified each callback and sealed the shared secret with the key-encryption
key (AAD = clientKey + purpose) before publishing; the sealed blob is stored as it came, so the
secret is never in plain text here, and a re-install simply overwrites it. The events of one
site share a session on ``jira-events``, so ``installed`` is always handled before the
``enabled`` that follows it. ``uninstalled`` keeps the row (marked) and asks the linker to
purge the site's data, which it owns.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from dfj_common.bus import LINKER, Bus
from dfj_common.envelope import Envelope, deterministic_id
from dfj_common.errors import MalformedMessage, PermanentError
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import Installations, InstallationState

__all__ = ["SITE_UNINSTALLED", "Lifecycle"]

_log: Final = structlog.get_logger("dfj.jira_worker.lifecycle")
SOURCE: Final = "dfj-jira-worker"
SITE_UNINSTALLED: Final = "tenant.uninstalled"  # → linker: purge everything of that site


def _text(data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"lifecycle event lacks {key!r}", reason="LifecycleField")
    return value


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """Handlers for the lifecycle event types, over the installations table and the bus."""

    installations: Installations
    bus: Bus

    def table(self) -> HandlerTable:
        return {
            "jira.lifecycle.installed": self.installed,
            "jira.lifecycle.enabled": self.enabled,
            "jira.lifecycle.disabled": self.disabled,
            "jira.lifecycle.uninstalled": self.uninstalled,
        }

    async def installed(self, envelope: Envelope, _ctx: HandlerContext) -> None:
        data = envelope.data
        client_key = _text(data, "clientKey")
        assert client_key is not None
        sealed_text = _text(data, "sharedSecretSealed")
        assert sealed_text is not None
        try:
            sealed = base64.b64decode(sealed_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedMessage(
                "sharedSecretSealed is not base64", reason="LifecycleField"
            ) from exc
        await self.installations.save_connect(
            client_key,
            base_url=_text(data, "baseUrl") or "",
            shared_secret_ciphertext=sealed,
            app_key=_text(data, "key", required=False),
            display_url=_text(data, "displayUrl", required=False),
            oauth_client_id=_text(data, "oauthClientId", required=False),
            state=InstallationState.INSTALLED,
        )
        _log.info("site installed", tenant=client_key)

    async def enabled(self, envelope: Envelope, _ctx: HandlerContext) -> None:
        await self._move(envelope, InstallationState.ENABLED)

    async def disabled(self, envelope: Envelope, _ctx: HandlerContext) -> None:
        await self._move(envelope, InstallationState.DISABLED)

    async def uninstalled(self, envelope: Envelope, _ctx: HandlerContext) -> None:
        client_key = _text(envelope.data, "clientKey")
        assert client_key is not None
        await self.site_uninstalled(client_key, envelope)

    async def site_uninstalled(self, client_key: str, envelope: Envelope) -> None:
        """Mark the site uninstalled and ask the linker to purge it (Connect or Forge)."""
        known = await self.installations.set_state(client_key, InstallationState.UNINSTALLED)
        # Published even for a site we never stored: the purge is idempotent, and a stray
        # connection or link must not outlive an uninstall.
        await self.bus.publish_envelope(
            LINKER,
            Envelope(
                id=deterministic_id(SITE_UNINSTALLED, envelope.id),
                source=SOURCE,
                type=SITE_UNINSTALLED,
                tenant=client_key,
                data={"clientKey": client_key, "known": known},
            ),
        )
        _log.info("site uninstalled", tenant=client_key, known=known)

    async def _move(self, envelope: Envelope, state: InstallationState) -> None:
        client_key = _text(envelope.data, "clientKey")
        assert client_key is not None
        if not await self.installations.set_state(client_key, state):
            # Its `installed` came first in this session; without it there is nothing to move.
            raise PermanentError(
                f"no installation for {client_key} to mark {state.value}",
                reason="UnknownInstallation",
            )
        _log.info("site state changed", tenant=client_key, state=state.value)
