"""Pages inside Jira (computed qsh, token in the URL) and context-JWT routes (qsh context-qsh)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from yarl import URL

from dfj_common.storage import InstallationState
from dfj_sandbox.jira_signing import auth_header, sign_context

if TYPE_CHECKING:
    from services.gateway.tests.jira.conftest import Harness

CLIENT_KEY = "8d4f7a52-1f0e-4c3b-9a6d-2b5e9c7f1a03"
ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
SECRET = "cmVhbC1sb29raW5nLXNoYXJlZC1zZWNyZXQtZm9yLXRlc3RzLTAx"
PAGE = "/jira/pages/config"
CONTEXT = "/jira/api/context"
# What Jira appends to an iframe URL (reference §2.7.4), besides the jwt.
IFRAME_PARAMS = [
    ("xdm_e", "https://acme.atlassian.net"),
    ("xdm_c", "channel-discord-for-jira__dfj-configure"),
    ("cp", ""),
    ("lic", "none"),
    ("cv", "1001.0.0-SNAPSHOT"),
]


def context_token(h: Harness, **claims: Any) -> str:
    """A context JWT as ``AP.context.getToken()`` returns it."""
    return sign_context(
        SECRET, client_key=CLIENT_KEY, now=h.clock.now(), account_id=ACCOUNT_ID, claims=claims
    )


async def test_the_config_page_loads_with_a_url_bound_token(h: Harness) -> None:
    """A page load whose jwt hashes its own URL gets the HTML page that loads all.js."""
    await h.seed()
    token = h.sign("GET", PAGE, query=IFRAME_PARAMS)
    response = await h.client.get(PAGE, params=[*IFRAME_PARAMS, ("jwt", token)])
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert '<script src="https://connect-cdn.atl-paas.net/all.js"' in html
    assert token not in html
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors https://acme.atlassian.net" in csp
    assert "script-src https://connect-cdn.atl-paas.net/all.js" in csp


async def test_a_page_token_for_other_parameters_is_401(h: Harness) -> None:
    """Changing a query parameter after signing breaks the qsh."""
    await h.seed()
    token = h.sign("GET", PAGE, query=IFRAME_PARAMS)
    changed = [(k, "https://evil.example" if k == "xdm_e" else v) for k, v in IFRAME_PARAMS]
    response = await h.client.get(PAGE, params=[*changed, ("jwt", token)])
    assert response.status == 401
    assert (await response.json()) == {"error": "wrong qsh"}


async def test_a_context_token_cannot_load_a_page(h: Harness) -> None:
    """A page route refuses ``qsh: context-qsh``."""
    await h.seed()
    response = await h.client.get(PAGE, params=[("jwt", context_token(h))])
    assert response.status == 401
    assert (await response.json()) == {"error": "wrong qsh"}


async def test_a_page_needs_its_token_in_the_url(h: Harness) -> None:
    """A page token in the Authorization header instead of ?jwt= is a missing token."""
    await h.seed()
    response = await h.client.get(PAGE, headers=auth_header(h.sign("GET", PAGE)))
    assert response.status == 401
    assert (await response.json()) == {"error": "missing token"}


async def test_two_jwt_parameters_are_ambiguous(h: Harness) -> None:
    """A page URL with two jwt parameters is refused."""
    await h.seed()
    token = h.sign("GET", PAGE)
    response = await h.client.get(PAGE, params=[("jwt", token), ("jwt", token)])
    assert response.status == 401
    assert (await response.json()) == {"error": "ambiguous token"}


async def test_a_page_of_a_disabled_site_is_401(h: Harness) -> None:
    """Pages are served to active installations only."""
    await h.seed(state=InstallationState.DISABLED)
    response = await h.client.get(PAGE, params=[("jwt", h.sign("GET", PAGE))])
    assert response.status == 401


async def test_the_context_route_returns_the_verified_identity(h: Harness) -> None:
    """A context JWT proves clientKey and accountId to our page's scripts."""
    await h.seed()
    response = await h.client.get(CONTEXT, headers=auth_header(context_token(h)))
    assert response.status == 200
    assert (await response.json()) == {"clientKey": CLIENT_KEY, "accountId": ACCOUNT_ID}
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_context_route_refuses_a_url_bound_token(h: Harness) -> None:
    """A token with a computed qsh (even the right one) is not a context token."""
    await h.seed()
    response = await h.client.get(CONTEXT, headers=auth_header(h.sign("GET", CONTEXT)))
    assert response.status == 401
    assert (await response.json()) == {"error": "wrong qsh"}


async def test_the_context_route_wants_the_authorization_header(h: Harness) -> None:
    """A context token in ?jwt= is refused (scripts send it as a header)."""
    await h.seed()
    response = await h.client.get(CONTEXT, params=[("jwt", context_token(h))])
    assert response.status == 401
    assert (await response.json()) == {"error": "missing token"}


async def test_an_expired_context_token_is_401(h: Harness) -> None:
    """Context tokens expire like any other."""
    await h.seed()
    token = context_token(h, exp=int(h.clock.now()) - 31)
    response = await h.client.get(CONTEXT, headers=auth_header(token))
    assert response.status == 401
    assert (await response.json()) == {"error": "token expired"}


async def test_a_context_token_of_an_unknown_site_is_401(h: Harness) -> None:
    """No installation, no identity."""
    response = await h.client.get(CONTEXT, headers=auth_header(context_token(h)))
    assert response.status == 401
    assert (await response.json()) == {"error": "unknown installation"}


async def test_an_anonymous_context_token_has_no_account(h: Harness) -> None:
    """Without ``sub`` the accountId is null (an anonymous viewer)."""
    await h.seed()
    token = context_token(h, sub=None)
    response = await h.client.get(CONTEXT, headers=auth_header(token))
    assert (await response.json()) == {"clientKey": CLIENT_KEY, "accountId": None}


@pytest.mark.parametrize("path", [PAGE, CONTEXT, "/atlassian-connect.json"])
async def test_get_routes_take_no_body(h: Harness, path: str) -> None:
    """A GET with a body is refused with 413 before anything else."""
    response = await h.client.get(path, data=b"unexpected")
    assert response.status == 413
    assert (await response.json()) == {"error": "body too large"}


async def test_the_wrong_method_is_405(h: Harness) -> None:
    """POST to a GET route is a JSON 405."""
    response = await h.client.post(CONTEXT)
    assert response.status == 405
    assert await h.queued() == 0


async def test_every_vector_query_verifies_over_real_http(
    h: Harness, qsh_vectors: dict[str, Any]
) -> None:
    """The raw query of each interop vector, sent as is, hashes the same on the gateway."""
    await h.seed()
    failed = []
    for case in qsh_vectors["tests"][::2]:  # each case is listed twice
        raw_query = URL(case["signedUrl"], encoded=True).raw_query_string
        kept = "&".join(p for p in raw_query.split("&") if not p.startswith("jwt="))
        token = h.sign("GET", PAGE + ("?" + kept if kept else ""))
        target = f"{PAGE}?{kept + '&' if kept else ''}jwt={token}"
        response = await h.client.get(URL(target, encoded=True))
        if response.status != 200:
            failed.append(case["name"])
    assert failed == []
