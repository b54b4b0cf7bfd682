"""jira-worker-only settings, read once from the same injected environment as ``Settings``.

What only the jira-worker needs — how long a Jira call may take, and the optional Azure OpenAI
deployment that suggests fields for "Create issue from message" — lives here with the same
``DFJ_`` prefix. The Azure OpenAI key is a secret, not a setting: it comes from the secret store
(secret ``azure-openai-api-key``: ``DFJ_AZURE_OPENAI_API_KEY`` on one machine, or the Key Vault
secret of that name). With no endpoint configured, suggestions are the built-in heuristic's,
and no message text ever leaves the system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from dfj_common.config import env_name
from dfj_common.errors import ConfigError

__all__ = ["AZURE_OPENAI_KEY_SECRET", "JiraWorkerSettings"]

AZURE_OPENAI_KEY_SECRET: Final = "azure-openai-api-key"  # noqa: S105 - a secret's name


def _positive(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(env_name(name), "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{env_name(name)}: cannot read {raw!r} as a number") from exc
    if value <= 0:
        raise ConfigError(f"{env_name(name)} must be positive")
    return value


@dataclass(frozen=True, kw_only=True)
class JiraWorkerSettings:
    """Jira call time-outs and the optional Azure OpenAI field suggester."""

    jira_timeout_seconds: float = 10.0
    azure_openai_endpoint: str | None = None
    azure_openai_deployment: str | None = None
    azure_openai_api_version: str = "2024-10-21"
    suggest_deadline_seconds: float = 2.0

    @property
    def suggester_configured(self) -> bool:
        return self.azure_openai_endpoint is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> JiraWorkerSettings:
        """Read ``DFJ_<FIELD>``; a malformed value fails by name."""
        endpoint = environ.get(env_name("azure_openai_endpoint"), "").strip() or None
        deployment = environ.get(env_name("azure_openai_deployment"), "").strip() or None
        if endpoint is not None:
            parts = urlsplit(endpoint)
            if parts.scheme != "https" or not parts.netloc:
                raise ConfigError(f"{env_name('azure_openai_endpoint')} must be an https URL")
            if deployment is None:
                raise ConfigError(
                    f"{env_name('azure_openai_endpoint')} is set: "
                    f"{env_name('azure_openai_deployment')} must name the deployment"
                )
        version = environ.get(env_name("azure_openai_api_version"), "").strip()
        return cls(
            jira_timeout_seconds=_positive(environ, "jira_timeout_seconds", 10.0),
            azure_openai_endpoint=endpoint,
            azure_openai_deployment=deployment,
            azure_openai_api_version=version or "2024-10-21",
            suggest_deadline_seconds=_positive(environ, "suggest_deadline_seconds", 2.0),
        )
