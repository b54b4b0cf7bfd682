"""/jira privacy: show, export and delete what we keep about the caller."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dfj_common.storage import Drafts, Subscriptions, UserLinks

if TYPE_CHECKING:
    from services.linker.tests.conftest import Rig


async def privacy(rig: Rig, action: str | None = None, *, user: str | None = None) -> str:
    options = {"action": action} if action else {}
    await rig.send(rig.command("privacy", user_id=user or rig.alice, options=options))
    [reply] = await rig.outbox()
    return rig.message_text(reply)


async def seed(rig: Rig, *, text: str = "The login page is slow") -> None:
    await UserLinks(rig.db).link(rig.site, account_id=rig.account, discord_user_id=rig.alice)
    await Drafts(rig.db).put(
        client_key=rig.site,
        discord_user_id=rig.alice,
        payload={"summary": text},
        ttl=timedelta(minutes=10),
    )
    await Subscriptions(rig.db).add(
        guild_id=rig.guild_id,
        channel_id="1200000000000000001",
        client_key=rig.site,
        project_key="ABC",
        event_types=["issue_created"],
        created_by=rig.alice,
    )


async def test_show_says_what_is_kept(rig: Rig) -> None:
    await seed(rig)
    text = await privacy(rig)
    assert f"1 link(s) to a Jira account: `{rig.account}`" in text
    assert "1 draft(s)" in text and "1 subscription(s)" in text
    assert "1 server connection(s)" in text  # Alice connected the rig's server


async def exported(rig: Rig, user: str | None = None) -> dict[str, Any]:
    await rig.send(rig.command("privacy", user_id=user or rig.alice, options={"action": "export"}))
    [reply] = await rig.outbox()
    [file] = reply.data["files"]
    assert (file["name"], file["content_type"]) == (
        "discord-for-jira-privacy-export.json",
        "application/json",
    )
    assert "attached" in rig.message_text(reply)
    data: dict[str, Any] = json.loads(file["text"])
    return data


async def test_export_is_everything_as_a_json_file(rig: Rig) -> None:
    await seed(rig)
    data = await exported(rig)
    assert data["discord_user_id"] == rig.alice
    assert [link["jira_account_id"] for link in data["links"]] == [rig.account]
    assert data["drafts"][0]["content"] == {"summary": "The login page is slow"}
    assert data["server_settings_by_you"]["subscriptions"][0]["project"] == "ABC"
    # Someone else's export holds none of it.
    other = await exported(rig, rig.mallory)
    assert other["links"] == [] and other["drafts"] == []


async def test_a_long_export_is_whole(rig: Rig) -> None:
    for _ in range(5):
        await seed(rig, text="x" * 1500)
    data = await exported(rig)
    assert [d["content"]["summary"] for d in data["drafts"]] == ["x" * 1500] * 5


async def test_delete_erases_links_and_drafts_once_and_keeps_server_settings(rig: Rig) -> None:
    await seed(rig)
    assert "Deleted: 1 link(s) and 1 draft(s)" in await privacy(rig, "delete")
    assert await UserLinks(rig.db).list_for_discord_user(rig.alice) == []
    assert await Drafts(rig.db).list_for_discord_user(rig.alice) == []
    assert len(await Subscriptions(rig.db).list_for_guild(rig.guild_id)) == 1
    assert "Deleted: 0 link(s) and 0 draft(s)" in await privacy(rig, "delete")  # idempotent
