"""The repository contract: on SQLite always, on SQL Server when DFJ_TEST_MSSQL_URL is set."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from dfj_common.clock import ManualClock
from dfj_common.storage import (
    AccessMode,
    AlreadyExists,
    InstallationKind,
    InstallationState,
    InvalidValue,
    Repositories,
    UnknownReference,
)

SITE = "0c1a3f4e-6d2b-4c3a-9d8e-1f2a3b4c5d6e"
OTHER_SITE = "7f8e9d0c-1b2a-4c3d-8e9f-0a1b2c3d4e5f"
GUILD = "1100000000000000001"
OTHER_GUILD = "1100000000000000002"
CHANNEL = "1200000000000000001"
USER = "1300000000000000001"
OTHER_USER = "1300000000000000002"
ACCOUNT = "712020:2c5a8f9e-0b1d-4e6f-8a7b-9c0d1e2f3a4b"
OTHER_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"
FORGE_ID = "ari:cloud:ecosystem::installation/3f2e1d0c-b9a8-4765-8f4e-3d2c1b0a9f8e"


def at(clock: ManualClock, offset: float = 0.0) -> datetime:
    """The clock's time (plus ``offset`` seconds) as an aware datetime."""
    return datetime.fromtimestamp(clock.now() + offset, UTC)


async def install(repos: Repositories, client_key: str = SITE) -> None:
    """A Connect installation."""
    await repos.installations.save_connect(
        client_key, base_url="https://example.atlassian.net", shared_secret_ciphertext=b"\x01ct"
    )


async def connected(repos: Repositories, guild_id: str = GUILD, client_key: str = SITE) -> None:
    """An installed site with a guild connected to it."""
    if await repos.installations.get(client_key) is None:
        await install(repos, client_key)
    await repos.guild_connections.connect(guild_id, client_key, connected_by=USER)


# --- installations -------------------------------------------------------------------------


async def test_connect_installation_round_trips(repos: Repositories, clock: ManualClock) -> None:
    """Every Connect field, the ciphertext bytes and UTC timestamps come back as stored."""
    clock.advance(0.123456)
    saved = await repos.installations.save_connect(
        SITE,
        base_url="https://example.atlassian.net",
        display_url="https://jira.example.com",
        shared_secret_ciphertext=b"\x00\xffnonce|ciphertext",
        app_key="discord-for-jira",
        oauth_client_id="oauth-client-1",
    )
    got = await repos.installations.get(SITE)
    assert got == saved
    assert got.kind is InstallationKind.CONNECT
    assert got.state is InstallationState.INSTALLED
    assert got.shared_secret_ciphertext == b"\x00\xffnonce|ciphertext"
    assert got.display_url == "https://jira.example.com"
    assert got.created_at == got.updated_at == at(clock)
    assert got.created_at.tzinfo is UTC
    assert "ciphertext" not in repr(got).replace("_ciphertext", "")
    assert "\\x00\\xff" not in repr(got)


async def test_reinstall_updates_fields_but_keeps_created_at(
    repos: Repositories, clock: ManualClock
) -> None:
    """A second installed callback replaces the secret and state, keeping the creation time."""
    first = await repos.installations.save_connect(
        SITE, base_url="https://a.atlassian.net", shared_secret_ciphertext=b"old"
    )
    await repos.installations.set_state(SITE, InstallationState.UNINSTALLED)
    clock.advance(60)
    again = await repos.installations.save_connect(
        SITE, base_url="https://b.atlassian.net", shared_secret_ciphertext=b"new"
    )
    assert again.created_at == first.created_at
    assert again.updated_at == at(clock)
    assert again.state is InstallationState.INSTALLED
    assert (again.base_url, again.shared_secret_ciphertext) == ("https://b.atlassian.net", b"new")


async def test_forge_installation_is_keyed_by_installation_id(repos: Repositories) -> None:
    """A new Forge install uses its installation id as tenant key and is found by it."""
    expiry = datetime(2030, 1, 1, 12, tzinfo=UTC)
    saved = await repos.installations.save_forge(
        FORGE_ID,
        cloud_id="a436116f-02ce-4520-8fbb-7301462a1674",
        api_base_url="https://api.atlassian.com/ex/jira/a436116f-02ce-4520-8fbb-7301462a1674",
        system_token_ciphertext=b"tok",
        system_token_expires_at=expiry,
    )
    assert saved.client_key == FORGE_ID
    assert saved.kind is InstallationKind.FORGE
    assert await repos.installations.get_by_installation_id(FORGE_ID) == saved
    assert saved.system_token_expires_at == expiry
    assert await repos.installations.update_system_token(
        FORGE_ID, ciphertext=b"tok2", expires_at=expiry + timedelta(hours=1)
    )
    got = await repos.installations.get(FORGE_ID)
    assert got is not None
    assert got.system_token_ciphertext == b"tok2"
    assert got.system_token_expires_at == expiry + timedelta(hours=1)


async def test_forge_event_for_a_migrated_connect_install_updates_that_row(
    repos: Repositories,
) -> None:
    """A Connect row that reported its installation id becomes Forge and keeps its data."""
    await repos.installations.save_connect(
        SITE,
        base_url="https://example.atlassian.net",
        shared_secret_ciphertext=b"secret",
        installation_id=FORGE_ID,
    )
    await connected(repos)
    migrated = await repos.installations.save_forge(FORGE_ID, cloud_id="cloud-1")
    assert migrated.client_key == SITE
    assert migrated.kind is InstallationKind.FORGE
    assert migrated.shared_secret_ciphertext == b"secret"
    assert await repos.installations.client_keys() == [SITE]
    assert await repos.guild_connections.get(GUILD) is not None


async def test_an_installation_id_belongs_to_one_site(repos: Repositories) -> None:
    """Two tenant keys cannot claim the same Forge installation id."""
    await repos.installations.save_forge(FORGE_ID)
    with pytest.raises(AlreadyExists):
        await repos.installations.save_forge(FORGE_ID, client_key=OTHER_SITE)


async def test_many_installations_may_lack_an_installation_id(repos: Repositories) -> None:
    """The optional installation id is unique only where present (NULLs do not collide)."""
    await install(repos, SITE)
    await install(repos, OTHER_SITE)
    assert await repos.installations.client_keys() == sorted([SITE, OTHER_SITE])


async def test_state_changes_and_filtered_listing(repos: Repositories) -> None:
    """set_state reports whether the site exists; client_keys filters by state."""
    await install(repos, SITE)
    await install(repos, OTHER_SITE)
    assert await repos.installations.set_state(OTHER_SITE, InstallationState.DISABLED)
    assert not await repos.installations.set_state("missing", InstallationState.DISABLED)
    assert await repos.installations.client_keys(InstallationState.DISABLED) == [OTHER_SITE]
    assert await repos.installations.client_keys(InstallationState.INSTALLED) == [SITE]


async def test_deleting_an_installation_purges_the_site(
    repos: Repositories,
) -> None:
    """Uninstall purge: links, guilds, subscriptions, rules, drafts and cache go in one delete."""
    await connected(repos)
    await install(repos, OTHER_SITE)
    await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=USER)
    await repos.user_links.link(OTHER_SITE, account_id=ACCOUNT, discord_user_id=USER)
    sub = await repos.subscriptions.add(
        guild_id=GUILD,
        channel_id=CHANNEL,
        client_key=SITE,
        project_key="ABC",
        event_types=["jira:issue_created"],
        created_by=USER,
    )
    await repos.role_rules.put(GUILD, "create", ["1"])
    await repos.feature_access.put(GUILD, "create", AccessMode.ALL)
    draft = await repos.drafts.put(
        client_key=SITE, discord_user_id=USER, payload={}, ttl=timedelta(minutes=5)
    )
    await repos.metadata_cache.put(SITE, "projects", "all", [1], ttl=timedelta(hours=1))

    assert await repos.installations.delete(SITE)
    assert not await repos.installations.delete(SITE)
    assert await repos.installations.get(SITE) is None
    assert await repos.guild_connections.get(GUILD) is None
    assert await repos.subscriptions.get(sub.id) is None
    assert await repos.role_rules.for_guild(GUILD) == {}
    assert await repos.feature_access.for_guild(GUILD) == {}
    assert await repos.drafts.get(draft.id, discord_user_id=USER) is None
    assert await repos.metadata_cache.get(SITE, "projects", "all") is None
    assert [link.client_key for link in await repos.user_links.list_for_discord_user(USER)] == [
        OTHER_SITE
    ]


async def test_values_the_schema_cannot_hold_are_refused_the_same_everywhere(
    repos: Repositories,
) -> None:
    """Too-long or non-ASCII ids and naive datetimes fail with InvalidValue on every backend."""
    with pytest.raises(InvalidValue, match=r"installations\.client_key is longer than 255"):
        await install(repos, "k" * 256)
    with pytest.raises(InvalidValue, match="ASCII"):
        await install(repos, "clé")
    await install(repos)
    with pytest.raises(InvalidValue, match="aware"):
        await repos.installations.update_system_token(
            SITE,
            ciphertext=b"x",
            expires_at=datetime(2030, 1, 1),
        )
    assert await repos.installations.client_keys() == [SITE]


# --- guild connections ---------------------------------------------------------------------


async def test_a_guild_needs_an_installed_site(repos: Repositories) -> None:
    """Connecting to a site that is not installed is an UnknownReference."""
    with pytest.raises(UnknownReference):
        await repos.guild_connections.connect(GUILD, SITE, connected_by=USER)


async def test_guild_connection_round_trips_with_unicode_settings(
    repos: Repositories, clock: ManualClock
) -> None:
    """Settings JSON keeps non-ASCII text and nesting."""
    await install(repos)
    settings = {"locale": "ja", "footer": "課題 ✓", "digest": {"hour": 9, "on": True}}
    saved = await repos.guild_connections.connect(GUILD, SITE, connected_by=USER, settings=settings)
    assert saved.settings == settings
    assert saved.connected_at == at(clock)
    assert await repos.guild_connections.get(GUILD) == saved
    assert await repos.guild_connections.update_settings(GUILD, {"locale": "fr"})
    got = await repos.guild_connections.get(GUILD)
    assert got is not None
    assert got.settings == {"locale": "fr"}
    assert not await repos.guild_connections.update_settings(OTHER_GUILD, {})


async def test_a_guild_is_connected_to_one_site(repos: Repositories, clock: ManualClock) -> None:
    """Reconnecting to the same site refreshes who/when; another site needs a disconnect."""
    await install(repos, SITE)
    await install(repos, OTHER_SITE)
    await repos.guild_connections.connect(GUILD, SITE, connected_by=USER, settings={"a": 1})
    clock.advance(5)
    again = await repos.guild_connections.connect(GUILD, SITE, connected_by=OTHER_USER)
    assert (again.connected_by, again.connected_at, again.settings) == (
        OTHER_USER,
        at(clock),
        {"a": 1},
    )
    with pytest.raises(AlreadyExists, match="another site"):
        await repos.guild_connections.connect(GUILD, OTHER_SITE, connected_by=USER)
    await repos.guild_connections.connect(OTHER_GUILD, SITE, connected_by=USER)
    assert [g.guild_id for g in await repos.guild_connections.list_for_site(SITE)] == [
        GUILD,
        OTHER_GUILD,
    ]


async def test_disconnect_removes_subscriptions_and_rules(repos: Repositories) -> None:
    """A guild's subscriptions, role rules and access modes go when it is disconnected."""
    await connected(repos)
    await repos.subscriptions.add(
        guild_id=GUILD,
        channel_id=CHANNEL,
        client_key=SITE,
        project_key="ABC",
        event_types=["e"],
        created_by=USER,
    )
    await repos.role_rules.put(GUILD, "create", ["1"])
    await repos.feature_access.put(GUILD, "search", AccessMode.LINKED)
    assert await repos.guild_connections.disconnect(GUILD)
    assert not await repos.guild_connections.disconnect(GUILD)
    assert await repos.subscriptions.list_for_guild(GUILD) == []
    assert await repos.role_rules.get(GUILD, "create") is None
    assert await repos.feature_access.get(GUILD, "search") is None


# --- user links ----------------------------------------------------------------------------


async def test_link_is_found_both_ways_and_is_idempotent(
    repos: Repositories, clock: ManualClock
) -> None:
    """A link is found by Discord user and by Jira account; relinking the same pair is a no-op."""
    await install(repos)
    link = await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=USER)
    assert link.linked_at == at(clock)
    clock.advance(10)
    assert await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=USER) == link
    assert await repos.user_links.get_by_discord_user(SITE, USER) == link
    assert await repos.user_links.get_by_account(SITE, ACCOUNT) == link
    assert await repos.user_links.get_by_discord_user(OTHER_SITE, USER) is None


async def test_each_side_links_once_per_site(repos: Repositories) -> None:
    """Linking a linked user or account elsewhere is refused unless replace=True."""
    await install(repos)
    await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=USER)
    with pytest.raises(AlreadyExists, match="Discord user"):
        await repos.user_links.link(SITE, account_id=OTHER_ACCOUNT, discord_user_id=USER)
    with pytest.raises(AlreadyExists, match="Jira account"):
        await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=OTHER_USER)
    moved = await repos.user_links.link(
        SITE, account_id=ACCOUNT, discord_user_id=OTHER_USER, replace=True
    )
    assert await repos.user_links.list_for_site(SITE) == [moved]
    assert await repos.user_links.get_by_discord_user(SITE, USER) is None


async def test_links_for_export_and_erasure_span_sites(repos: Repositories) -> None:
    """Per-user listing and erasure cover every site; unlink removes one."""
    await install(repos, SITE)
    await install(repos, OTHER_SITE)
    await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=USER)
    await repos.user_links.link(OTHER_SITE, account_id=ACCOUNT, discord_user_id=USER)
    await repos.user_links.link(OTHER_SITE, account_id=OTHER_ACCOUNT, discord_user_id=OTHER_USER)
    assert len(await repos.user_links.list_for_discord_user(USER)) == 2
    assert len(await repos.user_links.list_for_account(ACCOUNT)) == 2
    assert await repos.user_links.unlink(SITE, USER)
    assert not await repos.user_links.unlink(SITE, USER)
    assert await repos.user_links.erase_account(ACCOUNT) == 1
    assert await repos.user_links.erase_discord_user(OTHER_USER) == 1
    assert await repos.user_links.list_for_site(OTHER_SITE) == []


async def test_links_need_an_installed_site(repos: Repositories) -> None:
    """A link to an unknown site is an UnknownReference."""
    with pytest.raises(UnknownReference):
        await repos.user_links.link(SITE, account_id=ACCOUNT, discord_user_id=USER)


# --- subscriptions -------------------------------------------------------------------------


async def test_subscriptions_round_trip_and_are_listed(
    repos: Repositories, clock: ManualClock
) -> None:
    """Lists, JQL with non-ASCII text and the delivery mode are kept; lookups find them."""
    await connected(repos)
    first = await repos.subscriptions.add(
        guild_id=GUILD,
        channel_id=CHANNEL,
        client_key=SITE,
        project_key="ABC",
        event_types=["jira:issue_created", "jira:issue_updated"],
        issue_types=["10001"],
        jql='summary ~ "café" AND priority = Highest',
        delivery_mode="thread",
        created_by=USER,
    )
    clock.advance(1)
    second = await repos.subscriptions.add(
        guild_id=GUILD,
        channel_id="1200000000000000009",
        client_key=SITE,
        project_key="XYZ",
        event_types=["comment_created"],
        created_by=USER,
    )
    assert await repos.subscriptions.get(first.id) == first
    assert first.event_types == ("jira:issue_created", "jira:issue_updated")
    assert first.jql == 'summary ~ "café" AND priority = Highest'
    assert second.issue_types == () and second.jql is None and second.delivery_mode == "message"
    assert await repos.subscriptions.list_for_guild(GUILD) == [first, second]
    assert await repos.subscriptions.list_for_channel(GUILD, CHANNEL) == [first]
    assert await repos.subscriptions.list_for_project(SITE, "XYZ") == [second]
    assert await repos.subscriptions.list_for_project(OTHER_SITE, "XYZ") == []


async def test_a_subscription_must_match_its_guilds_site(repos: Repositories) -> None:
    """A subscription for a site the guild is not connected to is an UnknownReference."""
    await connected(repos)
    await install(repos, OTHER_SITE)
    with pytest.raises(UnknownReference):
        await repos.subscriptions.add(
            guild_id=GUILD,
            channel_id=CHANNEL,
            client_key=OTHER_SITE,
            project_key="ABC",
            event_types=["e"],
            created_by=USER,
        )


async def test_subscriptions_are_removed_only_by_their_guild(repos: Repositories) -> None:
    """remove() is scoped to the guild; remove_for_channel() clears a deleted channel."""
    await connected(repos)
    sub = await repos.subscriptions.add(
        guild_id=GUILD,
        channel_id=CHANNEL,
        client_key=SITE,
        project_key="ABC",
        event_types=["e"],
        created_by=USER,
    )
    assert not await repos.subscriptions.remove(sub.id, guild_id=OTHER_GUILD)
    assert await repos.subscriptions.remove(sub.id, guild_id=GUILD)
    for project in ("A", "B"):
        await repos.subscriptions.add(
            guild_id=GUILD,
            channel_id=CHANNEL,
            client_key=SITE,
            project_key=project,
            event_types=["e"],
            created_by=USER,
        )
    assert await repos.subscriptions.remove_for_channel(GUILD, CHANNEL) == 2
    assert await repos.subscriptions.list_for_guild(GUILD) == []


async def test_event_types_must_be_a_list_of_names(repos: Repositories) -> None:
    """A bare string would be stored as characters: refused."""
    await connected(repos)
    with pytest.raises(InvalidValue, match="event_types"):
        await repos.subscriptions.add(
            guild_id=GUILD,
            channel_id=CHANNEL,
            client_key=SITE,
            project_key="ABC",
            event_types="jira:issue_created",
            created_by=USER,
        )


# --- role rules and feature access ---------------------------------------------------------


async def test_role_rules_are_set_replaced_listed_and_removed(repos: Repositories) -> None:
    """put() replaces a capability's roles; for_guild() lists every capability."""
    await connected(repos)
    assert await repos.role_rules.get(GUILD, "create") is None
    await repos.role_rules.put(GUILD, "create", ["1400000000000000001"])
    await repos.role_rules.put(GUILD, "create", ["1400000000000000002", "1400000000000000003"])
    await repos.role_rules.put(GUILD, "transition", [])
    assert await repos.role_rules.get(GUILD, "create") == (
        "1400000000000000002",
        "1400000000000000003",
    )
    assert await repos.role_rules.for_guild(GUILD) == {
        "create": ("1400000000000000002", "1400000000000000003"),
        "transition": (),
    }
    assert await repos.role_rules.remove(GUILD, "transition")
    assert not await repos.role_rules.remove(GUILD, "transition")
    with pytest.raises(UnknownReference):
        await repos.role_rules.put(OTHER_GUILD, "create", ["1"])


async def test_feature_access_modes(repos: Repositories) -> None:
    """Each feature has one mode, linked or all; unknown guilds are refused."""
    await connected(repos)
    await repos.feature_access.put(GUILD, "search", AccessMode.ALL)
    await repos.feature_access.put(GUILD, "search", AccessMode.LINKED)
    await repos.feature_access.put(GUILD, "view", AccessMode.ALL)
    assert await repos.feature_access.get(GUILD, "search") is AccessMode.LINKED
    assert await repos.feature_access.for_guild(GUILD) == {
        "search": AccessMode.LINKED,
        "view": AccessMode.ALL,
    }
    assert await repos.feature_access.remove(GUILD, "view")
    assert await repos.feature_access.get(GUILD, "view") is None
    with pytest.raises(UnknownReference):
        await repos.feature_access.put(OTHER_GUILD, "view", AccessMode.ALL)


# --- processed ids -------------------------------------------------------------------------


async def test_mark_processed_is_true_once_per_consumer(repos: Repositories) -> None:
    """The first mark wins; the same id under another consumer is separate; forget undoes."""
    assert await repos.processed_ids.mark_processed("jira-worker", "msg-1")
    assert not await repos.processed_ids.mark_processed("jira-worker", "msg-1")
    assert await repos.processed_ids.mark_processed("linker", "msg-1")
    assert await repos.processed_ids.is_processed("jira-worker", "msg-1")
    assert await repos.processed_ids.forget("jira-worker", "msg-1")
    assert not await repos.processed_ids.is_processed("jira-worker", "msg-1")
    assert await repos.processed_ids.mark_processed("jira-worker", "msg-1")


async def test_concurrent_marks_have_exactly_one_winner(repos: Repositories) -> None:
    """Racing redeliveries on several threads: one True, the rest False."""
    results = await asyncio.gather(
        *(repos.processed_ids.mark_processed("c", "racy") for _ in range(12))
    )
    assert sorted(results) == [False] * 11 + [True]


async def test_old_processed_ids_are_purged(repos: Repositories, clock: ManualClock) -> None:
    """purge_older_than drops only records older than the age."""
    await repos.processed_ids.mark_processed("c", "old")
    clock.advance(3600)
    await repos.processed_ids.mark_processed("c", "new")
    clock.advance(1)
    assert await repos.processed_ids.purge_older_than(timedelta(minutes=30)) == 1
    assert not await repos.processed_ids.is_processed("c", "old")
    assert await repos.processed_ids.is_processed("c", "new")


# --- drafts --------------------------------------------------------------------------------


async def test_a_draft_is_taken_once_by_its_owner(repos: Repositories) -> None:
    """get() leaves it, take() removes it; other users see nothing and take nothing."""
    await install(repos)
    payload = {"summary": "Crash when saving", "text": "message text 🐛", "fields": {"a": [1]}}
    draft = await repos.drafts.put(
        client_key=SITE, discord_user_id=USER, payload=payload, ttl=timedelta(minutes=10)
    )
    assert len(draft.id) >= 20
    assert await repos.drafts.get(draft.id, discord_user_id=OTHER_USER) is None
    assert await repos.drafts.take(draft.id, discord_user_id=OTHER_USER) is None
    got = await repos.drafts.get(draft.id, discord_user_id=USER)
    assert got is not None and got.payload == payload
    taken = await repos.drafts.take(draft.id, discord_user_id=USER)
    assert taken == draft
    assert await repos.drafts.take(draft.id, discord_user_id=USER) is None
    assert "message text" not in repr(taken)


async def test_expired_drafts_are_invisible_and_purged(
    repos: Repositories, clock: ManualClock
) -> None:
    """At expiry a draft can no longer be read or taken, and purge_expired deletes it."""
    await install(repos)
    short = await repos.drafts.put(
        client_key=SITE, discord_user_id=USER, payload={"n": 1}, ttl=timedelta(minutes=1)
    )
    long = await repos.drafts.put(
        client_key=SITE, discord_user_id=USER, payload={"n": 2}, ttl=timedelta(minutes=15)
    )
    clock.advance(59.999)
    assert await repos.drafts.get(short.id, discord_user_id=USER) is not None
    clock.advance(0.001)
    assert await repos.drafts.get(short.id, discord_user_id=USER) is None
    assert await repos.drafts.take(short.id, discord_user_id=USER) is None
    assert await repos.drafts.purge_expired() == 1
    assert await repos.drafts.get(long.id, discord_user_id=USER) is not None
    assert await repos.drafts.erase_discord_user(USER) == 1


async def test_concurrent_takes_have_one_winner(repos: Repositories) -> None:
    """Two submits of the same modal: only one gets the draft."""
    await install(repos)
    draft = await repos.drafts.put(
        client_key=SITE, discord_user_id=USER, payload={}, ttl=timedelta(minutes=5)
    )
    results = await asyncio.gather(
        *(repos.drafts.take(draft.id, discord_user_id=USER) for _ in range(6))
    )
    assert [r for r in results if r is not None] == [draft]


async def test_drafts_need_a_positive_ttl_and_a_known_site(repos: Repositories) -> None:
    """A zero TTL is refused; a draft for an unknown site is an UnknownReference."""
    with pytest.raises(InvalidValue, match="time to live"):
        await repos.drafts.put(client_key=SITE, discord_user_id=USER, payload={}, ttl=timedelta(0))
    with pytest.raises(UnknownReference):
        await repos.drafts.put(
            client_key=SITE, discord_user_id=USER, payload={}, ttl=timedelta(minutes=1)
        )


# --- OAuth states --------------------------------------------------------------------------


async def test_a_state_is_consumed_once(repos: Repositories, clock: ManualClock) -> None:
    """The first consume of a state succeeds; a replay fails."""
    expires = at(clock, 600)
    assert await repos.oauth_states.consume("nonce-1", expires_at=expires)
    assert not await repos.oauth_states.consume("nonce-1", expires_at=expires)
    assert await repos.oauth_states.consume("nonce-2", expires_at=expires)


async def test_an_expired_state_is_never_consumed(repos: Repositories, clock: ManualClock) -> None:
    """At or after its expiry a state is refused, even on first use."""
    assert not await repos.oauth_states.consume("late", expires_at=at(clock))
    assert not await repos.oauth_states.consume("later", expires_at=at(clock, -1))


async def test_concurrent_consumes_have_one_winner(repos: Repositories, clock: ManualClock) -> None:
    """A replayed callback racing the original loses."""
    results = await asyncio.gather(
        *(repos.oauth_states.consume("race", expires_at=at(clock, 60)) for _ in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]


async def test_used_states_are_purged_after_expiry(repos: Repositories, clock: ManualClock) -> None:
    """purge_expired forgets only states past their expiry."""
    await repos.oauth_states.consume("a", expires_at=at(clock, 60))
    await repos.oauth_states.consume("b", expires_at=at(clock, 600))
    clock.advance(61)
    assert await repos.oauth_states.purge_expired() == 1
    assert not await repos.oauth_states.consume("b", expires_at=at(clock, 600))


# --- metadata cache ------------------------------------------------------------------------


async def test_cache_entries_expire(repos: Repositories, clock: ManualClock) -> None:
    """A value is served until its expiry and not after; put() replaces it."""
    await install(repos)
    projects = [{"id": "10000", "key": "ABC"}, {"id": "10001", "key": "XYZ"}]
    put = await repos.metadata_cache.put(
        SITE, "projects", "all", projects, ttl=timedelta(minutes=5)
    )
    got = await repos.metadata_cache.get(SITE, "projects", "all")
    assert got == put
    assert got.value == projects and got.expires_at == at(clock, 300)
    clock.advance(300)
    assert await repos.metadata_cache.get(SITE, "projects", "all") is None
    await repos.metadata_cache.put(SITE, "projects", "all", [], ttl=timedelta(minutes=5))
    again = await repos.metadata_cache.get(SITE, "projects", "all")
    assert again is not None and again.value == []


async def test_cache_invalidation_and_purge(repos: Repositories, clock: ManualClock) -> None:
    """invalidate() drops a site's entries (of one kind); purge_expired() drops stale ones."""
    await install(repos)
    await repos.metadata_cache.put(SITE, "projects", "all", 1, ttl=timedelta(minutes=1))
    await repos.metadata_cache.put(SITE, "issuetypes", "ABC", 2, ttl=timedelta(minutes=10))
    await repos.metadata_cache.put(SITE, "issuetypes", "XYZ", 3, ttl=timedelta(minutes=10))
    assert await repos.metadata_cache.invalidate(SITE, "issuetypes") == 2
    clock.advance(61)
    assert await repos.metadata_cache.purge_expired() == 1
    with pytest.raises(UnknownReference):
        await repos.metadata_cache.put(OTHER_SITE, "projects", "all", 1, ttl=timedelta(minutes=1))


# --- delivery log --------------------------------------------------------------------------


async def test_delivery_log_records_and_updates(repos: Repositories, clock: ManualClock) -> None:
    """record() inserts then updates the outcome, keeping the Discord message id when omitted."""
    first = await repos.delivery_log.record(
        "out-1", channel_id=CHANNEL, status="sent", discord_message_id="1500000000000000001"
    )
    assert await repos.delivery_log.get("out-1") == first
    clock.advance(2)
    edited = await repos.delivery_log.record("out-1", channel_id=CHANNEL, status="edited")
    assert edited.discord_message_id == "1500000000000000001"
    assert (edited.status, edited.recorded_at) == ("edited", at(clock))
    assert await repos.delivery_log.get("missing") is None
    clock.advance(3600)
    await repos.delivery_log.record("out-2", channel_id=CHANNEL, status="failed")
    assert await repos.delivery_log.purge_older_than(timedelta(minutes=1)) == 1
    assert await repos.delivery_log.get("out-1") is None


async def test_delivery_log_records_a_pack_in_one_go(repos: Repositories) -> None:
    """record_pack() writes every member of a packed post; only the head carries the size."""
    members = ["out-1", "out-2", "out-3"]
    assert await repos.delivery_log.get_many(members) == {}
    await repos.delivery_log.record_pack(
        members, channel_id=CHANNEL, status="posting", pack_head="out-1", pack_size=3
    )
    posting = await repos.delivery_log.get_many([*members, "other"])
    assert sorted(posting) == members
    assert [(posting[m].pack_head, posting[m].pack_size) for m in members] == [
        ("out-1", 3),
        ("out-1", None),
        ("out-1", None),
    ]
    await repos.delivery_log.record_pack(
        members,
        channel_id=CHANNEL,
        status="sent",
        pack_head="out-1",
        pack_size=3,
        discord_message_id="1500000000000000009",
    )
    sent = await repos.delivery_log.get_many(members)
    assert {(d.status, d.discord_message_id, d.pack_head) for d in sent.values()} == {
        ("sent", "1500000000000000009", "out-1")
    }
    with pytest.raises(InvalidValue):
        await repos.delivery_log.record_pack(
            ["x"], channel_id=CHANNEL, status="posting", pack_head="x", pack_size=0
        )


# --- issue threads -------------------------------------------------------------------------


async def test_issue_threads_remember_replace_and_forget(
    repos: Repositories, clock: ManualClock
) -> None:
    """A thread per (channel, issue); replaced when re-created; gone with the site."""
    await install(repos)
    key = f"{SITE}:10001"
    assert await repos.issue_threads.get(CHANNEL, key) is None
    first = await repos.issue_threads.put(
        CHANNEL, key, client_key=SITE, thread_id="1600000000000000001"
    )
    assert await repos.issue_threads.get(CHANNEL, key) == first
    assert first.created_at == at(clock)
    clock.advance(5)
    again = await repos.issue_threads.put(
        CHANNEL, key, client_key=SITE, thread_id="1600000000000000002"
    )
    assert again.thread_id == "1600000000000000002"
    assert await repos.issue_threads.forget(CHANNEL, key)
    assert not await repos.issue_threads.forget(CHANNEL, key)
    await repos.issue_threads.put(CHANNEL, key, client_key=SITE, thread_id="1600000000000000003")
    await repos.installations.delete(SITE)
    assert await repos.issue_threads.get(CHANNEL, key) is None, "deleted with its site"
    with pytest.raises(UnknownReference):
        await repos.issue_threads.put(
            CHANNEL, key, client_key=OTHER_SITE, thread_id="1600000000000000004"
        )
