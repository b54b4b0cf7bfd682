"""The application commands we register with Discord, defined once.

``/jira`` with one subcommand per action, and two message context-menu commands. The names and
option names are a protocol: the gateway routes by subcommand (``COMMAND_ROUTES`` in
``dfj_gateway.discord.interactions``) and the workers read options by these names (the table
in ``dfj_jira_worker.commands.requests``). Who may run what is decided at run time — role rules
per capability, Manage Server for server settings — so ``/jira`` itself is open to every
member (``default_member_permissions`` unset) and usable in servers only (guild install and
guild context). Options with ``autocomplete`` are answered by the gateway from cached metadata.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ADD_TO_ISSUE", "CREATE_FROM_MESSAGE", "SLASH", "definitions"]

SLASH: Final = "jira"
CREATE_FROM_MESSAGE: Final = "Create issue from message"
ADD_TO_ISSUE: Final = "Add to Jira issue"

_SUB_COMMAND: Final = 1
_STRING: Final = 3
_BOOLEAN: Final = 5
_USER: Final = 6
_ROLE: Final = 8
_CHAT_INPUT: Final = 1
_MESSAGE: Final = 3
_GUILD_INSTALL: Final = 0
_GUILD_CONTEXT: Final = 0


def _opt(
    name: str,
    description: str,
    kind: int = _STRING,
    *,
    required: bool = False,
    autocomplete: bool = False,
    max_length: int | None = None,
    choices: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    option: dict[str, Any] = {
        "type": kind,
        "name": name,
        "description": description,
        "required": required,
    }
    if autocomplete:
        option["autocomplete"] = True
    if max_length is not None:
        option["max_length"] = max_length
    if choices:
        option["choices"] = [{"name": n, "value": v} for n, v in choices]
    return option


def _sub(name: str, description: str, *options: dict[str, Any]) -> dict[str, Any]:
    # Discord wants required options first.
    ordered = sorted(options, key=lambda o: not o["required"])
    return {"type": _SUB_COMMAND, "name": name, "description": description, "options": ordered}


_KEY = _opt("key", "Issue key, like ABC-123", required=True, autocomplete=True, max_length=64)
_CAPABILITIES: Final = (
    ("View and search", "view"),
    ("Create issues", "create"),
    ("Act on issues", "act"),
    ("Manage subscriptions", "manage"),
)


def _subcommands() -> list[dict[str, Any]]:
    return [
        _sub(
            "create",
            "Create a Jira issue (opens a form)",
            _opt("project", "Project key", autocomplete=True, max_length=64),
            _opt("type", "Issue type", autocomplete=True, max_length=64),
            _opt("summary", "Summary", max_length=255),
            _opt("description", "Description", max_length=4000),
        ),
        _sub("issue", "Show an issue, with buttons to act on it", _KEY),
        _sub("search", "Search with JQL", _opt("jql", "A JQL query", required=True)),
        _sub(
            "assign",
            "Assign an issue (to you when no one is named)",
            _KEY,
            _opt("user", "Who (their linked Jira account)", _USER),
        ),
        _sub(
            "transition",
            "Move an issue through its workflow",
            _KEY,
            _opt("to", "Transition name (or pick from a list)", max_length=100),
        ),
        _sub(
            "comment",
            "Comment on an issue (opens a form without text)",
            _KEY,
            _opt("text", "The comment", max_length=4000),
        ),
        _sub("watch", "Watch an issue", _KEY),
        _sub(
            "subscribe",
            "Post a project's updates in this channel",
            _opt("project", "Project key", required=True, autocomplete=True, max_length=64),
            _opt("events", "Comma-separated, e.g. issue_created,comment_created"),
            _opt("issue_types", "Comma-separated issue types (all when empty)"),
            _opt("jql", "Only issues matching this JQL"),
            _opt("thread", "One thread per issue", _BOOLEAN),
        ),
        _sub(
            "unsubscribe",
            "Stop a subscription of this channel",
            _opt("subscription", "Subscription id, or a project key", required=True),
        ),
        _sub("subscriptions", "List this channel's subscriptions"),
        _sub("link", "Link your Jira account"),
        _sub("unlink", "Unlink your Jira account"),
        _sub("me", "What is linked, to which site, since when"),
        _sub(
            "connect",
            "Connect this server to a Jira site (Manage Server)",
            _opt("code", "The code from the app's page in Jira", required=True, max_length=64),
        ),
        _sub("disconnect", "Disconnect this server from its Jira site (Manage Server)"),
        _sub(
            "permissions",
            "Show or change who may use what (Manage Server)",
            _opt("capability", "What to change", choices=_CAPABILITIES),
            _opt(
                "who",
                "Who may use it",
                choices=(("Everyone", "everyone"), ("Linked users", "linked"), ("A role", "role")),
            ),
            _opt("role", "The role (with who: A role)", _ROLE),
        ),
        _sub(
            "privacy",
            "See, export or delete what we keep about you",
            _opt(
                "action",
                "What to do",
                choices=(("Show", "show"), ("Export", "export"), ("Delete", "delete")),
            ),
        ),
        _sub("help", "What this app can do"),
    ]


def definitions() -> list[dict[str, Any]]:
    """The bulk-overwrite body for ``PUT /applications/{id}/commands``."""
    scope = {"integration_types": [_GUILD_INSTALL], "contexts": [_GUILD_CONTEXT]}
    return [
        {
            "type": _CHAT_INPUT,
            "name": SLASH,
            "description": "Work with Jira from Discord",
            "options": _subcommands(),
            **scope,
        },
        {"type": _MESSAGE, "name": CREATE_FROM_MESSAGE, **scope},
        {"type": _MESSAGE, "name": ADD_TO_ISSUE, **scope},
    ]
