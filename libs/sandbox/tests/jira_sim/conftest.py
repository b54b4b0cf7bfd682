"""Fixtures for the Jira simulator's tests: one loaded spec, a manual clock, a populated site.

The site ``acme`` has a cast whose permissions differ in the ways the tests need:

- ``alice``: an ordinary member of every project (browse, create, assign, transition, comment),
  in the ``Staff`` security level, role ``Member``;
- ``bob``: may only browse and comment in ``DEMO``, not in the ``Staff`` level;
- ``carol``: a member of ``OPS`` only, so ``DEMO`` does not exist for her;
- ``dora``: a project administrator (``MANAGE_WATCHERS``, role ``Administrators``);
- ``gone``: a deactivated account.

:class:`JiraClient` speaks to the simulator the way the app does: Connect JWTs signed with the
site's shared secret (the qsh computed with ``dfj_common.qsh``, independently of the
simulator's own canonicaliser), and impersonation tokens fetched from the token endpoint. Every
simulator used here checks its own responses against the spec; a test fails at teardown if one
did not conform.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import jwt
import pytest

from dfj_common.clock import ManualClock
from dfj_common.qsh import qsh
from dfj_sandbox.jira_sim import MEMBER_PERMISSIONS, JiraSimulator, OpenApiSpec, Site, locate_spec
from dfj_sandbox.jira_sim.tokens import GRANT_TYPE, ISS_PREFIX, SUB_PREFIX

SECRET: Final = "acme-shared-secret-long-enough-for-every-hmac-variant-0123456789"
START: Final = 1_800_000_000.0

Params = Iterable[tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A response as the tests look at it."""

    status: int
    body: Any
    headers: Mapping[str, str]


class JiraClient:
    """Calls one site of the simulator as the app, or as a user through impersonation."""

    def __init__(
        self, http: aiohttp.ClientSession, sim: JiraSimulator, site: Site, clock: ManualClock
    ) -> None:
        self.http = http
        self.sim = sim
        self.site = site
        self.clock = clock

    def app_token(
        self,
        method: str,
        path: str,
        params: Params = (),
        *,
        secret: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A Connect app JWT for ``method path?params`` (``claims`` override; None drops)."""
        now = int(self.clock.now())
        payload: dict[str, Any] = {
            "iss": self.site.app_key,
            "iat": now,
            "exp": now + 180,
            "qsh": qsh(method, path, list(params)),
        }
        payload.update(claims or {})
        payload = {k: v for k, v in payload.items() if v is not None}
        key = (secret or self.site.shared_secret).encode("utf-8")
        return jwt.encode(payload, key, algorithm="HS256")

    async def send(
        self,
        method: str,
        path: str,
        *,
        authorization: str | None,
        params: Params = (),
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request to ``{base_url}{path}`` with the given Authorization header."""
        sent = dict(headers or {})
        if authorization is not None:
            sent["Authorization"] = authorization
        async with self.http.request(
            method,
            self.site.base_url + path,
            params=list(params),
            json=json,
            data=data,
            headers=sent,
        ) as response:
            text = await response.text()
            body = None
            if text and response.content_type == "application/json":
                body = await response.json()
            return Answer(status=response.status, body=body, headers=dict(response.headers))

    async def app(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """A request as the app (a fresh JWT with this request's qsh)."""
        params = list(params)
        token = self.app_token(method, path, params)
        return await self.send(
            method,
            path,
            authorization=f"JWT {token}",
            params=params,
            json=json,
            data=data,
            headers=headers,
        )

    def assertion(self, account_id: str, **claims: Any) -> str:
        """A JWT-bearer assertion for ``account_id`` (keyword claims override; None drops)."""
        now = int(self.clock.now())
        payload: dict[str, Any] = {
            "iss": ISS_PREFIX + self.site.oauth_client_id,
            "sub": SUB_PREFIX + account_id,
            "tnt": self.site.base_url,
            "aud": self.sim.oauth_url,
            "iat": now,
            "exp": now + 60,
        }
        secret = claims.pop("secret", None) or self.site.shared_secret
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, secret.encode("utf-8"), algorithm="HS256")

    async def token_request(self, form: Mapping[str, str]) -> Answer:
        """POST a form to the token endpoint."""
        async with self.http.post(self.sim.token_url, data=dict(form)) as response:
            return Answer(
                status=response.status, body=await response.json(), headers=dict(response.headers)
            )

    async def user_token(self, account_id: str, *, scope: str | None = None) -> str:
        """An access token for ``account_id`` (the test fails if the exchange does)."""
        form = {"grant_type": GRANT_TYPE, "assertion": self.assertion(account_id)}
        if scope is not None:
            form["scope"] = scope
        answer = await self.token_request(form)
        assert answer.status == 200, answer.body
        token = answer.body["access_token"]
        assert isinstance(token, str)
        return token

    async def as_user(
        self,
        account_id: str,
        method: str,
        path: str,
        *,
        params: Params = (),
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """A request as ``account_id`` through a freshly exchanged access token."""
        token = await self.user_token(account_id)
        return await self.send(
            method,
            path,
            authorization=f"Bearer {token}",
            params=params,
            json=json,
            data=data,
            headers=headers,
        )


def populate(site: Site) -> None:
    """The cast described in the module docstring, plus a second project ``OPS``."""
    site.add_project("OPS", "Operations", issue_types=("Task", "Incident"))
    site.add_user("alice", "Alice Example")
    site.add_user(
        "bob", "Bob Example", permissions={"BROWSE_PROJECTS", "ADD_COMMENTS"}, projects=["DEMO"]
    )
    site.add_user("carol", "Carol Example", projects=["OPS"])
    site.add_user(
        "dora",
        "Dora Example",
        permissions=MEMBER_PERMISSIONS | {"MANAGE_WATCHERS", "ADMINISTER_PROJECTS"},
        roles=("Administrators", "Member"),
        groups=("jira-software-users", "jira-admins"),
    )
    site.add_user("gone", "Former Colleague", active=False)
    site.add_security_level("DEMO", "Staff", members=("alice", "dora"))


@pytest.fixture(name="cast")
def _cast() -> Callable[[Site], None]:
    """:func:`populate`, for tests that build their own site."""
    return populate


@pytest.fixture(name="spec", scope="session")
def _spec() -> OpenApiSpec:
    return OpenApiSpec.load(locate_spec(environ=os.environ))


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(name="sim")
async def _sim(spec: OpenApiSpec, clock: ManualClock) -> AsyncIterator[JiraSimulator]:
    async with JiraSimulator(clock=clock, spec=spec, validate_responses=True) as sim:
        yield sim
        assert sim.response_violations == []


@pytest.fixture(name="site")
def _site(sim: JiraSimulator) -> Site:
    site = sim.add_site("acme", shared_secret=SECRET)
    populate(site)
    return site


@pytest.fixture(name="jira")
async def _jira(sim: JiraSimulator, site: Site, clock: ManualClock) -> AsyncIterator[JiraClient]:
    async with aiohttp.ClientSession() as http:
        yield JiraClient(http, sim, site, clock)
