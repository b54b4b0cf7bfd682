"""jira-worker settings: defaults, the Azure OpenAI pair, and malformed values named."""

from __future__ import annotations

import pytest

from dfj_common.errors import ConfigError
from dfj_jira_worker.settings import JiraWorkerSettings


def test_defaults_use_the_heuristic_suggester() -> None:
    got = JiraWorkerSettings.from_env({})
    assert got.jira_timeout_seconds == 10.0
    assert not got.suggester_configured


def test_azure_openai_needs_https_and_a_deployment() -> None:
    got = JiraWorkerSettings.from_env(
        {
            "DFJ_AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
            "DFJ_AZURE_OPENAI_DEPLOYMENT": "gpt-4o-mini",
            "DFJ_SUGGEST_DEADLINE_SECONDS": "1.5",
        }
    )
    assert got.suggester_configured and got.suggest_deadline_seconds == 1.5
    with pytest.raises(ConfigError, match="DFJ_AZURE_OPENAI_DEPLOYMENT"):
        JiraWorkerSettings.from_env({"DFJ_AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com"})
    with pytest.raises(ConfigError, match="https"):
        JiraWorkerSettings.from_env(
            {
                "DFJ_AZURE_OPENAI_ENDPOINT": "http://x.openai.azure.com",
                "DFJ_AZURE_OPENAI_DEPLOYMENT": "d",
            }
        )


@pytest.mark.parametrize("raw", ["soon", "0", "-1"])
def test_bad_timeouts_are_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="DFJ_JIRA_TIMEOUT_SECONDS"):
        JiraWorkerSettings.from_env({"DFJ_JIRA_TIMEOUT_SECONDS": raw})
