"""The people and places of a first run: one Jira site, one Discord server, two members.

Alice administers both: she owns the Discord server and installs the app in Jira. Bob is a
member of both with his own Jira account, not yet linked — so the sandbox shows the link
prompt as well as what a linked user gets. :func:`first_run` takes them through the steps a
team takes on day one, through the real protocols (see :mod:`dfj_sandbox.stack.sandbox`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dfj_sandbox.discord_sim import Guild
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.stack.sandbox import Member, Sandbox, SandboxError

__all__ = ["Cast", "build_cast", "first_run"]

PROJECT: Final = "DEMO"


@dataclass(frozen=True, slots=True)
class Cast:
    """Who and where: the site, the server, its #general channel, Alice and Bob."""

    site: Site
    guild: Guild
    channel_id: str
    alice: Member
    bob: Member

    @property
    def members(self) -> tuple[Member, ...]:
        """Everyone, Alice first."""
        return (self.alice, self.bob)


def build_cast(sandbox: Sandbox, *, site_name: str = "demo") -> Cast:
    """Create the site, the server and the two people in the simulators (nothing is sent)."""
    site = sandbox.jira.add_site(site_name)
    alice_account = site.add_user("557058:alice-admin", "Alice Admin")
    bob_account = site.add_user("557058:bob-builder", "Bob Builder")
    alice_user = sandbox.discord.add_user(username="alice", global_name="Alice")
    guild = sandbox.discord.add_guild("Acme", owner_id=alice_user.id)
    bob_user = guild.add_member(username="bob", global_name="Bob").user_id
    return Cast(
        site=site,
        guild=guild,
        channel_id=guild.channel_ids[0],
        alice=Member("Alice", alice_user.id, alice_account.account_id),
        bob=Member("Bob", bob_user, bob_account.account_id),
    )


async def first_run(
    sandbox: Sandbox, cast: Cast, *, subscribe: bool = True, forge: bool = False
) -> None:
    """Install (as Connect, or through Forge), connect the server, link Alice, subscribe."""
    if forge:
        await sandbox.install_forge(cast.site, cast.alice)
    else:
        await sandbox.install(cast.site)
    await sandbox.connect_server(cast.site, cast.guild, cast.alice)
    await sandbox.link(cast.site, cast.channel_id, cast.alice)
    if subscribe:
        answer = await sandbox.run_command(
            cast.channel_id, cast.alice, "subscribe", {"project": PROJECT}
        )
        if "now gets updates" not in answer.content and "already has" not in answer.content:
            raise SandboxError(f"/jira subscribe answered: {answer.content!r}")
