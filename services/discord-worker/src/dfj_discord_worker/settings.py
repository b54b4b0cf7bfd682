"""discord-worker-only settings, read once from the same environment as ``Settings``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dfj_common.config import env_name
from dfj_common.errors import ConfigError

__all__ = ["DiscordWorkerSettings"]


@dataclass(frozen=True, kw_only=True)
class DiscordWorkerSettings:
    """How fast the bot may call Discord in all (its global limit)."""

    global_requests_per_second: int = 50
    """Discord's global limit for a bot is 50 requests/s; Discord raises it for large bots on
    request, and the sandbox's benchmark lifts it with the simulator's limits."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DiscordWorkerSettings:
        """The settings named ``DFJ_<FIELD>`` in ``environ``; defaults where unset."""
        name = env_name("discord_global_requests_per_second")
        raw = environ.get(name, "").strip()
        if not raw:
            return cls()
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: cannot read {raw!r} as a whole number") from exc
        if value < 1:
            raise ConfigError(f"{name} must be at least 1")
        return cls(global_requests_per_second=value)
