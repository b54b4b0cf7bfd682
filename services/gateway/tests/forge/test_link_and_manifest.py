"""The Forge link page's call, and the manifest's endpoints against the gateway's routes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from dfj_common.derived_keys import master_key, seal
from dfj_common.secrets import generate_kek
from dfj_gateway.browser.state import verify_state
from dfj_gateway.forge.routes import ADMIN_PAGE_KEY, LINK_PAGE_KEY, ROUTES
from dfj_gateway.jira.link_request import LINK_REQUEST
from dfj_sandbox.forge_signing import UiContext

if TYPE_CHECKING:
    from services.gateway.tests.forge.conftest import Harness

from services.gateway.tests.forge.conftest import ACCOUNT_ID, INSTALLATION_ID, STATE_SIGNING_KEY

MANIFEST = Path(__file__).resolve().parents[4] / "forge" / "manifest.yml"
ASKER = "1200000000000000042"


def link_request(h: Harness, **changes: Any) -> str:
    now = int(h.clock.now())
    payload = {"ck": INSTALLATION_ID, "du": ASKER, "gid": "1100", "iat": now, "exp": now + 600}
    return seal(master_key(STATE_SIGNING_KEY), LINK_REQUEST, {**payload, **changes})


def page_token(h: Harness, *, module_key: str = "link", principal: str | None = ACCOUNT_ID) -> str:
    ui = UiContext(
        site_url="https://acme.atlassian.net",
        module_key=module_key,
        extension_type="jira:globalPage",
        principal=principal or "",
        local_id="local-1",
    )
    override = {"principal": None} if principal is None else None
    return h.fit(module_key, ui=ui, module_type="jira:globalPage", claims_override=override)


async def test_the_link_page_gets_an_authorize_url_for_its_user_and_the_asker(h: Harness) -> None:
    response = await h.call("/forge/ui/link", {"request": link_request(h)}, token=page_token(h))
    assert response.status == 200, await response.text()
    url = urlsplit((await response.json())["authorizeUrl"])
    assert url.path == "/oauth2/authorize"
    state_token = parse_qs(url.query)["state"][0]
    state = verify_state(master_key(STATE_SIGNING_KEY), state_token, now=h.clock.now())
    assert (state.client_key, state.account_id, state.discord_user_id) == (
        INSTALLATION_ID,
        ACCOUNT_ID,
        ASKER,
    )
    assert await h.queued() == 0


async def test_without_a_request_whoever_authorizes_is_linked(h: Harness) -> None:
    response = await h.call("/forge/ui/link", {}, token=page_token(h))
    assert response.status == 200
    state_token = parse_qs(urlsplit((await response.json())["authorizeUrl"]).query)["state"][0]
    state = verify_state(master_key(STATE_SIGNING_KEY), state_token, now=h.clock.now())
    assert state.discord_user_id is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": 1}, "link request expired"),
        ({"ck": "another-site"}, "link request for another site"),
    ],
)
async def test_bad_link_requests_are_refused(
    h: Harness, changes: dict[str, Any], reason: str
) -> None:
    now = int(h.clock.now())
    if changes.get("exp") == 1:
        changes = {"iat": now - 700, "exp": now - 100}
    response = await h.call(
        "/forge/ui/link", {"request": link_request(h, **changes)}, token=page_token(h)
    )
    assert response.status == 400
    assert (await response.json())["error"] == reason


async def test_forged_or_malformed_requests_are_refused(h: Harness) -> None:
    forged = seal(b"another-key-of-at-least-32-bytes-long!!", LINK_REQUEST, {"ck": INSTALLATION_ID})
    response = await h.call("/forge/ui/link", {"request": forged}, token=page_token(h))
    assert response.status == 400
    assert (await response.json())["error"].startswith("link request ")
    response = await h.call("/forge/ui/link", {"request": 42}, token=page_token(h))
    assert (response.status, (await response.json())["error"]) == (400, "request is malformed")


async def test_only_the_link_page_with_a_user_may_start_a_link(h: Harness) -> None:
    for token in (
        h.fit("events"),
        page_token(h, module_key="other"),
        page_token(h, principal=None),
    ):
        response = await h.call("/forge/ui/link", {}, token=token)
        assert response.status == 403


def _manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return loaded


def test_every_backend_endpoint_of_the_manifest_is_a_route_we_serve() -> None:
    """Forge calls ``baseUrl + route.path``: each must be a POST route in the table."""
    served = {(r.method, r.path) for r in ROUTES}
    endpoints = _manifest()["modules"]["endpoint"]
    routed = [e for e in endpoints if "route" in e]
    assert routed
    for endpoint in routed:
        assert ("POST", endpoint["route"]["path"]) in served, endpoint
    backend_paths = {e["route"]["path"] for e in routed}
    ui_paths = {p for m, p in served if p.startswith("/forge/ui/")}
    assert {p for _, p in served} == backend_paths | ui_paths


def test_the_page_modules_are_the_ones_the_routes_accept() -> None:
    modules = _manifest()["modules"]
    assert [p["key"] for p in modules["jira:adminPage"]] == [ADMIN_PAGE_KEY]
    assert [p["key"] for p in modules.get("jira:globalPage", [])] in ([LINK_PAGE_KEY], [])


async def test_linking_not_set_up_is_a_503_with_a_reason(make_harness: Any) -> None:
    """No Discord application, or no state-signing key: the page can say so, nothing starts."""
    for options in (
        {"env": {"DFJ_DISCORD_APPLICATION_ID": ""}},
        {"secrets_env": {"DFJ_KEK": generate_kek()}},
    ):
        h = await make_harness(**options)
        response = await h.call("/forge/ui/link", {}, token=page_token(h))
        assert response.status == 503
        assert (await response.json())["error"] == "linking is not set up on this server yet"


async def test_a_key_store_that_cannot_seal_the_system_token_is_a_503(make_harness: Any) -> None:
    """Without the key-encryption key the token cannot be passed on safely: Forge retries."""
    h = await make_harness(secrets_env={"DFJ_STATE_SIGNING_KEY": STATE_SIGNING_KEY})
    response = await h.call("/forge/scheduled", {}, token=h.fit("scheduled"), system_token="a.b.c")
    assert response.status == 503
    assert (await response.json())["error"] == "key store unavailable"
    assert await h.queued() == 0
