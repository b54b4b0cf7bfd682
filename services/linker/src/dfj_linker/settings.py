"""linker-only settings, read once from the same injected environment as ``Settings``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dfj_common.config import env_name
from dfj_common.errors import ConfigError

__all__ = ["LinkerSettings"]


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = environ.get(env_name(name), "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{env_name(name)}: cannot read {raw!r} as a number") from exc
    if value < minimum:
        raise ConfigError(f"{env_name(name)} must be at least {minimum:g}")
    return value


@dataclass(frozen=True, kw_only=True)
class LinkerSettings:
    """Retention after an uninstall, and how often expired records are swept."""

    uninstall_retention_days: float = 30.0
    """How long a site's data outlives its uninstall (a re-install within it restores all);
    0 erases at once."""
    housekeeping_interval_seconds: float = 3600.0
    """How often expired drafts, link states, caches and idempotency records are purged."""
    processed_ids_retention_days: float = 7.0
    """How long a handled message id is remembered (longer than any redelivery)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LinkerSettings:
        """Read ``DFJ_<FIELD>``; a malformed value fails by name."""
        return cls(
            uninstall_retention_days=_number(
                environ, "uninstall_retention_days", 30.0, minimum=0.0
            ),
            housekeeping_interval_seconds=_number(
                environ, "housekeeping_interval_seconds", 3600.0, minimum=1.0
            ),
            processed_ids_retention_days=_number(
                environ, "processed_ids_retention_days", 7.0, minimum=1.0
            ),
        )
