"""A Discord stand-in on loopback: REST, rate limits, OAuth2, and interactions sent for real.

``async with DiscordSimulator(clock=clock) as sim`` serves ``sim.api_url``
(``DFJ_DISCORD_API_URL``) and ``sim.url`` (``DFJ_DISCORD_WEB_URL``, the OAuth2 authorize
page); ``sim.environ()`` gives every ``DFJ_DISCORD_*`` setting the app needs. Tests build the
world with ``sim.add_guild(...)`` and friends, send interactions with
``sim.send_interaction(endpoint, sim.interactions.slash(...))``, and read back
``sim.calls``, ``sim.messages(channel_id)``, ``sim.spec_violations``.

Every request body is checked against the spec (``sim.spec_violations``); a benchmark of our
own speed may turn that off with ``validate_requests=False`` (the check costs tens of
milliseconds of CPU for a message of ten embeds, more than the code under test), which keeps
Discord's documented rules and limits.

The request pipeline is in :mod:`~dfj_sandbox.discord_sim.api`, the sending of interactions
in :mod:`~dfj_sandbox.discord_sim.sender`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from dfj_common.clock import Clock, SystemClock
from dfj_sandbox.discord_signing import DiscordSigner
from dfj_sandbox.discord_sim.api import RestApi
from dfj_sandbox.discord_sim.builders import InteractionBuilder
from dfj_sandbox.discord_sim.guild import Guild
from dfj_sandbox.discord_sim.ids import SnowflakeMinter, bot_token, client_secret
from dfj_sandbox.discord_sim.ledger import InteractionLedger, InteractionRecord
from dfj_sandbox.discord_sim.model import Application, Channel, Message, User
from dfj_sandbox.discord_sim.oauth import OAuthServer
from dfj_sandbox.discord_sim.oauth_web import OAuthEndpoints
from dfj_sandbox.discord_sim.openapi import DiscordSpec, locate_spec
from dfj_sandbox.discord_sim.permissions import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
)
from dfj_sandbox.discord_sim.ratelimit import (
    RateLimiter,
    RateLimits,
    Scope,
)
from dfj_sandbox.discord_sim.records import (
    Call,
    EndpointCheck,
    InteractionResult,
    ProbeResult,
    SpecViolation,
)
from dfj_sandbox.discord_sim.render import message_json
from dfj_sandbox.discord_sim.rest import Options
from dfj_sandbox.discord_sim.sender import InteractionSender
from dfj_sandbox.discord_sim.uploads import Upload
from dfj_sandbox.discord_sim.world import World

__all__ = ["API_PREFIX", "DiscordSimulator"]

API_PREFIX: Final = "/api/v10"
_VIA: Final = {"Via": "1.1 google"}
_JSON: Final = "application/json"
_CONTENT_TYPES: Final = (
    "Expected \"Content-Type\" header to be one of {'application/json',"
    " 'application/x-www-form-urlencoded', 'multipart/form-data'}."
)


class DiscordSimulator:
    """Discord on loopback; ``async with DiscordSimulator() as sim: ...``."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        spec: DiscordSpec | str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        application_id: str | None = None,
        application_name: str = "Discord for Jira",
        signer: DiscordSigner | None = None,
        token: str | None = None,
        secret: str | None = None,
        redirect_uris: Iterable[str] = (),
        limits: RateLimits | None = None,
        options: Options | None = None,
        validate_responses: bool = False,
        validate_requests: bool = True,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self._spec_source = spec
        self._spec = spec if isinstance(spec, DiscordSpec) else None
        self._environ = environ
        self._host = host
        self._port = port
        self.options = options or Options()
        self.ids = SnowflakeMinter(self.clock)
        app_id = application_id or self.ids.next()
        application = Application(
            id=app_id,
            name=application_name,
            signer=signer or DiscordSigner.generate(),
            bot_token=token or bot_token(app_id),
            client_secret=secret or client_secret(),
            redirect_uris=tuple(redirect_uris),
        )
        self.world = World(application=application, clock=self.clock, ids=self.ids)
        self.ledger = InteractionLedger()
        self.limiter = RateLimiter(self.clock, limits)
        self.oauth = OAuthServer(application, self.clock)
        self._rest = RestApi(
            world=self.world,
            ledger=self.ledger,
            limiter=self.limiter,
            oauth=self.oauth,
            options=self.options,
            spec=lambda: self.spec,
            validate_responses=validate_responses,
            validate_requests=validate_requests,
        )
        self._oauth_web = OAuthEndpoints(self.oauth, self.world, self._rest.record_plain)
        self.interactions = InteractionBuilder(self.world)
        self._runner: web.AppRunner | None = None
        self._url = ""
        self.calls: list[Call] = self._rest.calls
        #: Every file attached to an accepted webhook message (see ``uploads``).
        self.uploads: list[Upload] = self._rest.uploads
        """Every request answered, in order."""
        self.spec_violations: list[SpecViolation] = self._rest.spec_violations
        """Every body refused by the spec or a documented rule (interaction answers too)."""
        self.response_violations: list[str] = self._rest.response_violations
        """Answers of ours off the spec (only with ``validate_responses``)."""
        self._sender = InteractionSender(
            world=self.world,
            ledger=self.ledger,
            builder=self.interactions,
            options=self.options,
            spec=lambda: self.spec,
            violations=self.spec_violations,
        )

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def spec(self) -> DiscordSpec:
        """The loaded OpenAPI document (RuntimeError before :meth:`start`)."""
        if self._spec is None:
            raise RuntimeError("the simulator is not started; the OpenAPI spec is not loaded")
        return self._spec

    async def start(self) -> None:
        """Load the spec (FileNotFoundError if it cannot be found) and start listening."""
        if self._spec is None:
            source = self._spec_source
            explicit = source if isinstance(source, str | Path) else None
            environ = os.environ if self._environ is None else self._environ
            self._spec = DiscordSpec.load(locate_spec(explicit, environ))
        app = web.Application(client_max_size=26 * 1024 * 1024)
        for prefix in (API_PREFIX, "/api"):
            app.router.add_post(prefix + "/oauth2/token", self._oauth_web.token)
            app.router.add_post(prefix + "/oauth2/token/revoke", self._oauth_web.revoke)
        app.router.add_get("/oauth2/authorize", self._oauth_web.authorize_page)
        app.router.add_post("/oauth2/authorize", self._oauth_web.authorize_decision)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        await self._sender.start()

    async def close(self) -> None:
        """Stop listening and close the client used for interactions."""
        await self._sender.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the web base (RuntimeError before :meth:`start`)."""
        if not self._url:
            raise RuntimeError("the Discord simulator is not started")
        return self._url

    @property
    def api_url(self) -> str:
        """``{url}/api/v10``: the REST base."""
        return self.url + API_PREFIX

    @property
    def application(self) -> Application:
        """The application: id, key, bot token, OAuth2 client."""
        return self.world.application

    def environ(self) -> dict[str, str]:
        """The app's ``DFJ_DISCORD_*`` settings for this simulator (secrets included)."""
        app = self.application
        return {
            "DFJ_DISCORD_APPLICATION_ID": app.id,
            "DFJ_DISCORD_PUBLIC_KEY": app.public_key,
            "DFJ_DISCORD_BOT_TOKEN": app.bot_token,
            "DFJ_DISCORD_CLIENT_SECRET": app.client_secret,
            "DFJ_DISCORD_API_URL": self.api_url,
            "DFJ_DISCORD_WEB_URL": self.url,
        }

    def allow_redirect(self, uri: str) -> None:
        """Register an OAuth2 redirect URI (as in the Developer Portal)."""
        app = self.application
        if uri not in app.redirect_uris:
            updated = replace(app, redirect_uris=(*app.redirect_uris, uri))
            self.world.application = updated
            self.oauth.application = updated

    def set_limits(self, limits: RateLimits) -> None:
        """Use other rate limits from now on."""
        self.limiter.configure(limits)

    # --- the world ------------------------------------------------------------------------

    def add_guild(
        self,
        name: str = "Acme",
        *,
        guild_id: str | None = None,
        owner_id: str | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int | None = DEFAULT_BOT_PERMISSIONS,
        general: bool = True,
    ) -> Guild:
        """A guild with an owner, the bot (None: not installed) and ``#general``."""
        return self.world.add_guild(
            name,
            guild_id=guild_id,
            owner_id=owner_id,
            everyone_permissions=everyone_permissions,
            bot_permissions=bot_permissions,
            general=general,
        )

    def add_user(
        self,
        user_id: str | None = None,
        *,
        username: str | None = None,
        global_name: str | None = None,
        accepts_dms: bool = True,
    ) -> User:
        """A user outside any guild (add them to one with ``guild.add_member``)."""
        return self.world.add_user(
            user_id, username=username, global_name=global_name, accepts_dms=accepts_dms
        )

    def guild(self, guild_id: str) -> Guild:
        """The guild with this id (KeyError if none)."""
        return self.world.guilds[guild_id]

    def channel(self, channel_id: str) -> Channel:
        """The channel with this id (KeyError if none)."""
        return self.world.channels[channel_id]

    def user(self, user_id: str) -> User:
        """The user with this id (KeyError if none)."""
        return self.world.users[user_id]

    def add_message(
        self,
        channel_id: str,
        author_id: str,
        content: str,
        *,
        embeds: Iterable[Mapping[str, Any]] = (),
    ) -> Message:
        """A message a user posted (for context-menu commands and threads)."""
        if channel_id not in self.world.channels:
            raise KeyError(f"no channel {channel_id}")
        return self.world.add_message(
            Message(
                id=self.ids.next(),
                channel_id=channel_id,
                author_id=author_id,
                content=content,
                embeds=tuple(embeds),
                timestamp=self.clock.now(),
            )
        )

    def sign_in(self, user_id: str | None) -> None:
        """The user the authorize page treats as signed in (None: nobody)."""
        self._oauth_web.signed_in = user_id

    # --- what happened --------------------------------------------------------------------

    def messages(self, channel_id: str, *, ephemeral: bool | None = None) -> list[Message]:
        """A channel's messages in order (``ephemeral`` True/False to keep only those)."""
        found = self.world.messages(channel_id)
        if ephemeral is None:
            return found
        return [m for m in found if m.ephemeral == ephemeral]

    def message(self, message_id: str) -> Message | None:
        """The message with this id, if any."""
        return self.world.message(message_id)

    def message_json(self, message: Message) -> dict[str, Any]:
        """A message as Discord would return it."""
        thread = self.world.channels.get(message.thread_id) if message.thread_id else None
        return message_json(message, author=self.world.users[message.author_id], thread=thread)

    def nonce_counts(self, channel_id: str | None = None) -> Counter[str]:
        """Messages per nonce (see :meth:`World.nonce_counts`)."""
        return self.world.nonce_counts(channel_id)

    def duplicates(self, channel_id: str | None = None) -> dict[str, int]:
        """Nonces that more than one stored message carries."""
        return {k: n for k, n in self.nonce_counts(channel_id).items() if n > 1}

    def commands(self, guild_id: str | None = None) -> list[Mapping[str, Any]]:
        """The stored commands (global, or a guild's)."""
        if guild_id is None:
            return list(self.world.global_commands)
        return list(self.world.guild_commands.get(guild_id, []))

    def interaction(self, interaction_id: str) -> InteractionRecord | None:
        """What became of an interaction the simulator sent."""
        return self.ledger.get(interaction_id)

    def count(
        self, method: str, template: str, *, status: int | None = None, major: str | None = None
    ) -> int:
        """How many recorded calls used ``method template`` (and ``status``, ``major``)."""
        return sum(
            1
            for c in self.calls
            if c.method == method.upper()
            and c.template == template
            and (status is None or c.status == status)
            and (major is None or c.major == major)
        )

    def rate_limited(self, *, scope: str | None = None) -> list[Call]:
        """Every 429 answered (of ``scope``, if given)."""
        return [c for c in self.calls if c.rate_limited and (scope is None or c.scope == scope)]

    @property
    def invalid_requests(self) -> int:
        """401, 403 and non-shared 429 answers so far (Discord bans at 10,000 per 10 min)."""
        return self.limiter.invalid_total

    def reset_records(self) -> None:
        """Forget calls, violations and probes (the world stays)."""
        self.calls.clear()
        self.spec_violations.clear()
        self.response_violations.clear()
        self._sender.probes.clear()

    # --- faults ---------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        status: int = 500,
        count: int = 1,
        *,
        scope: Scope = "shared",
        retry_after: float = 1.0,
        applied: bool = False,
    ) -> None:
        """Answer the next ``count`` requests to ``route`` with ``status``.

        ``route`` is ``"METHOD template"`` or a template for every method. A 429 has
        ``scope`` (``shared`` by default: "not your fault", not counted as invalid) and
        ``retry_after``; a 5xx carries Discord's code-0 body. ``applied=True`` (5xx only)
        does the work first and then fails the answer, as when a response is lost: the
        case ``enforce_nonce`` exists for.
        """
        self._rest.fail_next(
            route, status, count, scope=scope, retry_after=retry_after, applied=applied
        )

    # --- interactions ---------------------------------------------------------------------

    async def send_interaction(
        self, endpoint_url: str, body: Mapping[str, Any], *, timestamp: int | str | None = None
    ) -> InteractionResult:
        """Sign ``body`` and POST it to the app's endpoint, as Discord does (see ``sender``)."""
        return await self._sender.send(endpoint_url, body, timestamp=timestamp)

    async def probe_invalid_signature(self, endpoint_url: str) -> ProbeResult:
        """Discord's routine check: a PING signed by another key must be refused with 401."""
        return await self._sender.probe(endpoint_url)

    async def verify_endpoint(self, endpoint_url: str) -> EndpointCheck:
        """What saving the endpoint in the portal does: a signed PING, then a bad one."""
        return await self._sender.verify_endpoint(endpoint_url)

    @property
    def probes(self) -> list[ProbeResult]:
        """Every invalid-signature probe sent, with its outcome."""
        return self._sender.probes

    def authorize(
        self,
        user_id: str,
        *,
        state: str | None,
        redirect_uri: str,
        code_challenge: str | None = None,
        scope: str = "identify",
        code_challenge_method: str = "S256",
    ) -> str:
        """The redirect URL with ``code`` and ``state``, as if ``user_id`` clicked Authorize."""
        return self.oauth.authorize(
            user_id,
            state=state,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
        )
