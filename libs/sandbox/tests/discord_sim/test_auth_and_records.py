"""Authentication, routing, body parsing, and the record of every call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfj_sandbox.discord_sim import DiscordSimulator

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api

MESSAGES = "/channels/{channel_id}/messages"
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


async def test_bot_routes_need_the_bot_token(api: Api, sim: DiscordSimulator, general: str) -> None:
    """No header, a wrong token, or a Bearer token: 401 code 0, counted as invalid."""
    for auth in (None, "Bot not-the-token", "Bearer something"):
        answer = await api.call(
            "POST", f"/channels/{general}/messages", json={"content": "x"}, auth=auth
        )
        assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    assert sim.messages(general) == []
    assert sim.invalid_requests == 3
    assert [c.auth for c in sim.calls] == ["none", "invalid", "invalid"]


async def test_every_call_is_recorded(api: Api, sim: DiscordSimulator, general: str) -> None:
    """Method, template, major parameter, status, bucket, auth, user agent, time."""
    answer = await api.post_message(general, {"content": "x"})
    (call,) = sim.calls
    assert (call.method, call.template, call.major, call.status) == (
        "POST",
        MESSAGES,
        general,
        200,
    )
    assert call.bucket == answer.headers["X-RateLimit-Bucket"]
    assert (call.auth, call.rate_limited, call.scope, call.injected) == ("bot", False, None, False)
    assert call.user_agent is not None and call.user_agent.startswith("DiscordBot (")
    assert call.at == sim.clock.now()
    assert sim.count("POST", MESSAGES, status=200, major=general) == 1
    sim.reset_records()
    assert sim.calls == []


async def test_unknown_routes_and_methods(api: Api, sim: DiscordSimulator, general: str) -> None:
    """404 and 405 with Discord's code-0 bodies; every answer carries ``Via``."""
    missing = await api.call("GET", "/nothing/here")
    assert (missing.status, missing.body) == (404, {"message": "404: Not Found", "code": 0})
    wrong = await api.call("PUT", f"/channels/{general}/messages")
    assert (wrong.status, wrong.body["message"]) == (405, "405: Method Not Allowed")
    assert missing.headers["Via"] == "1.1 google"


async def test_bodies_must_be_json(api: Api, general: str) -> None:
    """A non-JSON Content-Type is 50035; broken JSON is 50109."""
    text = await api.call(
        "POST",
        f"/channels/{general}/messages",
        data=b"content=x",
        headers={"Content-Type": "text/plain"},
    )
    assert (text.status, text.body["code"]) == (400, 50035)
    assert text.body["errors"]["_errors"][0]["code"] == "CONTENT_TYPE_INVALID"
    broken = await api.call(
        "POST",
        f"/channels/{general}/messages",
        data=b'{"content": ',
        headers={"Content-Type": "application/json"},
    )
    assert broken.body == {"code": 50109, "message": "The request body contains invalid JSON."}


async def test_bot_users_me(api: Api, sim: DiscordSimulator) -> None:
    """With the bot token, ``/users/@me`` is the bot user."""
    answer = await api.call("GET", "/users/@me")
    assert answer.status == 200
    assert (answer.body["id"], answer.body["bot"]) == (sim.application.id, True)


def test_environ_names_every_setting(sim: DiscordSimulator) -> None:
    """The app's DFJ_DISCORD_* settings point at the simulator."""
    environ = sim.environ()
    assert environ["DFJ_DISCORD_API_URL"] == sim.api_url == sim.url + "/api/v10"
    assert environ["DFJ_DISCORD_WEB_URL"] == sim.url
    assert environ["DFJ_DISCORD_APPLICATION_ID"] == sim.application.id
    assert environ["DFJ_DISCORD_PUBLIC_KEY"] == sim.application.public_key
    assert len(environ["DFJ_DISCORD_BOT_TOKEN"].split(".")) == 3
    assert "bot_token" not in repr(sim.application)
