"""The metadata caches the gateway autocompletes from: shapes, expiry, refresh on a command."""

from __future__ import annotations

from commands.harness import ACC_ALICE, SITE, Harness, content
from dfj_common.storage import Installation, InstallationState
from dfj_jira_worker.commands.metadata import (
    ALL,
    ISSUE_TYPES,
    PROJECTS,
    RECENT_ISSUES,
    MetadataRefresher,
)
from dfj_jira_worker.commands.suggest import IssueTypeOption, ProjectOption
from dfj_jira_worker.jira import JiraForbidden, JiraUnavailable


def _refresher(harness: Harness) -> MetadataRefresher:
    return harness.commands.metadata


async def _installation(harness: Harness) -> Installation:
    found = await harness.repos.installations.get(SITE)
    assert found is not None
    return found


async def test_refresh_writes_the_shapes_the_gateway_reads(harness: Harness) -> None:
    """projects/all → [{key, name}]; issuetypes/<KEY> and /all → [{id, name}], no sub-tasks."""
    await harness.repos.metadata_cache.invalidate(SITE)
    api = harness.jira.as_app(await _installation(harness))
    await _refresher(harness).refresh(SITE, api)
    cache = harness.repos.metadata_cache
    projects = await cache.get(SITE, PROJECTS, ALL)
    assert projects is not None
    assert projects.value == [{"key": "ABC", "name": "Alpha"}]
    assert projects.expires_at.timestamp() == harness.clock.now() + 15 * 60
    types = [{"id": "10001", "name": "Task"}, {"id": "10002", "name": "Bug"}]
    types.append({"id": "10003", "name": "Story"})
    for key in ("ABC", ALL):
        entry = await cache.get(SITE, ISSUE_TYPES, key)
        assert entry is not None
        assert entry.value == types
    assert {c.actor for c in harness.calls} == {"app"}  # a scheduled refresh may run as the app


async def test_entries_expire_and_read_back_typed(harness: Harness) -> None:
    refresher = _refresher(harness)
    assert await refresher.projects(SITE) == [ProjectOption("ABC", "Alpha")]
    assert IssueTypeOption("10002", "Bug") in await refresher.issue_types(SITE, "ABC")
    assert await refresher.issue_types(SITE, "UNKNOWN") == await refresher.issue_types(SITE, None)
    assert not await refresher.is_stale(SITE)
    harness.clock.advance(15 * 60 + 1)
    assert await refresher.is_stale(SITE)
    assert await refresher.projects(SITE) == []


async def test_a_command_refreshes_stale_metadata_as_the_user(harness: Harness) -> None:
    """After a command that called Jira, stale caches are refreshed through the same user."""
    harness.clock.advance(16 * 60)
    await harness.answer(harness.command("issue", key="ABC-1"))
    refreshes = harness.jira.site.calls_to("search_projects")
    assert [c.actor for c in refreshes] == [ACC_ALICE]
    assert not await _refresher(harness).is_stale(SITE)


async def test_fresh_metadata_is_not_refetched(harness: Harness) -> None:
    await harness.answer(harness.command("issue", key="ABC-1"))
    assert harness.jira.site.calls_to("search_projects") == []


async def test_a_failing_refresh_does_not_fail_the_command(harness: Harness) -> None:
    """Errors while refreshing are logged; the command's answer stands."""
    harness.clock.advance(16 * 60)
    harness.jira.site.fail("search_projects", JiraUnavailable("Jira answered 502", status=502))
    message = await harness.answer(harness.command("issue", key="ABC-1"))
    assert message["embeds"]
    assert await _refresher(harness).is_stale(SITE)


async def test_from_message_refreshes_before_suggesting(harness: Harness) -> None:
    """The message command needs the site's issue types, so it refreshes stale caches first."""
    harness.clock.advance(16 * 60)
    harness.jira.site.forbid(ACC_ALICE, "search_projects")
    message = await harness.answer(harness.message_command("A bug in search"))
    assert "draft issue" in content(message)  # suggestions still come, from the text alone
    harness.jira.site.forbidden.clear()
    await harness.answer(harness.message_command("A bug in search"))
    assert [c.actor for c in harness.jira.site.calls_to("issue_types_for_project")] == [ACC_ALICE]


async def test_a_project_whose_types_are_unreadable_is_left_out(harness: Harness) -> None:
    await harness.repos.metadata_cache.invalidate(SITE)
    harness.jira.site.fail(
        "issue_types_for_project", JiraForbidden("Jira answered 403", status=403)
    )
    api = harness.jira.as_user(await _installation(harness), ACC_ALICE)
    await _refresher(harness).refresh(SITE, api)
    assert await harness.repos.metadata_cache.get(SITE, ISSUE_TYPES, "ABC") is None
    all_types = await harness.repos.metadata_cache.get(SITE, ISSUE_TYPES, ALL)
    assert all_types is not None
    assert all_types.value == []
    assert await harness.repos.metadata_cache.get(SITE, PROJECTS, ALL) is not None


async def test_recent_issues_are_bounded_and_unique(harness: Harness) -> None:
    refresher = _refresher(harness)
    for n in range(30):
        await refresher.remember_issue(SITE, f"ABC-{n}")
    await refresher.remember_issue(SITE, "ABC-3")
    entry = await harness.repos.metadata_cache.get(SITE, RECENT_ISSUES, ALL)
    assert entry is not None
    assert len(entry.value) == 25
    assert entry.value[:3] == ["ABC-3", "ABC-29", "ABC-28"]
    assert entry.value.count("ABC-3") == 1


async def test_the_scheduled_refresh_covers_live_sites_as_the_app(harness: Harness) -> None:
    """refresh_sites: every enabled or installed site with a base URL, as the app."""
    await harness.repos.installations.save_connect(
        "other-site", base_url="https://other.atlassian.net", shared_secret_ciphertext=b"x"
    )
    await harness.repos.installations.save_connect(
        "gone-site", base_url="https://gone.atlassian.net", shared_secret_ciphertext=b"x"
    )
    await harness.repos.installations.set_state("gone-site", InstallationState.UNINSTALLED)
    harness.jira.site.fail("search_projects", JiraForbidden("Jira answered 403", status=403))
    refreshed = await _refresher(harness).refresh_sites(harness.repos.installations, harness.jira)
    assert refreshed == 1  # the first site's refresh was refused, the other succeeded
    actors = {c.actor for c in harness.calls}
    assert actors == {"app"}
    assert len(harness.jira.site.calls_to("search_projects")) == 2
    assert await harness.repos.metadata_cache.get("gone-site", PROJECTS, ALL) is None
