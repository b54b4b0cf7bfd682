"""The Forge admin page (``forge/static/admin``) in a real browser (headless Chromium).

The harness (``conftest.py``) serves the page as Forge would and stands in for the gateway:
``/remote/forge/ui/config`` answers whatever the test queued. Each test runs twice: on the
sources (``forge/static/admin`` and ``forge/static/shared``, ``@forge/bridge`` mapped to
``fake_bridge.js``) and on the bundle ``npm run build`` writes (``static/admin/build``),
skipped when that is missing or stale.

Every test asserts what a user sees, and that the page threw nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from tests.forge.conftest import Harness

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.asyncio(loop_scope="module"),
]

CODE_TTL: Final = 600
INSTALL_URL: Final = (
    "https://discord.com/oauth2/authorize?client_id=1234&scope=bot+applications.commands"
    "&permissions=309237730304"
)


def configured(
    *,
    code: str = "ABCD-EFGH",
    expires_at: int | None = None,
    connections: list[dict[str, Any]] | None = None,
    install_url: str | None = INSTALL_URL,
    site_url: str | None = "https://acme.atlassian.net",
) -> dict[str, Any]:
    """A 200 body as the gateway sends it."""
    return {
        "site": {"url": site_url},
        "discord": {"installUrl": install_url},
        "connectCode": {
            "code": code,
            "expiresAt": int(time.time()) + CODE_TTL if expires_at is None else expires_at,
        },
        "connections": [{"guildId": "123456789012345678", "connectedAt": "2026-12-03T10:00:00Z"}]
        if connections is None
        else connections,
    }


@pytest.fixture(name="forge_page")
def _forge_page() -> str:
    return "admin"


async def test_a_configured_site_shows_the_install_link_the_code_and_the_servers(
    h: Harness,
) -> None:
    """Everything the Connect configuration page shows, from one GET /forge/ui/config."""
    from playwright.async_api import expect

    expires_at = int(time.time()) + CODE_TTL
    h.backend.answer(200, configured(expires_at=expires_at))
    await h.open()
    page = h.page

    await expect(page.get_by_role("heading", level=1)).to_have_text("Discord for Jira")
    await expect(page.locator("#site")).to_have_text("Jira site: https://acme.atlassian.net")
    install = page.get_by_role("link", name="Add the bot to your Discord server")
    await expect(install).to_have_attribute("href", INSTALL_URL)
    await expect(page.locator("#command")).to_have_text("/jira connect code:ABCD-EFGH")
    expiry = page.locator("#expiry")
    await expect(expiry).to_contain_text("The code works once and expires at")
    await expect(expiry).to_contain_text("(in 10 minutes)")
    when = datetime.fromtimestamp(expires_at, UTC)
    await expect(expiry.locator("time")).to_have_text(when.strftime("%H:%M"))
    await expect(expiry.locator("time")).to_have_attribute(
        "datetime", when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    )
    servers = page.get_by_role("list", name="Connected servers").get_by_role("listitem")
    await expect(servers).to_have_text(["Server 123456789012345678, connected 2026-12-03"])
    await expect(page.get_by_role("button", name="New code")).to_be_enabled()
    await expect(page.get_by_role("alert")).to_have_count(0)
    assert h.backend.seen == [("GET", "/forge/ui/config", None)]
    calls = await h.calls()
    assert {"fn": "view.theme.enable"} in calls
    assert [c for c in calls if c["fn"] == "invokeRemote"] == [
        {"fn": "invokeRemote", "path": "/forge/ui/config", "method": "GET"}
    ]


async def test_the_install_link_leaves_through_the_bridge(h: Harness) -> None:
    """A click opens Discord with router.open (Jira asks the user); the page stays."""
    h.backend.answer(200, configured())
    await h.open()
    await h.page.get_by_role("link", name="Add the bot to your Discord server").click()
    assert h.page.url == h.url
    assert {"fn": "router.open", "location": INSTALL_URL} in await h.calls()
    assert len(h.page.context.pages) == 1


async def test_new_code_fetches_again_and_shows_the_new_code(h: Harness) -> None:
    """The button asks the gateway once more, shows its code, says so, and keeps the focus."""
    from playwright.async_api import expect

    h.backend.answer(200, configured(code="AAAA-1111"))
    h.backend.answer(200, configured(code="BBBB-2222"))
    await h.open()
    await expect(h.page.locator("#command")).to_have_text("/jira connect code:AAAA-1111")
    await h.page.get_by_role("button", name="New code").click()
    await expect(h.page.locator("#command")).to_have_text("/jira connect code:BBBB-2222")
    await expect(h.page.get_by_role("status")).to_have_text("New code ready.")
    await expect(h.page.get_by_role("button", name="New code")).to_be_focused()
    assert h.backend.seen == [("GET", "/forge/ui/config", None)] * 2


async def test_an_expired_code_says_so(h: Harness) -> None:
    from playwright.async_api import expect

    h.backend.answer(200, configured(expires_at=int(time.time()) - 60))
    await h.open()
    await expect(h.page.locator("#expiry")).to_contain_text("This code expired at")
    await expect(h.page.locator("#expiry")).to_contain_text("Get a new one.")


@pytest.mark.parametrize(
    "body",
    [
        {**configured(), "discord": {"installUrl": None}},
        {**configured(), "connectCode": None},
        # Only an https link may become a link; anything else counts as not set up.
        {**configured(), "discord": {"installUrl": "javascript:alert(1)"}},
    ],
    ids=["no-install-url", "no-connect-code", "javascript-install-url"],
)
async def test_discord_not_set_up_says_what_the_operator_must_do(
    h: Harness, body: dict[str, Any]
) -> None:
    """No install link and no code, but a notice naming the settings; servers still listed."""
    from playwright.async_api import expect

    h.backend.answer(200, body)
    await h.open()
    notice = h.page.locator("#not-set-up")
    await expect(notice).to_contain_text("Discord is not set up on this server yet.")
    await expect(notice).to_contain_text("DFJ_DISCORD_APPLICATION_ID")
    await expect(notice).to_contain_text("DFJ_STATE_SIGNING_KEY")
    await expect(h.page.get_by_role("link")).to_have_count(0)
    await expect(h.page.locator("#command")).to_have_count(0)
    await expect(h.page.get_by_role("button", name="New code")).to_have_count(0)
    await expect(h.page.locator("#connected li")).to_have_count(1)


async def test_a_failed_call_shows_the_status_and_reason_and_can_be_retried(h: Harness) -> None:
    """A 503 with {"error": …} is an alert with both; Try again fetches again and recovers."""
    from playwright.async_api import expect

    h.backend.answer(503, {"error": "discord settings unavailable"})
    h.backend.answer(200, configured())
    await h.open()
    alert = h.page.get_by_role("alert")
    await expect(alert).to_contain_text("The configuration could not be loaded")
    await expect(alert).to_contain_text("The server answered 503.")
    await expect(alert).to_contain_text("Reason: discord settings unavailable")
    await expect(h.page.locator("#command")).to_have_count(0)
    await h.page.get_by_role("button", name="Try again").click()
    await expect(h.page.locator("#command")).to_have_text("/jira connect code:ABCD-EFGH")
    await expect(h.page.get_by_role("alert")).to_have_count(0)
    assert len(h.backend.seen) == 2


async def test_a_rejected_invocation_is_an_error_too(h: Harness) -> None:
    """Forge rejects invokeRemote when the gateway refuses the token (401): say so."""
    from playwright.async_api import expect

    h.backend.answer(401, {"error": "bad token"})
    await h.open()
    alert = h.page.get_by_role("alert")
    await expect(alert).to_contain_text("The server could not be reached.")
    await expect(alert).to_contain_text("Remote could not verify the Forge Invocation Token")


async def test_a_200_the_page_does_not_understand_is_an_error(h: Harness) -> None:
    from playwright.async_api import expect

    h.backend.answer(200, {"site": {"url": None}})
    await h.open()
    await expect(h.page.get_by_role("alert")).to_contain_text("does not understand")


async def test_many_servers_are_all_listed_and_none_says_none(h: Harness) -> None:
    from playwright.async_api import expect

    many = [
        {"guildId": str(10**17 + i), "connectedAt": f"2026-01-{1 + i % 28:02d}T00:00:00Z"}
        for i in range(120)
    ]
    h.backend.answer(200, configured(connections=many))
    h.backend.answer(200, configured(connections=[]))
    await h.open()
    items = h.page.locator("#connected li")
    await expect(items).to_have_count(120)
    await expect(items.nth(119)).to_have_text(f"Server {10**17 + 119}, connected 2026-01-08")
    await h.page.get_by_role("button", name="New code").click()
    await expect(h.page.locator("#connected")).to_have_text("None yet.")


async def test_hostile_values_render_as_text(h: Harness) -> None:
    """Markup in a guild id, the code, the site or a reason is shown, never run or parsed."""
    from playwright.async_api import expect

    img = '<img src="x" onerror="globalThis.__pwned = 1">'
    h.backend.answer(
        200,
        configured(
            code="<b>bold</b>",
            site_url="<script>globalThis.__pwned = 2</script>",
            connections=[{"guildId": img, "connectedAt": "not a date"}],
        ),
    )
    h.backend.answer(503, {"error": img})
    await h.open()
    await expect(h.page.locator("#connected code")).to_have_text(img)
    await expect(h.page.locator("#connected li")).to_have_text(
        f"Server {img} (connection date unknown)"
    )
    await expect(h.page.locator("#command")).to_have_text("/jira connect code:<b>bold</b>")
    await expect(h.page.locator("#site")).to_contain_text("<script>")
    await h.page.get_by_role("button", name="New code").click()
    await expect(h.page.get_by_role("alert")).to_contain_text(img)
    await expect(h.page.locator("img, b, #content script, #site script")).to_have_count(0)
    assert await h.page.evaluate("globalThis.__pwned") is None


@pytest.mark.parametrize(
    ("color_mode", "background", "text"),
    [
        (None, "rgb(255, 255, 255)", "rgb(23, 43, 77)"),
        ("dark", "rgb(29, 33, 37)", "rgb(182, 194, 207)"),
    ],
    ids=["light", "dark"],
)
async def test_light_and_dark_themes(h: Harness, background: str, text: str) -> None:
    """Jira's data-color-mode picks our fallbacks; Jira's own tokens win when it supplies them."""
    h.backend.answer(200, configured())
    await h.open()
    style = "getComputedStyle(document.body)"
    assert await h.page.evaluate(f"{style}.backgroundColor") == background
    assert await h.page.evaluate(f"{style}.color") == text
    await h.page.add_style_tag(content=":root { --ds-surface: rgb(1, 2, 3); }")
    assert await h.page.evaluate(f"{style}.backgroundColor") == "rgb(1, 2, 3)"
