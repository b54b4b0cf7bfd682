"""The Forge link page (``forge/static/link``) in a real browser (headless Chromium).

Where a Jira user lands from the button ``/jira link`` answers in Discord,
``https://<site>/jira/apps/<appId>/<envId>?request=<link request>``, or from Jira's Apps menu
without ``request``. A small aiohttp server on loopback serves the page as Forge would, and
stands in for the gateway: ``/remote/forge/ui/link`` answers whatever the test queued and
records the JSON body it was sent. The page is run two ways, as in ``test_admin_page.py``:

* ``source``: the files under ``forge/static/link``, with an import map pointing
  ``@forge/bridge`` to ``tests/forge/fake_bridge.js`` (whose ``view.createHistory()`` reports
  the Jira page's URL the test chose, and whose ``invokeRemote`` really POSTs to the server);
* ``bundle``: what ``npm run build`` in ``forge/`` deploys (``static/link/build``), with the
  real ``@forge/bridge`` inside, talking to a stand-in for the host's ``window.__bridge``.
  Skipped when the bundle is missing or older than the source (it is not built in CI).

Every test asserts what a user sees, what reached the gateway, and that the page threw nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio
from aiohttp import web

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.asyncio(loop_scope="module"),
]

ROOT: Final = Path(__file__).resolve().parents[2]
SOURCE: Final = ROOT / "forge" / "static" / "link"
BUNDLE: Final = SOURCE / "build"
FAKE_BRIDGE: Final = Path(__file__).with_name("fake_bridge.js")
IMPORT_MAP: Final = (
    '<script type="importmap">{"imports": {"@forge/bridge": "/fake-bridge.js"}}</script>'
)
#: For the bundle: the host side of the Custom UI bridge, answering what the real
#: @forge/bridge asks (invoke → ui-remote-fetch, navigate, enableTheming, createHistory,
#: getContext), honouring the same test globals as fake_bridge.js and recording the calls the
#: way it does.
HOST_BRIDGE: Final = """
(() => {
  const calls = (globalThis.__bridgeCalls = globalThis.__bridgeCalls || []);
  const hostUrl = () => new URL(globalThis.__hostUrl
    || 'https://acme.atlassian.net/jira/apps/app-uuid/env-uuid');
  globalThis.__bridge = {
    async callBridge(name, payload) {
      if (name === 'invoke' && payload.invokeType === 'ui-remote-fetch') {
        const call = { fn: 'invokeRemote', path: payload.path, method: payload.method };
        const init = { method: payload.method };
        if ('body' in payload) {
          call.body = payload.body;
          init.body = JSON.stringify(payload.body);
          init.headers = { 'content-type': 'application/json' };
        }
        calls.push(call);
        const response = await fetch('/remote' + payload.path, init);
        const text = await response.text();
        if (response.status === 401) {
          throw new Error('Remote could not verify the Forge Invocation Token');
        }
        const headers = {};
        response.headers.forEach((value, key) => { headers[key] = [value]; });
        const body = text ? JSON.parse(text) : undefined;
        const answer = { status: response.status, headers, body };
        return response.ok ? { success: true, payload: answer } : { success: false, error: answer };
      }
      if (name === 'navigate' && payload.type === 'new-tab') {
        calls.push({ fn: 'router.open', location: String(payload.url) });
        if (globalThis.__routerOpenFails) {
          throw new Error('navigation refused');
        }
        return undefined;
      }
      if (name === 'enableTheming') {
        calls.push({ fn: 'view.theme.enable' });
        if (globalThis.__colorMode) {
          document.documentElement.setAttribute('data-color-mode', globalThis.__colorMode);
        }
        return undefined;
      }
      if (name === 'createHistory') {
        calls.push({ fn: 'view.createHistory' });
        if (globalThis.__noHistory) {
          throw new Error('history is not available here');
        }
        const url = hostUrl();
        const base = url.pathname.split('/').slice(0, 5).join('/');
        return {
          action: 'POP',
          location: {
            pathname: url.pathname.slice(base.length) || '/',
            search: url.search, hash: url.hash, state: undefined, key: 'default',
          },
          listen() { return () => {}; },
          push() {},
          replace() {},
        };
      }
      if (name === 'getContext') {
        calls.push({ fn: 'view.getContext' });
        const extension = { type: 'jira:globalPage' };
        if (globalThis.__contextLocation) {
          extension.location = hostUrl().href;
        }
        return { moduleKey: 'link', siteUrl: 'https://acme.atlassian.net', extension };
      }
      throw new Error('unexpected bridge call ' + name);
    },
  };
})();
"""

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


@dataclass
class Backend:
    """What the stand-in gateway answers (a queue, the last answer repeats) and was sent."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    seen: list[tuple[str, str, Any]] = field(default_factory=list)

    def answer(self, status: int, body: Any) -> None:
        self.answers.append((status, body))


BACKEND: Final = web.AppKey("backend", Backend)


def _index(folder: Path, *, import_map: bool) -> str:
    text = (folder / "index.html").read_text(encoding="utf-8")
    if not import_map:
        return text
    assert text.count("<head>") == 1, "index.html must have one <head> for the import map"
    return text.replace("<head>", "<head>\n" + IMPORT_MAP, 1)


def _server(folder: Path, *, import_map: bool) -> web.Application:
    """The page's files (read once, here) and the stand-in gateway under /remote."""
    app = web.Application()
    app[BACKEND] = Backend()

    def asset(body: bytes, content_type: str) -> Callable[[web.Request], Any]:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8")

        return handler

    index = asset(_index(folder, import_map=import_map).encode(), "text/html")
    app.router.add_get("/", index)
    app.router.add_get("/index.html", index)
    for name, content_type in (("main.js", "text/javascript"), ("style.css", "text/css")):
        app.router.add_get(f"/{name}", asset((folder / name).read_bytes(), content_type))
    app.router.add_get("/fake-bridge.js", asset(FAKE_BRIDGE.read_bytes(), "text/javascript"))

    async def remote(request: web.Request) -> web.Response:
        backend = request.app[BACKEND]
        raw = await request.read()
        sent = json.loads(raw) if raw else None
        backend.seen.append((request.method, request.path_qs.removeprefix("/remote"), sent))
        assert backend.answers, "the test queued no answer"
        status, body = backend.answers.pop(0) if len(backend.answers) > 1 else backend.answers[0]
        return web.json_response(body, status=status)

    app.router.add_route("*", "/remote/{tail:.*}", remote)
    return app


def _bundle_is_current() -> bool:
    built = [BUNDLE / name for name in ("index.html", "main.js", "style.css")]
    if not all(p.is_file() for p in built):
        return False
    oldest = min(p.stat().st_mtime for p in built)
    return all(p.stat().st_mtime <= oldest for p in SOURCE.glob("*.*") if p.is_file())


@dataclass
class Harness:
    """The served page, its stand-in gateway, and a browser page with everything it threw."""

    url: str
    backend: Backend
    page: Any
    errors: list[str]

    async def open(self) -> None:
        from playwright.async_api import expect

        await self.page.goto(self.url)
        await expect(self.page.locator("main")).to_have_attribute("aria-busy", "false")

    async def calls(self, fn: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.page.evaluate("globalThis.__bridgeCalls || []")
        return result if fn is None else [c for c in result if c["fn"] == fn]


@pytest.fixture(name="host_url")
def _host_url() -> str | None:
    """The Jira page's URL the bridge reports (None: the fake's default, without a query)."""
    return None


@pytest.fixture(name="flags")
def _flags() -> dict[str, Any]:
    """Other test globals for the bridge (__noHistory, __contextLocation, …)."""
    return {}


@pytest.fixture(name="color_mode")
def _color_mode() -> str | None:
    return None


@pytest_asyncio.fixture(name="h", params=["source", "bundle"], loop_scope="module")
async def _harness(
    request: pytest.FixtureRequest,
    browser: Any,
    host_url: str | None,
    flags: dict[str, Any],
    color_mode: str | None,
) -> AsyncIterator[Harness]:
    bundle = request.param == "bundle"
    if bundle and not _bundle_is_current():
        pytest.skip("no current link bundle: run `npm ci && npm run build` in forge/")
    app = _server(BUNDLE if bundle else SOURCE, import_map=not bundle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    settings = {**flags, "__hostUrl": host_url, "__colorMode": color_mode}
    try:
        context = await browser.new_context(locale="en-GB", timezone_id="UTC")
        await context.add_init_script(
            "".join(
                f"globalThis.{name} = {json.dumps(value)};"
                for name, value in settings.items()
                if value is not None
            )
        )
        if bundle:
            await context.add_init_script(HOST_BRIDGE)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Chromium logs every non-2xx fetch ("Failed to load resource"); the tests
        # answer 4xx and 5xx on purpose, and a missing asset fails them anyway.
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        try:
            yield Harness(f"http://{host}:{port}/", app[BACKEND], page, errors)
            assert errors == [], errors
        finally:
            await context.close()
    finally:
        await runner.cleanup()


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
