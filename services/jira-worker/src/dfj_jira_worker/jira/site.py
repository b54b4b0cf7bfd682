"""An installation turned into what a call needs: where its API is, and its opened credential.

Two kinds (DESIGN §3): a **Connect** installation is called on its site's base URL with JWTs
signed by its shared secret; a **Forge** installation on its ``apiBaseUrl``
(``https://api.atlassian.com/ex/jira/<cloudId>``) with the latest app system token Forge handed
over (sealed by the gateway, AAD = installation ARI + ``forge-system-token``), which expires.

A stored :class:`~dfj_common.storage.Installation` may be unusable for calls — a Forge row
without an API base URL, a Connect row without a secret, an uninstalled site. That is
found out here, once per :class:`~.client.JiraApi`, and raised as
:class:`~.errors.JiraInstallationIncomplete` naming what is missing (permanent: the same row
will fail the same way until the site installs again).

The shared secret is sealed at rest (``EnvelopeCipher``, AAD = clientKey + purpose).
:class:`SharedSecrets` opens it on demand and keeps the opened value only briefly (a TTL)
and for a bounded number of sites, so a busy worker does not unwrap the same key for every
call while a secret never lingers in memory for long. The cache is keyed by the ciphertext
too, so a re-install with a new secret is picked up at once. Opened values stay wrapped in
:class:`~dfj_common.config.Secret`, which never shows them in a ``repr``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from dfj_common.clock import Clock
from dfj_common.config import Secret
from dfj_common.secrets import EnvelopeCipher, SecretError, make_aad
from dfj_common.storage import Installation, InstallationKind, InstallationState
from dfj_jira_worker.jira.errors import JiraInstallationIncomplete

__all__ = [
    "SECRET_PURPOSE",
    "SYSTEM_TOKEN_PURPOSE",
    "ForgeCredential",
    "SharedSecrets",
    "Site",
    "site_of",
]

SECRET_PURPOSE: Final = "connect-shared-secret"  # noqa: S105 - the AAD purpose the gateway seals with
SYSTEM_TOKEN_PURPOSE: Final = "forge-system-token"  # noqa: S105 - likewise, for Forge


@dataclass(frozen=True, slots=True)
class ForgeCredential:
    """A Forge installation's sealed system token and its expiry (None: none delivered yet)."""

    installation_id: str
    cloud_id: str
    sealed_token: bytes | None = field(repr=False)
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class Site:
    """The parts of an installation a call uses; ``base_path`` is ``""`` for Jira Cloud."""

    client_key: str
    base_url: str  # as installed, for the assertion's ``tnt``
    root: str  # scheme://host[:port] + base path, no trailing slash
    app_key: str | None
    oauth_client_id: str | None
    sealed_secret: bytes = field(repr=False)
    forge: ForgeCredential | None = None


def _incomplete(installation: Installation, what: str) -> JiraInstallationIncomplete:
    return JiraInstallationIncomplete(f"installation {installation.client_key} {what}")


def _root(installation: Installation, url: str, what: str) -> str:
    parts = urlsplit(url)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
    ):
        raise _incomplete(installation, f"has an unusable {what}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def site_of(installation: Installation) -> Site:
    """The callable site of ``installation``; :class:`JiraInstallationIncomplete` if it is not."""
    if installation.state == InstallationState.UNINSTALLED:
        raise _incomplete(installation, "is uninstalled")
    if installation.kind == InstallationKind.FORGE:
        return _forge_site(installation)
    if not installation.base_url:
        raise _incomplete(installation, "has no base URL")
    if not installation.shared_secret_ciphertext:
        raise _incomplete(installation, "has no shared secret")
    root = _root(installation, installation.base_url, "base URL")
    return Site(
        client_key=installation.client_key,
        base_url=installation.base_url,
        root=root,
        app_key=installation.app_key,
        oauth_client_id=installation.oauth_client_id,
        sealed_secret=installation.shared_secret_ciphertext,
    )


def _forge_site(installation: Installation) -> Site:
    if not installation.api_base_url or not installation.installation_id:
        raise _incomplete(installation, "has no Forge API base URL")
    expires = installation.system_token_expires_at
    return Site(
        client_key=installation.client_key,
        base_url=installation.base_url or installation.api_base_url,
        root=_root(installation, installation.api_base_url, "API base URL"),
        app_key=installation.app_key,
        oauth_client_id=None,
        sealed_secret=b"",
        forge=ForgeCredential(
            installation_id=installation.installation_id,
            cloud_id=installation.cloud_id or "",
            sealed_token=installation.system_token_ciphertext,
            expires_at=None if expires is None else expires.timestamp(),
        ),
    )


@dataclass(frozen=True, slots=True)
class _Opened:
    secret: Secret
    expires_at: float


class SharedSecrets:
    """Opens sealed shared secrets and system tokens, keeping each for at most ``ttl`` seconds."""

    def __init__(
        self,
        cipher: EnvelopeCipher,
        *,
        clock: Clock,
        ttl: float = 300.0,
        max_entries: int = 1024,
    ) -> None:
        self._cipher = cipher
        self._clock = clock
        self._ttl = ttl
        self._max_entries = max_entries
        self._opened: OrderedDict[tuple[str, bytes], _Opened] = OrderedDict()

    async def get(self, site: Site) -> Secret:
        """The opened shared secret of ``site``."""
        return await self.open(
            site.client_key, site.sealed_secret, owner=site.client_key, purpose=SECRET_PURPOSE
        )

    async def open(self, tenant: str, sealed: bytes, *, owner: str, purpose: str) -> Secret:
        """The opened ``sealed`` blob bound to ``owner`` and ``purpose``; errors name ``tenant``."""
        key = (owner, sealed)
        now = self._clock.monotonic()
        hit = self._opened.get(key)
        if hit is not None and now < hit.expires_at:
            return hit.secret
        what = "shared secret" if purpose == SECRET_PURPOSE else "system token"
        try:
            plain = await self._cipher.open(sealed, aad=make_aad(owner, purpose))
        except SecretError as exc:
            raise JiraInstallationIncomplete(
                f"installation {tenant}: the {what} does not open ({exc.reason})"
            ) from exc
        try:
            secret = Secret(plain.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise JiraInstallationIncomplete(
                f"installation {tenant}: the {what} is not text"
            ) from exc
        self._opened.pop(key, None)
        self._opened[key] = _Opened(secret, now + self._ttl)
        self._evict(now)
        return secret

    def clear(self) -> None:
        """Forget every opened secret (on close)."""
        self._opened.clear()

    def _evict(self, now: float) -> None:
        while self._opened:
            oldest_key, oldest = next(iter(self._opened.items()))
            if len(self._opened) > self._max_entries or oldest.expires_at <= now:
                del self._opened[oldest_key]
            else:
                break
