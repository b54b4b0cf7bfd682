"""Jira webhooks: HS256 with the stored secret, qsh over the raw path, ids only on the bus."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from dfj_common.envelope import deterministic_id
from dfj_common.storage import InstallationState
from dfj_gateway.jira.routes import JIRA_STATE

if TYPE_CHECKING:
    from services.gateway.tests.jira.conftest import Harness, MakeHarness

CLIENT_KEY = "8d4f7a52-1f0e-4c3b-9a6d-2b5e9c7f1a03"
ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
UPDATED = "/jira/webhooks/issue-updated"
COMMENT_CREATED = "/jira/webhooks/comment-created"
IDENTIFIER = "4d3a8e2b-7f41-4c39-9d7e-0b5a2c6e1f88"


def issue_updated() -> dict[str, Any]:
    """A ``jira:issue_updated`` body as Jira sends it (v2 shape), names and emails included."""
    return {
        "timestamp": 1_799_999_999_123,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_assigned",
        "user": {
            "self": "https://acme.atlassian.net/rest/api/2/user?accountId=" + ACCOUNT_ID,
            "accountId": ACCOUNT_ID,
            "displayName": "Ada Lovelace",
            "emailAddress": "ada@example.com",
            "active": True,
        },
        "issue": {
            "id": "10042",
            "key": "OPS-7",
            "self": "https://acme.atlassian.net/rest/api/2/issue/10042",
            "fields": {
                "summary": "Database is on fire",
                "description": "Secret incident details",
                "project": {"id": "10000", "key": "OPS", "name": "Operations"},
                "issuetype": {"id": "10001", "name": "Bug"},
                "status": {"id": "3", "name": "In Progress"},
                "priority": {"id": "2", "name": "High"},
                "security": {"id": "10100", "name": "Staff only"},
                "assignee": {"accountId": "557058:f581", "displayName": "Grace Hopper"},
                "reporter": {"accountId": ACCOUNT_ID, "emailAddress": "ada@example.com"},
                "labels": ["fire"],
                "created": "2027-01-15T10:00:00.000+0000",
                "updated": "2027-01-15T10:05:00.000+0000",
            },
        },
        "changelog": {
            "id": "20017",
            "items": [
                {
                    "field": "assignee",
                    "fieldtype": "jira",
                    "fieldId": "assignee",
                    "from": None,
                    "fromString": None,
                    "to": "557058:f581",
                    "toString": "Grace Hopper",
                }
            ],
        },
    }


def comment_created() -> dict[str, Any]:
    """A ``comment_created`` body (comment events carry a few issue fields only)."""
    return {
        "timestamp": 1_799_999_999_500,
        "webhookEvent": "comment_created",
        "comment": {
            "id": "30001",
            "body": "I know the root cause",
            "author": {"accountId": ACCOUNT_ID, "displayName": "Ada Lovelace"},
            "updateAuthor": {"accountId": ACCOUNT_ID},
            "created": "2027-01-15T10:06:00.000+0000",
            "updated": "2027-01-15T10:06:00.000+0000",
            "jsdPublic": True,
            "visibility": {"type": "role", "value": "Developers"},
        },
        "issue": {"id": "10042", "key": "OPS-7", "fields": {"summary": "Database is on fire"}},
    }


async def send(
    h: Harness,
    path: str,
    body: dict[str, Any] | bytes,
    *,
    token: str | None = None,
    identifier: str | None = IDENTIFIER,
    extra: dict[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
) -> Any:
    """POST a webhook as Jira does: signed token, delivery headers."""
    headers = {"X-Atlassian-Webhook-Flow": "Primary", **(extra or {})}
    if identifier is not None:
        headers["X-Atlassian-Webhook-Identifier"] = identifier
    signed = token if token is not None else h.sign("POST", path, query=params or ())
    return await h.post(path, body, token=signed, headers=headers, params=params or ())


async def rejected(h: Harness, status: int, reason: str, response: Any) -> None:
    """Assert the status and JSON reason, and that nothing reached the bus."""
    assert response.status == status
    assert (await response.json()) == {"error": reason}
    assert await h.queued() == 0


# --- accepted -----------------------------------------------------------------------------


async def test_an_issue_update_is_published_with_ids_only(h: Harness) -> None:
    """The event keeps ids, keys, times, changelog ids and account ids — no names or text."""
    await h.seed()
    response = await send(h, UPDATED, issue_updated())
    assert response.status == 204
    [event] = await h.published()
    assert event.type == "jira.webhook"
    assert event.session_key == f"{CLIENT_KEY}:10042"
    assert event.tenant == CLIENT_KEY
    assert event.subject == "issue/10042"
    assert dict(event.data) == {
        "clientKey": CLIENT_KEY,
        "event": "jira:issue_updated",
        "issueEventTypeName": "issue_assigned",
        "timestamp": 1_799_999_999_123,
        "actorAccountId": ACCOUNT_ID,
        "delivery": {"identifier": IDENTIFIER, "flow": "Primary"},
        "issue": {
            "id": "10042",
            "key": "OPS-7",
            "projectId": "10000",
            "projectKey": "OPS",
            "issueTypeId": "10001",
            "statusId": "3",
            "priorityId": "2",
            "securityLevelId": "10100",
            "assigneeAccountId": "557058:f581",
            "reporterAccountId": ACCOUNT_ID,
            "created": "2027-01-15T10:00:00.000+0000",
            "updated": "2027-01-15T10:05:00.000+0000",
        },
        "changelog": {
            "id": "20017",
            "items": [
                {
                    "field": "assignee",
                    "fieldtype": "jira",
                    "fieldId": "assignee",
                    "to": "557058:f581",
                }
            ],
        },
    }
    text = json.dumps(event.to_dict())
    for personal in ("Ada", "Grace", "example.com", "fire", "Staff only", "Operations"):
        assert personal not in text


async def test_a_comment_keeps_its_visibility_but_not_its_body(h: Harness) -> None:
    """Comment events keep ids, authors' account ids and the visibility restriction."""
    await h.seed()
    assert (await send(h, COMMENT_CREATED, comment_created())).status == 204
    [event] = await h.published()
    assert event.data["comment"] == {
        "id": "30001",
        "authorAccountId": ACCOUNT_ID,
        "updateAuthorAccountId": ACCOUNT_ID,
        "created": "2027-01-15T10:06:00.000+0000",
        "updated": "2027-01-15T10:06:00.000+0000",
        "jsdPublic": True,
        "visibility": {"type": "role", "value": "Developers"},
    }
    assert event.data["issue"] == {"id": "10042", "key": "OPS-7"}
    assert "root cause" not in json.dumps(event.to_dict())


async def test_the_message_id_comes_from_the_webhook_identifier(h: Harness) -> None:
    """The message id is deterministic_id over tenant, event and Jira's identifier."""
    await h.seed()
    assert (await send(h, UPDATED, issue_updated())).status == 204
    [event] = await h.published()
    assert event.id == deterministic_id(
        "jira-webhook", CLIENT_KEY, "jira:issue_updated", IDENTIFIER
    )


async def test_jira_retries_are_deduplicated(h: Harness) -> None:
    """A retried delivery (same identifier, retry header) is answered 204 and dropped."""
    await h.seed()
    assert (await send(h, UPDATED, issue_updated())).status == 204
    h.clock.advance(10)
    retry = await send(h, UPDATED, issue_updated(), extra={"X-Atlassian-Webhook-Retry": "1"})
    assert retry.status == 204
    assert len(await h.published()) == 1
    assert await h.queued() == 0


async def test_the_retry_count_travels_with_the_event(h: Harness) -> None:
    """X-Atlassian-Webhook-Retry and -Flow go into the event's delivery data."""
    await h.seed()
    extra = {"X-Atlassian-Webhook-Retry": "2", "X-Atlassian-Webhook-Flow": "Secondary"}
    assert (await send(h, UPDATED, issue_updated(), extra=extra)).status == 204
    [event] = await h.published()
    assert event.data["delivery"] == {"identifier": IDENTIFIER, "retry": 2, "flow": "Secondary"}


async def test_without_an_identifier_the_body_decides_the_id(h: Harness) -> None:
    """No identifier header: identical bodies still dedupe, different ones do not."""
    await h.seed()
    assert (await send(h, UPDATED, issue_updated(), identifier=None)).status == 204
    assert (await send(h, UPDATED, issue_updated(), identifier=None)).status == 204
    other = issue_updated() | {"timestamp": 1}
    assert (await send(h, UPDATED, other, identifier=None)).status == 204
    assert len(await h.published(2)) == 2


async def test_query_parameters_are_part_of_the_qsh(h: Harness) -> None:
    """Deprecated user_id/user_key parameters Jira appends are hashed like any query."""
    await h.seed()
    params = [("user_id", "admin"), ("user_key", "admin")]
    token = h.sign("POST", UPDATED)  # signed without the parameters
    response = await send(h, UPDATED, issue_updated(), token=token, params=params)
    await rejected(h, 401, "wrong qsh", response)
    assert (await send(h, UPDATED, issue_updated(), params=params)).status == 204


async def test_the_public_urls_path_is_stripped_for_the_qsh(make_harness: MakeHarness) -> None:
    """With DFJ_PUBLIC_URL under /dfj, routes live under /dfj and qsh is relative to it."""
    h = await make_harness(env={"DFJ_PUBLIC_URL": "https://gw.example.test/dfj/"})
    await h.seed()
    token = h.sign("POST", UPDATED)  # Jira hashes the path relative to the baseUrl
    response = await send(h, "/dfj" + UPDATED, issue_updated(), token=token)
    assert response.status == 204
    token = h.sign("POST", "/dfj" + UPDATED)  # a hash over the full path is not Jira's
    response = await send(h, "/dfj" + UPDATED, issue_updated(), token=token, identifier="2")
    assert response.status == 401
    assert (await h.client.get("/atlassian-connect.json")).status == 404
    descriptor = await (await h.client.get("/dfj/atlassian-connect.json")).json()
    assert descriptor["baseUrl"] == "https://gw.example.test/dfj"
    assert len(await h.published()) == 1


async def test_secrets_are_opened_once_and_reopened_after_rotation(h: Harness) -> None:
    """The opened secret is cached by tenant and ciphertext: a rotated one is seen at once."""
    await h.seed()
    cache = h.app[JIRA_STATE].secrets
    for n in range(3):
        assert (await send(h, UPDATED, issue_updated(), identifier=f"id-{n}")).status == 204
    assert cache.opened == 1
    rotated = "cm90YXRlZC1zaGFyZWQtc2VjcmV0LWZvci10ZXN0cy0wMDAwMDAwMQ"
    await h.seed(secret=rotated)  # a re-install stored the new secret
    # The new secret works at once: a refusal from a cached row is re-checked, fresh.
    token = h.sign("POST", UPDATED, secret=rotated)
    assert (await send(h, UPDATED, issue_updated(), token=token, identifier="id-new")).status == 204
    assert cache.opened == 2
    # The old secret is refused once the installation row read before the rotation has aged out.
    h.clock.advance(6)
    old = h.sign("POST", UPDATED)
    stale = await send(h, UPDATED, issue_updated(), token=old, identifier="id-old")
    assert stale.status == 401
    assert len(await h.published(4)) == 4


# --- refused ------------------------------------------------------------------------------


async def test_an_unknown_client_key_is_401(h: Harness) -> None:
    """A token from a site that never installed is refused before any secret is tried."""
    await rejected(h, 401, "unknown installation", await send(h, UPDATED, issue_updated()))


async def test_a_wrong_signature_is_401(h: Harness) -> None:
    """A token signed with another secret is refused."""
    await h.seed()
    token = h.sign("POST", UPDATED, secret="another-secret-that-is-long-enough")
    await rejected(h, 401, "bad signature", await send(h, UPDATED, issue_updated(), token=token))


async def test_a_tampered_token_is_401(h: Harness) -> None:
    """Changing the payload of a signed token breaks its signature."""
    await h.seed()
    header, _, signature = h.sign("POST", UPDATED).split(".")
    forged_claims = jwt.encode(
        {"iss": CLIENT_KEY, "iat": 1, "exp": 2**31, "qsh": "x"}, "k" * 32, algorithm="HS256"
    ).split(".")[1]
    token = f"{header}.{forged_claims}.{signature}"
    await rejected(h, 401, "bad signature", await send(h, UPDATED, issue_updated(), token=token))


async def test_a_token_for_another_webhook_is_401(h: Harness) -> None:
    """A token signed for issue-created cannot deliver an issue-updated (qsh covers the path)."""
    await h.seed()
    token = h.sign("POST", "/jira/webhooks/issue-created")
    await rejected(h, 401, "wrong qsh", await send(h, UPDATED, issue_updated(), token=token))


async def test_a_context_token_cannot_deliver_a_webhook(h: Harness) -> None:
    """``qsh: context-qsh`` is refused on webhook routes."""
    await h.seed()
    token = h.sign("POST", UPDATED, claims={"qsh": "context-qsh"})
    await rejected(h, 401, "wrong qsh", await send(h, UPDATED, issue_updated(), token=token))


async def test_a_token_without_qsh_is_401(h: Harness) -> None:
    """A computed-qsh route needs a qsh."""
    await h.seed()
    token = h.sign("POST", UPDATED, claims={"qsh": None})
    await rejected(h, 401, "missing qsh", await send(h, UPDATED, issue_updated(), token=token))


async def test_an_expired_token_is_401(h: Harness) -> None:
    """A token whose exp lies more than 30 s behind our clock is refused."""
    await h.seed()
    token = h.sign("POST", UPDATED, now=h.clock.now() - 180 - 31)
    await rejected(h, 401, "token expired", await send(h, UPDATED, issue_updated(), token=token))


async def test_a_token_within_the_leeway_is_accepted(h: Harness) -> None:
    """A token whose exp passed 20 s ago is still within the 30 s leeway."""
    await h.seed()
    token = h.sign("POST", UPDATED, now=h.clock.now() - 180 - 20)
    assert (await send(h, UPDATED, issue_updated(), token=token)).status == 204


async def test_an_rs256_token_cannot_deliver_a_webhook(h: Harness) -> None:
    """Webhooks are pinned to HS256."""
    await h.seed()
    token = h.install_token(UPDATED)
    await rejected(
        h, 401, "algorithm not allowed", await send(h, UPDATED, issue_updated(), token=token)
    )


@pytest.mark.parametrize("alg", ["none", "HS512", "HS384"])
async def test_other_algorithms_are_401(h: Harness, alg: str) -> None:
    """alg none and other HMAC variants are refused even with the right secret."""
    await h.seed()
    claims = {"iss": CLIENT_KEY, "iat": int(h.clock.now()), "exp": int(h.clock.now()) + 60}
    key = "" if alg == "none" else "cmVhbC1sb29raW5nLXNoYXJlZC1zZWNyZXQtZm9yLXRlc3RzLTAx" * 2
    token = jwt.encode(claims, key, algorithm=alg)
    await rejected(
        h, 401, "algorithm not allowed", await send(h, UPDATED, issue_updated(), token=token)
    )


async def test_a_missing_token_is_401(h: Harness) -> None:
    """No Authorization header: 401."""
    await h.seed()
    response = await h.post(UPDATED, issue_updated())
    await rejected(h, 401, "missing token", response)


async def test_a_token_in_the_query_is_not_accepted_for_webhooks(h: Harness) -> None:
    """Webhooks carry the token in the Authorization header only."""
    await h.seed()
    token = h.sign("POST", UPDATED)
    response = await h.post(UPDATED, issue_updated(), params=[("jwt", token)])
    await rejected(h, 401, "missing token", response)


async def test_two_tokens_are_ambiguous(h: Harness) -> None:
    """A header token and a jwt parameter together are refused."""
    await h.seed()
    token = h.sign("POST", UPDATED)
    response = await h.post(UPDATED, issue_updated(), token=token, params=[("jwt", token)])
    await rejected(h, 401, "ambiguous token", response)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (InstallationState.DISABLED, "installation disabled"),
        (InstallationState.UNINSTALLED, "installation uninstalled"),
    ],
)
async def test_an_inactive_installation_is_401(
    h: Harness, state: InstallationState, reason: str
) -> None:
    """A disabled or uninstalled site's webhooks are refused."""
    await h.seed(state=state)
    await rejected(h, 401, reason, await send(h, UPDATED, issue_updated()))


async def test_a_secret_that_does_not_open_is_401(h: Harness) -> None:
    """A stored secret sealed for another tenant (copied row) does not verify anything."""
    sealed = await h.seed(client_key="other-tenant")
    await h.seed(sealed=sealed)
    response = await send(h, UPDATED, issue_updated())
    await rejected(h, 401, "installation secret unusable", response)


async def test_the_body_must_name_the_routes_event(h: Harness) -> None:
    """webhookEvent must match the path the token was signed for."""
    await h.seed()
    body = issue_updated() | {"webhookEvent": "jira:issue_deleted"}
    await rejected(h, 400, "webhookEvent does not match the route", await send(h, UPDATED, body))


@pytest.mark.parametrize("issue", [None, {}, {"id": "ten"}, {"id": True}, {"id": "1" * 30}])
async def test_an_issue_id_is_required(h: Harness, issue: Any) -> None:
    """Without a numeric issue id there is no session key: 400."""
    await h.seed()
    body = issue_updated() | {"issue": issue}
    await rejected(h, 400, "issue.id missing or malformed", await send(h, UPDATED, body))


async def test_a_malformed_identifier_is_400(h: Harness) -> None:
    """An identifier that cannot be a message id part is refused."""
    await h.seed()
    response = await send(h, UPDATED, issue_updated(), identifier="x" * 200)
    await rejected(h, 400, "X-Atlassian-Webhook-Identifier malformed", response)


async def test_bad_json_is_400(h: Harness) -> None:
    """A signed request with a broken body is a 400."""
    await h.seed()
    await rejected(h, 400, "body is not valid JSON", await send(h, UPDATED, b'{"webhookEvent":'))


async def test_invalid_utf8_is_400(h: Harness) -> None:
    """Bytes that are not UTF-8 are not JSON."""
    await h.seed()
    await rejected(h, 400, "body is not valid JSON", await send(h, UPDATED, b'{"a": "\xff"}'))


async def test_a_webhook_body_is_capped_at_one_mebibyte(h: Harness) -> None:
    """A webhook body over 1 MiB is a 413; a large one under it is fine."""
    await h.seed()
    body = issue_updated()
    body["issue"]["fields"]["description"] = "x" * (900 * 1024)
    assert (await send(h, UPDATED, body)).status == 204
    body["issue"]["fields"]["description"] = "x" * (1025 * 1024)
    response = await send(h, UPDATED, body, identifier="big")
    assert response.status == 413
    assert len(await h.published()) == 1


async def test_unknown_webhook_paths_are_404(h: Harness) -> None:
    """Only the six consumed events have routes."""
    await h.seed()
    response = await send(h, "/jira/webhooks/worklog-created", issue_updated())
    assert response.status == 404
    assert await h.queued() == 0


async def test_a_database_outage_is_503(h: Harness) -> None:
    """When installations cannot be read the webhook is 503, so Jira retries."""
    await h.seed()
    await h.db.close()
    await rejected(h, 503, "installations unavailable", await send(h, UPDATED, issue_updated()))


async def test_a_site_that_moved_to_forge_no_longer_takes_connect_webhooks(h: Harness) -> None:
    """Once its row is a Forge installation, its events come from Forge only: no doubles."""
    from dfj_common.storage import Installations

    await h.seed()
    await Installations(h.db).save_forge(
        "ari:cloud:ecosystem::installation/moved", client_key=CLIENT_KEY
    )
    await rejected(h, 401, "unknown installation", await send(h, UPDATED, issue_updated()))
