"""Account links: ``/jira link``, finishing the OAuth flow, ``/jira unlink`` and ``/jira me``.

**Starting** (``/jira link``, or the ``link:start`` button the jira-worker shows an unlinked
user): an ephemeral answer with a button to our page inside the Jira site the server is
connected to, carrying a sealed *link request* (site, the Discord user, the server, 10
minutes). The page (gateway) proves the Jira account and mints the OAuth state.

**The callback** (``link.oauth_callback``, published by the gateway once it has checked the
state's signature and expiry). In order, each refusal logged by ids and, where someone can be
told, answered by DM:

1. the event's shape (``MalformedMessage``), its ``redirect_uri`` against ours;
2. the state is used once: ``OAuthStates.consume``. A first delivery of a state already used
   is a replay and is dropped; a redelivery of *this* message (``delivery_count`` > 1, after
   a transient failure below) may go on — the code itself is single-use at Discord, so a
   second exchange of a code that went through is refused there;
3. the site is installed (or enabled);
4. the code is exchanged with the PKCE verifier derived from the state
   (``dfj_common.derived_keys``), ``/users/@me`` says who granted it, and the token is revoked
   at once, whatever happened — no Discord token is ever stored;
5. a state bound to the Discord user who ran ``/jira link`` must be completed by that same
   user: anyone else's grant is refused (and revoked), and the one who asked is told;
6. the link is stored (``UserLinks.link(replace=True)``: re-linking replaces, and a Jira account
   is linked to one Discord user per site), the message is recorded as processed, and the
   user gets a DM.

Transient errors (Discord 5xx, timeouts, 429) propagate, so the runtime retries the message.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote, urlencode

import structlog

from dfj_common.clock import Clock
from dfj_common.derived_keys import pkce_verifier, seal
from dfj_common.envelope import Envelope
from dfj_common.errors import DfjError, MalformedMessage
from dfj_common.runtime import HandlerContext
from dfj_common.storage import (
    GuildConnections,
    Installation,
    InstallationKind,
    Installations,
    InstallationState,
    MetadataCache,
    OAuthStates,
    ProcessedIds,
    UserLink,
    UserLinks,
)
from dfj_linker.invocation import Invocation
from dfj_linker.oauth import DiscordOAuth, OAuthRefused
from dfj_linker.replies import Replies

__all__ = [
    "CALLBACK_CONSUMER",
    "CALLBACK_PATH",
    "LINK_PAGE_KEY",
    "LINK_REQUEST",
    "LinkCallback",
    "Linking",
    "parse_callback",
]

_log: Final = structlog.get_logger("dfj.linker.linking")

CALLBACK_CONSUMER: Final = "linker.oauth-callback"
CALLBACK_PATH: Final = "/oauth/discord/callback"
_LIVE: Final = frozenset({InstallationState.INSTALLED, InstallationState.ENABLED})
_STATE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_CODE: Final = re.compile(r"^[A-Za-z0-9._~-]{1,512}$")
_SNOWFLAKE: Final = re.compile(r"^[0-9]{1,20}$")
_NOT_CONNECTED: Final = (
    "This server is not connected to a Jira site yet. A Jira admin can connect it from the "
    "app's page in Jira, then someone with Manage Server runs `/jira connect`."
)
_AGAIN: Final = "Run `/jira link` in Discord to try again."
_FORGE_PAGE_UNKNOWN: Final = (
    "This Jira site's app is still being set up; run `/jira link` again in a few minutes."
)
#: The gateway's link page accepts these (``dfj_gateway.jira.link_request``).
LINK_REQUEST: Final = "link-request"
LINK_REQUEST_TTL: Final = 600
LINK_PAGE_KEY: Final = "dfj-link"
#: Read by the gateway's link-status endpoint (``dfj_gateway.browser.routes``).
LINK_OUTCOME_KIND: Final = "link-outcome"
LINK_OUTCOME_TTL: Final = timedelta(minutes=30)


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkCallback:
    """What the gateway tells the linker about one OAuth redirect (see ``browser/routes``)."""

    code: str
    state_id: str
    client_key: str
    account_id: str
    discord_user_id: str | None
    nonce: str
    issued_at: int
    expires_at: int
    redirect_uri: str

    def __repr__(self) -> str:  # the code is a credential
        return f"LinkCallback(state_id={self.state_id!r}, client_key={self.client_key!r})"


def parse_callback(envelope: Envelope) -> LinkCallback:
    """The callback event's data; ``MalformedMessage`` (dead-lettered) when it is off."""
    data = envelope.data

    def text(key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value or len(value) > 512:
            raise MalformedMessage(f"link callback lacks {key}", reason="LinkCallbackField")
        if pattern is not None and not pattern.match(value):
            raise MalformedMessage(
                f"link callback has a malformed {key}", reason="LinkCallbackField"
            )
        return value

    def number(key: str) -> int:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedMessage(f"link callback lacks {key}", reason="LinkCallbackField")
        return value

    asker = data.get("discord_user_id")
    if asker is not None and (not isinstance(asker, str) or not _SNOWFLAKE.match(asker)):
        raise MalformedMessage(
            "link callback has a malformed discord_user_id", reason="LinkCallbackField"
        )
    return LinkCallback(
        code=text("code", _CODE),
        state_id=text("state_id", _STATE_ID),
        client_key=text("client_key"),
        account_id=text("account_id"),
        discord_user_id=asker,
        nonce=text("nonce"),
        issued_at=number("issued_at"),
        expires_at=number("expires_at"),
        redirect_uri=text("redirect_uri"),
    )


@dataclass(frozen=True, kw_only=True)
class Linking:
    """The link handlers; built once per process by ``handlers.build_tables``."""

    installations: Installations
    connections: GuildConnections
    links: UserLinks
    states: OAuthStates
    processed: ProcessedIds
    oauth: DiscordOAuth
    master_key: Callable[[], Awaitable[bytes]]
    replies: Replies
    outcomes: MetadataCache
    public_url: str
    app_key: str
    clock: Clock
    forge_app_id: str | None = None  # DFJ_FORGE_APP_ID: where a Forge site's link page lives

    # -- the OAuth callback ------------------------------------------------------------------

    async def oauth_callback(self, envelope: Envelope, context: HandlerContext) -> None:
        callback = parse_callback(envelope)
        expected = self.public_url.rstrip("/") + CALLBACK_PATH
        if callback.redirect_uri != expected:
            raise MalformedMessage(
                "link callback names another redirect URI", reason="LinkCallbackRedirect"
            )
        if await self.processed.is_processed(CALLBACK_CONSUMER, envelope.id):
            return
        log = _log.bind(state_id=callback.state_id, tenant=callback.client_key)
        if callback.expires_at <= self.clock.now():
            log.info("link refused", reason="state expired")
            await self._tell(envelope, callback, f"The link request expired. {_AGAIN}")
            return
        expires = datetime.fromtimestamp(callback.expires_at, UTC)
        fresh = await self.states.consume(callback.state_id, expires_at=expires)
        if not fresh and context.delivery_count <= 1:
            log.warning("link refused", reason="state already used")
            return
        installation = await self.installations.get(callback.client_key)
        if installation is None or installation.state not in _LIVE:
            log.info("link refused", reason="site not installed")
            await self._tell(envelope, callback, "That Jira site no longer has the app installed.")
            return
        verifier = pkce_verifier(await self.master_key(), callback.state_id, callback.nonce)
        try:
            token = await self.oauth.exchange(
                code=callback.code, redirect_uri=expected, code_verifier=verifier
            )
        except OAuthRefused as refused:
            log.info("link refused", reason="code exchange refused", error=refused.error)
            await self._tell(envelope, callback, f"Discord did not accept the link. {_AGAIN}")
            return
        try:
            identity = await self.oauth.identify(token)
        finally:
            await self._revoke(token, log)
        if callback.discord_user_id is not None and identity.user_id != callback.discord_user_id:
            log.warning("link refused", reason="completed by another Discord user")
            await self._tell(
                envelope,
                callback,
                "Someone signed in to Discord as another account to finish your link request, "
                f"so nothing was linked. {_AGAIN}",
            )
            return
        link = await self.links.link(
            callback.client_key,
            account_id=callback.account_id,
            discord_user_id=identity.user_id,
            replace=True,
        )
        await self.processed.mark_processed(CALLBACK_CONSUMER, envelope.id)
        log.info("linked", discord_user_id=link.discord_user_id, account_id=link.account_id)
        site = installation.display_url or installation.base_url or "your Jira site"
        await self.replies.direct(
            event_id=envelope.id,
            client_key=callback.client_key,
            user_id=identity.user_id,
            message={
                "content": f"Your Discord account is now linked to your Jira account on {site}. "
                "Commands you run act as you in Jira. `/jira unlink` undoes it."
            },
        )

    async def _revoke(self, token: str, log: Any) -> None:
        try:
            await self.oauth.revoke(token)
        except DfjError as exc:  # the token still dies on its own; the link must not hang on it
            log.warning("token revocation failed", error=type(exc).__name__)

    async def _tell(self, envelope: Envelope, callback: LinkCallback, text: str) -> None:
        """Say why the link was refused: on the page that polls, and by DM to who asked."""
        with contextlib.suppress(DfjError):  # the site may be gone; the DM still goes
            await self.outcomes.put(
                callback.client_key,
                LINK_OUTCOME_KIND,
                callback.state_id,
                {"status": "refused", "message": f"The link was not completed. {text}"},
                ttl=LINK_OUTCOME_TTL,
            )
        if callback.discord_user_id is None:
            return  # nobody to write to: the flow began in Jira, and the page says it failed
        await self.replies.direct(
            event_id=envelope.id,
            client_key=callback.client_key,
            user_id=callback.discord_user_id,
            message={"content": f"Your Jira link was not completed. {text}"},
        )

    # -- /jira link ------------------------------------------------------------------------------

    def _link_page(self, installation: Installation, token: str) -> str | None:
        """Our link page inside the site's Jira: Connect's general page, or Forge's global page.

        A Forge ``jira:globalPage`` lives at ``{site}/jira/apps/{appId}/{environmentId}`` (ids
        without their ARI prefix); None when this Forge site's environment is not known yet.
        """
        site = (installation.base_url or "").rstrip("/")
        if installation.kind is InstallationKind.FORGE:
            app = (self.forge_app_id or "").rpartition("/")[2]
            environment = (installation.environment_id or "").rpartition("/")[2]
            if not app or not environment:
                return None
            return (
                f"{site}/jira/apps/{quote(app, safe='')}/{quote(environment, safe='')}"
                f"?{urlencode({'request': token})}"
            )
        return (
            f"{site}/plugins/servlet/ac/{quote(self.app_key)}/"
            f"{LINK_PAGE_KEY}?{urlencode({'ac.request': token})}"
        )

    async def start(self, invocation: Invocation) -> None:
        """Answer with the button to our page inside Jira, carrying a sealed link request."""
        if invocation.guild_id is None:
            await self.replies.answer(
                invocation,
                {"content": "Run `/jira link` in a server that is connected to your Jira site."},
            )
            return
        connection = await self.connections.get(invocation.guild_id)
        installation = await self.installations.get(connection.client_key) if connection else None
        if connection is None or installation is None or not installation.base_url:
            await self.replies.answer(invocation, {"content": _NOT_CONNECTED})
            return
        now = int(self.clock.now())
        token = seal(
            await self.master_key(),
            LINK_REQUEST,
            {
                "ck": connection.client_key,
                "du": invocation.user_id,
                "gid": invocation.guild_id,
                "iat": now,
                "exp": now + LINK_REQUEST_TTL,
            },
        )
        page = self._link_page(installation, token)
        if page is None:
            await self.replies.answer(invocation, {"content": _FORGE_PAGE_UNKNOWN})
            return
        current = await self.links.get_by_discord_user(connection.client_key, invocation.user_id)
        text = (
            "Link your Discord account to your Jira account: the button opens Jira, which "
            "knows who you are there, then Discord asks you to authorize. It expires in 10 "
            "minutes."
        )
        if current is not None:
            text = (
                f"You are linked to Jira account `{current.account_id}` on this site; linking "
                "again replaces it. " + text
            )
        button = {"type": 2, "style": 5, "label": "Link in Jira", "url": page}
        await self.replies.answer(
            invocation,
            {"content": text, "components": [{"type": 1, "components": [button]}]},
            tenant=connection.client_key,
        )

    # -- /jira unlink, /jira me ------------------------------------------------------------------

    async def unlink(self, invocation: Invocation) -> None:
        if invocation.guild_id is None:
            await self.replies.answer(
                invocation,
                {
                    "content": "Run `/jira unlink` in the server whose Jira site you want to "
                    "unlink from, or `/jira privacy` to remove everything at once."
                },
            )
            return
        connection = await self.connections.get(invocation.guild_id)
        if connection is None:
            await self.replies.answer(invocation, {"content": _NOT_CONNECTED})
            return
        removed = await self.links.unlink(connection.client_key, invocation.user_id)
        if removed:
            _log.info("unlinked", tenant=connection.client_key, discord_user_id=invocation.user_id)
        text = (
            "Unlinked: your Discord account is no longer linked to a Jira account on this site."
            if removed
            else "You are not linked to a Jira account on this site."
        )
        await self.replies.answer(invocation, {"content": text}, tenant=connection.client_key)

    async def me(self, invocation: Invocation) -> None:
        if invocation.guild_id is not None:
            connection = await self.connections.get(invocation.guild_id)
            if connection is None:
                await self.replies.answer(invocation, {"content": _NOT_CONNECTED})
                return
            link = await self.links.get_by_discord_user(connection.client_key, invocation.user_id)
            links = [link] if link is not None else []
            tenant: str | None = connection.client_key
        else:
            links = await self.links.list_for_discord_user(invocation.user_id)
            tenant = None
        if not links:
            text = "You are not linked to a Jira account here. `/jira link` links you."
        else:
            lines = [await self._describe(link) for link in links]
            text = "\n".join(lines)
        await self.replies.answer(invocation, {"content": text}, tenant=tenant)

    async def _describe(self, link: UserLink) -> str:
        installation = await self.installations.get(link.client_key)
        site = (installation.display_url or installation.base_url) if installation else None
        since = int(link.linked_at.timestamp())
        return (
            f"Linked to Jira account `{link.account_id}` on {site or link.client_key} "
            f"since <t:{since}:D>."
        )
