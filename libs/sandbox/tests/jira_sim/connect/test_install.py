"""Installing the app as Jira does: key server, descriptor checks, signed lifecycle callbacks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from dfj_sandbox.jira_signing import InstallKeyPair
from dfj_sandbox.jira_sim import (
    InstallRefused,
    JiraSimulator,
    LifecyclePolicy,
    Site,
)

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.connect.conftest import FakeApp


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.read()


async def test_the_key_server_serves_every_key_by_kid(fast: JiraSimulator) -> None:
    """PEM for the current and every rotated-out kid, 404 for one never issued."""
    assert fast.install_keys_url == fast.url + "/install-keys"
    first = fast.install_key
    assert await _get(f"{fast.install_keys_url}/{first.kid}") == (200, first.public_pem)
    status, _ = await _get(f"{fast.install_keys_url}/not-a-kid")
    assert status == 404
    second = fast.rotate_install_key()
    assert fast.install_key is second
    assert second.kid != first.kid
    assert await _get(f"{fast.install_keys_url}/{first.kid}") == (200, first.public_pem)
    assert await _get(f"{fast.install_keys_url}/{second.kid}") == (200, second.public_pem)
    assert fast.install_key_requests[first.kid] == 2


async def test_install_posts_signed_installed_then_enabled(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """RS256 with the served key, aud = baseUrl, qsh relative to it; then HS256 enabled."""
    site.sign_in("dora")
    installation = await fast.install_app(site, app.descriptor_url)

    installed, enabled = app.calls("/lifecycle/")
    assert installed.path == "/lifecycle/installed"  # relative to /app, as hashed
    assert installed.claims["iss"] == site.client_key
    assert installed.claims["aud"] == app.base_url
    assert installed.claims["sub"] == "dora"
    assert installed.headers["Content-Type"] == "application/json"
    assert fast.install_key_requests[fast.install_key.kid] == 1
    body = installed.json()
    assert body["eventType"] == "installed"
    assert body["key"] == "discord-for-jira"
    assert body["clientKey"] == site.client_key
    assert body["sharedSecret"] == site.shared_secret
    assert body["baseUrl"] == site.base_url
    assert body["oauthClientId"] == site.oauth_client_id

    assert enabled.path == "/lifecycle/enabled"
    assert enabled.claims["iss"] == site.client_key
    assert enabled.json()["eventType"] == "enabled"
    assert "sharedSecret" not in enabled.json()

    assert site.app is installation
    assert installation.enabled
    assert installation.base_url == app.base_url
    assert installation.webhooks["jira:issue_created"] == "/webhooks/issue-created"
    assert installation.pages == {
        "dfj-configure": "/pages/config",
        "dfj-link": "/pages/link?request={ac.request}",
    }
    assert [(d.event, d.outcome) for d in fast.lifecycle_deliveries] == [
        ("installed", "delivered"),
        ("enabled", "delivered"),
    ]


async def test_a_rotated_key_signs_the_next_install(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """The app fetches the new kid; the old one stays available to it."""
    await fast.install_app(site, app.descriptor_url)
    old = fast.install_key
    new = fast.rotate_install_key(InstallKeyPair.generate("kid-two"))
    await fast.install_app(site, app.descriptor_url)
    assert fast.install_key_requests[old.kid] == 1
    assert fast.install_key_requests[new.kid] == 1


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for name in path[:-1]:
            target = target[name]
        del target[path[-1]]

    return change


def _set(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set("someone-else", "key"), "is not this site's app key"),
        (_set({"type": "none"}, "authentication"), "authentication.type"),
        (_drop("authentication"), "authentication.type"),
        (_drop("apiMigrations", "signed-install"), "signed-install"),
        (_set(False, "apiMigrations", "signed-install"), "signed-install"),
        (_drop("lifecycle", "installed"), "lifecycle.installed"),
        (_drop("lifecycle"), "lifecycle.installed"),
        (_drop("baseUrl"), "baseUrl"),
        (_set("app.example.com", "baseUrl"), "baseUrl"),
        (_set("https://elsewhere.example/x", "lifecycle", "installed"), "relative"),
        (_set([{"url": "/x"}], "modules", "webhooks"), "needs an event"),
    ],
)
async def test_a_descriptor_jira_would_refuse_is_refused(
    fast: JiraSimulator,
    site: Site,
    app: FakeApp,
    change: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    """Nothing is posted to the app, and the site stays without it."""
    document = copy.deepcopy(app.document)
    change(document)
    app.document = document
    with pytest.raises(InstallRefused, match=reason):
        await fast.install_app(site, app.descriptor_url)
    assert app.received == []
    assert site.app is None


@pytest.mark.parametrize(
    "served",
    [(404, None, "answered 404"), (200, "{not json", "not JSON"), (200, "[]", "not a JSON object")],
)
async def test_a_descriptor_that_cannot_be_read_is_refused(
    fast: JiraSimulator, site: Site, app: FakeApp, served: tuple[int, str | None, str]
) -> None:
    """A failing descriptor URL, one that is not JSON, or not an object."""
    status, text, reason = served
    app.descriptor_status = status
    app.descriptor_text = text
    with pytest.raises(InstallRefused, match=reason):
        await fast.install_app(site, app.descriptor_url)
    assert site.app is None


async def test_installed_must_be_answered_2xx(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """A 500 fails the install; the rotated secret the app never took is put back."""
    before = site.shared_secret
    app.answers["/lifecycle/installed"] = [500]
    with pytest.raises(InstallRefused, match="installed answered 500") as refused:
        await fast.install_app(site, app.descriptor_url, new_secret=True)
    assert refused.value.status == 500
    assert site.app is None
    assert site.shared_secret == before
    assert [c.path for c in app.received] == ["/lifecycle/installed"]  # no enabled


async def test_enabled_is_retried_until_the_app_knows_the_site(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """The app may store the install a moment later: 401s are retried, freshly signed."""
    app.answers["/lifecycle/enabled"] = [401, 401, 503]
    installation = await fast.install_app(site, app.descriptor_url)
    assert installation.enabled
    assert [c.path for c in app.received].count("/lifecycle/enabled") == 4
    enabled = fast.lifecycle_deliveries[-1]
    assert enabled.event == "enabled"
    assert enabled.statuses == [401, 401, 503, 204]
    assert [a.retry for a in enabled.attempts] == [0, 1, 2, 3]


async def test_enabled_gives_up_at_the_deadline(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """Never accepted: InstallRefused, but the app stays installed (not enabled)."""
    fast.lifecycle_policy = LifecyclePolicy(first_delay=0.02, max_delay=0.02, deadline=0.15)
    app.answers["/lifecycle/enabled"] = [401] * 100
    with pytest.raises(InstallRefused, match="installed, but enabled answered 401 after"):
        await fast.install_app(site, app.descriptor_url)
    assert site.app is not None
    assert not site.app.enabled
    assert fast.lifecycle_deliveries[-1].outcome == "failed"


async def test_enabled_is_not_retried_on_a_final_refusal(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """A 400 is an answer, not a "not yet"."""
    app.answers["/lifecycle/enabled"] = [400]
    with pytest.raises(InstallRefused, match="enabled answered 400"):
        await fast.install_app(site, app.descriptor_url)
    assert fast.lifecycle_deliveries[-1].statuses == [400]
    assert fast.lifecycle_deliveries[-1].outcome == "refused"


async def test_reinstalling_can_rotate_the_shared_secret(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """The second installed carries a new secret; webhooks after it are signed with it."""
    first = installed.shared_secret
    await fast.install_app(installed, app.descriptor_url, new_secret=True)
    assert installed.shared_secret != first
    assert app.secrets[installed.client_key] == installed.shared_secret
    second_installed = app.calls("/lifecycle/installed")[-1]
    assert second_installed.json()["sharedSecret"] == installed.shared_secret
    installed.create_issue(summary="After the rotation")
    await fast.webhooks_idle()
    assert [d.outcome for d in fast.webhook_deliveries] == ["delivered"]


async def test_uninstall_posts_signed_uninstalled_and_stops_webhooks(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """RS256 again; queued webhooks are cancelled and later changes send nothing."""
    fast.pause_webhooks()
    installed.create_issue(summary="Queued, never sent")
    record = await fast.uninstall_app(installed)
    assert record is not None
    assert record.outcome == "delivered"
    uninstalled = app.calls("/lifecycle/uninstalled")[-1]
    assert uninstalled.claims["aud"] == app.base_url
    assert uninstalled.claims["iss"] == installed.client_key
    assert uninstalled.json()["eventType"] == "uninstalled"
    assert installed.app is None
    assert installed.observers == []
    fast.resume_webhooks()
    installed.create_issue(summary="After uninstall")
    await fast.webhooks_idle()
    assert [d.outcome for d in fast.webhook_deliveries] == ["cancelled"]
    assert app.webhooks() == []
    with pytest.raises(LookupError):
        await fast.uninstall_app(installed)


async def test_an_app_can_be_installed_again_after_uninstall(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """Webhooks resume with the new installation."""
    await fast.uninstall_app(installed)
    await fast.install_app(installed, app.descriptor_url)
    installed.create_issue(summary="Back again")
    await fast.webhooks_idle()
    assert [r.path for r in app.webhooks()] == ["/webhooks/issue-created"]
