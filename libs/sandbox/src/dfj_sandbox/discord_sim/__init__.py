"""A Discord simulator that speaks the real protocol, for tests, the demo and benchmarks.

``async with DiscordSimulator(clock=clock) as sim`` serves Discord's REST API at
``sim.api_url`` and the OAuth2 pages at ``sim.url``; ``sim.add_guild()`` returns a
:class:`Guild` (with ``@everyone``, the bot and ``#general``) to grow with roles, members,
channels and overwrites. The app's real client talks to it with the bot token from
``sim.environ()``; requests are checked against Discord's OpenAPI document (with the docs'
corrections), rate-limited like Discord, and recorded. ``sim.send_interaction`` signs and
posts interactions built by ``sim.interactions`` to the app's endpoint.
"""

from dfj_sandbox.discord_sim.builders import InteractionBuilder
from dfj_sandbox.discord_sim.guild import Guild
from dfj_sandbox.discord_sim.ledger import InteractionLedger, InteractionRecord
from dfj_sandbox.discord_sim.model import (
    ANNOUNCEMENT,
    DM,
    GUILD_TEXT,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    Application,
    Channel,
    Member,
    Message,
    Role,
    User,
)
from dfj_sandbox.discord_sim.oauth import Grant, Revocation, pkce_s256
from dfj_sandbox.discord_sim.openapi import (
    CORRECTIONS,
    SPEC_ENV,
    Correction,
    DiscordSpec,
    FieldError,
    locate_spec,
)
from dfj_sandbox.discord_sim.permissions import Overwrite
from dfj_sandbox.discord_sim.ratelimit import (
    DEFAULT_BUCKETS,
    BucketSpec,
    RateLimits,
    Scope,
    bucket_hash,
)
from dfj_sandbox.discord_sim.records import (
    Call,
    EndpointCheck,
    InteractionResult,
    ProbeResult,
    SpecViolation,
)
from dfj_sandbox.discord_sim.rest import Options
from dfj_sandbox.discord_sim.server import API_PREFIX, DiscordSimulator

__all__ = [
    "ANNOUNCEMENT",
    "API_PREFIX",
    "CORRECTIONS",
    "DEFAULT_BUCKETS",
    "DM",
    "GUILD_TEXT",
    "PRIVATE_THREAD",
    "PUBLIC_THREAD",
    "SPEC_ENV",
    "Application",
    "BucketSpec",
    "Call",
    "Channel",
    "Correction",
    "DiscordSimulator",
    "DiscordSpec",
    "EndpointCheck",
    "FieldError",
    "Grant",
    "Guild",
    "InteractionBuilder",
    "InteractionLedger",
    "InteractionRecord",
    "InteractionResult",
    "Member",
    "Message",
    "Options",
    "Overwrite",
    "ProbeResult",
    "RateLimits",
    "Revocation",
    "Role",
    "Scope",
    "SpecViolation",
    "User",
    "bucket_hash",
    "locate_spec",
    "pkce_s256",
]
