"""``POST /discord/interactions``: the thin aiohttp adapter around verify → classify → answer.

Order of checks, each with its own status and log reason, and nothing published unless every
one passes:

1. not configured (no ``DFJ_DISCORD_PUBLIC_KEY``) → 503; body over the route's limit → 413;
2. signature headers, Ed25519 over the raw bytes, timestamp freshness → 401 (``verify.py``);
3. ``Content-Type`` not JSON → 415; not JSON → 400; not an interaction we know → 400;
4. an interaction id already accepted → 401 (``replay.py``);
5. the answer: PONG, help, autocomplete choices or a modal from local reads, or publish and
   answer deferred (``interactions.py`` decides which). A publish that fails or times out → 503
   (Discord shows "interaction failed"; answering "deferred" would promise a follow-up that
   never comes).

Local reads (guild connection, metadata cache, drafts) are bounded by
``DFJ_GATEWAY_LOOKUP_TIMEOUT_SECONDS``: Discord gives 3 seconds, so a slow or failing database
degrades the answer (no tenant, no choices, "try again") instead of failing it. The gateway only
reads; the jira-worker writes drafts and caches, the linker writes links and connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

import orjson
import structlog
from aiohttp import web

from dfj_common.errors import DfjError
from dfj_common.storage.repositories import (
    CachedValue,
    Draft,
    Drafts,
    GuildConnection,
    GuildConnections,
    MetadataCache,
)
from dfj_gateway.app import BUS, CLOCK, DATABASE, SETTINGS
from dfj_gateway.discord import interactions as ix
from dfj_gateway.discord import responses as rs
from dfj_gateway.discord.offload import SignatureChecker
from dfj_gateway.discord.replay import ReplayGuard
from dfj_gateway.discord.verify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InteractionVerifier,
    Rejection,
    signed_message,
)
from dfj_gateway.lookups import ReadCache
from dfj_gateway.middleware import add_route, json_error, note
from dfj_gateway.reads import TooLarge, bounded, has_content_type, read_capped
from dfj_gateway.settings import GatewaySettings

__all__ = ["DISCORD", "INTERACTIONS_PATH", "DiscordState", "setup_discord_routes"]

T = TypeVar("T")
_log: Final = structlog.get_logger("dfj.gateway.discord")

INTERACTIONS_PATH: Final = "/discord/interactions"


@dataclass(kw_only=True)
class DiscordState:
    """What the interactions route keeps on the app: settings, its verifier, the replay guard."""

    settings: GatewaySettings
    verifier: InteractionVerifier | None
    signatures: SignatureChecker | None
    replay: ReplayGuard
    connections: ReadCache[str, GuildConnection]
    metadata: ReadCache[tuple[str, str, str], CachedValue]


DISCORD: Final = web.AppKey("discord_interactions", DiscordState)


def setup_discord_routes(app: web.Application, *, environ: Mapping[str, str] | None = None) -> None:
    """Register the interactions route; a malformed public key fails here, by name."""
    settings = app[SETTINGS]
    gateway = GatewaySettings.from_env(environ or {})
    clock = app[CLOCK]
    window = gateway.discord_timestamp_window_seconds
    verifier = (
        InteractionVerifier.from_hex(settings.discord_public_key, clock=clock, window=window)
        if settings.discord_public_key
        else None
    )
    signatures = SignatureChecker(verifier.key) if verifier is not None else None
    app[DISCORD] = DiscordState(
        settings=gateway,
        verifier=verifier,
        signatures=signatures,
        replay=ReplayGuard(
            window=window, max_entries=gateway.discord_replay_cache_size, clock=clock
        ),
        # A guild's connection changes on /jira connect or disconnect; 30 s is soon enough.
        connections=ReadCache(clock, ttl=30.0, miss_ttl=5.0),
        metadata=ReadCache(clock, ttl=10.0, miss_ttl=5.0),
    )
    if signatures is not None:
        app.cleanup_ctx.append(partial(_signature_thread, signatures))
    add_route(app, "POST", INTERACTIONS_PATH, interactions)


async def _signature_thread(
    signatures: SignatureChecker, _app: web.Application
) -> AsyncIterator[None]:
    signatures.start()
    yield
    await signatures.close()


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes (read no further)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        return await read_capped(request.content, limit)
    except TooLarge:
        return None


def _bounded(
    request: web.Request, what: str, work: Awaitable[T]
) -> Awaitable[tuple[bool, T | None]]:
    timeout = request.app[DISCORD].settings.gateway_lookup_timeout_seconds
    return bounded(request, what, work, timeout=timeout)


async def _connection(request: web.Request, guild_id: str | None) -> GuildConnection | None:
    if guild_id is None:
        return None
    cached, value = request.app[DISCORD].connections.peek(guild_id)
    if cached:
        return value
    connections = GuildConnections(request.app[DATABASE])
    _, found = await _bounded(
        request,
        "guild connection",
        request.app[DISCORD].connections.get(guild_id, lambda: connections.get(guild_id)),
    )
    return found


async def _cached(request: web.Request, client_key: str, ref: ix.CacheRef) -> Any:
    key = (client_key, ref.kind, ref.key)
    cached, hit = request.app[DISCORD].metadata.peek(key)
    if cached:
        return hit.value if isinstance(hit, CachedValue) else None
    cache = MetadataCache(request.app[DATABASE])
    _, entry = await _bounded(
        request,
        "metadata cache",
        request.app[DISCORD].metadata.get(key, lambda: cache.get(client_key, ref.kind, ref.key)),
    )
    return entry.value if isinstance(entry, CachedValue) else None


class _Refused(Exception):
    """A request turned away: its status, the short answer, and the reason for the log line."""

    def __init__(self, status: int, answer: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.answer = answer
        self.reason = reason


_UNAUTHORIZED: Final = "invalid request signature"


async def _accept(request: web.Request, state: DiscordState) -> ix.Interaction:
    """The verified, parsed interaction; :class:`_Refused` at the first check that fails."""
    if state.verifier is None:
        raise _Refused(
            503, "discord interactions are not configured", "discord public key not configured"
        )
    body = await read_limited(request, state.settings.discord_max_body_bytes)
    if body is None:
        raise _Refused(413, "request body too large", "body too large")
    headers = state.verifier.headers(
        signature=request.headers.get(SIGNATURE_HEADER),
        timestamp=request.headers.get(TIMESTAMP_HEADER),
    )
    if isinstance(headers, Rejection):
        raise _Refused(401, _UNAUTHORIZED, str(headers))
    raw_signature, timestamp = headers
    assert state.signatures is not None  # set with the verifier
    if not await state.signatures.valid(signed_message(timestamp, body), raw_signature):
        raise _Refused(401, _UNAUTHORIZED, str(Rejection.BAD_SIGNATURE))
    stale = state.verifier.freshness(timestamp)
    if stale is not None:
        raise _Refused(401, _UNAUTHORIZED, str(stale))
    if not has_content_type(request, "application/json"):
        raise _Refused(415, "expected application/json", "content type is not JSON")
    try:
        return ix.decode_interaction(body)
    except ix.MalformedJson as exc:
        raise _Refused(400, "malformed JSON", exc.reason) from None
    except ix.MalformedInteraction as exc:
        raise _Refused(400, exc.reason, exc.reason) from None


async def interactions(request: web.Request) -> web.Response:
    """Verify, then answer one Discord interaction (see the module docstring for the order)."""
    state = request.app[DISCORD]
    try:
        interaction = await _accept(request, state)
        note(request, interaction_type=int(interaction.type))
        try:
            action = ix.classify(interaction)
        except ix.MalformedInteraction as exc:
            raise _Refused(400, exc.reason, exc.reason) from None
        if interaction.id is not None and not state.replay.first_sight(interaction.id):
            raise _Refused(401, _UNAUTHORIZED, "replayed interaction id")
    except _Refused as refused:
        note(request, reason=refused.reason)
        return json_error(refused.status, refused.answer)
    note(request, action=type(action).__name__)
    return await _answer(request, state, interaction, action)


# The answers every interaction gets, encoded once (orjson; aiohttp's json_response would run
# the standard library's encoder on every request).
_PONG: Final = orjson.dumps(rs.PONG)
_DEFERRED: Final = orjson.dumps(rs.deferred_message(ephemeral=False))
_DEFERRED_EPHEMERAL: Final = orjson.dumps(rs.deferred_message(ephemeral=True))
_DEFERRED_UPDATE: Final = orjson.dumps(rs.deferred_update())


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


async def _answer(
    request: web.Request, state: DiscordState, interaction: ix.Interaction, action: ix.Action
) -> web.Response:
    match action:
        case ix.Pong():
            return _json(_PONG)
        case ix.Reply(content):
            return _json(orjson.dumps(rs.ephemeral_message(content)))
        case ix.Suggest(source, typed):
            return _json(orjson.dumps(await _suggest(request, interaction, source, typed)))
        case ix.OpenForm(form, prefill):
            return _json(orjson.dumps(await _open_form(request, interaction, form, prefill)))
        case ix.ReviewDraft(draft_id):
            return _json(orjson.dumps(await _review_draft(request, interaction, draft_id)))
        case ix.Publish():
            return await _publish(request, state, interaction, action)


async def _suggest(
    request: web.Request, interaction: ix.Interaction, source: ix.CacheRef | None, typed: str
) -> dict[str, Any]:
    if source is None:
        return rs.autocomplete_result([])
    connection = await _connection(request, interaction.guild_id)
    if connection is None:
        return rs.autocomplete_result([])
    value = await _cached(request, connection.client_key, source)
    candidates = rs.choices_from_cache(source.kind, value)
    return rs.autocomplete_result(rs.filter_choices(candidates, typed))


async def _projects(request: web.Request, client_key: str | None) -> list[rs.Choice]:
    if client_key is None:
        return []
    return rs.choices_from_cache("projects", await _cached(request, client_key, ix.PROJECTS))


async def _open_form(
    request: web.Request, interaction: ix.Interaction, form: str, prefill: Mapping[str, str]
) -> dict[str, Any]:
    if form == "comment":
        key = prefill["issue"][:64]
        return rs.comment_modal(custom_id=ix.COMMENT_FORM_PREFIX + key, issue_key=key)
    if form == "add-to-issue":
        return rs.add_to_issue_modal(
            custom_id=ix.ADD_TO_ISSUE_PREFIX + prefill["message_id"], text=prefill["text"]
        )
    connection = await _connection(request, interaction.guild_id)
    values = dict(prefill)
    default_project = connection.settings.get("default_project") if connection else None
    if "project" not in values and isinstance(default_project, str):
        values["project"] = default_project
    projects = await _projects(request, connection.client_key if connection else None)
    return rs.create_issue_modal(
        custom_id=ix.CREATE_FORM_ID, title="Create a Jira issue", prefill=values, projects=projects
    )


def _draft_prefill(draft: Draft) -> dict[str, str]:
    payload = draft.payload
    picked = {
        "summary": payload.get("summary"),
        "description": payload.get("description"),
        "project": payload.get("project"),
        "type": payload.get("issuetype") or payload.get("type"),
    }
    return {k: v for k, v in picked.items() if isinstance(v, str) and v}


async def _review_draft(
    request: web.Request, interaction: ix.Interaction, draft_id: str
) -> dict[str, Any]:
    user_id = interaction.user_id or ""
    drafts = Drafts(request.app[DATABASE])
    ok, draft = await _bounded(request, "draft", drafts.get(draft_id, discord_user_id=user_id))
    if not ok:
        return rs.ephemeral_message(ix.UNAVAILABLE)
    if draft is None:
        note(request, reason="draft expired or not the user's")
        return rs.ephemeral_message(ix.DRAFT_EXPIRED)
    note(request, tenant=draft.client_key)
    return rs.create_issue_modal(
        custom_id=ix.DRAFT_CREATE_PREFIX + draft.id,
        title="Review and create",
        prefill=_draft_prefill(draft),
        projects=await _projects(request, draft.client_key),
    )


async def _publish(
    request: web.Request, state: DiscordState, interaction: ix.Interaction, action: ix.Publish
) -> web.Response:
    connection = await _connection(request, interaction.guild_id)
    tenant = connection.client_key if connection else None
    envelope = ix.build_envelope(
        interaction,
        action.event_type,
        tenant=tenant,
        now=request.app[CLOCK].now(),
        application_id=request.app[SETTINGS].discord_application_id,
        detail=action.detail,
    )
    note(request, tenant=tenant, event_id=envelope.id, queue=action.queue)
    try:
        await request.app[BUS].publish_envelope(
            action.queue, envelope, timeout=state.settings.gateway_publish_timeout_seconds
        )
    except (TimeoutError, DfjError, OSError) as exc:
        if interaction.id is not None:
            state.replay.forget(interaction.id)
        note(request, reason="publish failed", error=type(exc).__name__)
        return json_error(503, "temporarily unavailable")
    if action.update:
        return _json(_DEFERRED_UPDATE)
    return _json(_DEFERRED_EPHEMERAL if action.ephemeral else _DEFERRED)
