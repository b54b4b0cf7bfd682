"""Settings are typed, immutable, read once, fail fast by name and never show secrets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dfj_common.config import Secret, Settings
from dfj_common.errors import ConfigError


def test_defaults_follow_the_configuration_contract() -> None:
    """With nothing set, the DESIGN §6 defaults apply."""
    s = Settings.from_env({}, env_file=None)
    assert s.public_url == "http://localhost:8080"
    assert s.gateway_port == 8080
    assert s.bus == "local"
    assert s.bus_path == "var/bus.sqlite"
    assert s.database_url.reveal() == "sqlite:///var/dfj.sqlite"
    assert s.jira_site_allowlist == ("*.atlassian.net",)
    assert s.discord_api_url == "https://discord.com/api/v10"
    assert s.telemetry == "none"


def test_values_are_parsed_by_type() -> None:
    """Ports are ints, lists split on commas, choices are checked case-insensitively."""
    s = Settings.from_env(
        {
            "DFJ_GATEWAY_PORT": "9000",
            "DFJ_JIRA_SITE_ALLOWLIST": "a.example.com, *.b.example.net",
            "DFJ_TELEMETRY": "OTLP",
            "DFJ_DRAIN_GRACE_SECONDS": "2.5",
        },
        env_file=None,
    )
    assert s.gateway_port == 9000
    assert s.jira_site_allowlist == ("a.example.com", "*.b.example.net")
    assert s.telemetry == "otlp"
    assert s.drain_grace_seconds == 2.5


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DFJ_GATEWAY_PORT": "eighty"}, "DFJ_GATEWAY_PORT"),
        ({"DFJ_GATEWAY_PORT": "70000"}, "DFJ_GATEWAY_PORT"),
        ({"DFJ_BUS": "kafka"}, "DFJ_BUS"),
        ({"DFJ_BUS": "servicebus"}, "DFJ_SERVICEBUS_NAMESPACE"),
        ({"DFJ_WORKER_CONCURRENCY": "0"}, "DFJ_WORKER_CONCURRENCY"),
    ],
)
def test_bad_values_fail_naming_the_key(env: dict[str, str], needle: str) -> None:
    """A malformed or inconsistent value raises ConfigError that names the variable."""
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env, env_file=None)


def test_require_names_every_missing_key() -> None:
    """require() lists all missing variables at once."""
    s = Settings.from_env({"DFJ_DISCORD_APPLICATION_ID": "123"}, env_file=None)
    s.require("discord_application_id")
    with pytest.raises(ConfigError) as info:
        s.require("discord_public_key", "discord_bot_token")
    assert "DFJ_DISCORD_PUBLIC_KEY" in str(info.value)
    assert "DFJ_DISCORD_BOT_TOKEN" in str(info.value)


def test_secrets_are_masked() -> None:
    """Secret values never appear in repr or str of the settings."""
    s = Settings.from_env(
        {"DFJ_DISCORD_BOT_TOKEN": "MTIz.abc.very-secret", "DFJ_DATABASE_URL": "mssql://u:pw@h/db"},
        env_file=None,
    )
    assert "very-secret" not in repr(s)
    assert "pw@" not in repr(s)
    assert str(Secret("x")) == "Secret('**********')"
    assert s.discord_bot_token is not None
    assert s.discord_bot_token.reveal() == "MTIz.abc.very-secret"


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    """A local .env supplies values; the real environment overrides it."""
    env_file = tmp_path / ".env"
    env_file.write_text("DFJ_APP_KEY=from-file\nDFJ_GATEWAY_PORT=8500\n")
    s = Settings.from_env({"DFJ_GATEWAY_PORT": "8600"}, env_file=env_file)
    assert s.app_key == "from-file"
    assert s.gateway_port == 8600


def test_settings_are_immutable() -> None:
    """Settings cannot be changed after they are read; replace() makes a copy."""
    s = Settings.from_env({}, env_file=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gateway_port = 1  # type: ignore[misc]
    assert s.replace(gateway_port=1).gateway_port == 1
    assert s.gateway_port == 8080


def test_describe_covers_every_field() -> None:
    """The configuration table lists each variable once, secrets without their defaults."""
    rows = Settings.describe()
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))
    assert rows[names.index("DFJ_DATABASE_URL")][:2] == ("DFJ_DATABASE_URL", "(secret)")
