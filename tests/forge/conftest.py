"""The harness of the Forge page tests (``test_admin_page.py``, ``test_link_page.py``).

One headless Chromium per test module (a launch costs a second); each test still gets a fresh
browser context (no cookies, storage or scripts carried over). Without Chromium the page
tests skip with the reason.

A small aiohttp server on loopback serves a page as Forge would, and stands in for the
gateway: ``/remote/...`` answers whatever the test queued and records what it was sent. The
fixture ``h`` runs each test two ways:

* ``source``: the files under ``forge/static/<page>`` as they are, plus ``forge/static/shared``
  (``/shared/ui.js`` for the page's ``../shared/ui.js`` import, ``/shared.css`` as the build
  copies it), with an import map injected into ``index.html`` that points ``@forge/bridge`` to
  ``fake_bridge.js``;
* ``bundle``: what ``npm run build`` in ``forge/`` deploys (``static/<page>/build``, and only
  that folder), with the real ``@forge/bridge`` inside, talking to ``host_bridge.js`` as the
  host's ``window.__bridge``, which hands the calls to ``fake_bridge.js``. Skipped when the
  bundle is missing or older than its sources (it is not built in CI).

A test module names its page with a ``forge_page`` fixture; ``color_mode``, ``host_url`` and
``flags`` set the test globals both bridges honour (see ``fake_bridge.js``). After each test the
page must have thrown nothing and asked for no file the server does not have.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio
from aiohttp import web

CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")

HERE: Final = Path(__file__).resolve().parent
STATIC: Final = HERE.parents[1] / "forge" / "static"
SHARED: Final = STATIC / "shared"
FAKE_BRIDGE: Final = HERE / "fake_bridge.js"
HOST_BRIDGE: Final = HERE / "host_bridge.js"
IMPORT_MAP: Final = (
    '<script type="importmap">{"imports": {"@forge/bridge": "/fake-bridge.js"}}</script>'
)
#: What a build folder must hold (build.mjs writes them; main.js has ui.js inlined).
BUILT: Final = ("index.html", "main.js", "style.css", "shared.css")
CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
}


@pytest_asyncio.fixture(name="browser", scope="module", loop_scope="module")
async def _browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip("needs Chromium (apt-get install chromium; CI has it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Backend:
    """What the stand-in gateway answers (a queue, the last answer repeats) and was sent
    (method, path, JSON body or None); and the paths asked for that the server does not have."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def answer(self, status: int, body: Any) -> None:
        self.answers.append((status, body))


BACKEND: Final = web.AppKey("backend", Backend)


def _index(folder: Path, *, import_map: bool) -> str:
    text = (folder / "index.html").read_text(encoding="utf-8")
    if not import_map:
        return text
    assert text.count("<head>") == 1, "index.html must have one <head> for the import map"
    # Before any module script: an import map must come first to apply.
    return text.replace("<head>", "<head>\n" + IMPORT_MAP, 1)


def _files(page: str, *, bundle: bool) -> dict[str, Path]:
    """URL path → file, as Forge would serve the page's resource folder."""
    if bundle:
        folder = STATIC / page / "build"
        return {f"/{p.name}": p for p in folder.iterdir() if p.is_file()}
    source = STATIC / page
    files = {f"/{name}": source / name for name in ("index.html", "main.js", "style.css")}
    files["/shared.css"] = SHARED / "shared.css"
    files.update({f"/shared/{p.name}": p for p in SHARED.iterdir() if p.suffix == ".js"})
    return files


def _server(page: str, *, bundle: bool) -> web.Application:
    """The page's files (read once, here) and the stand-in gateway under /remote."""
    app = web.Application()
    app[BACKEND] = Backend()

    def asset(body: bytes, content_type: str) -> Callable[[web.Request], Any]:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8")

        return handler

    files = _files(page, bundle=bundle)
    index = _index(files["/index.html"].parent, import_map=not bundle).encode()
    app.router.add_get("/", asset(index, "text/html"))
    app.router.add_get("/index.html", asset(index, "text/html"))
    for path, file in files.items():
        if path != "/index.html":
            app.router.add_get(path, asset(file.read_bytes(), CONTENT_TYPES[file.suffix]))
    app.router.add_get("/fake-bridge.js", asset(FAKE_BRIDGE.read_bytes(), "text/javascript"))

    async def remote(request: web.Request) -> web.Response:
        backend = request.app[BACKEND]
        raw = await request.read()
        sent = json.loads(raw) if raw else None
        backend.seen.append((request.method, request.path_qs.removeprefix("/remote"), sent))
        assert backend.answers, "the test queued no answer"
        status, body = backend.answers.pop(0) if len(backend.answers) > 1 else backend.answers[0]
        return web.json_response(body, status=status)

    async def missing(request: web.Request) -> web.Response:
        if request.path != "/favicon.ico":
            request.app[BACKEND].missing.append(request.path)
        raise web.HTTPNotFound

    app.router.add_route("*", "/remote/{tail:.*}", remote)
    app.router.add_route("*", "/{tail:.*}", missing)
    return app


def _bundle_is_current(page: str) -> bool:
    built = [STATIC / page / "build" / name for name in BUILT]
    if not all(p.is_file() for p in built):
        return False
    oldest = min(p.stat().st_mtime for p in built)
    sources = [*(STATIC / page).glob("*.*"), *SHARED.glob("*.*")]
    return all(p.stat().st_mtime <= oldest for p in sources if p.is_file())


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
        """The bridge calls the page made (only those of `fn`, when given)."""
        result: list[dict[str, Any]] = await self.page.evaluate("globalThis.__bridgeCalls || []")
        return result if fn is None else [c for c in result if c["fn"] == fn]


@pytest.fixture(name="color_mode")
def _color_mode() -> str | None:
    """The data-color-mode view.theme.enable() sets (None: Jira's light default)."""
    return None


@pytest.fixture(name="host_url")
def _host_url() -> str | None:
    """The Jira page's URL the bridge reports (None: the fake's default, without a query)."""
    return None


@pytest.fixture(name="flags")
def _flags() -> dict[str, Any]:
    """Other test globals for the bridge (__noHistory, __contextLocation, …)."""
    return {}


@pytest.fixture(name="bridge_globals")
def _bridge_globals(
    color_mode: str | None, host_url: str | None, flags: dict[str, Any]
) -> dict[str, Any]:
    """All the test globals, as set before the page loads (None: left unset)."""
    return {**flags, "__hostUrl": host_url, "__colorMode": color_mode}


@pytest_asyncio.fixture(name="h", params=["source", "bundle"], loop_scope="module")
async def _harness(
    request: pytest.FixtureRequest, browser: Any, forge_page: str, bridge_globals: dict[str, Any]
) -> AsyncIterator[Harness]:
    bundle = request.param == "bundle"
    if bundle and not _bundle_is_current(forge_page):
        pytest.skip(f"no current {forge_page} bundle: run `npm ci && npm run build` in forge/")
    app = _server(forge_page, bundle=bundle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        context = await browser.new_context(locale="en-GB", timezone_id="UTC")
        await context.add_init_script(
            "".join(
                f"globalThis.{name} = {json.dumps(value)};"
                for name, value in bridge_globals.items()
                if value is not None
            )
        )
        if bundle:
            await context.add_init_script(HOST_BRIDGE.read_text(encoding="utf-8"))
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Chromium logs every non-2xx fetch ("Failed to load resource"); the tests answer 4xx
        # and 5xx on purpose, and a missing file is caught by Backend.missing instead.
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        try:
            backend = app[BACKEND]
            yield Harness(f"http://{host}:{port}/", backend, page, errors)
            assert errors == [], errors
            assert backend.missing == [], f"the page asked for files not served: {backend.missing}"
        finally:
            await context.close()
    finally:
        await runner.cleanup()
