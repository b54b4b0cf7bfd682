"""The discord-worker's own settings: the bot's global request budget."""

from __future__ import annotations

import pytest

from dfj_common.errors import ConfigError
from dfj_discord_worker.settings import DiscordWorkerSettings

NAME = "DFJ_DISCORD_GLOBAL_REQUESTS_PER_SECOND"


def test_discords_documented_global_limit_is_the_default() -> None:
    assert DiscordWorkerSettings.from_env({}).global_requests_per_second == 50
    assert DiscordWorkerSettings.from_env({NAME: " "}).global_requests_per_second == 50


def test_a_raised_limit_is_read() -> None:
    assert DiscordWorkerSettings.from_env({NAME: "1200"}).global_requests_per_second == 1200


@pytest.mark.parametrize("raw", ["fast", "2.5", "0", "-3"])
def test_a_bad_limit_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ConfigError, match=NAME):
        DiscordWorkerSettings.from_env({NAME: raw})
