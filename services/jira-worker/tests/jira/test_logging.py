"""One debug line per call, with what an operator needs and nothing secret.

Besides the suite-wide leak guard (which scans captured output for token shapes), these
tests look for the *known* secrets — the shared secret, the bearer tokens the fake issued, the
JWTs that were sent — in every event logged and in the errors raised.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from dfj_common.storage import Installation
from dfj_common.testing import find_leaks
from dfj_jira_worker.jira import JiraClient, JiraNotFound, JiraUnauthorized

if TYPE_CHECKING:
    from conftest import FakeJira

ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
SHARED_SECRET = "c2VjcmV0LWZvci10aGUtamlyYS1jbGllbnQtdGVzdHMtMDAx"


def _jira_lines(
    logs: Sequence[MutableMapping[str, Any]],
) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if str(e.get("event", "")).startswith("jira call")]


async def test_each_call_logs_method_route_status_ms_and_tenant(
    client: JiraClient, site: Installation, fake: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    """The route is the template, the query values are not there, the actor is."""
    caplog.set_level(logging.DEBUG, logger="dfj.jira_worker.jira")
    fake.respond("GET", "/rest/api/3/issue/ACME-1", 404)
    with capture_logs() as logs:
        await client.as_app(site).request(
            "GET", "/rest/api/3/search/jql", params={"jql": "project = SECRETPROJ"}
        )
        with pytest.raises(JiraNotFound):
            await client.as_user(site, ACCOUNT_ID).get_issue("ACME-1", fields=["summary"])
    lines = _jira_lines(logs)
    assert [(e["method"], e["path"], e["status"], e["actor"]) for e in lines] == [
        ("GET", "/rest/api/3/search/jql", 200, "app"),
        ("POST", "/oauth2/token", 200, "user"),
        ("GET", "/rest/api/3/issue/{issueIdOrKey}", 404, "user"),
    ]
    assert all(e["tenant"] == site.client_key and e["ms"] >= 0 for e in lines)
    assert "SECRETPROJ" not in repr(logs)


async def test_no_secret_token_or_jwt_reaches_a_log_or_an_error(
    client: JiraClient, site: Installation, fake: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    """Across app calls, user calls, a 401 refresh and failures, nothing secret is logged."""
    caplog.set_level(logging.DEBUG)
    sent: list[str] = []

    async def keep(request: web.Request) -> web.StreamResponse:
        sent.append(request.headers["Authorization"].split(" ", 1)[1])
        return web.json_response({"errorMessages": ["no such issue"]}, status=404)

    fake.scripted[("GET", "/rest/api/3/issue/ACME-9")] = keep
    errors: list[str] = []
    with capture_logs() as logs:
        await client.as_app(site).get_myself()
        await client.as_user(site, ACCOUNT_ID).get_myself()
        fake.revoke_all()
        await client.as_user(site, ACCOUNT_ID).get_myself()
        for api in (client.as_app(site), client.as_user(site, ACCOUNT_ID)):
            try:
                await api.get_issue("ACME-9")
            except JiraNotFound as exc:
                errors.append(f"{exc!r} {exc} {exc.user_message} {exc.__dict__}")
        fake.respond_token(400, body={"error": "invalid_grant"})
        try:
            await client.as_user(site, "someone-else-1").get_myself()
        except JiraUnauthorized as exc:
            errors.append(f"{exc!r} {exc} {exc.__dict__}")
    known = [
        SHARED_SECRET,
        *fake.tokens,
        *sent,
        *(t.form["assertion"] for t in fake.token_requests),
    ]
    assert len(known) >= 6
    text = "\n".join([repr(logs), caplog.text, *errors])
    assert find_leaks(text, known_secrets=known) == []
    assert len(_jira_lines(logs)) >= 7
