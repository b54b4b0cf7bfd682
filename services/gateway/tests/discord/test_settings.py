"""Gateway settings: read from the injected environment, failing by name; fail-fast key."""

from __future__ import annotations

import pytest

from dfj_common.config import Settings
from dfj_common.errors import ConfigError
from dfj_gateway.app import create_app
from dfj_gateway.discord import DISCORD
from dfj_gateway.settings import GatewaySettings


def test_defaults_and_overrides() -> None:
    """Defaults apply when unset; DFJ_ variables override them."""
    assert GatewaySettings.from_env({}).discord_timestamp_window_seconds == 300
    got = GatewaySettings.from_env(
        {"DFJ_DISCORD_TIMESTAMP_WINDOW_SECONDS": "60", "DFJ_DISCORD_MAX_BODY_BYTES": "4096"}
    )
    assert got.discord_timestamp_window_seconds == 60.0
    assert got.discord_max_body_bytes == 4096


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_bad_values_fail_by_name(value: str) -> None:
    """A value that is not a positive number fails naming the variable."""
    with pytest.raises(ConfigError, match="DFJ_DISCORD_TIMESTAMP_WINDOW_SECONDS"):
        GatewaySettings.from_env({"DFJ_DISCORD_TIMESTAMP_WINDOW_SECONDS": value})


def test_malformed_public_key_fails_when_the_app_is_built() -> None:
    """create_app refuses a public key that is not 64 hex digits, naming the setting."""
    settings = Settings.from_env({"DFJ_DISCORD_PUBLIC_KEY": "not-a-key"}, env_file=None)
    with pytest.raises(ConfigError, match="DFJ_DISCORD_PUBLIC_KEY"):
        create_app(settings)


def test_window_reaches_the_verifier() -> None:
    """The environment given to create_app sets the verifier's freshness window."""
    settings = Settings.from_env({"DFJ_DISCORD_PUBLIC_KEY": "ab" * 32}, env_file=None)
    app = create_app(settings, environ={"DFJ_DISCORD_TIMESTAMP_WINDOW_SECONDS": "42"})
    verifier = app[DISCORD].verifier
    assert verifier is not None and verifier.window == 42
