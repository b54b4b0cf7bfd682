"""Interactions sent like Discord sends them, answered by a tiny verifying endpoint, and the
token's life after: deferrals, @original, follow-ups, the callback route, expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from dfj_common.clock import ManualClock
from dfj_sandbox.discord_sim import DiscordSimulator, DiscordSpec, Guild, Options, RateLimits, User

if TYPE_CHECKING:
    from libs.sandbox.tests.discord_sim.conftest import Api

Answer = tuple[int, Any]
LABEL = {"type": 18, "label": "Summary", "component": {"type": 4, "custom_id": "s", "style": 1}}


class Endpoint:
    """The app's interactions endpoint, reduced to what Discord checks: verify, then answer."""

    def __init__(self, public_key: str) -> None:
        self.key = VerifyKey(bytes.fromhex(public_key))
        self.answer: Callable[[dict[str, Any]], Answer] = lambda body: (200, {"type": 5})
        self.received: list[dict[str, Any]] = []
        self.timestamps: list[str] = []
        self.delay = 0.0
        self.verify = True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        signature = request.headers.get("X-Signature-Ed25519", "")
        timestamp = request.headers.get("X-Signature-Timestamp", "")
        if self.verify:
            try:
                self.key.verify(timestamp.encode() + raw, bytes.fromhex(signature))
            except (BadSignatureError, ValueError):
                return web.Response(status=401, text="invalid request signature")
        body = json.loads(raw)
        self.received.append(body)
        self.timestamps.append(timestamp)
        if self.delay:
            await asyncio.sleep(self.delay)
        if body["type"] == 1:
            return web.json_response({"type": 1})
        status, answer = self.answer(body)
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)


@dataclass(frozen=True)
class Scene:
    """The endpoint, its URL, ``#general`` and alice."""

    app: Endpoint
    url: str
    general: str
    alice: User


@pytest.fixture(name="endpoint")
async def _endpoint(sim: DiscordSimulator) -> AsyncIterator[tuple[Endpoint, str]]:
    endpoint = Endpoint(sim.application.public_key)
    app = web.Application()
    app.router.add_post("/interactions", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield endpoint, str(server.make_url("/interactions"))
    finally:
        await server.close()


@pytest.fixture(name="scene")
def _scene(endpoint: tuple[Endpoint, str], general: str, alice: User) -> Scene:
    return Scene(endpoint[0], endpoint[1], general, alice)


def _original(sim: DiscordSimulator, token: str) -> str:
    return f"/webhooks/{sim.application.id}/{token}/messages/@original"


async def test_endpoint_check_and_the_invalid_signature_probe(
    sim: DiscordSimulator, endpoint: tuple[Endpoint, str]
) -> None:
    """A verifying endpoint passes Discord's PING + bad-signature check; a lax one does not."""
    app, url = endpoint
    check = await sim.verify_endpoint(url)
    assert (check.ping_status, check.pong, check.probe.status, check.passed) == (
        200,
        True,
        401,
        True,
    )
    app.verify = False
    probe = await sim.probe_invalid_signature(url)
    assert (probe.status, probe.passed) == (200, False)
    assert [p.passed for p in sim.probes] == [True, False]


async def test_signature_covers_timestamp_and_raw_body(
    sim: DiscordSimulator,
    scene: Scene,
    clock: ManualClock,
) -> None:
    """The endpoint verified the request; it got the body sent, stamped with the clock."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    body = sim.interactions.slash(general, alice.id, "jira", subcommand="create")
    result = await sim.send_interaction(url, body)
    assert result.status == 200
    assert app.received == [body]
    assert app.timestamps == [str(int(clock.now()))]
    assert result.acknowledged


async def test_deferred_response_then_edit_original(
    api: Api, sim: DiscordSimulator, scene: Scene
) -> None:
    """Type 5 posts a loading message; PATCH @original (no auth) fills it; GET returns it."""
    url, general, alice = scene.url, scene.general, scene.alice
    result = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    (loading,) = sim.messages(general)
    assert loading.loading and loading.content == ""
    assert loading.webhook_id == sim.application.id
    edited = await api.call(
        "PATCH", _original(sim, result.token), json={"content": "Created DEMO-7"}, auth=None
    )
    assert edited.status == 200
    assert edited.body["content"] == "Created DEMO-7"
    assert edited.body["flags"] & 128 == 0
    assert edited.body["type"] == 20
    got = await api.call("GET", _original(sim, result.token), auth=None)
    assert got.body["id"] == loading.id
    call = sim.calls[-1]
    assert (call.template, call.auth, call.major) == (
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        "none",
        f"{sim.application.id}:{result.interaction_id}",
    )


async def test_ephemeral_deferral_and_the_followup_quirk(
    api: Api, sim: DiscordSimulator, scene: Scene
) -> None:
    """A follow-up while "thinking…" edits the deferred response; the next one is new."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    app.answer = lambda body: (200, {"type": 5, "data": {"flags": 64}})
    result = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    path = f"/webhooks/{sim.application.id}/{result.token}"
    first = await api.call("POST", path, json={"content": "one", "flags": 64}, auth=None)
    second = await api.call(
        "POST", path, params={"wait": "true"}, json={"content": "two", "flags": 64}, auth=None
    )
    assert first.status == second.status == 200
    messages = sim.messages(general)
    assert [m.content for m in messages] == ["one", "two"]
    assert all(m.ephemeral for m in messages)
    assert sim.messages(general, ephemeral=False) == []
    record = sim.interaction(result.interaction_id)
    assert record is not None and record.followup_ids == (second.body["id"],)
    patched = await api.call(
        "PATCH", f"{path}/messages/{second.body['id']}", json={"content": "2"}, auth=None
    )
    assert patched.body["content"] == "2"
    other = await api.call("PATCH", f"{path}/messages/1", json={"content": "x"}, auth=None)
    assert other.body["code"] == 10008


async def test_inline_message_response_is_posted(sim: DiscordSimulator, scene: Scene) -> None:
    """Type 4 posts the original response at once."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    app.answer = lambda body: (200, {"type": 4, "data": {"content": "pong", "flags": 64}})
    await sim.send_interaction(url, sim.interactions.slash(general, alice.id, "ping"))
    (message,) = sim.messages(general)
    assert (message.content, message.ephemeral, message.type) == ("pong", True, 20)


async def test_component_click_deferred_update_and_update(
    api: Api, sim: DiscordSimulator, scene: Scene
) -> None:
    """Type 6 makes the clicked message @original; type 7 edits it at once."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    row = {
        "type": 1,
        "components": [{"type": 2, "style": 1, "custom_id": "watch:DEMO-1", "label": "Watch"}],
    }
    posted = await api.post_message(general, {"content": "DEMO-1", "components": [row]})
    app.answer = lambda body: (200, {"type": 6})
    body = sim.interactions.click(posted.body["id"], alice.id, "watch:DEMO-1")
    assert body["data"] == {"custom_id": "watch:DEMO-1", "component_type": 2}
    assert body["message"]["id"] == posted.body["id"]
    result = await sim.send_interaction(url, body)
    edited = await api.call(
        "PATCH", _original(sim, result.token), json={"content": "DEMO-1 (watching)"}, auth=None
    )
    assert edited.body["id"] == posted.body["id"]
    app.answer = lambda body: (200, {"type": 7, "data": {"components": []}})
    await sim.send_interaction(
        url, sim.interactions.click(posted.body["id"], alice.id, "watch:DEMO-1")
    )
    message = sim.message(posted.body["id"])
    assert message is not None
    assert (message.content, message.components) == ("DEMO-1 (watching)", ())
    with pytest.raises(KeyError, match="no component"):
        sim.interactions.click(posted.body["id"], alice.id, "not-there")


async def test_modal_answers_and_the_five_component_correction(
    api: Api, sim: DiscordSimulator, scene: Scene
) -> None:
    """A modal of 5 is accepted (no @original after it); 6 is refused though the spec allows 40."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    modal: dict[str, Any] = {
        "type": 9,
        "data": {"custom_id": "create", "title": "Create issue", "components": [LABEL] * 5},
    }
    app.answer = lambda body: (200, modal)
    ok = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    assert ok.acknowledged
    missing = await api.call("GET", _original(sim, ok.token), auth=None)
    assert missing.body["code"] == 10008
    six = {"type": 9, "data": {**modal["data"], "components": [LABEL] * 6}}
    app.answer = lambda body: (200, six)
    refused = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    assert not refused.acknowledged
    (violation,) = sim.spec_violations
    assert violation.template == "interaction response"
    assert violation.errors[0].path == ("data", "components")
    assert (
        sim.spec.check_body(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            six,
            corrected=False,
        )
        == []
    )


async def test_a_callback_type_that_does_not_fit_is_a_violation(
    sim: DiscordSimulator, scene: Scene
) -> None:
    """``DEFERRED_UPDATE_MESSAGE`` answers components, not slash commands."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    app.answer = lambda body: (200, {"type": 6})
    result = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    assert not result.acknowledged
    assert sim.spec_violations[0].errors[0].code == "INTERACTION_RESPONSE_TYPE_INVALID"


async def test_token_lifecycle_through_the_callback_route(
    api: Api,
    sim: DiscordSimulator,
    scene: Scene,
    clock: ManualClock,
) -> None:
    """202 then callback: before it @original is 10015; after it works; twice is 40060."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    app.answer = lambda body: (202, None)
    result = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    assert not result.acknowledged
    early = await api.call("PATCH", _original(sim, result.token), json={"content": "x"}, auth=None)
    assert (early.status, early.body) == (404, {"code": 10015, "message": "Unknown Webhook"})
    callback = f"/interactions/{result.interaction_id}/{result.token}/callback"
    answered = await api.call(
        "POST", callback, json={"type": 5}, params={"with_response": "true"}, auth=None
    )
    assert answered.status == 200
    assert answered.body["interaction"]["response_message_loading"] is True
    again = await api.call("POST", callback, json={"type": 5}, auth=None)
    assert (again.status, again.body["code"]) == (400, 40060)
    edited = await api.call("PATCH", _original(sim, result.token), json={"content": "x"}, auth=None)
    assert edited.status == 200
    clock.advance(sim.options.token_lifetime + 1)
    expired = await api.call(
        "PATCH", _original(sim, result.token), json={"content": "y"}, auth=None
    )
    assert (expired.status, expired.body["code"]) == (404, 10015)


async def test_callback_after_three_seconds_is_unknown(
    api: Api,
    sim: DiscordSimulator,
    scene: Scene,
    clock: ManualClock,
) -> None:
    """The initial response must come within 3 s on the clock: later it is 10062."""
    app, url, general, alice = scene.app, scene.url, scene.general, scene.alice
    app.answer = lambda body: (202, None)
    result = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    clock.advance(3.1)
    late = await api.call(
        "POST",
        f"/interactions/{result.interaction_id}/{result.token}/callback",
        json={"type": 5},
        auth=None,
    )
    assert (late.status, late.body["code"]) == (404, 10062)
    wrong = await api.call(
        "POST", f"/interactions/{result.interaction_id}/nope/callback", json={"type": 5}, auth=None
    )
    assert wrong.body["code"] == 10062


async def test_unknown_tokens_and_applications(
    api: Api, sim: DiscordSimulator, scene: Scene
) -> None:
    """A token never issued: 401 50027 (invalid); another application id: 404 10015."""
    url, general, alice = scene.url, scene.general, scene.alice
    result = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    forged = await api.call(
        "PATCH", _original(sim, "not-a-token"), json={"content": "x"}, auth=None
    )
    assert (forged.status, forged.body) == (
        401,
        {"code": 50027, "message": "Invalid Webhook Token"},
    )
    other_app = await api.call(
        "PATCH", f"/webhooks/1/{result.token}/messages/@original", json={"content": "x"}, auth=None
    )
    assert (other_app.status, other_app.body["code"]) == (404, 10015)
    assert sim.invalid_requests == 1


async def test_a_late_inline_answer_does_not_count(spec: DiscordSpec, clock: ManualClock) -> None:
    """An answer after the deadline leaves the interaction failed and its token useless."""
    async with DiscordSimulator(
        clock=clock, spec=spec, options=Options(callback_deadline=0.05)
    ) as sim:
        guild = sim.add_guild()
        member = guild.add_member(username="bob")
        endpoint = Endpoint(sim.application.public_key)
        endpoint.delay = 0.1
        app = web.Application()
        app.router.add_post("/i", endpoint.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            body = sim.interactions.slash(guild.channels[0].id, member.user_id)
            result = await sim.send_interaction(str(server.make_url("/i")), body)
        finally:
            await server.close()
        assert result.status == 200
        assert result.elapsed >= 0.1
        assert not result.acknowledged
        record = sim.interaction(result.interaction_id)
        assert record is not None and record.late
        assert sim.messages(guild.channels[0].id) == []


async def test_an_unreachable_endpoint(sim: DiscordSimulator, general: str, alice: User) -> None:
    """Nothing listening: status 0, the interaction failed."""
    result = await sim.send_interaction(
        "http://127.0.0.1:9/none", sim.interactions.slash(general, alice.id)
    )
    assert (result.status, result.acknowledged) == (0, False)


async def test_webhooks_are_exempt_from_the_global_limit_but_have_buckets(
    api: Api, sim: DiscordSimulator, scene: Scene
) -> None:
    """Global limit used up by bot routes: follow-ups still pass, up to their own bucket."""
    url, general, alice = scene.url, scene.general, scene.alice
    sim.set_limits(RateLimits().with_bucket("channel.get", 1000, 1.0))
    first = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    second = await sim.send_interaction(url, sim.interactions.slash(general, alice.id))
    for _ in range(50):
        await api.call("GET", f"/channels/{general}")
    assert (await api.call("GET", f"/channels/{general}")).status == 429
    path = f"/webhooks/{sim.application.id}/{first.token}"
    statuses = [
        (await api.call("POST", path, json={"content": str(i)}, auth=None)).status for i in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    other = f"/webhooks/{sim.application.id}/{second.token}"
    assert (await api.call("POST", other, json={"content": "x"}, auth=None)).status == 200


def test_bodies_are_built_from_the_model(
    sim: DiscordSimulator, guild: Guild, general: str, alice: User
) -> None:
    """Member roles and permissions, app_permissions, resolved messages, DMs with ``user``."""
    role = guild.add_role("Jira admins", 1 << 5)
    guild.set_roles(alice.id, [role.id])
    body = sim.interactions.slash(
        general, alice.id, "jira", subcommand="connect", options={"code": "X1"}
    )
    assert body["member"]["roles"] == [role.id]
    assert int(body["member"]["permissions"]) & (1 << 5)
    assert body["member"]["user"]["username"] == "alice"
    assert body["app_permissions"] == str(
        sim.world.permissions(sim.application.id, sim.channel(general))
    )
    assert body["guild_id"] == guild.id
    assert body["data"]["options"][0]["options"] == [{"name": "code", "type": 3, "value": "X1"}]
    posted = sim.add_message(general, alice.id, "Export crashes on Safari")
    menu = sim.interactions.message_command(posted, alice.id)
    resolved = menu["data"]["resolved"]["messages"][posted.id]
    assert (resolved["content"], resolved["author"]["id"]) == ("Export crashes on Safari", alice.id)
    assert menu["data"]["target_id"] == posted.id
    second = sim.interactions.slash(general, alice.id)
    assert second["id"] != body["id"] and second["token"] != body["token"]
    dm = sim.world.open_dm(alice)
    in_dm = sim.interactions.slash(dm.id, alice.id)
    assert "member" not in in_dm and in_dm["user"]["id"] == alice.id
    submit = sim.interactions.modal_submit(general, alice.id, "create", {"summary": "Crash"})
    assert submit["data"]["components"][0]["component"]["value"] == "Crash"
