"""Calls as the app: a fresh HS256 JWT per request whose qsh Jira can recompute.

The fake site verifies every token with the sandbox's independent canonicaliser over the path
relative to the site base (``/sites/acme`` here), so a hash over the wrong path, an encoding
mismatch between what was hashed and what was sent, or a wrong claim fails the test (the
fake answers 401 and records the problem; teardown asserts there were none).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import jwt
import pytest
from aiohttp import web

from dfj_common.storage import Installation
from dfj_jira_worker.jira import JiraClient, JiraUnauthorized, ParamValue

if TYPE_CHECKING:
    from conftest import FakeJira, MakeSite

APP_KEY = "discord-for-jira"
SHARED_SECRET = "c2VjcmV0LWZvci10aGUtamlyYS1jbGllbnQtdGVzdHMtMDAx"


async def test_tricky_query_values_are_signed_over_exactly_what_is_sent(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Repeated names, spaces, unicode and reserved characters hash as Jira hashes them."""
    params: dict[str, ParamValue] = {
        "jql": 'summary ~ "café 東京" AND labels = a+b',
        "accountId": ["zed", "alpha", "Mid"],
        "reserved": "a=b&c;d/e?f*~'!,",
        "percent": "100%25 sure",
        "empty": "",
        "maxResults": 5,
        "strict": True,
    }
    answer = await client.as_app(site).request("GET", "/rest/api/3/thing", params=params)
    (seen,) = fake.seen
    assert seen.actor == "app"
    assert seen.raw_path == "/rest/api/3/thing"
    assert seen.query == [
        ("jql", 'summary ~ "café 東京" AND labels = a+b'),
        ("accountId", "zed"),
        ("accountId", "alpha"),
        ("accountId", "Mid"),
        ("reserved", "a=b&c;d/e?f*~'!,"),
        ("percent", "100%25 sure"),
        ("empty", ""),
        ("maxResults", "5"),
        ("strict", "true"),
    ]
    assert answer["method"] == "GET"


async def test_the_token_claims_are_the_app_key_180_seconds_and_no_subject(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """``iss`` is the app key, ``exp`` is ``iat`` + 180 and nothing else is claimed."""
    captured: list[str] = []

    async def keep_token(request: web.Request) -> web.StreamResponse:
        captured.append(request.headers["Authorization"].removeprefix("JWT "))
        return web.json_response({"accountId": "app"})

    fake.scripted[("GET", "/rest/api/3/myself")] = keep_token
    assert await client.as_app(site).get_myself() == {"accountId": "app"}
    claims = jwt.decode(
        captured[0],
        SHARED_SECRET.encode(),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == APP_KEY
    assert claims["exp"] - claims["iat"] == 180
    assert set(claims) == {"iss", "iat", "exp", "qsh"}


async def test_each_request_gets_its_own_token(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """Two requests with different queries carry different qsh claims (hence tokens)."""
    headers: list[str] = []

    async def keep(request: web.Request) -> web.StreamResponse:
        headers.append(request.headers["Authorization"])
        return web.json_response({"values": []})

    fake.scripted[("GET", "/rest/api/3/project/search")] = keep
    api = client.as_app(site)
    await api.search_projects(max_results=5)
    await api.search_projects(max_results=6)
    assert len(set(headers)) == 2


async def test_a_json_body_is_sent_compact_and_a_204_is_none(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """POST/PUT bodies go as JSON (not hashed: the qsh still verifies); 204 decodes to None."""
    fake.respond("PUT", "/rest/api/3/issue/ACME-1/assignee", 204)
    api = client.as_app(site)
    await api.assign_issue("ACME-1", None)
    echoed = await api.request("POST", "/rest/api/3/jql/match", json={"issueIds": [1]})
    assert echoed["body"] == {"issueIds": [1]}
    assert [s.body for s in fake.seen] == [{"accountId": None}, {"issueIds": [1]}]


async def test_path_segments_are_encoded_once_and_hashed_encoded(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """An odd issue key cannot add path segments; the qsh covers the raw (encoded) path."""
    await client.as_app(site).get_issue("AB C/1", fields=["summary", "status"])
    (seen,) = fake.seen
    assert seen.raw_path == "/rest/api/3/issue/AB%20C%2F1"
    assert seen.query == [("fields", "summary,status")]


async def test_a_raw_path_with_unsafe_characters_is_quoted_before_hashing(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """``request`` quotes what must be quoted and keeps what is already encoded."""
    await client.as_app(site).request("GET", "/rest/api/3/issue/ACME 1/comment/%41")
    assert fake.seen[0].raw_path == "/rest/api/3/issue/ACME%201/comment/%41"


async def test_a_base_url_with_a_trailing_slash_works_the_same(
    client: JiraClient, make_site: MakeSite, fake: FakeJira
) -> None:
    """The stored base URL's own path is prefixed when sending, never hashed."""
    site = await make_site(base_url=fake.base_url + "/")
    await client.as_app(site).request("GET", "/rest/api/3/serverInfo")
    assert fake.seen[0].raw_path == "/rest/api/3/serverInfo"


async def test_the_installations_app_key_is_the_issuer(
    client: JiraClient, make_site: MakeSite, fake: FakeJira
) -> None:
    """Jira checks ``iss`` against the key it installed: a different key is refused there."""
    site = await make_site(app_key="some-other-app")
    with pytest.raises(JiraUnauthorized):
        await client.as_app(site).get_myself()
    assert fake.problems == ["app JWT for GET /rest/api/3/myself wrong: iss"]
    fake.problems.clear()


async def test_a_401_as_the_app_is_not_retried(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """A fresh JWT would carry the same secret: one request, then JiraUnauthorized."""
    fake.respond("GET", "/rest/api/3/myself", 401, body={"errorMessages": ["nope"]})
    with pytest.raises(JiraUnauthorized) as caught:
        await client.as_app(site).get_myself()
    assert caught.value.status == 401
    assert caught.value.reason == "JiraUnauthorized"
    assert "reinstall" in caught.value.user_message
    assert len(fake.seen) == 1


async def test_concurrent_calls_over_one_client_all_verify(
    client: JiraClient, site: Installation
) -> None:
    """Thirty concurrent calls each carry a valid token of their own."""
    api = client.as_app(site)
    results = await asyncio.gather(
        *(api.request("GET", f"/rest/api/3/issue/ACME-{n}") for n in range(30))
    )
    assert sorted(r["path"] for r in results) == sorted(
        f"/rest/api/3/issue/ACME-{n}" for n in range(30)
    )


async def test_misuse_is_refused_before_anything_is_sent(
    client: JiraClient, site: Installation, fake: FakeJira
) -> None:
    """A query inside the path (it would not be hashed) or a GET body is a programming error."""
    api = client.as_app(site)
    with pytest.raises(ValueError, match="params"):
        await api.request("GET", "/rest/api/3/search?jql=x")
    with pytest.raises(ValueError, match="body"):
        await api.request("GET", "/rest/api/3/myself", json={"a": 1})
    assert fake.seen == []
