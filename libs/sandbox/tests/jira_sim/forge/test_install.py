"""Installing from forge/manifest.yml: the installed event, FIT claims, headers, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from dfj_sandbox.jira_sim import (
    ForgeInstallation,
    InstallRefused,
    JiraSimulator,
    ManifestRefused,
    Site,
)

from .conftest import APP_ID, MANIFEST, write_manifest

if TYPE_CHECKING:
    from .conftest import FakeRemote


async def test_install_posts_the_installed_event_with_a_verified_fit(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """One POST to the lifecycle endpoint; body and FIT as Forge sends them."""
    [call] = remote.calls("/forge/lifecycle")
    uuid = forge.installation_id.removeprefix("ari:cloud:ecosystem::installation/")
    assert call.method == "POST"
    assert call.json() == {
        "eventType": "avi:forge:installed:app",
        "id": uuid,
        "installerAccountId": "dora",
        "app": {"id": APP_ID, "version": "1.0.0"},
        "environment": {"id": forge.environment_id},
        "context": f"ari:cloud:jira::site/{site.cloud_id}",
    }
    claims = call.claims
    assert claims["iss"] == "forge/invocation-token"
    assert claims["aud"] == APP_ID
    assert claims["exp"] - claims["iat"] == 60
    app = claims["app"]
    assert app["id"] == APP_ID
    assert app["appVersion"] == "1.0.0"
    assert app["installationId"] == forge.installation_id == app["installation"]["id"]
    assert app["installation"]["contexts"] == [
        {"cloudId": site.cloud_id, "apiBaseUrl": forge.api_base_url}
    ]
    assert app["apiBaseUrl"] == f"{fast.url}/ex/jira/{site.cloud_id}" == forge.api_base_url
    assert app["environment"]["type"] == "DEVELOPMENT"
    assert app["module"] == {"type": "core:endpoint", "key": "lifecycle"}
    assert "context" not in claims and "principal" not in claims
    headers = call.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["x-forge-oauth-system"]
    assert "x-forge-oauth-user" not in headers
    assert len(headers["x-b3-traceid"]) == 32 and len(headers["x-b3-spanid"]) == 16
    assert site.forge is forge and forge.installed
    [record] = fast.forge_deliveries
    assert (record.event, record.module_key, record.outcome) == (
        "avi:forge:installed:app",
        "lifecycle",
        "delivered",
    )
    assert forge.endpoint_urls["events"] == remote.base_url + "/forge/events"


async def test_the_installed_event_is_retried_with_a_fresh_fit_and_a_retry_context(
    fast: JiraSimulator, site: Site, remote: FakeRemote
) -> None:
    """500, then 401: retried (reasons as Forge names them), each attempt signed anew."""
    remote.answers["/forge/lifecycle"] = [500, 401]
    await fast.install_forge_app(site, MANIFEST, remote_base_url=remote.base_url, app_id=APP_ID)
    calls = remote.calls("/forge/lifecycle")
    assert len(calls) == 3
    assert "retryContext" not in calls[0].json()
    assert calls[1].json()["retryContext"] == {
        "retryCount": 1,
        "retryReason": "INVALID_REMOTE_INVOCATION_ERROR",
        "retryData": None,
    }
    assert calls[2].json()["retryContext"]["retryReason"] == "INVALID_FORGE_INVOCATION_TOKEN"
    assert len({c.claims["jti"] for c in calls}) == 3
    [record] = fast.forge_deliveries
    assert record.statuses == [500, 401, 204]
    assert record.outcome == "delivered"


async def test_an_install_the_remote_never_accepts_still_stands(
    fast: JiraSimulator, site: Site, remote: FakeRemote
) -> None:
    """Forge gives up after 4 retries; the installation exists all the same."""
    remote.answers["/forge/lifecycle"] = [503] * 10
    installation = await fast.install_forge_app(
        site, MANIFEST, remote_base_url=remote.base_url, app_id=APP_ID
    )
    [record] = fast.forge_deliveries
    assert record.statuses == [503] * 5
    assert record.outcome == "failed"
    assert installation.installed


def _retarget(entry: str, value: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        if entry == "trigger":
            document["modules"]["trigger"][0]["endpoint"] = value
        elif entry == "remote":
            document["modules"]["endpoint"][0]["remote"] = value
        elif entry == "scheduled":
            document["modules"]["scheduledTrigger"][0]["endpoint"] = value
        elif entry == "resolver":
            document["modules"]["jira:adminPage"][0]["resolver"]["endpoint"] = value
        elif entry == "app":
            document["app"]["id"] = value

    return change


@pytest.mark.parametrize(
    ("entry", "value", "words"),
    [
        ("trigger", "nowhere", "unknown endpoint 'nowhere'"),
        ("remote", "elsewhere", "unknown remote 'elsewhere'"),
        ("scheduled", "ui", "has no route.path"),
        ("resolver", "nowhere", "unknown endpoint 'nowhere'"),
        ("app", "discord-for-jira", "app.id must be an ARI"),
    ],
)
async def test_a_broken_manifest_is_refused_before_anything_is_sent(  # noqa: PLR0917 - parametrized
    fast: JiraSimulator,
    site: Site,
    remote: FakeRemote,
    tmp_path: Path,
    entry: str,
    value: str,
    words: str,
) -> None:
    """Cross references are checked; nothing reaches the remote, the site stays as it was."""
    path = write_manifest(tmp_path, _retarget(entry, value))
    with pytest.raises(ManifestRefused, match=words):
        await fast.install_forge_app(site, path, remote_base_url=remote.base_url)
    assert remote.received == []
    assert site.forge is None


async def test_a_second_install_is_refused(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """One Forge installation per site."""
    with pytest.raises(InstallRefused, match="already installed"):
        await fast.install_forge_app(site, MANIFEST, remote_base_url=remote.base_url)


async def test_upgrade_sends_upgraded_with_the_new_version(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """``avi:forge:upgraded:app``; the FIT's appVersion follows."""
    [record] = await fast.upgrade_forge_app(forge, upgrader="dora")
    assert record.outcome == "delivered"
    call = remote.calls("/forge/lifecycle")[-1]
    body = call.json()
    assert body["eventType"] == "avi:forge:upgraded:app"
    assert body["upgraderAccountId"] == "dora"
    assert body["app"]["version"] == "2.0.0"
    assert "read:jira-work" in body["permissions"]["scopes"]
    assert call.claims["app"]["appVersion"] == "2.0.0"


async def test_the_scheduled_trigger_posts_its_context(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """``{"context": {cloudId, moduleKey}}`` to the scheduled endpoint, with a system token."""
    record = await fast.run_scheduled_trigger(forge)
    assert record.outcome == "delivered"
    [call] = remote.calls("/forge/scheduled")
    assert call.json() == {"context": {"cloudId": site.cloud_id, "moduleKey": "token-refresh"}}
    assert call.claims["app"]["module"] == {"type": "core:endpoint", "key": "token-refresh"}
    assert call.headers["x-forge-oauth-system"]


async def test_invoke_remote_carries_the_ui_context_and_principal(
    fast: JiraSimulator, site: Site, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """The admin page's invokeRemote: UI FIT, the user's accountId, the answer decoded."""
    answer = await fast.invoke_remote(
        forge, "alice", "/forge/ui/config", method="POST", body={"guild": "1"}
    )
    assert answer.ok
    assert answer.body == {"ok": True, "principal": "alice"}
    [call] = remote.calls("/forge/ui/config")
    assert call.method == "POST"
    assert call.json() == {"guild": "1"}
    claims = call.claims
    assert claims["principal"] == "alice"
    assert claims["app"]["module"] == {"type": "jira:adminPage", "key": "config"}
    context = claims["context"]
    assert context["cloudId"] == site.cloud_id
    assert context["siteUrl"] == site.base_url
    assert context["moduleKey"] == "config"
    assert context["extension"] == {"type": "jira:adminPage"}
    assert context["localId"]
    assert call.headers["x-forge-oauth-system"]
    assert "x-forge-oauth-user" not in call.headers  # appUserToken is disabled in the manifest


async def test_invoke_remote_sends_a_user_token_when_the_endpoint_asks(
    fast: JiraSimulator, site: Site, remote: FakeRemote, tmp_path: Path
) -> None:
    """With ``appUserToken.enabled`` the UI call carries a token acting as the user."""

    def enable(document: dict[str, Any]) -> None:
        ui = next(e for e in document["modules"]["endpoint"] if e["key"] == "ui")
        ui["auth"]["appUserToken"]["enabled"] = True

    installation = await fast.install_forge_app(
        site, write_manifest(tmp_path, enable), remote_base_url=remote.base_url, app_id=APP_ID
    )
    await fast.invoke_remote(installation, "alice", "/forge/ui/me")
    [call] = remote.calls("/forge/ui/me")
    token = call.headers["x-forge-oauth-user"]
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "alice"
