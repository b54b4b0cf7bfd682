"""Discord's 4xx answers become permanent errors with its code, a reason and who to tell."""

from __future__ import annotations

import json

import pytest

from dfj_common.errors import PermanentError
from dfj_discord_worker.discord import (
    DiscordBadRequest,
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordUnauthorized,
)
from dfj_discord_worker.discord.errors import error_for_status

ROUTE = "/channels/{channel_id}/messages"


def make(status: int, body: object) -> DiscordError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return error_for_status(status, method="POST", route=ROUTE, body=raw)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (403, 50001, "Missing Access", (DiscordForbidden, "DiscordMissingAccess", True, False)),
        (
            403,
            50013,
            "Missing Permissions",
            (DiscordForbidden, "DiscordMissingPermissions", True, False),
        ),
        (404, 10003, "Unknown Channel", (DiscordNotFound, "DiscordUnknownChannel", True, False)),
        (404, 10015, "Unknown Webhook", (DiscordNotFound, "DiscordUnknownWebhook", False, True)),
        (
            401,
            50027,
            "Invalid Webhook Token",
            (DiscordUnauthorized, "DiscordInvalidWebhookToken", False, True),
        ),
        (
            400,
            50035,
            "Invalid Form Body",
            (DiscordBadRequest, "DiscordInvalidFormBody", False, False),
        ),
        (401, 0, "401: Unauthorized", (DiscordUnauthorized, "Discord401", False, False)),
        (409, 99999, "Something new", (DiscordError, "Discord409", False, False)),
    ],
)
def test_status_and_code_map_to_a_class_and_reason(
    status: int,
    code: int,
    message: str,
    expected: tuple[type[DiscordError], str, bool, bool],
) -> None:
    kind, reason, tell_admin, expired = expected
    error = make(status, {"message": message, "code": code})
    assert type(error) is kind
    assert isinstance(error, PermanentError)
    assert (error.status, error.code, error.discord_message) == (status, code, message)
    assert error.reason == reason
    assert error.tell_admin is tell_admin
    assert error.interaction_expired is expired
    assert ROUTE in str(error) and str(status) in str(error)


def test_invalid_form_body_lists_the_failing_fields_by_path_and_code() -> None:
    error = make(
        400,
        {
            "code": 50035,
            "message": "Invalid Form Body",
            "errors": {
                "embeds": {
                    "0": {
                        "title": {
                            "_errors": [
                                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer."}
                            ]
                        }
                    }
                },
                "content": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "Required"}]},
            },
        },
    )
    assert error.field_errors == (
        "embeds.0.title: BASE_TYPE_MAX_LENGTH",
        "content: BASE_TYPE_REQUIRED",
    )
    assert "embeds.0.title: BASE_TYPE_MAX_LENGTH" in str(error)


def test_a_body_that_is_not_json_still_gives_a_useful_error() -> None:
    error = make(403, b"<html>forbidden</html>")
    assert isinstance(error, DiscordForbidden)
    assert error.code is None and error.discord_message is None
    assert error.reason == "Discord403"
    assert error.tell_admin  # a bare 403 is still about access


def test_discords_message_is_clipped() -> None:
    error = make(400, {"code": 50035, "message": "x" * 5_000})
    assert error.discord_message is not None and len(error.discord_message) <= 200
