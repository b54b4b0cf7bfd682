"""A small, strict stand-in for a Jira site and Atlassian's token endpoint, on loopback.

:class:`FakeJira` serves the site under ``/sites/acme`` (a base URL *with* a path, so the
client must leave it out of the qsh) and the authorization server under ``/oauth``. It checks
everything it receives the way Jira would, with code written apart from the client's:

- ``Authorization: JWT …`` — HS256 with the shared secret, ``iss`` = the app key, ``exp -
  iat`` = 180, ``iat`` = the shared clock's now, no ``sub``, and the ``qsh`` recomputed with
  the sandbox's own canonicaliser (``dfj_sandbox.jira_signing.query_string_hash``) over the
  raw path relative to the site base and the decoded query;
- ``Authorization: Bearer …`` — a token it issued, not revoked, not expired;
- ``POST /oauth/oauth2/token`` — a form with the JWT-bearer ``grant_type``, a ``scope`` and an
  ``assertion`` whose signature, ``iss``/``sub``/``tnt``/``aud``/``jti`` and lifetime (≤ 60 s)
  it verifies.

Anything wrong is answered 401 *and* noted in ``problems``, which every test's teardown
requires to be empty. Tests script answers with :meth:`FakeJira.respond` and
:meth:`FakeJira.respond_token`; unscripted REST requests are echoed back as JSON.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dfj_common.clock import ManualClock
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, generate_kek, make_aad
from dfj_common.storage import Installation, InstallationKind, InstallationState
from dfj_jira_worker.jira import JiraClient
from dfj_sandbox.jira_signing import query_string_hash

NOW: Final = 1_800_000_000.0
CLIENT_KEY: Final = "3f1c9a7e-5b2d-4e8f-a6c1-0d9e8b7a6c5f"
APP_KEY: Final = "discord-for-jira"
OAUTH_CLIENT_ID: Final = "oauth-client-7f3e"
SHARED_SECRET: Final = "c2VjcmV0LWZvci10aGUtamlyYS1jbGllbnQtdGVzdHMtMDAx"
ACCOUNT_ID: Final = "5b10ac8d82e05b22cc7d4ef5"
OTHER_ACCOUNT: Final = "5b10a2844c20165700ede21g"
SITE_PATH: Final = "/sites/acme"
OAUTH_PATH: Final = "/oauth"
GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class Seen:
    """One REST request as the fake received it (path relative to the site base)."""

    method: str
    path: str
    raw_path: str
    query: list[tuple[str, str]]
    actor: str  # "app" or the impersonated account id
    body: Any


@dataclass(frozen=True)
class TokenRequest:
    """One token request: its form fields and the verified assertion claims."""

    form: dict[str, str]
    claims: dict[str, Any]


Scripted = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeJira:
    """The fake site and authorization server (see the module docstring)."""

    clock: ManualClock
    token_lifetime: int = 900
    seen: list[Seen] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token → (account, exp)
    revoked: set[str] = field(default_factory=set)
    token_gate: asyncio.Event | None = None
    token_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    scripted: dict[tuple[str, str], Scripted] = field(default_factory=dict)
    scripted_token: Scripted | None = None
    root: str = ""
    _jtis: set[str] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return self.root + SITE_PATH

    @property
    def oauth_url(self) -> str:
        return self.root + OAUTH_PATH

    def respond(
        self,
        method: str,
        path: str,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer ``method path`` with ``status`` (and a JSON ``body``) after verification."""

        async def answer(_request: web.Request) -> web.StreamResponse:
            if delay:
                await asyncio.sleep(delay)
            text = None if body is None else json.dumps(body)
            return web.Response(
                status=status, text=text, content_type="application/json", headers=headers
            )

        self.scripted[(method, path)] = answer

    def respond_token(
        self, status: int, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer token requests with ``status`` instead of issuing tokens."""

        async def answer(_request: web.Request) -> web.StreamResponse:
            return web.Response(
                status=status,
                text=json.dumps(body) if body is not None else None,
                content_type="application/json",
                headers=headers,
            )

        self.scripted_token = answer

    def revoke_all(self) -> None:
        """Jira stops accepting every token issued so far."""
        self.revoked.update(self.tokens)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    # --- verification ---------------------------------------------------------------------

    def _refuse(self, problem: str) -> web.Response:
        self.problems.append(problem)
        return web.json_response({"errorMessages": ["refused by the fake"]}, status=401)

    def _verify_app(self, request: web.Request, token: str, relative: str) -> str | None:
        try:
            claims = jwt.decode(
                token,
                SHARED_SECRET.encode("utf-8"),
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            return f"app JWT does not verify: {type(exc).__name__}"
        expected_qsh = query_string_hash(
            request.method,
            request.raw_path.split("?", 1)[0],
            request.query.items(),
            base_path=SITE_PATH,
        )
        wrong = [
            what
            for what, ok in (
                ("iss", claims.get("iss") == APP_KEY),
                ("lifetime", claims.get("exp", 0) - claims.get("iat", 0) == 180),
                ("iat", claims.get("iat") == int(self.clock.now())),
                ("sub", "sub" not in claims),
                ("qsh", claims.get("qsh") == expected_qsh),
            )
            if not ok
        ]
        if wrong:
            return f"app JWT for {request.method} {relative} wrong: {', '.join(wrong)}"
        return None

    def _verify_bearer(self, token: str) -> tuple[str | None, str | None]:
        issued = self.tokens.get(token)
        if issued is None:
            return None, "unknown bearer token"
        if token in self.revoked:
            return None, None  # a real refusal, not a client mistake
        account, expires_at = issued
        if self.clock.now() >= expires_at:
            return None, None
        return account, None

    def _actor(self, request: web.Request, relative: str) -> tuple[str, web.Response | None]:
        """Who the request acts as ("app" or an account id), or the 401 it gets."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme == "JWT":
            problem = self._verify_app(request, credential, relative)
            return "app", self._refuse(problem) if problem else None
        if scheme == "Bearer":
            account, problem = self._verify_bearer(credential)
            if problem:
                return "", self._refuse(problem)
            if account is None:
                return "", web.json_response({"errorMessages": ["token revoked"]}, status=401)
            return account, None
        return "", self._refuse(f"no usable Authorization on {request.method} {relative}")

    # --- handlers -------------------------------------------------------------------------

    async def _site(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        relative = raw[len(SITE_PATH) :] or "/"
        actor, refusal = self._actor(request, relative)
        if refusal is not None:
            return refusal
        raw_body = await request.read()
        if raw_body and request.content_type != "application/json":
            return self._refuse(f"body of type {request.content_type}")
        if request.method == "GET" and raw_body:
            return self._refuse("GET with a body")
        body = json.loads(raw_body) if raw_body else None
        query = list(request.query.items())
        self.seen.append(
            Seen(request.method, request.path[len(SITE_PATH) :], relative, query, actor, body)
        )
        scripted = self.scripted.get((request.method, request.path[len(SITE_PATH) :]))
        if scripted is not None:
            return await scripted(request)
        return web.json_response(
            {
                "method": request.method,
                "path": relative,
                "query": query,
                "body": body,
                "actor": actor,
            }
        )

    async def _token(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/x-www-form-urlencoded":
            return self._refuse(f"token request of type {request.content_type}")
        form = dict(parse_qsl((await request.read()).decode("ascii"), keep_blank_values=True))
        if form.get("grant_type") != GRANT:
            return self._refuse(f"grant_type {form.get('grant_type')!r}")
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                SHARED_SECRET.encode("utf-8"),
                algorithms=["HS256"],
                audience=self.oauth_url,
                options={"verify_exp": False, "verify_iat": False, "require": ["jti"]},
            )
        except jwt.PyJWTError as exc:
            return self._refuse(f"assertion does not verify: {type(exc).__name__}")
        problems = [
            what
            for what, ok in (
                ("iss", claims.get("iss") == f"urn:atlassian:connect:clientid:{OAUTH_CLIENT_ID}"),
                (
                    "sub",
                    str(claims.get("sub", "")).startswith("urn:atlassian:connect:useraccountid:"),
                ),
                ("tnt", claims.get("tnt") == self.base_url),
                ("iat", claims.get("iat") == int(self.clock.now())),
                ("lifetime", 0 < claims.get("exp", 0) - claims.get("iat", 0) <= 60),
                ("jti", claims["jti"] not in self._jtis),
                ("qsh", "qsh" not in claims),
            )
            if not ok
        ]
        if problems:
            return self._refuse("assertion claims wrong: " + ", ".join(problems))
        self._jtis.add(claims["jti"])
        self.token_requests.append(TokenRequest(form, claims))
        self.token_arrived.set()
        if self.token_gate is not None:
            await self.token_gate.wait()
        if self.scripted_token is not None:
            return await self.scripted_token(request)
        account = claims["sub"].rsplit(":", 1)[1]
        token = "at-" + secrets.token_hex(16)
        self.tokens[token] = (account, self.clock.now() + self.token_lifetime)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(OAUTH_PATH + "/oauth2/token", self._token)
        app.router.add_route("*", SITE_PATH + "/{tail:.*}", self._site)
        return app


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture(name="cipher")
def _cipher(clock: ManualClock) -> EnvelopeCipher:
    return EnvelopeCipher(EnvSecretStore({"DFJ_KEK": generate_kek()}, env_file=None), clock=clock)


@pytest.fixture(name="fake")
async def _fake(clock: ManualClock) -> AsyncIterator[FakeJira]:
    fake = FakeJira(clock=clock)
    server = TestServer(fake.app())
    await server.start_server(access_log=None)
    fake.root = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()
    assert fake.problems == [], fake.problems


async def sealed_secret(cipher: EnvelopeCipher, client_key: str = CLIENT_KEY) -> bytes:
    """The shared secret sealed as the gateway seals it."""
    return await cipher.seal(
        SHARED_SECRET.encode("utf-8"), aad=make_aad(client_key, "connect-shared-secret")
    )


def installation(fake: FakeJira, sealed: bytes | None, **changes: Any) -> Installation:
    """An enabled Connect installation of the fake site (``changes`` override fields)."""
    stamp = datetime.fromtimestamp(NOW, UTC)
    fields: dict[str, Any] = {
        "client_key": CLIENT_KEY,
        "kind": InstallationKind.CONNECT,
        "state": InstallationState.ENABLED,
        "created_at": stamp,
        "updated_at": stamp,
        "app_key": APP_KEY,
        "base_url": fake.base_url,
        "oauth_client_id": OAUTH_CLIENT_ID,
        "shared_secret_ciphertext": sealed,
        **changes,
    }
    return Installation(**fields)


MakeSite = Callable[..., Awaitable[Installation]]


@pytest.fixture(name="make_site")
def _make_site(fake: FakeJira, cipher: EnvelopeCipher) -> MakeSite:
    """A factory of installations of the fake site; keyword arguments override fields, and
    ``sealed_for=`` seals the secret for another clientKey (so it does not open)."""

    async def make(*, sealed_for: str = CLIENT_KEY, **changes: Any) -> Installation:
        return installation(fake, await sealed_secret(cipher, sealed_for), **changes)

    return make


@pytest.fixture(name="site")
async def _site(make_site: MakeSite) -> Installation:
    return await make_site()


@pytest.fixture(name="client")
async def _client(
    fake: FakeJira, cipher: EnvelopeCipher, clock: ManualClock
) -> AsyncIterator[JiraClient]:
    client = JiraClient(app_key=APP_KEY, oauth_url=fake.oauth_url, cipher=cipher, clock=clock)
    yield client
    await client.close()
