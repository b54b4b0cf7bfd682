"""What a command runs with once the gates have passed: the site, the user, Jira as that user."""

from __future__ import annotations

from dataclasses import dataclass

from dfj_common.storage import GuildConnection, Installation
from dfj_jira_worker.commands.ports import JiraCalls
from dfj_jira_worker.commands.requests import Invocation

__all__ = ["Scope"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Scope:
    """One command's context: who asked, on which site, and Jira acting as their account."""

    invocation: Invocation
    installation: Installation
    connection: GuildConnection
    account_id: str
    jira: JiraCalls

    @property
    def client_key(self) -> str:
        return self.installation.client_key

    @property
    def site_url(self) -> str:
        """Where people open the site (the display URL when the site has one)."""
        return self.installation.display_url or self.installation.base_url or ""

    @property
    def default_project(self) -> str | None:
        """The guild's default project (a connection setting), if any."""
        value = self.connection.settings.get("default_project")
        return value.strip().upper() if isinstance(value, str) and value.strip() else None
