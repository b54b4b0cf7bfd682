"""A stand-in Forge remote on loopback, verifying every call the way a real remote must.

:class:`FakeRemote` serves the ``/forge/...`` routes the repository's ``forge/manifest.yml``
names and checks each call independently of the simulator's signer: the FIT in
``Authorization: Bearer`` against the JWK set it fetches over HTTP from
``sim.forge_jwks_url`` (PyJWT, RS256 only, ``iss``, ``aud`` = the app id, required claims;
times against the simulator's clock, so a test may move it). A call that fails is answered
401 and listed in :attr:`FakeRemote.rejections` — unless the test expects refusals
(``remote.expect_rejections``), the fixture fails the test at teardown if any is.

It is also a bare Connect app (descriptor, lifecycle and webhooks answered 204 and counted),
so a site can run the Connect app before it migrates to Forge.

Tests script answers (``remote.answers["/forge/events"] = [500, 401]``) and stalls
(``remote.stalls["/forge/events"] = [0.5]``), consumed one per verified request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import jwt
import pytest
import yaml
from aiohttp import web

from dfj_common.clock import ManualClock
from dfj_sandbox.forge_signing import FIT_ISSUER
from dfj_sandbox.jira_sim import ForgeInstallation, ForgePolicy, JiraSimulator, Site

MANIFEST: Final = Path(__file__).resolve().parents[5] / "forge" / "manifest.yml"
APP_ID: Final = "ari:cloud:ecosystem::app/6f1c1c3e-1111-4a4a-9b9b-0123456789ab"
CONNECT_KEY: Final = "discord-for-jira"


@dataclass(frozen=True, kw_only=True)
class Received:
    """One verified call to the remote."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)
    claims: dict[str, Any]

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


class FakeRemote:
    """The remote end of Forge Remote (see the module docstring)."""

    def __init__(self, sim: JiraSimulator, app_id: str = APP_ID) -> None:
        self.sim = sim
        self.app_id = app_id
        self.received: list[Received] = []
        self.rejections: list[str] = []
        self.expect_rejections = False
        self.answers: dict[str, list[int]] = {}
        self.stalls: dict[str, list[float]] = {}
        self.connect_calls: list[str] = []
        self.ui_reply: dict[str, Any] = {"ok": True}
        self._arrival = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""

    async def start(self) -> None:
        """Listen on loopback."""
        app = web.Application()
        app.router.add_post("/forge/{name}", self._backend)
        app.router.add_route("*", "/forge/ui/{tail:.*}", self._ui)
        app.router.add_get("/connect/atlassian-connect.json", self._descriptor)
        app.router.add_post("/connect/{tail:.*}", self._connect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop listening."""
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests look at ---------------------------------------------------------------

    def calls(self, path: str) -> list[Received]:
        """Verified calls to ``path``."""
        return [r for r in self.received if r.path == path]

    def events(self) -> list[Received]:
        """Verified calls to the product-events endpoint, in arrival order."""
        return self.calls("/forge/events")

    async def wait_for_calls(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` verified calls have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrival.clear()
                await self._arrival.wait()

    # --- verification ---------------------------------------------------------------------

    async def _keys(self) -> jwt.PyJWKSet:
        assert self._http is not None
        async with self._http.get(self.sim.forge_jwks_url) as response:
            return jwt.PyJWKSet.from_dict(await response.json())

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a FIT a careful remote accepts (jwt.PyJWTError otherwise)."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256":
            raise jwt.InvalidAlgorithmError("the FIT must be RS256")
        keys = await self._keys()
        try:
            key = keys[str(header.get("kid"))]
        except KeyError:
            raise jwt.InvalidTokenError("no key with this kid in the JWKS") from None
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=self.app_id,
            issuer=FIT_ISSUER,
            options={
                "require": ["iss", "aud", "iat", "nbf", "exp", "jti"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        now = self.sim.clock.now()
        if not claims["nbf"] - 5 <= now < claims["exp"] + 5:
            raise jwt.ExpiredSignatureError("the FIT is not valid now")
        if not str(claims["app"]["installationId"]).startswith(
            "ari:cloud:ecosystem::installation/"
        ):
            raise jwt.InvalidTokenError("no installationId")
        return claims

    async def _verified(self, request: web.Request) -> Received | web.Response:
        body = await request.read()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme != "Bearer" or not token:
                raise jwt.InvalidTokenError("no bearer FIT")
            claims = await self.verify(token)
        except jwt.PyJWTError as exc:
            self.rejections.append(f"{request.method} {request.path}: {exc}")
            return web.json_response({"message": str(exc)}, status=401)
        received = Received(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
            claims=claims,
        )
        self.received.append(received)
        self._arrival.set()
        stalls = self.stalls.get(request.path)
        if stalls:
            await asyncio.sleep(stalls.pop(0))
        answers = self.answers.get(request.path)
        if answers:
            return web.json_response({"message": "scripted"}, status=answers.pop(0))
        return received

    # --- routes ---------------------------------------------------------------------------

    async def _backend(self, request: web.Request) -> web.StreamResponse:
        outcome = await self._verified(request)
        if isinstance(outcome, web.Response):
            return outcome
        return web.Response(status=204)

    async def _ui(self, request: web.Request) -> web.StreamResponse:
        outcome = await self._verified(request)
        if isinstance(outcome, web.Response):
            return outcome
        return web.json_response({**self.ui_reply, "principal": outcome.claims.get("principal")})

    async def _descriptor(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "key": CONNECT_KEY,
                "baseUrl": self.base_url + "/connect",
                "authentication": {"type": "jwt"},
                "apiMigrations": {"signed-install": True},
                "lifecycle": {"installed": "/lifecycle/installed"},
                "modules": {"webhooks": [{"event": "jira:issue_created", "url": "/webhooks"}]},
            }
        )

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        self.connect_calls.append(request.path)
        return web.Response(status=204)


def write_manifest(tmp_path: Path, change: Any) -> Path:
    """A copy of the repository's manifest, changed by ``change(document)``."""
    document = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture(name="clock")
def _real_time_clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture(name="fast")
def _fast(sim: JiraSimulator) -> JiraSimulator:
    """The simulator with Forge's retries sandbox-short."""
    sim.forge.policy = ForgePolicy(retry_delay=0.01, timeout=1.0)
    return sim


@pytest.fixture(name="remote")
async def _remote(fast: JiraSimulator) -> AsyncIterator[FakeRemote]:
    fake = FakeRemote(fast)
    await fake.start()
    yield fake
    await fake.close()
    if not fake.expect_rejections:
        assert fake.rejections == []


@pytest.fixture(name="forge")
async def _forge(fast: JiraSimulator, site: Site, remote: FakeRemote) -> ForgeInstallation:
    """The repository's manifest installed on ``site`` (the installed event delivered)."""
    site.sign_in("dora")
    installation = await fast.install_forge_app(
        site, MANIFEST, remote_base_url=remote.base_url, app_id=APP_ID
    )
    site.sign_out()
    return installation
