"""A Forge app as installed on one simulated site, and how Forge calls its remote.

:class:`ForgeInstallation` holds the identities Forge hands a remote (forge.md §1.4, §3): the
installation ARI (``ari:cloud:ecosystem::installation/<uuid>``; a re-install gets a new one),
the site's ``cloudId`` (stable), the ``apiBaseUrl`` (``{sim.url}/ex/jira/<cloudId>``, the
simulator's stand-in for ``https://api.atlassian.com/ex/jira/<cloudId>``), the app ARI and
version, the environment ARI, and the manifest it was installed from with the real remote
base URL it was given.

:class:`ForgePolicy` is how Forge calls the remote. Forge's own figures are a 5 s timeout for
events, lifecycle and scheduled triggers, up to 4 retries 60 s apart for triggers, 25 s for
``invokeRemote`` (no retries) and 55 s for ``preUninstall``; the defaults keep the timeouts
and retry count but wait :attr:`ForgePolicy.retry_delay` (a sandbox-short 0.2 s) between
retries. ``wrap_payload`` nests each trigger body under ``"payload"``: Atlassian's retry
documentation shows that shape, its remote guides show the flat one (forge.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from dfj_sandbox.forge_signing import FitSubject
from dfj_sandbox.jira_sim.forge_manifest import ForgeManifest
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "ENVIRONMENT_ARI_PREFIX",
    "INSTALLATION_ARI_PREFIX",
    "ForgeInstallation",
    "ForgePolicy",
    "site_ari",
    "workspace_ari",
]

INSTALLATION_ARI_PREFIX: Final = "ari:cloud:ecosystem::installation/"
ENVIRONMENT_ARI_PREFIX: Final = "ari:cloud:ecosystem::environment/"


def site_ari(cloud_id: str) -> str:
    """``ari:cloud:jira::site/<cloudId>``: the installation context of a Jira site."""
    return f"ari:cloud:jira::site/{cloud_id}"


def workspace_ari(cloud_id: str) -> str:
    """``ari:cloud:jira:<cloudId>:workspace/<cloudId>``: the other spelling Atlassian accepts."""
    return f"ari:cloud:jira:{cloud_id}:workspace/{cloud_id}"


@dataclass(frozen=True, kw_only=True)
class ForgePolicy:
    """How Forge calls the remote (see the module docstring for Forge's own figures)."""

    retry_delay: float = 0.2
    max_retries: int = 4
    timeout: float = 5.0
    ui_timeout: float = 25.0
    pre_uninstall_timeout: float = 55.0
    wrap_payload: bool = False

    def __post_init__(self) -> None:
        if self.retry_delay < 0 or self.max_retries < 0:
            raise ValueError("retry_delay and max_retries must be non-negative")
        if min(self.timeout, self.ui_timeout, self.pre_uninstall_timeout) <= 0:
            raise ValueError("timeouts must be positive")

    def delay(self, retry: int) -> float:
        """The pause before retry number ``retry``: Forge waits the same before each."""
        return self.retry_delay


@dataclass(kw_only=True)
class ForgeInstallation:
    """The app installed through Forge on one site (see the module docstring).

    ``state`` is ``installed`` until :meth:`JiraSimulator.uninstall_forge_app`;
    ``connect_client_key`` is the Connect ``clientKey`` the installation adopted
    (:meth:`JiraSimulator.migrate_to_forge`), None for a fresh Forge install.
    """

    site: Site = field(repr=False, compare=False)
    manifest: ForgeManifest = field(repr=False)
    remote_base_url: str
    installation_uuid: str
    environment_uuid: str
    api_base_url: str
    app_version: str = "1.0.0"
    installed_at: float = 0.0
    installer_account_id: str | None = None
    connect_client_key: str | None = None
    state: Literal["installed", "uninstalled"] = "installed"

    @property
    def installation_id(self) -> str:
        """``ari:cloud:ecosystem::installation/<uuid>`` (the FIT's ``app.installationId``)."""
        return INSTALLATION_ARI_PREFIX + self.installation_uuid

    @property
    def environment_id(self) -> str:
        """``ari:cloud:ecosystem::environment/<app uuid>/<uuid>``."""
        app_uuid = self.app_id.rsplit("/", 1)[-1]
        return f"{ENVIRONMENT_ARI_PREFIX}{app_uuid}/{self.environment_uuid}"

    @property
    def app_id(self) -> str:
        """The app ARI (the FIT's ``aud``)."""
        return self.manifest.app_id

    @property
    def cloud_id(self) -> str:
        """The site's cloudId."""
        return self.site.cloud_id

    @property
    def context_ari(self) -> str:
        """``ari:cloud:jira::site/<cloudId>`` (the lifecycle body's ``context``)."""
        return site_ari(self.cloud_id)

    @property
    def installed(self) -> bool:
        """Whether the installation is still in place."""
        return self.state == "installed"

    @property
    def subject(self) -> FitSubject:
        """What every FIT of this installation says about it."""
        return FitSubject(
            app_id=self.app_id,
            app_version=self.app_version,
            installation_id=self.installation_id,
            cloud_id=self.cloud_id,
            api_base_url=self.api_base_url,
            environment_id=self.environment_id,
        )

    def endpoint_url(self, endpoint: str, path: str | None = None) -> str:
        """The URL of ``endpoint`` on its remote (``path`` instead of its ``route.path``)."""
        route = path if path is not None else self.manifest.endpoints[endpoint].path
        return self.remote_base_url.rstrip("/") + (route or "")

    @property
    def endpoint_urls(self) -> dict[str, str]:
        """Endpoint key → URL, for the endpoints with a ``route.path``."""
        return {
            key: self.endpoint_url(key)
            for key, endpoint in self.manifest.endpoints.items()
            if endpoint.path is not None
        }
