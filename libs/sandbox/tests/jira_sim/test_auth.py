"""App JWTs on the REST API: only a token bound to this very request, from this app, passes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt
import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.jira_signing import query_string_hash

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient

MYSELF = "/rest/api/3/myself"


async def test_a_good_app_jwt_acts_as_the_app_user(jira: JiraClient) -> None:
    """The app's own user answers, and the call is recorded as a JWT call by that user."""
    answer = await jira.app("GET", MYSELF)
    assert answer.status == 200
    assert answer.body["accountType"] == "app"
    assert answer.body["accountId"] == jira.site.app_user.account_id
    call = jira.sim.calls[-1]
    assert (call.auth, call.account_id, call.template) == ("jwt", answer.body["accountId"], MYSELF)


async def test_the_qsh_covers_the_query(jira: JiraClient) -> None:
    """A token signed with the query the request really carries passes; another query fails."""
    params = [("permissions", "BROWSE_PROJECTS,CREATE_ISSUES"), ("projectKey", "DEMO")]
    good = await jira.app("GET", "/rest/api/3/mypermissions", params=params)
    assert good.status == 200
    token = jira.app_token("GET", "/rest/api/3/mypermissions", params[:1])
    bad = await jira.send(
        "GET", "/rest/api/3/mypermissions", authorization=f"JWT {token}", params=params
    )
    assert bad.status == 401
    assert bad.body == {"errorMessages": ["The JWT qsh does not match the request."], "errors": {}}


async def test_the_qsh_is_relative_to_the_site_base_url(jira: JiraClient) -> None:
    """Hashing the simulator's /sites/{name} prefix in is wrong, as it would be on Jira."""
    with_prefix = jira.site.base_path + MYSELF
    token = jira.app_token("GET", with_prefix)
    answer = await jira.send("GET", MYSELF, authorization=f"JWT {token}")
    assert answer.status == 401
    # and the two canonicalisers agree on the right hash
    assert (
        query_string_hash("GET", MYSELF)
        == jwt.decode(jira.app_token("GET", MYSELF), options={"verify_signature": False})["qsh"]
    )


async def test_a_token_for_another_method_or_path_is_refused(jira: JiraClient) -> None:
    """The qsh binds method and path."""
    for method, path in (("POST", MYSELF), ("GET", "/rest/api/3/project/search")):
        token = jira.app_token(method, path)
        answer = await jira.send("GET", MYSELF, authorization=f"JWT {token}")
        assert answer.status == 401


async def test_a_bad_signature_is_refused(jira: JiraClient) -> None:
    """Signed with anything but the site's shared secret: 401."""
    token = jira.app_token("GET", MYSELF, secret="not-the-shared-secret-of-this-site")
    answer = await jira.send("GET", MYSELF, authorization=f"JWT {token}")
    assert answer.status == 401
    assert answer.body["errorMessages"] == ["The JWT signature does not verify."]
    assert jira.sim.calls[-1].account_id is None


async def test_expiry_is_checked_on_the_simulators_clock_with_leeway(
    jira: JiraClient, clock: ManualClock
) -> None:
    """Valid 29 s past ``exp`` (Jira's 30 s leeway), refused after that."""
    token = jira.app_token("GET", MYSELF)
    clock.advance(180 + 29)
    assert (await jira.send("GET", MYSELF, authorization=f"JWT {token}")).status == 200
    clock.advance(2)
    late = await jira.send("GET", MYSELF, authorization=f"JWT {token}")
    assert late.status == 401
    assert late.body["errorMessages"] == ["The JWT has expired."]


async def test_a_token_issued_in_the_future_is_refused(jira: JiraClient) -> None:
    """``iat`` beyond the leeway ahead of the clock."""
    now = int(jira.clock.now())
    token = jira.app_token("GET", MYSELF, claims={"iat": now + 120, "exp": now + 300})
    assert (await jira.send("GET", MYSELF, authorization=f"JWT {token}")).status == 401


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iss": "some-other-app"}, "The JWT issuer is not an app installed on this site."),
        ({"qsh": "context-qsh"}, "A context JWT cannot call the REST API."),
        ({"qsh": None}, "The JWT has no 'qsh' claim."),
        ({"exp": None}, "The JWT has no 'exp' claim."),
        ({"iat": None}, "The JWT has no 'iat' claim."),
        ({"aud": ["another-client-key"]}, "The JWT audience is not this site."),
    ],
)
async def test_claims_that_do_not_hold_are_refused(
    jira: JiraClient, claims: dict[str, object], message: str
) -> None:
    """Each required claim is checked."""
    token = jira.app_token("GET", MYSELF, claims=claims)
    answer = await jira.send("GET", MYSELF, authorization=f"JWT {token}")
    assert answer.status == 401
    assert answer.body["errorMessages"] == [message]


async def test_an_audience_naming_the_site_is_accepted(jira: JiraClient) -> None:
    """ACE sends ``aud: [clientKey]``."""
    token = jira.app_token("GET", MYSELF, claims={"aud": [jira.site.client_key]})
    assert (await jira.send("GET", MYSELF, authorization=f"JWT {token}")).status == 200


async def test_only_hs256_is_accepted(jira: JiraClient) -> None:
    """An HS512 token with the right secret is still refused: the algorithm is pinned."""
    now = int(jira.clock.now())
    claims = {
        "iss": jira.site.app_key,
        "iat": now,
        "exp": now + 180,
        "qsh": query_string_hash("GET", MYSELF),
    }
    token = jwt.encode(claims, jira.site.shared_secret.encode(), algorithm="HS512")
    answer = await jira.send("GET", MYSELF, authorization=f"JWT {token}")
    assert answer.status == 401
    assert answer.body["errorMessages"] == ["The JWT must be signed with HS256."]


@pytest.mark.parametrize(
    "authorization", [None, "Basic YWxpY2U6c2VjcmV0", "Bearer not-a-token-we-issued", "JWT garbage"]
)
async def test_anything_else_is_unauthenticated(
    jira: JiraClient, authorization: str | None
) -> None:
    """No header, Basic auth, an unknown bearer token, a malformed JWT: 401, Jira-style."""
    answer = await jira.send("GET", MYSELF, authorization=authorization)
    assert answer.status == 401
    assert set(answer.body) == {"errorMessages", "errors"}


async def test_a_token_for_one_site_does_not_open_another(jira: JiraClient) -> None:
    """Another site (its own secret) refuses a token signed for ``acme``."""
    other = jira.sim.add_site("globex")
    token = jira.app_token("GET", MYSELF)
    async with jira.http.get(
        other.base_url + MYSELF, headers={"Authorization": f"JWT {token}"}
    ) as response:
        assert response.status == 401
