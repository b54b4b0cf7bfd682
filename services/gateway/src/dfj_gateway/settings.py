"""Gateway-only settings, read once from the same injected environment mapping as ``Settings``.

``dfj_common.config.Settings`` holds the contract every service shares; what only the gateway's
request paths need (how fresh a Discord timestamp must be, how large a body may be, how long a
database read may hold up a 3-second Discord answer) lives here, with the same ``DFJ_`` prefix,
so operators set them the same way. Secrets are not settings: the OAuth state-signing key comes
from the secret store (secret ``state-signing-key``, i.e. ``DFJ_STATE_SIGNING_KEY`` on one
machine, or the Key Vault secret of that name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from dfj_common.config import env_name
from dfj_common.errors import ConfigError

__all__ = ["STATE_SIGNING_KEY_SECRET", "GatewaySettings"]

STATE_SIGNING_KEY_SECRET: Final = "state-signing-key"  # noqa: S105 - a secret's name


def _meta(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """Tunables of the gateway's Discord and browser routes (all positive numbers)."""

    discord_timestamp_window_seconds: float = _meta(
        300.0, "reject Discord interactions whose signed timestamp is further from now than this"
    )
    discord_max_body_bytes: int = _meta(128 * 1024, "largest Discord interaction body accepted")
    discord_replay_cache_size: int = _meta(
        100_000, "interaction ids remembered to refuse replays (oldest forgotten first)"
    )
    gateway_lookup_timeout_seconds: float = _meta(
        0.5, "longest a database read may take while Discord waits (then: answer without it)"
    )
    gateway_publish_timeout_seconds: float = _meta(
        2.0, "longest a publish may take before the request is answered 503"
    )
    oauth_state_ttl_seconds: float = _meta(600.0, "lifetime of a signed OAuth link state")
    link_status_ttl_seconds: float = _meta(
        1800.0, "how long the link page may poll its status after the callback"
    )
    link_status_poll_seconds: float = _meta(
        2.0, "how often the link page polls; answers are cached this long per state"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ConfigError(f"{env_name(f.name)} must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GatewaySettings:
        """Read each field from ``DFJ_<FIELD>``; a value that is not a number fails by name."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name), "").strip()
            if not raw:
                continue
            parse = int if f.type in ("int", int) else float
            try:
                kwargs[f.name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{env_name(f.name)}: cannot read {raw!r} as a number") from exc
        return cls(**kwargs)

    def replace(self, **changes: Any) -> GatewaySettings:
        """A copy with some fields changed (tests)."""
        return dataclasses.replace(self, **changes)
