"""Forge's calls become the same events as Connect's: ids only, deduplicated, token sealed."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest

from dfj_common.secrets import SecretError
from dfj_common.storage import GuildConnections, Installations
from dfj_sandbox.forge_signing import UiContext

if TYPE_CHECKING:
    from services.gateway.tests.forge.conftest import Harness

from services.gateway.tests.forge.conftest import (
    ACCOUNT_ID,
    API_BASE_URL,
    CLOUD_ID,
    INSTALLATION_ID,
    INSTALLATION_UUID,
    NOW,
)

EVENTS = "/forge/events"
ENVIRONMENT_ID = "ari:cloud:ecosystem::environment/11111111-2222-4333-8444-555555555555"
LIFECYCLE = "/forge/lifecycle"
SYSTEM_TOKEN = (
    "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE4MDAwMDcyMDB9.c2lnbmF0dXJlLW9mLXRoZS1zeXN0ZW0tdG9rZW4"
)
SYSTEM_TOKEN_EXP = 1_800_007_200  # the exp inside SYSTEM_TOKEN


def updated_issue() -> dict[str, Any]:
    """An ``avi:jira:updated:issue`` event as Forge delivers it, names and text included."""
    return {
        "eventType": "avi:jira:updated:issue",
        "atlassianId": ACCOUNT_ID,
        "jiraEventTypeName": "issue_assigned",
        "selfGenerated": False,
        "issue": {
            "id": "10042",
            "key": "OPS-7",
            "fields": {
                "summary": "Database is on fire",
                "description": "Secret incident details",
                "project": {"id": "10000", "key": "OPS", "name": "Operations"},
                "issuetype": {"id": "10001", "name": "Bug"},
                "status": {"id": "3", "name": "In Progress"},
                "assignee": {"accountId": "557058:f581", "displayName": "Grace Hopper"},
                "reporter": {"accountId": ACCOUNT_ID, "emailAddress": "ada@example.com"},
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
        "associatedUsers": [{"accountId": "557058:f581", "displayName": "Grace Hopper"}],
    }


def comment_event(*, edited: bool) -> dict[str, Any]:
    return {
        "eventType": "avi:jira:commented:issue",
        "atlassianId": ACCOUNT_ID,
        "issue": {"id": "10042", "key": "OPS-7", "fields": {"project": {"id": "10000"}}},
        "comment": {
            "id": "30001",
            "author": {"accountId": ACCOUNT_ID, "displayName": "Ada"},
            "body": {"type": "doc", "content": [{"type": "text", "text": "private words"}]},
            "created": "2027-01-15T10:00:00.000+0000",
            "updated": "2027-01-15T10:09:00.000+0000" if edited else "2027-01-15T10:00:00.000+0000",
        },
    }


async def test_a_product_event_becomes_the_connect_shaped_webhook_event(h: Harness) -> None:
    response = await h.call(EVENTS, updated_issue(), token=h.fit(), system_token=SYSTEM_TOKEN)
    assert response.status == 204, await response.text()
    [event] = await h.published()
    assert event.type == "jira.webhook"
    assert event.tenant == INSTALLATION_ID
    assert event.session_key == f"{INSTALLATION_ID}:10042"
    data = dict(event.data)
    sealed = data["forge"].pop("systemToken")
    assert data == {
        "clientKey": INSTALLATION_ID,
        "event": "jira:issue_updated",
        "issueEventTypeName": "issue_assigned",
        "timestamp": 1_800_007_500_000,
        "actorAccountId": ACCOUNT_ID,
        "delivery": {"flow": "forge"},
        "issue": {
            "id": "10042",
            "key": "OPS-7",
            "projectId": "10000",
            "projectKey": "OPS",
            "issueTypeId": "10001",
            "statusId": "3",
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
                    "fieldId": "assignee",
                    "fieldtype": "jira",
                    "to": "557058:f581",
                }
            ],
        },
        "forge": {
            "installationId": INSTALLATION_ID,
            "cloudId": CLOUD_ID,
            "apiBaseUrl": API_BASE_URL,
            "appVersion": "1.2.0",
            "environmentType": "DEVELOPMENT",
            "environmentId": ENVIRONMENT_ID,
        },
    }
    assert sealed["expiresAt"] == SYSTEM_TOKEN_EXP
    assert await h.open_token(sealed["sealed"]) == SYSTEM_TOKEN
    raw = event.encode()
    for text in (
        b"Database is on fire",
        b"Grace Hopper",
        b"ada@example.com",
        SYSTEM_TOKEN.encode(),
    ):
        assert text not in raw


async def test_a_sealed_token_does_not_open_for_another_installation(h: Harness) -> None:
    await h.call(EVENTS, updated_issue(), token=h.fit(), system_token=SYSTEM_TOKEN)
    [event] = await h.published()
    sealed = event.data["forge"]["systemToken"]["sealed"]
    with pytest.raises(SecretError):
        await h.open_token(sealed, "ari:cloud:ecosystem::installation/another")


async def test_forges_retries_of_one_event_are_one_message(h: Harness) -> None:
    """Each retry has a fresh token and a retryContext; the bus keeps the first."""
    first = await h.call(EVENTS, updated_issue(), token=h.fit())
    retried = updated_issue()
    retried["retryContext"] = {"retryCount": 1, "retryReason": "TIMEOUT_ERROR", "retryData": None}
    h.clock.advance(60)
    second = await h.call(EVENTS, retried, token=h.fit())
    assert (first.status, second.status) == (204, 204)
    [event] = await h.published()
    assert await h.queued() == 0
    other = updated_issue()
    other["changelog"]["id"] = "20018"
    assert (await h.call(EVENTS, other, token=h.fit())).status == 204
    [again] = await h.published()
    assert again.id != event.id


async def test_the_nested_payload_shape_is_read_and_its_retry_count_kept(h: Harness) -> None:
    wrapped = {
        "payload": updated_issue(),
        "retryContext": {"retryCount": 2, "retryReason": "INVALID_REMOTE_INVOCATION_ERROR"},
    }
    assert (await h.call(EVENTS, wrapped, token=h.fit())).status == 204
    [event] = await h.published()
    assert event.data["event"] == "jira:issue_updated"
    assert event.data["delivery"] == {"retry": 2, "flow": "forge"}


@pytest.mark.parametrize(
    ("edited", "name"), [(False, "comment_created"), (True, "comment_updated")]
)
async def test_a_comment_event_is_created_or_updated(h: Harness, edited: bool, name: str) -> None:
    assert (await h.call(EVENTS, comment_event(edited=edited), token=h.fit())).status == 204
    [event] = await h.published()
    assert event.data["event"] == name
    assert event.data["comment"]["id"] == "30001"
    assert b"private words" not in event.encode()


@pytest.mark.parametrize(
    ("event_type", "name"),
    [
        ("avi:jira:created:issue", "jira:issue_created"),
        ("avi:jira:deleted:issue", "jira:issue_deleted"),
        ("avi:jira:deleted:comment", "comment_deleted"),
    ],
)
async def test_each_subscribed_event_maps_to_its_connect_name(
    h: Harness, event_type: str, name: str
) -> None:
    body = updated_issue()
    body["eventType"] = event_type
    assert (await h.call(EVENTS, body, token=h.fit())).status == 204
    [event] = await h.published()
    assert event.data["event"] == name


async def test_a_migrated_site_keeps_its_connect_tenant(h: Harness) -> None:
    """The row of a site that moved from Connect holds the installation id: its clientKey wins."""
    await Installations(h.db).save_connect(
        "connect-client-key-1",
        base_url="https://acme.atlassian.net",
        shared_secret_ciphertext=b"sealed",
        installation_id=INSTALLATION_ID,
    )
    assert (await h.call(EVENTS, updated_issue(), token=h.fit())).status == 204
    [event] = await h.published()
    assert event.tenant == "connect-client-key-1"
    assert event.data["clientKey"] == "connect-client-key-1"
    assert event.session_key == "connect-client-key-1:10042"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[]", 400, "body is not a JSON object"),
        (
            {"eventType": "avi:jira:viewed:issue", "issue": {"id": "1"}},
            400,
            "eventType not handled",
        ),
        (
            {"eventType": "avi:jira:created:issue", "issue": {"id": "x"}},
            400,
            "issue.id missing or malformed",
        ),
        ({"eventType": "avi:jira:commented:issue", "issue": {"id": "1"}}, 400, "comment missing"),
        ({"issue": {"id": "1"}}, 400, "eventType missing"),
    ],
)
async def test_bad_event_bodies_are_400s_and_publish_nothing(
    h: Harness, body: Any, status: int, reason: str
) -> None:
    response = await h.call(EVENTS, body, token=h.fit())
    assert response.status == status
    assert (await response.json())["error"] == reason
    assert await h.queued() == 0


async def test_wrong_content_type_and_oversized_bodies_are_refused(h: Harness) -> None:
    response = await h.call(EVENTS, b"{}", token=h.fit(), content_type="text/plain")
    assert response.status == 415
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    response = await h.call(EVENTS, big, token=h.fit())
    assert response.status == 413
    assert await h.queued() == 0


async def test_wrong_method_and_unknown_route(h: Harness) -> None:
    assert (await h.call(EVENTS, method="GET", token=h.fit())).status == 405
    assert (await h.call("/forge/nowhere", {}, token=h.fit())).status == 404


def installed_body(uuid: str = INSTALLATION_UUID) -> dict[str, Any]:
    return {
        "eventType": "avi:forge:installed:app",
        "id": uuid,
        "installerAccountId": ACCOUNT_ID,
        "app": {"id": "ari:cloud:ecosystem::app/6f1c", "version": "1.2.0"},
        "environment": {"id": "ari:cloud:ecosystem::environment/1111"},
        "context": f"ari:cloud:jira::site/{CLOUD_ID}",
    }


async def test_installed_becomes_a_forge_installed_event(h: Harness) -> None:
    response = await h.call(
        LIFECYCLE, installed_body(), token=h.fit("lifecycle"), system_token=SYSTEM_TOKEN
    )
    assert response.status == 204, await response.text()
    [event] = await h.published()
    assert event.type == "jira.forge.installed"
    assert event.session_key == INSTALLATION_ID
    data = dict(event.data)
    token = data.pop("systemToken")
    assert data == {
        "installationId": INSTALLATION_ID,
        "cloudId": CLOUD_ID,
        "apiBaseUrl": API_BASE_URL,
        "appVersion": "1.2.0",
        "environmentType": "DEVELOPMENT",
        "environmentId": ENVIRONMENT_ID,
        "accountId": ACCOUNT_ID,
    }
    assert await h.open_token(token["sealed"]) == SYSTEM_TOKEN


async def test_upgraded_and_the_nested_shape(h: Harness) -> None:
    body = {"payload": {**installed_body(), "eventType": "avi:forge:upgraded:app"}}
    assert (await h.call(LIFECYCLE, body, token=h.fit("lifecycle"))).status == 204
    [event] = await h.published()
    assert event.type == "jira.forge.upgraded"


async def test_a_lifecycle_body_naming_another_installation_is_refused(h: Harness) -> None:
    """The tenant comes from the token; a body that disagrees is a bad request."""
    body = installed_body("99999999-9999-4999-8999-999999999999")
    response = await h.call(LIFECYCLE, body, token=h.fit("lifecycle"))
    assert response.status == 400
    assert (await response.json())["error"] == "installation id does not match the token"
    assert await h.queued() == 0


async def test_an_unknown_lifecycle_event_is_refused(h: Harness) -> None:
    body = {**installed_body(), "eventType": "avi:forge:uninstalled:app"}
    response = await h.call(LIFECYCLE, body, token=h.fit("lifecycle"))
    assert response.status == 400
    assert await h.queued() == 0


async def test_the_scheduled_trigger_hands_the_token_on(h: Harness) -> None:
    token = h.fit("scheduled")
    response = await h.call("/forge/scheduled", {}, token=token, system_token=SYSTEM_TOKEN)
    assert response.status == 204
    [event] = await h.published()
    assert event.type == "jira.forge.token"
    assert await h.open_token(event.data["systemToken"]["sealed"]) == SYSTEM_TOKEN


async def test_a_malformed_system_token_is_not_passed_on(h: Harness) -> None:
    response = await h.call("/forge/scheduled", {}, token=h.fit("scheduled"), system_token="a b")
    assert response.status == 204
    assert await h.queued() == 0


async def test_an_unreadable_expiry_gets_the_shortest_documented_lifetime(h: Harness) -> None:
    await h.call("/forge/scheduled", {}, token=h.fit("scheduled"), system_token="opaque-token")
    [event] = await h.published()
    assert event.data["systemToken"]["expiresAt"] == int(NOW) + 55 * 60


async def test_pre_uninstall_becomes_a_forge_uninstalled_event(h: Harness) -> None:
    body = {"context": {"cloudId": CLOUD_ID, "moduleKey": "uninstall"}, "contextToken": "opaque"}
    response = await h.call(
        "/forge/uninstall", body, token=h.fit("uninstall"), system_token=SYSTEM_TOKEN
    )
    assert response.status == 204
    [event] = await h.published()
    assert event.type == "jira.forge.uninstalled"
    assert "systemToken" not in event.data
    assert event.data["installationId"] == INSTALLATION_ID


def admin(principal: str = ACCOUNT_ID, module_key: str = "config") -> UiContext:
    return UiContext(
        site_url="https://acme.atlassian.net",
        module_key=module_key,
        extension_type="jira:adminPage",
        principal=principal,
        local_id="local-1",
    )


async def test_the_admin_page_reads_the_sites_configuration(h: Harness) -> None:
    await Installations(h.db).save_forge(
        INSTALLATION_ID, cloud_id=CLOUD_ID, base_url="https://acme.atlassian.net"
    )
    await GuildConnections(h.db).connect(
        "123456789012345678", client_key=INSTALLATION_ID, connected_by="223456789012345678"
    )
    token = h.fit("config", ui=admin(), module_type="jira:adminPage")
    response = await h.call("/forge/ui/config", method="GET", token=token)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.json()
    assert page["site"] == {"url": "https://acme.atlassian.net"}
    assert page["discord"]["installUrl"].startswith("https://discord.com/oauth2/authorize?")
    assert page["connectCode"]["expiresAt"] == int(NOW) + 600
    assert len(page["connectCode"]["code"]) >= 8
    assert [c["guildId"] for c in page["connections"]] == ["123456789012345678"]
    assert await h.queued() == 0


async def test_only_the_admin_page_with_a_user_may_read_it(h: Harness) -> None:
    for token in (
        h.fit("events"),
        h.fit("other-page", ui=admin(module_key="other-page"), module_type="jira:adminPage"),
        h.fit("config", ui=admin(module_key="config"), module_type="jira:issuePanel"),
        h.fit(
            "config", ui=admin(), module_type="jira:adminPage", claims_override={"principal": None}
        ),
    ):
        response = await h.call("/forge/ui/config", method="GET", token=token)
        assert response.status == 403
        assert (await response.json())["error"]


async def test_without_discord_set_up_the_page_says_so(make_harness: Any) -> None:
    h = await make_harness(env={"DFJ_DISCORD_APPLICATION_ID": ""})
    token = h.fit("config", ui=admin(), module_type="jira:adminPage")
    page = await (await h.call("/forge/ui/config", method="GET", token=token)).json()
    assert page["discord"] == {"installUrl": None}
    assert page["connectCode"] is None
    assert page["connections"] == []


async def test_the_event_data_is_a_deep_copy_safe_mapping(h: Harness) -> None:
    """What the gateway publishes does not depend on the caller's objects afterwards."""
    body = updated_issue()
    sent = copy.deepcopy(body)
    await h.call(EVENTS, body, token=h.fit())
    assert body == sent


async def test_a_bus_that_cannot_publish_gives_503_which_forge_retries(h: Harness) -> None:
    await h.bus.close()
    response = await h.call(EVENTS, updated_issue(), token=h.fit())
    assert response.status == 503
    assert (await response.json()) == {"error": "bus unavailable"}


async def test_a_database_outage_gives_503(h: Harness) -> None:
    await h.db.close()
    response = await h.call(EVENTS, updated_issue(), token=h.fit())
    assert response.status == 503
    assert (await response.json()) == {"error": "installations unavailable"}
    assert await h.queued() == 0


async def test_one_system_token_is_sealed_once_and_the_blob_reused(h: Harness) -> None:
    """Forge hands the same token over for hours: one seal, one blob for the worker."""
    first = updated_issue()
    second = updated_issue()
    second["changelog"]["id"] = "20099"
    for body in (first, second):
        assert (await h.call(EVENTS, body, token=h.fit(), system_token=SYSTEM_TOKEN)).status == 204
    a, b = await h.published(2)
    assert a.data["forge"]["systemToken"] == b.data["forge"]["systemToken"]
    other = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE4MDAwMDcyMDF9.YW5vdGhlci10b2tlbg"
    third = updated_issue()
    third["changelog"]["id"] = "20100"
    await h.call(EVENTS, third, token=h.fit(), system_token=other)
    [c] = await h.published()
    assert c.data["forge"]["systemToken"]["expiresAt"] == SYSTEM_TOKEN_EXP + 1
    assert await h.open_token(c.data["forge"]["systemToken"]["sealed"]) == other
