"""/jira permissions: show and change who may use what (Manage Server only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfj_common.storage import AccessMode, FeatureAccess, RoleRules

if TYPE_CHECKING:
    from services.linker.tests.conftest import Rig

ROLE = "1500000000000000001"
ROLE_2 = "1500000000000000002"


async def permissions(rig: Rig, *, manage: bool = True, **options: Any) -> str:
    await rig.send(
        rig.command("permissions", user_id=rig.alice, options=options, manage_server=manage)
    )
    [reply] = await rig.outbox()
    assert reply.data["message"].get("allowed_mentions", {"parse": []}) == {"parse": []}
    return rig.message_text(reply)


async def test_the_defaults_are_shown(rig: Rig) -> None:
    table = await permissions(rig)
    assert "- View and search: linked users (default)" in table
    assert "- Manage subscriptions: Manage Server (default)" in table


async def test_only_manage_server_may_see_or_change(rig: Rig) -> None:
    assert "Manage Server" in await permissions(rig, manage=False)
    text = await permissions(rig, manage=False, capability="view", who="everyone")
    assert "Manage Server permission" in text
    assert await FeatureAccess(rig.db).get(rig.guild_id, "view") is None


async def test_everyone_linked_and_roles_are_stored_as_the_workers_read_them(rig: Rig) -> None:
    rules, access = RoleRules(rig.db), FeatureAccess(rig.db)
    table = await permissions(rig, capability="view", who="everyone")
    assert table.startswith("Saved.") and "- View and search: everyone" in table
    assert await access.get(rig.guild_id, "view") is AccessMode.ALL
    await permissions(rig, capability="act", who="role", role=ROLE)
    table = await permissions(rig, capability="act", who="role", role=ROLE_2)
    assert f"- Act on issues: members with <@&{ROLE}>, <@&{ROLE_2}>" in table
    assert await rules.get(rig.guild_id, "act") == (ROLE, ROLE_2)
    table = await permissions(rig, capability="act", who="linked")
    assert "- Act on issues: linked users\n" in table
    assert await rules.get(rig.guild_id, "act") is None
    assert await access.get(rig.guild_id, "act") is AccessMode.LINKED


async def test_incomplete_or_wrong_choices_are_explained(rig: Rig) -> None:
    assert "Pick both" in await permissions(rig, capability="view")
    assert "Pick both" in await permissions(rig, capability="everything", who="everyone")
    assert "Pick the role" in await permissions(rig, capability="view", who="role")


async def test_a_server_that_is_not_connected_has_no_rules_yet(rig: Rig) -> None:
    other = rig.sim.add_guild("Other").id
    await rig.send(
        rig.command("permissions", user_id=rig.alice, guild_id=other, manage_server=True)
    )
    [reply] = await rig.outbox()
    assert "not connected" in rig.message_text(reply)
