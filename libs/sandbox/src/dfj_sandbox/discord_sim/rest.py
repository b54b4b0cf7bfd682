"""What every REST handler shares: the request it gets, and the bot's access checks.

A handler takes a :class:`RestRequest` that has been authenticated, rate-limited and checked
against the spec, and returns a :class:`~dfj_sandbox.discord_sim.errors.Reply` or raises
:class:`~dfj_sandbox.discord_sim.errors.Refusal`. :func:`bot_channel` is Discord's order of
refusals for a bot acting in a channel: an unknown channel is 404 (10003); a channel in a
guild the bot is not in, or one it cannot view, is 403 Missing Access (50001); a permission it
lacks is 403 Missing Permissions (50013).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dfj_sandbox.discord_sim.errors import (
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    UNKNOWN_CHANNEL,
    Refusal,
    Reply,
    error_reply,
)
from dfj_sandbox.discord_sim.ledger import InteractionLedger, InteractionRecord
from dfj_sandbox.discord_sim.model import Channel
from dfj_sandbox.discord_sim.oauth import Grant
from dfj_sandbox.discord_sim.permissions import VIEW_CHANNEL
from dfj_sandbox.discord_sim.world import World

__all__ = ["Caller", "Handler", "Options", "RestRequest", "bot_channel", "refuse"]

CallerKind = Literal["bot", "bearer", "none"]


@dataclass(frozen=True, kw_only=True)
class Options:
    """Timings of the simulated Discord (seconds on the clock)."""

    nonce_window: float = 300.0
    """How long ``enforce_nonce`` remembers a nonce ("the past few minutes")."""
    token_lifetime: float = 900.0
    """How long an interaction token works for webhooks (15 minutes)."""
    callback_deadline: float = 3.0
    """How long the app has for its initial response."""


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who is calling: the bot, a user through a Bearer token, or nobody (webhooks)."""

    kind: CallerKind
    grant: Grant | None = None

    @property
    def identity(self) -> str:
        """The key rate limits are counted under."""
        if self.kind == "bearer" and self.grant is not None:
            return f"bearer:{self.grant.id}"
        return self.kind


@dataclass(frozen=True, kw_only=True)
class RestRequest:
    """One request, after authentication, rate limits and validation."""

    world: World
    ledger: InteractionLedger
    options: Options
    caller: Caller
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    interaction: InteractionRecord | None = None

    def param(self, name: str) -> str:
        """A path parameter."""
        return self.path_params[name]

    def flag(self, name: str) -> bool:
        """A boolean query parameter (``true``, ``True`` or ``1``, as Discord takes them)."""
        return self.query.get(name, "").lower() in ("true", "1")

    @property
    def json(self) -> Mapping[str, Any]:
        """The body as an object (an empty one when it is not)."""
        return self.body if isinstance(self.body, Mapping) else {}


Handler = Callable[[RestRequest], Reply]


def refuse(status: int, code: int, message: str | None = None) -> Refusal:
    """A refusal with Discord's wording for ``code``."""
    return Refusal(error_reply(status, code, message))


def bot_channel(req: RestRequest, channel_id: str, *needs: int) -> Channel:
    """The channel, if the bot may view it and holds every permission in ``needs``."""
    world = req.world
    channel = world.channels.get(channel_id)
    if channel is None:
        raise refuse(404, UNKNOWN_CHANNEL)
    bot_id = world.application.id
    guild = world.guild_of(channel)
    if guild is not None and guild.member(bot_id) is None:
        raise refuse(403, MISSING_ACCESS)
    bits = world.permissions(bot_id, channel)
    if not bits & VIEW_CHANNEL:
        raise refuse(403, MISSING_ACCESS)
    for need in needs:
        if bits & need != need:
            raise refuse(403, MISSING_PERMISSIONS)
    return channel
