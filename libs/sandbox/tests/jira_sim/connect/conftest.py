"""A stand-in Connect app on loopback, verifying what the simulator sends as a real app must.

:class:`FakeApp` serves a descriptor under ``/app`` (so its ``baseUrl`` has a path, and every
``qsh`` must be computed relative to it) and checks every call independently of the
simulator's signer: RS256 signed-install tokens against the key it fetches over HTTP from
``sim.install_keys_url/{kid}`` with ``aud`` = its base URL; HS256 tokens with the shared
secret the ``installed`` body handed over; every ``qsh`` with ``dfj_common.qsh``. A call that
fails a check is answered 401 and listed in :attr:`FakeApp.rejections` (the fixture fails the
test at teardown if any is). Tests script answers (``app.answers[path] = [503, 503]``) and
stalls (``app.stalls[path] = [0.5]``), consumed one per request after the checks passed.

The clock here is a manual clock set to the real time: PyJWT checks ``iat``/``exp`` against
the real clock, and the simulator signs with its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import jwt
import pytest
from aiohttp import web

from dfj_common.clock import ManualClock
from dfj_common.qsh import qsh
from dfj_sandbox.jira_sim import JiraSimulator, LifecyclePolicy, Site, WebhookPolicy

PREFIX: Final = "/app"
APP_KEY: Final = "discord-for-jira"
WEBHOOKS: Final = {
    "issue-created": "jira:issue_created",
    "issue-updated": "jira:issue_updated",
    "issue-deleted": "jira:issue_deleted",
    "comment-created": "comment_created",
    "comment-updated": "comment_updated",
    "comment-deleted": "comment_deleted",
}
LINK_PAGE_KEY: Final = "dfj-link"
CONFIG_PAGE_KEY: Final = "dfj-configure"


@dataclass(frozen=True, kw_only=True)
class Received:
    """One verified call to the app."""

    method: str
    path: str  # relative to the app's base URL
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = field(repr=False)
    claims: dict[str, Any]

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


def descriptor(base_url: str) -> dict[str, Any]:
    """A descriptor shaped like the gateway's (paths relative to ``base_url``)."""
    return {
        "key": APP_KEY,
        "name": "Fake app",
        "baseUrl": base_url,
        "authentication": {"type": "jwt"},
        "apiVersion": 1,
        "apiMigrations": {"signed-install": True, "context-qsh": True, "gdpr": True},
        "scopes": ["READ", "WRITE", "ACT_AS_USER"],
        "lifecycle": {
            "installed": "/lifecycle/installed",
            "uninstalled": "/lifecycle/uninstalled",
            "enabled": "/lifecycle/enabled",
            "disabled": "/lifecycle/disabled",
        },
        "modules": {
            "webhooks": [
                {"event": event, "url": f"/webhooks/{slug}", "excludeBody": False}
                for slug, event in WEBHOOKS.items()
            ],
            "configurePage": {
                "key": CONFIG_PAGE_KEY,
                "name": {"value": "Configure"},
                "url": "/pages/config",
            },
            "generalPages": [
                {
                    "key": LINK_PAGE_KEY,
                    "name": {"value": "Link your Discord account"},
                    "url": "/pages/link?request={ac.request}",
                    "location": "none",
                }
            ],
        },
    }


class FakeApp:
    """The app end of the Connect protocol (see the module docstring)."""

    def __init__(self, sim: JiraSimulator) -> None:
        self.sim = sim
        self.document: dict[str, Any] = {}
        self.descriptor_status = 200
        self.descriptor_text: str | None = None  # served instead of the document when set
        self.secrets: dict[str, str] = {}
        self.received: list[Received] = []
        self.rejections: list[str] = []
        self.answers: dict[str, list[int]] = {}
        self.stalls: dict[str, list[float]] = {}
        self._arrival = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""

    @property
    def descriptor_url(self) -> str:
        """Where the descriptor is served."""
        return self.base_url + "/atlassian-connect.json"

    async def start(self) -> None:
        """Listen on loopback; the descriptor points at this server."""
        app = web.Application()
        app.router.add_get(PREFIX + "/atlassian-connect.json", self._descriptor)
        app.router.add_post(PREFIX + "/lifecycle/{event}", self._lifecycle)
        app.router.add_post(PREFIX + "/webhooks/{tail:.*}", self._webhook)
        app.router.add_get(PREFIX + "/pages/{name}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}{PREFIX}"
        self.document = descriptor(self.base_url)
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop listening."""
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests look at ---------------------------------------------------------------

    def calls(self, path_prefix: str) -> list[Received]:
        """Verified calls whose relative path starts with ``path_prefix``."""
        return [r for r in self.received if r.path.startswith(path_prefix)]

    def webhooks(self) -> list[Received]:
        """Every verified webhook call, in arrival order."""
        return self.calls("/webhooks/")

    async def wait_for_calls(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` verified calls have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrival.clear()
                await self._arrival.wait()

    # --- verification ---------------------------------------------------------------------

    def _qsh(self, request: web.Request) -> str:
        url = request.rel_url
        return qsh(request.method, url.raw_path, url.query.items(), PREFIX)

    async def _public_key(self, kid: str) -> bytes:
        assert self._http is not None
        async with self._http.get(f"{self.sim.install_keys_url}/{kid}") as response:
            if response.status != 200:
                raise jwt.InvalidTokenError(f"key server answered {response.status} for {kid}")
            return await response.read()

    async def _verify(self, request: web.Request, *, token: str, signed_install: bool) -> Any:
        if signed_install:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256" or "kid" not in header:
                raise jwt.InvalidTokenError("not an RS256 token with a kid")
            claims = jwt.decode(
                token,
                await self._public_key(header["kid"]),
                algorithms=["RS256"],
                audience=self.base_url,
                options={"require": ["iss", "aud", "iat", "exp", "qsh"]},
            )
        else:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            secret = self.secrets.get(issuer) if isinstance(issuer, str) else None
            if secret is None:
                raise jwt.InvalidTokenError("unknown installation")
            claims = jwt.decode(
                token,
                secret.encode("utf-8"),
                algorithms=["HS256"],
                options={"require": ["iss", "iat", "exp", "qsh"]},
            )
        if claims["qsh"] != self._qsh(request):
            raise jwt.InvalidTokenError("qsh does not match the request")
        return claims

    async def _handle(
        self, request: web.Request, *, token: str | None, signed_install: bool = False
    ) -> Received | web.Response:
        body = await request.read()
        relative = request.rel_url.raw_path[len(PREFIX) :]
        try:
            if not token:
                raise jwt.InvalidTokenError("no token")
            claims = await self._verify(request, token=token, signed_install=signed_install)
        except jwt.PyJWTError as exc:
            self.rejections.append(f"{request.method} {relative}: {exc}")
            return web.json_response({"message": str(exc)}, status=401)
        received = Received(
            method=request.method,
            path=relative,
            query=dict(request.rel_url.query),
            headers=dict(request.headers),
            body=body,
            claims=claims,
        )
        self.received.append(received)
        self._arrival.set()
        stalls = self.stalls.get(request.path[len(PREFIX) :])
        if stalls:
            await asyncio.sleep(stalls.pop(0))
        answers = self.answers.get(request.path[len(PREFIX) :])
        if answers:
            return web.json_response({"message": "scripted"}, status=answers.pop(0))
        return received

    @staticmethod
    def _header_token(request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token if scheme == "JWT" else None

    # --- routes ---------------------------------------------------------------------------

    async def _descriptor(self, request: web.Request) -> web.StreamResponse:
        if self.descriptor_status != 200:
            return web.Response(status=self.descriptor_status, text="nope")
        if self.descriptor_text is not None:
            return web.Response(text=self.descriptor_text, content_type="application/json")
        return web.json_response(self.document)

    async def _lifecycle(self, request: web.Request) -> web.StreamResponse:
        event = request.match_info["event"]
        signed = event in {"installed", "uninstalled"}
        outcome = await self._handle(
            request, token=self._header_token(request), signed_install=signed
        )
        if isinstance(outcome, web.Response):
            return outcome
        body = outcome.json()
        if body.get("clientKey") != outcome.claims["iss"] or body.get("eventType") != event:
            self.rejections.append(f"{event}: body does not match the token")
            return web.json_response({"message": "mismatch"}, status=400)
        if event == "installed":
            # The RS256 token authenticated this body; its secret verifies what follows.
            self.secrets[body["clientKey"]] = body["sharedSecret"]
        return web.Response(status=204)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        outcome = await self._handle(request, token=self._header_token(request))
        if isinstance(outcome, web.Response):
            return outcome
        return web.Response(status=204)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        outcome = await self._handle(request, token=request.rel_url.query.get("jwt"))
        if isinstance(outcome, web.Response):
            return outcome
        who = outcome.claims.get("sub", "nobody")
        return web.Response(text=f"<p>page {request.match_info['name']} for {who}</p>")


@pytest.fixture(name="clock")
def _real_time_clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture(name="fast")
def _fast(sim: JiraSimulator) -> JiraSimulator:
    """The simulator with retry schedules short enough for tests."""
    sim.webhook_policy = WebhookPolicy(first_delay=0.01, max_delay=0.05, max_retries=3, timeout=2)
    sim.lifecycle_policy = LifecyclePolicy(first_delay=0.01, max_delay=0.05, deadline=2, timeout=2)
    return sim


@pytest.fixture(name="app")
async def _app(fast: JiraSimulator) -> AsyncIterator[FakeApp]:
    fake = FakeApp(fast)
    await fake.start()
    yield fake
    await fake.close()
    assert fake.rejections == []


@pytest.fixture(name="installed")
async def _installed(fast: JiraSimulator, site: Site, app: FakeApp) -> Site:
    """``site`` with the fake app installed and enabled."""
    await fast.install_app(site, app.descriptor_url)
    return site
