"""LinkerSettings: defaults, and a malformed value named."""

from __future__ import annotations

import pytest

from dfj_common.errors import ConfigError
from dfj_linker.settings import LinkerSettings


def test_defaults_and_overrides() -> None:
    assert LinkerSettings.from_env({}) == LinkerSettings()
    read = LinkerSettings.from_env(
        {"DFJ_UNINSTALL_RETENTION_DAYS": "0", "DFJ_HOUSEKEEPING_INTERVAL_SECONDS": "60"}
    )
    assert (read.uninstall_retention_days, read.housekeeping_interval_seconds) == (0.0, 60.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DFJ_UNINSTALL_RETENTION_DAYS", "-1"),
        ("DFJ_UNINSTALL_RETENTION_DAYS", "a month"),
        ("DFJ_HOUSEKEEPING_INTERVAL_SECONDS", "0"),
        ("DFJ_PROCESSED_IDS_RETENTION_DAYS", "0.5"),
    ],
)
def test_a_malformed_value_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        LinkerSettings.from_env({name: value})


async def test_linking_without_the_discord_application_is_a_clear_permanent_error() -> None:
    from dfj_common.config import Settings
    from dfj_common.errors import PermanentError
    from dfj_common.secrets import EnvSecretStore, SecretNotFound
    from dfj_linker.bootstrap import signing_key_source

    store = EnvSecretStore({"DFJ_STATE_SIGNING_KEY": "k" * 40}, env_file=None)
    bare = signing_key_source(Settings.from_env({}, env_file=None), store)
    with pytest.raises(PermanentError) as refused:
        await bare()
    assert refused.value.reason == "LinkingNotConfigured"
    discord = {"DFJ_DISCORD_APPLICATION_ID": "1", "DFJ_DISCORD_CLIENT_SECRET": "s"}
    configured = signing_key_source(Settings.from_env(discord, env_file=None), store)
    assert await configured() == b"k" * 40
    keyless = signing_key_source(
        Settings.from_env(discord, env_file=None), EnvSecretStore({}, env_file=None)
    )
    with pytest.raises(SecretNotFound):
        await keyless()
