"""The Forge link page (``forge/static/link``) in a real browser (headless Chromium).

Where a Jira user lands from the button ``/jira link`` answers in Discord,
``https://<site>/jira/apps/<appId>/<envId>?request=<link request>``, or from Jira's Apps menu
without ``request``. A small aiohttp server on loopback serves the page as Forge would, and
stands in for the gateway: ``/remote/forge/ui/link`` answers whatever the test queued and
records the JSON body it was sent. Each test runs twice (``conftest.py``): on the sources
(``forge/static/link`` and ``forge/static/shared``, ``@forge/bridge`` mapped to
``fake_bridge.js``, whose ``view.createHistory()`` reports the Jira page's URL the test chose
as ``host_url``) and on the bundle ``npm run build`` writes (``static/link/build``), skipped
when that is missing or stale.

Every test asserts what a user sees, what reached the gateway, and that the page threw nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from tests.forge.conftest import Harness

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.asyncio(loop_scope="module"),
]

SITE_PAGE: Final = "https://acme.atlassian.net/jira/apps/0f1e2d3c-aaaa/77e5-bbbb"
#: A link request as the linker seals it: URL-safe base64 pieces joined by dots.
TOKEN: Final = "v1.eyJjayI6ImFjbWUifQ.Zm9vYmFy-_baz"
AUTHORIZE_URL: Final = (
    "https://discord.com/oauth2/authorize?client_id=1234&response_type=code"
    "&redirect_uri=https%3A%2F%2Fjira-bridge.example.org%2Foauth%2Fdiscord%2Fcallback"
    "&scope=identify&state=s.abc&prompt=consent"
)
EXPLANATION: Final = (
    "Link your Discord account to your Jira account, so that what you do with /jira in Discord "
    "is done as you in Jira, with your permissions. Discord will ask you to authorize: it shares "
    "your Discord user id only, nothing else."
)
NO_REQUEST_NOTE: Final = "whoever authorizes in Discord next will be linked to your Jira account"


@pytest.fixture(name="forge_page")
def _forge_page() -> str:
    return "link"


# -- with and without a link request -----------------------------------------------------------


@pytest.mark.parametrize(
    "host_url",
    [
        f"{SITE_PAGE}?request={TOKEN}",
        f"{SITE_PAGE}/?utm=discord&request={TOKEN}#top",
        # URL-encoded in the Jira page's URL: the gateway gets the decoded token.
        f"{SITE_PAGE}?request={TOKEN.replace('.', '%2E')}",
    ],
    ids=["plain", "among-others", "encoded"],
)
async def test_a_request_is_sent_and_continue_opens_discord(h: Harness) -> None:
    """The token from the Jira page's URL goes to POST /forge/ui/link; the button opens the
    answer's authorize URL through the bridge (router.open) and the page stays."""
    from playwright.async_api import expect

    h.backend.answer(200, {"authorizeUrl": AUTHORIZE_URL})
    await h.open()
    page = h.page

    await expect(page.get_by_role("heading", level=1)).to_have_text("Link your Discord account")
    await expect(page.locator("#explain")).to_have_text(EXPLANATION)
    await expect(page.locator("#no-request")).to_have_count(0)
    await expect(page.get_by_role("alert").filter(has_text="could not")).to_have_count(0)
    assert h.backend.seen == [("POST", "/forge/ui/link", {"request": TOKEN})]
    assert await h.calls("invokeRemote") == [
        {
            "fn": "invokeRemote",
            "path": "/forge/ui/link",
            "method": "POST",
            "body": {"request": TOKEN},
        }
    ]
    assert await h.calls("view.theme.enable") == [{"fn": "view.theme.enable"}]
    assert await h.calls("router.open") == []

    await page.get_by_role("button", name="Continue to Discord").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Discord is open in a new tab. Authorize there to finish linking."
    )
    assert await h.calls("router.open") == [{"fn": "router.open", "location": AUTHORIZE_URL}]
    assert h.page.url == h.url
    assert len(h.page.context.pages) == 1
    assert len(h.backend.seen) == 1  # the click asks nothing more of the gateway


@pytest.mark.parametrize(
    "host_url",
    [None, f"{SITE_PAGE}?request=", f"{SITE_PAGE}?requests={TOKEN}&other=1"],
    ids=["no-query", "empty-request", "other-parameters"],
)
async def test_without_a_request_nothing_is_sent_and_the_page_says_who_gets_linked(
    h: Harness,
) -> None:
    """Opened from Jira's Apps menu: no `request` key at all, and a note that whoever
    authorizes in Discord is linked."""
    from playwright.async_api import expect

    h.backend.answer(200, {"authorizeUrl": AUTHORIZE_URL})
    await h.open()
    assert h.backend.seen == [("POST", "/forge/ui/link", {})]
    (call,) = await h.calls("invokeRemote")
    assert call["body"] == {}
    note = h.page.locator("#no-request")
    await expect(note).to_contain_text("You opened this page from Jira, not from /jira link")
    await expect(note).to_contain_text(NO_REQUEST_NOTE)
    await expect(h.page.locator("#explain")).to_have_text(EXPLANATION)
    await h.page.get_by_role("button", name="Continue to Discord").click()
    await expect(h.page.get_by_role("status")).not_to_be_empty()
    assert await h.calls("router.open") == [{"fn": "router.open", "location": AUTHORIZE_URL}]


@pytest.mark.parametrize(
    ("flags", "sent"),
    [
        ({"__noHistory": True, "__contextLocation": True}, {"request": TOKEN}),
        ({"__noHistory": True}, {}),
    ],
    ids=["from-context", "nothing"],
)
@pytest.mark.parametrize("host_url", [f"{SITE_PAGE}?request={TOKEN}"])
async def test_without_a_history_the_context_location_is_read(
    h: Harness, sent: dict[str, str]
) -> None:
    """Should createHistory fail, the page tries getContext's extension.location, and else
    goes on without a request (and says so) rather than breaking."""
    from playwright.async_api import expect

    h.backend.answer(200, {"authorizeUrl": AUTHORIZE_URL})
    await h.open()
    assert h.backend.seen == [("POST", "/forge/ui/link", sent)]
    await expect(h.page.locator("#no-request")).to_have_count(0 if sent else 1)
    await expect(h.page.get_by_role("button", name="Continue to Discord")).to_be_enabled()
    assert [c["fn"] for c in await h.calls() if c["fn"].startswith("view.")] == [
        "view.theme.enable",
        "view.createHistory",
        "view.getContext",
    ]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "lines", "retry"),
    [
        (
            400,
            {"error": "link request expired"},
            ["This link request expired. Run /jira link in Discord again."],
            False,
        ),
        (
            400,
            {"error": "link request for another site"},
            [
                "This link request was made for another Jira site.",
                "Run /jira link in a Discord server that is connected to this Jira site.",
            ],
            False,
        ),
        (
            503,
            {"error": "linking is not set up on this server yet"},
            [
                "Linking is not set up on this server yet.",
                "Ask the operator of this Discord for Jira server to finish setting it up.",
            ],
            True,
        ),
        (
            400,
            {"error": "link request bad signature"},
            ["The server answered 400.", "Reason: link request bad signature"],
            True,
        ),
        (
            400,
            {"error": "request is malformed"},
            ["The server answered 400.", "Reason: request is malformed"],
            True,
        ),
        (
            403,
            {"error": "only the link page may start a link"},
            ["The server answered 403.", "Reason: only the link page may start a link"],
            True,
        ),
        (500, {}, ["The server answered 500.", "Reason: no reason given"], True),
        (502, {"error": 42}, ["The server answered 502.", "Reason: no reason given"], True),
    ],
    ids=[
        "expired",
        "another-site",
        "not-set-up",
        "bad-signature",
        "malformed",
        "forbidden",
        "no-reason",
        "reason-not-text",
    ],
)
@pytest.mark.parametrize("host_url", [f"{SITE_PAGE}?request={TOKEN}"])
async def test_each_error_says_what_happened(
    h: Harness, status: int, body: dict[str, Any], lines: list[str], retry: bool
) -> None:
    """One message per known reason; anything else is the status and the reason as text.
    No way to Discord is offered."""
    from playwright.async_api import expect

    h.backend.answer(status, body)
    await h.open()
    alert = h.page.locator("#error")
    await expect(alert).to_have_attribute("role", "alert")
    await expect(alert.get_by_role("heading")).to_have_text(
        "Your Discord account could not be linked"
    )
    await expect(alert.locator("p")).to_have_text([*lines, "Try again"] if retry else lines)
    await expect(h.page.get_by_role("button", name="Try again")).to_have_count(int(retry))
    await expect(h.page.get_by_role("button", name="Continue to Discord")).to_have_count(0)
    await expect(h.page.locator("#explain")).to_have_count(0)
    assert h.backend.seen == [("POST", "/forge/ui/link", {"request": TOKEN})]


async def test_a_rejected_invocation_is_an_error_too(h: Harness) -> None:
    """Forge rejects invokeRemote when the gateway refuses the token (401): say so."""
    from playwright.async_api import expect

    h.backend.answer(401, {"error": "bad token"})
    await h.open()
    alert = h.page.locator("#error")
    await expect(alert).to_contain_text("The server could not be reached.")
    await expect(alert).to_contain_text(
        "Reason: Remote could not verify the Forge Invocation Token"
    )
    await expect(h.page.get_by_role("button", name="Continue to Discord")).to_have_count(0)


@pytest.mark.parametrize("host_url", [f"{SITE_PAGE}?request={TOKEN}"])
async def test_try_again_asks_again_with_the_same_request(h: Harness) -> None:
    from playwright.async_api import expect

    h.backend.answer(503, {"error": "linking is not set up on this server yet"})
    h.backend.answer(200, {"authorizeUrl": AUTHORIZE_URL})
    await h.open()
    await h.page.get_by_role("button", name="Try again").click()
    button = h.page.get_by_role("button", name="Continue to Discord")
    await expect(button).to_be_focused()
    await expect(h.page.locator("#error")).to_have_count(0)
    assert h.backend.seen == [("POST", "/forge/ui/link", {"request": TOKEN})] * 2


@pytest.mark.parametrize(
    "body",
    [
        {"authorizeUrl": AUTHORIZE_URL.replace("https:", "http:", 1)},
        {"authorizeUrl": "javascript:alert(document.domain)"},
        {"authorizeUrl": "data:text/html,<script>alert(1)</script>"},
        {"authorizeUrl": "//discord.com/oauth2/authorize"},
        {"authorizeUrl": ""},
        {"authorizeUrl": 42},
        {},
        ["https://discord.com/oauth2/authorize"],
    ],
    ids=["http", "javascript", "data", "scheme-relative", "empty", "number", "missing", "list"],
)
async def test_only_an_https_authorize_url_is_offered(h: Harness, body: Any) -> None:
    """Anything but an https URL is an answer the page does not understand: no button."""
    from playwright.async_api import expect

    h.backend.answer(200, body)
    await h.open()
    alert = h.page.locator("#error")
    await expect(alert).to_contain_text("The server sent an answer this page does not understand.")
    await expect(h.page.get_by_role("button", name="Continue to Discord")).to_have_count(0)
    await expect(h.page.get_by_role("link")).to_have_count(0)
    assert await h.calls("router.open") == []


@pytest.mark.parametrize("flags", [{"__routerOpenFails": True}])
async def test_when_jira_does_not_open_discord_the_address_is_shown(h: Harness) -> None:
    from playwright.async_api import expect

    h.backend.answer(200, {"authorizeUrl": AUTHORIZE_URL})
    await h.open()
    await h.page.get_by_role("button", name="Continue to Discord").click()
    trouble = h.page.locator("#trouble")
    await expect(trouble).to_contain_text("Jira did not open Discord.")
    await expect(trouble.locator("code")).to_have_text(AUTHORIZE_URL)
    await expect(h.page.locator("#status")).to_be_empty()
    await expect(h.page.get_by_role("button", name="Continue to Discord")).to_be_enabled()


# -- hostile text and themes -------------------------------------------------------------------

IMG: Final = '<img src="x" onerror="globalThis.__pwned = 1">'


@pytest.mark.parametrize("host_url", [f"{SITE_PAGE}?request=%3Cscript%3E1%3C%2Fscript%3E"])
async def test_a_hostile_reason_renders_as_text(h: Harness) -> None:
    """Markup in the gateway's reason is shown, never parsed; the request goes as it came."""
    from playwright.async_api import expect

    h.backend.answer(400, {"error": IMG})
    await h.open()
    await expect(h.page.locator("#error code")).to_have_text(IMG)
    await expect(h.page.locator("#error")).to_contain_text(f"Reason: {IMG}")
    await expect(h.page.locator("main img, main script, main b")).to_have_count(0)
    assert h.backend.seen == [("POST", "/forge/ui/link", {"request": "<script>1</script>"})]
    assert await h.page.evaluate("globalThis.__pwned") is None


@pytest.mark.parametrize("flags", [{"__routerOpenFails": True}])
async def test_a_hostile_authorize_url_renders_as_text(h: Harness) -> None:
    """An https URL carrying markup is opened as a URL and, when shown, shown as text."""
    from playwright.async_api import expect

    hostile = f'https://discord.com/oauth2/authorize?state="><b>x</b>{IMG}'
    h.backend.answer(200, {"authorizeUrl": hostile})
    await h.open()
    await h.page.get_by_role("button", name="Continue to Discord").click()
    address = h.page.locator("#trouble code")
    await expect(address).to_contain_text("https://discord.com/oauth2/authorize?state=")
    (opened,) = await h.calls("router.open")
    await expect(address).to_have_text(opened["location"])
    await expect(h.page.locator("main img, main script, main b")).to_have_count(0)
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
    h.backend.answer(200, {"authorizeUrl": AUTHORIZE_URL})
    await h.open()
    style = "getComputedStyle(document.body)"
    assert await h.page.evaluate(f"{style}.backgroundColor") == background
    assert await h.page.evaluate(f"{style}.color") == text
    await h.page.add_style_tag(content=":root { --ds-surface: rgb(1, 2, 3); }")
    assert await h.page.evaluate(f"{style}.backgroundColor") == "rgb(1, 2, 3)"
