"""Typed, immutable settings read once from an injected environment mapping.

Precedence: the mapping given (normally ``os.environ``) → a local ``.env`` file (one machine) →
the default. Names are the configuration contract of DESIGN.md §6 with the ``DFJ_`` prefix.
Secret values are wrapped in :class:`Secret` so they never show in ``repr`` or logs; call
``reveal()`` at the point of use. Services call :meth:`Settings.require` at start-up for the keys
they need, so a missing one fails fast with its name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, get_args

from dotenv import dotenv_values

from dfj_common.errors import ConfigError

__all__ = ["PREFIX", "Secret", "Settings", "env_name"]

PREFIX: Final = "DFJ_"
T = TypeVar("T")


class Secret:
    """A value that is masked in ``repr``/``str`` until ``reveal()`` is called."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


BusKind = Literal["local", "servicebus"]
TelemetryKind = Literal["none", "console", "otlp", "azure"]
SyncMode = Literal["off", "normal", "full"]


def env_name(field_name: str) -> str:
    """The environment variable behind a settings field: ``bus_path`` → ``DFJ_BUS_PATH``."""
    return PREFIX + field_name.upper()


def _meta(default: Any, *, secret: bool = False, doc: str = "") -> Any:
    return field(default=default, metadata={"secret": secret, "doc": doc})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of every service; each service reads the part it needs."""

    public_url: str = _meta("http://localhost:8080", doc="public base URL of the gateway")
    gateway_port: int = _meta(8080, doc="gateway listen port")
    jira_worker_port: int = _meta(8081, doc="jira-worker health port")
    discord_worker_port: int = _meta(8082, doc="discord-worker health port")
    linker_port: int = _meta(8083, doc="linker health port")
    bind_host: str = _meta("127.0.0.1", doc="address every service listens on")
    app_key: str = _meta("discord-for-jira", doc="Connect app key")
    jira_site_allowlist: tuple[str, ...] = _meta(
        ("*.atlassian.net",), doc="comma-separated host patterns allowed as a site's baseUrl"
    )
    atlassian_install_keys_url: str = _meta(
        "https://connect-install-keys.atlassian.com", doc="signed-install public keys by kid"
    )
    atlassian_oauth_url: str = _meta(
        "https://oauth-2-authorization-server.services.atlassian.com",
        doc="Atlassian OAuth 2.0 authorization server (JWT-bearer grant)",
    )
    forge_app_id: str | None = _meta(None, doc="Forge app id (aud of Forge Invocation Tokens)")
    forge_jwks_url: str = _meta(
        "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json",
        doc="Forge Invocation Token keys",
    )
    discord_application_id: str | None = _meta(None, doc="Discord application id")
    discord_public_key: str | None = _meta(None, doc="Discord application public key (hex)")
    discord_bot_token: Secret | None = _meta(None, secret=True, doc="Discord bot token")
    discord_client_secret: Secret | None = _meta(None, secret=True, doc="Discord OAuth2 secret")
    discord_api_url: str = _meta("https://discord.com/api/v10", doc="Discord REST base")
    discord_web_url: str = _meta("https://discord.com", doc="Discord web base (OAuth2 authorize)")
    bus: BusKind = _meta("local", doc="`local` or `servicebus`")
    bus_path: str = _meta("var/bus.sqlite", doc="local bus file")
    bus_sync: SyncMode = _meta(
        "normal", doc="local bus SQLite synchronous mode (`normal` survives process crashes)"
    )
    servicebus_namespace: str | None = _meta(None, doc="Service Bus FQDN (managed identity)")
    servicebus_connection: Secret | None = _meta(
        None, secret=True, doc="Service Bus connection string (emulator included)"
    )
    database_url: Secret = _meta(
        Secret("sqlite:///var/dfj.sqlite"), secret=True, doc="SQLAlchemy URL (sqlite or mssql)"
    )
    keyvault_url: str | None = _meta(None, doc="when set, secrets are read from this Key Vault")
    kek: Secret | None = _meta(
        None, secret=True, doc="base64 256-bit key-encryption key (local secret store)"
    )
    telemetry: TelemetryKind = _meta("none", doc="`none`, `console`, `otlp` or `azure`")
    otlp_endpoint: str | None = _meta(None, doc="OTLP/HTTP endpoint (telemetry=otlp)")
    applicationinsights_connection_string: Secret | None = _meta(
        None, secret=True, doc="Application Insights connection string (telemetry=azure)"
    )
    log_level: str = _meta("info", doc="log level")
    log_format: Literal["auto", "json", "console"] = _meta(
        "auto", doc="`json` when not on a terminal by default"
    )
    worker_concurrency: int = _meta(16, doc="messages a worker handles at once")
    drain_grace_seconds: float = _meta(25.0, doc="SIGTERM drain period before release")

    def __post_init__(self) -> None:
        if self.bus == "servicebus" and not (
            self.servicebus_namespace or self.servicebus_connection
        ):
            raise ConfigError(
                "DFJ_BUS=servicebus needs DFJ_SERVICEBUS_NAMESPACE or DFJ_SERVICEBUS_CONNECTION"
            )
        for name in ("gateway_port", "jira_worker_port", "discord_worker_port", "linker_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{env_name(name)} must be a TCP port, got {port}")
        if self.worker_concurrency < 1:
            raise ConfigError("DFJ_WORKER_CONCURRENCY must be at least 1")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read every field once; unknown ``DFJ_`` names are ignored, bad values fail by name."""
        merged: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(environ)
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = merged.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            kwargs[f.name] = _parse(f, raw)
        return cls(**kwargs)

    def require(self, *names: str) -> None:
        """Fail with the environment variable's name when any of ``names`` is unset."""
        missing = [env_name(n) for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError(f"missing required setting(s): {', '.join(missing)}")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and composition roots)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) rows, for the README's configuration table."""
        rows = []
        for f in fields(cls):
            default = f.default
            shown = "—" if default is None else ("(secret)" if f.metadata["secret"] else default)
            if isinstance(shown, tuple):
                shown = ",".join(shown)
            rows.append((env_name(f.name), str(shown), str(f.metadata["doc"])))
        return rows


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    name = env_name(f.name)
    annotation = str(f.type)
    parsers: dict[str, Callable[[str], Any]] = {
        "int": int,
        "float": float,
        "str": str,
        "str | None": str,
        "Secret": Secret,
        "Secret | None": Secret,
        "tuple[str, ...]": lambda v: tuple(p.strip() for p in v.split(",") if p.strip()),
    }
    if annotation in parsers:
        try:
            return parsers[annotation](raw.strip() if "Secret" not in annotation else raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: cannot read {raw!r} as {annotation}") from exc
    choices = _literal_choices(annotation)
    if choices:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
        return value
    raise ConfigError(f"{name}: unsupported setting type {annotation}")  # pragma: no cover


_LITERALS: dict[str, tuple[str, ...]] = {
    "BusKind": get_args(BusKind),
    "TelemetryKind": get_args(TelemetryKind),
    "SyncMode": get_args(SyncMode),
}


def _literal_choices(annotation: str) -> tuple[str, ...]:
    if annotation in _LITERALS:
        return _LITERALS[annotation]
    if annotation.startswith("Literal["):
        inner = annotation[len("Literal[") : -1]
        return tuple(p.strip().strip("'\"") for p in inner.split(","))
    return ()
