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
