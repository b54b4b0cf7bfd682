"""The handler tables of linker: event type → handler, one table per consumed queue.

Each entry is ``async def handler(envelope, context) -> None``; what it raises decides the
settlement (see ``dfj_common.runtime``). A type with no entry is dead-lettered as
``NoHandler``, so a message this version cannot handle is kept for replay, never dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from dfj_common.bus import LINKER, Bus
from dfj_common.clock import Clock
from dfj_common.envelope import Envelope
from dfj_common.runtime import HandlerContext, HandlerTable
from dfj_common.storage import Database, Repositories
from dfj_linker.invocation import DISCORD_COMMAND, DISCORD_COMPONENT, parse_invocation
from dfj_linker.linking import Linking
from dfj_linker.oauth import DiscordOAuth
from dfj_linker.permissions import Permissions
from dfj_linker.privacy import Privacy
from dfj_linker.replies import Replies
from dfj_linker.reporting import ACCOUNTS_REPORTED, Reporter
from dfj_linker.retention import HOUSEKEEPING, PURGE_SITE, SITE_UNINSTALLED, Retention
from dfj_linker.servers import Servers
from dfj_linker.settings import LinkerSettings

__all__ = ["LINK_OAUTH_CALLBACK", "Commands", "build_retention", "build_tables"]

LINK_OAUTH_CALLBACK: Final = "link.oauth_callback"


@dataclass(frozen=True, kw_only=True)
class Commands:
    """Routes the linker's commands and clicks to what answers them."""

    linking: Linking
    servers: Servers
    permissions: Permissions
    privacy: Privacy
    replies: Replies

    async def handle(self, envelope: Envelope, context: HandlerContext) -> None:
        invocation = parse_invocation(envelope)
        match invocation.subcommand:
            case "connect":
                await self.servers.connect(invocation, context)
            case "disconnect":
                await self.servers.disconnect(invocation)
            case "permissions":
                await self.permissions.handle(invocation)
            case "privacy":
                await self.privacy.handle(invocation)
            case "link":
                await self.linking.start(invocation)
            case "unlink":
                await self.linking.unlink(invocation)
            case "me":
                await self.linking.me(invocation)
            case other:
                # Routed here by the gateway, but not built yet: say so rather than leave the
                # user watching "thinking…" until the token expires.
                await self.replies.answer(
                    invocation,
                    {"content": f"`/jira {other}` is not available on this server yet."},
                )


def build_tables(
    database: Database,
    bus: Bus,
    *,
    oauth: DiscordOAuth,
    master_key: Callable[[], Awaitable[bytes]],
    public_url: str,
    clock: Clock,
    app_key: str = "discord-for-jira",
    forge_app_id: str | None = None,
    settings: LinkerSettings | None = None,
) -> Mapping[str, HandlerTable]:
    """The linker's tables, wired to its database, bus and Discord OAuth client."""
    repos = Repositories(database)
    replies = Replies(bus)
    linking = Linking(
        installations=repos.installations,
        connections=repos.guild_connections,
        links=repos.user_links,
        states=repos.oauth_states,
        processed=repos.processed_ids,
        oauth=oauth,
        master_key=master_key,
        replies=replies,
        outcomes=repos.metadata_cache,
        public_url=public_url,
        app_key=app_key,
        forge_app_id=forge_app_id,
        clock=clock,
    )
    servers = Servers(
        installations=repos.installations,
        connections=repos.guild_connections,
        subscriptions=repos.subscriptions,
        states=repos.oauth_states,
        master_key=master_key,
        replies=replies,
        clock=clock,
    )
    permissions = Permissions(
        connections=repos.guild_connections,
        role_rules=repos.role_rules,
        access=repos.feature_access,
        replies=replies,
    )
    privacy = Privacy(
        links=repos.user_links,
        drafts=repos.drafts,
        subscriptions=repos.subscriptions,
        connections=repos.guild_connections,
        replies=replies,
    )
    commands = Commands(
        linking=linking,
        servers=servers,
        permissions=permissions,
        privacy=privacy,
        replies=replies,
    )
    retention = build_retention(database, bus, clock=clock, settings=settings)
    return {
        LINKER: {
            LINK_OAUTH_CALLBACK: linking.oauth_callback,
            DISCORD_COMMAND: commands.handle,
            DISCORD_COMPONENT: commands.handle,
            SITE_UNINSTALLED: retention.site_uninstalled,
            PURGE_SITE: retention.purge_site,
            HOUSEKEEPING: retention.housekeeping,
            ACCOUNTS_REPORTED: retention.reporter.accounts_reported,
        }
    }


def build_retention(
    database: Database, bus: Bus, *, clock: Clock, settings: LinkerSettings | None = None
) -> Retention:
    """The uninstall purge and the housekeeping sweep over ``database``."""
    repos = Repositories(database)
    reporter = Reporter(
        installations=repos.installations,
        links=repos.user_links,
        caches=repos.metadata_cache,
        bus=bus,
        clock=clock,
    )
    return Retention(
        installations=repos.installations,
        drafts=repos.drafts,
        states=repos.oauth_states,
        caches=repos.metadata_cache,
        processed=repos.processed_ids,
        deliveries=repos.delivery_log,
        bus=bus,
        settings=settings or LinkerSettings(),
        clock=clock,
        reporter=reporter,
    )
