"""Connect → Forge: the Connect key must match, Connect webhooks stop, the clientKey is readable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from dfj_sandbox.jira_sim import (
    CONNECT_CLIENT_KEY_PROPERTY,
    ForgeInstallation,
    InstallRefused,
    JiraSimulator,
    Site,
)

from .conftest import APP_ID, CONNECT_KEY, MANIFEST, write_manifest

if TYPE_CHECKING:
    from .conftest import FakeRemote


def _with_connect_key(key: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["app"]["connect"] = {"key": key, "remote": "backend"}

    return change


async def _property(forge: ForgeInstallation, token: str, addon: str) -> tuple[int, Any]:
    url = (
        f"{forge.api_base_url}/rest/atlassian-connect/1/addons/{addon}/properties/"
        f"{CONNECT_CLIENT_KEY_PROPERTY}"
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return response.status, await response.json()


async def _connected(fast: JiraSimulator, site: Site, remote: FakeRemote) -> None:
    await fast.install_app(site, remote.base_url + "/connect/atlassian-connect.json")
    site.create_issue(summary="Connect era", reporter="alice")
    await fast.webhooks_idle()
    assert remote.connect_calls == ["/connect/lifecycle/installed", "/connect/webhooks"]


async def test_migration_moves_events_to_forge_and_exposes_the_client_key(
    fast: JiraSimulator, site: Site, remote: FakeRemote, tmp_path: Path
) -> None:
    """installed is sent as for a fresh install; webhooks stop; triggers deliver."""
    await _connected(fast, site, remote)
    manifest = write_manifest(tmp_path, _with_connect_key(CONNECT_KEY))
    forge = await fast.migrate_to_forge(
        site, manifest, remote_base_url=remote.base_url, app_id=APP_ID
    )
    assert forge.connect_client_key == site.client_key
    [installed] = remote.calls("/forge/lifecycle")
    assert installed.json()["eventType"] == "avi:forge:installed:app"
    site.create_issue(summary="Forge era", reporter="alice")
    await fast.webhooks_idle()
    await fast.forge_idle()
    assert len(remote.connect_calls) == 2  # no new Connect webhook
    assert [c.json()["issue"]["fields"]["summary"] for c in remote.events()] == ["Forge era"]

    await fast.run_scheduled_trigger(forge)
    token = remote.calls("/forge/scheduled")[-1].headers["x-forge-oauth-system"]
    assert await _property(forge, token, CONNECT_KEY) == (
        200,
        {"key": CONNECT_CLIENT_KEY_PROPERTY, "value": site.client_key},
    )
    status, _ = await _property(forge, token, "another-app")
    assert status == 404


async def test_a_fresh_forge_install_has_no_client_key_property(
    fast: JiraSimulator, remote: FakeRemote, forge: ForgeInstallation
) -> None:
    """No Connect installation adopted: 404."""
    await fast.run_scheduled_trigger(forge)
    token = remote.calls("/forge/scheduled")[-1].headers["x-forge-oauth-system"]
    status, body = await _property(forge, token, CONNECT_KEY)
    assert (status, body["statusCode"]) == (404, 404)


async def test_migration_needs_the_connect_app_and_its_key(
    fast: JiraSimulator, site: Site, remote: FakeRemote, tmp_path: Path
) -> None:
    """Without a Connect install, or with another app.connect.key, nothing happens."""
    matching = write_manifest(tmp_path, _with_connect_key(CONNECT_KEY))
    with pytest.raises(InstallRefused, match="Connect app is not installed"):
        await fast.migrate_to_forge(site, matching, remote_base_url=remote.base_url)
    await _connected(fast, site, remote)
    with pytest.raises(InstallRefused, match=r"app\.connect\.key None"):
        await fast.migrate_to_forge(site, MANIFEST, remote_base_url=remote.base_url)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(InstallRefused, match="'someone-else'"):
        await fast.migrate_to_forge(
            site,
            write_manifest(other, _with_connect_key("someone-else")),
            remote_base_url=remote.base_url,
        )
    assert site.forge is None and remote.received == []
    site.create_issue(summary="Still Connect", reporter="alice")
    await fast.webhooks_idle()
    assert len(remote.connect_calls) == 3
