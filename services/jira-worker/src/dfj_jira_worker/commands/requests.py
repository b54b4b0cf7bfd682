"""What a ``jira-commands`` event asks for: who, where, how to answer, and the typed request.

The gateway publishes three event types here (its ``discord/interactions.py`` shapes them):
``discord.command`` (a slash command or the message context menu), ``discord.component`` (a click
on one of our buttons or selects) and ``discord.modal_submit`` (one of our forms). Their ``data``
shares the ids of the interaction (interaction, application, guild, channel, user), its token,
the member's role ids and permission bitset (a decimal string); then ``command`` (name, type,
subcommand, options flattened by name) plus ``message`` (id, text) for a message command,
``component`` (custom id, component type, values), or ``modal`` (custom id, field values).

Parsing has two failure modes, kept apart because they settle differently:

- :class:`~dfj_common.errors.MalformedMessage` — the event itself is broken (no token, no user,
  an unknown event type): nothing can be answered, so it is dead-lettered;
- :class:`InvalidInput` — the user typed something we cannot use (``/jira issue hello``): the
  answer says why, and the message completes.

The ``/jira`` subcommands and their option names (the command registration must use these):

=================  =====================================================================
subcommand         options
=================  =====================================================================
``create``         ``project``, ``type``, ``summary``, ``description``
``issue``          ``key``
``search``         ``jql``
``assign``         ``key``, ``user`` (a Discord user — their linked Jira account; ``me``
                   when left out, ``none`` unassigns)
``transition``     ``key``, ``to`` (a transition name or id; left out: pick from a list)
``comment``        ``key``, ``text``
``watch``          ``key``
``subscribe``      ``project``, ``events`` (comma-separated, see :data:`EVENT_TYPES`),
                   ``issue_types`` (comma-separated names or ids), ``jql``, ``thread``
``unsubscribe``    ``subscription`` (a subscription id, or a project key: all of this
                   channel's subscriptions to it)
``subscriptions``  —
=================  =====================================================================

``issue`` is accepted wherever ``key`` is (the gateway's comment form and autocomplete use it).
Custom ids we handle: components ``assign-me:<KEY>``, ``transition:<KEY>`` (a select whose value
is a transition id, or a button that asks for the list), ``comment:<KEY>``, ``watch:<KEY>``;
modals ``create-issue``, ``comment:<KEY>`` and ``draft-create:<draft id>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final

from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage

__all__ = [
    "ADMINISTRATOR",
    "DEFAULT_EVENT_TYPES",
    "DISCORD_COMMAND",
    "DISCORD_COMPONENT",
    "DISCORD_MODAL_SUBMIT",
    "EVENT_TYPES",
    "MANAGE_GUILD",
    "OPTIONS",
    "PUBLIC_SUBCOMMANDS",
    "AssignIssue",
    "Capability",
    "CommentHint",
    "CommentIssue",
    "CreateFromDraft",
    "CreateFromMessage",
    "CreateIssue",
    "InvalidInput",
    "Invocation",
    "ListSubscriptions",
    "Request",
    "SearchIssues",
    "Subscribe",
    "TransitionIssue",
    "Unsubscribe",
    "Unsupported",
    "ViewIssue",
    "WatchIssue",
    "issue_key",
    "parse_invocation",
    "parse_request",
    "project_key",
]

DISCORD_COMMAND: Final = "discord.command"
DISCORD_COMPONENT: Final = "discord.component"
DISCORD_MODAL_SUBMIT: Final = "discord.modal_submit"

#: Discord permission bits (``member.permissions`` is the decimal string of the bitset).
ADMINISTRATOR: Final = 1 << 3
MANAGE_GUILD: Final = 1 << 5

_MESSAGE_COMMAND: Final = 3
_STRING_SELECT: Final = 3
_SNOWFLAKE: Final = re.compile(r"^[0-9]{1,32}$")
_ISSUE_KEY: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}-[0-9]{1,15}$")
_PROJECT_KEY: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
_NUMERIC_ID: Final = re.compile(r"^[0-9]{1,18}$")
_LIST_SEPARATORS: Final = re.compile(r"[,\s]+")

_MAX_SUMMARY: Final = 255
_MAX_TEXT: Final = 32_000
_MAX_JQL: Final = 4_000
_MAX_TOKEN: Final = 1_024

#: Subcommands whose answer the whole channel sees (the gateway deferred them publicly).
PUBLIC_SUBCOMMANDS: Final = frozenset({"subscribe", "unsubscribe", "subscriptions"})

OPTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "create": ("project", "type", "summary", "description"),
        "issue": ("key",),
        "search": ("jql",),
        "assign": ("key", "user"),
        "transition": ("key", "to"),
        "comment": ("key", "text"),
        "watch": ("key",),
        "subscribe": ("project", "events", "issue_types", "jql", "thread"),
        "unsubscribe": ("subscription",),
        "subscriptions": (),
    }
)

#: The event types a subscription may name (what the notifier matches webhooks against).
EVENT_TYPES: Final = (
    "issue_created",
    "issue_updated",
    "issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
)
DEFAULT_EVENT_TYPES: Final = ("issue_created", "issue_updated", "comment_created")

CREATE_FORM_ID: Final = "create-issue"
COMMENT_FORM_PREFIX: Final = "comment:"
DRAFT_CREATE_PREFIX: Final = "draft-create:"
ADD_TO_ISSUE_PREFIX: Final = "add-to-issue:"  # the *Add to Jira issue* form: + the message id


class Capability(StrEnum):
    """What a request needs the member to be allowed to do (role rules are per capability)."""

    VIEW = "view"
    CREATE = "create"
    ACT = "act"
    MANAGE = "manage"


class InvalidInput(ValueError):
    """The user's input cannot be used; ``user_message`` says why (shown to them)."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


@dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    """Who asked, where, and how to answer: common to every event on ``jira-commands``.

    ``followup`` is True for component clicks: their deferred response *is* the message the
    button sits on (possibly a channel notification), so the answer goes out as a new ephemeral
    follow-up instead of overwriting it. Commands and modal submits edit their deferred
    response. ``created_at`` is when the gateway received the interaction (within Discord's
    3-second window of its creation), so the discord-worker can tell when the token expired.
    """

    event_id: str
    event_type: str
    interaction_id: str
    application_id: str
    token: str = field(repr=False)
    guild_id: str | None
    channel_id: str
    user_id: str
    roles: tuple[str, ...]
    permissions: int
    created_at: float
    ephemeral: bool
    followup: bool

    @property
    def may_manage_guild(self) -> bool:
        """Manage Server, or Administrator (which implies every permission)."""
        return bool(self.permissions & (MANAGE_GUILD | ADMINISTRATOR))


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Base:
    capability: ClassVar[Capability | None] = None
    #: Calls Jira as the user, so the user must be linked.
    calls_jira: ClassVar[bool] = True
    #: Changes something that a redelivery must not change twice (see handler.py).
    mutates: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateIssue(_Base):
    """``/jira create`` or the create form: make an issue from these fields."""

    capability: ClassVar[Capability | None] = Capability.CREATE
    mutates: ClassVar[bool] = True
    summary: str
    description: str = field(default="", repr=False)
    project: str | None = None
    issue_type: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateFromMessage(_Base):
    """ "Create issue from message": suggest fields, keep them as a draft, offer a review."""

    capability: ClassVar[Capability | None] = Capability.CREATE
    message_id: str
    text: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateFromDraft(_Base):
    """The reviewed draft's form: create the issue, linking back to the message."""

    capability: ClassVar[Capability | None] = Capability.CREATE
    mutates: ClassVar[bool] = True
    draft_id: str
    summary: str
    description: str = field(default="", repr=False)
    project: str | None = None
    issue_type: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ViewIssue(_Base):
    """``/jira issue KEY``: the issue with its actions."""

    capability: ClassVar[Capability | None] = Capability.VIEW
    key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchIssues(_Base):
    """``/jira search JQL``: the first page of matches."""

    capability: ClassVar[Capability | None] = Capability.VIEW
    jql: str


ME: Final = "me"
NOBODY: Final = "none"


@dataclass(frozen=True, kw_only=True, slots=True)
class AssignIssue(_Base):
    """Assign to ``assignee``: ``"me"``, ``"none"`` (unassign) or a Discord user id."""

    capability: ClassVar[Capability | None] = Capability.ACT
    mutates: ClassVar[bool] = True
    key: str
    assignee: str = ME


@dataclass(frozen=True, kw_only=True, slots=True)
class TransitionIssue(_Base):
    """Move the issue by transition ``to`` (name or id); without it, offer the choices."""

    capability: ClassVar[Capability | None] = Capability.ACT
    mutates: ClassVar[bool] = True
    key: str
    to: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CommentIssue(_Base):
    """Add ``text`` as a comment."""

    capability: ClassVar[Capability | None] = Capability.ACT
    mutates: ClassVar[bool] = True
    key: str
    text: str = field(repr=False)
    message_id: str | None = None  # a Discord message the comment came from, linked back


@dataclass(frozen=True, kw_only=True, slots=True)
class CommentHint(_Base):
    """A click on a "Comment" button that reached us instead of opening the comment form."""

    capability: ClassVar[Capability | None] = Capability.ACT
    calls_jira: ClassVar[bool] = False
    key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchIssue(_Base):
    """Add the user to the issue's watchers."""

    capability: ClassVar[Capability | None] = Capability.ACT
    mutates: ClassVar[bool] = True
    key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscribe(_Base):
    """Post a project's events in this channel."""

    capability: ClassVar[Capability | None] = Capability.MANAGE
    mutates: ClassVar[bool] = True
    project: str
    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    issue_types: tuple[str, ...] = ()
    jql: str | None = None
    thread: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Unsubscribe(_Base):
    """Remove a subscription (by id) or all of this channel's subscriptions to a project."""

    capability: ClassVar[Capability | None] = Capability.MANAGE
    calls_jira: ClassVar[bool] = False
    mutates: ClassVar[bool] = True
    target: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListSubscriptions(_Base):
    """This channel's subscriptions."""

    capability: ClassVar[Capability | None] = Capability.MANAGE
    calls_jira: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Unsupported(_Base):
    """Something we do not (or no longer) handle; the answer says so."""

    calls_jira: ClassVar[bool] = False
    what: str


Request = (
    CreateIssue
    | CreateFromMessage
    | CreateFromDraft
    | ViewIssue
    | SearchIssues
    | AssignIssue
    | TransitionIssue
    | CommentIssue
    | CommentHint
    | WatchIssue
    | Subscribe
    | Unsubscribe
    | ListSubscriptions
    | Unsupported
)


# --- value parsing ----------------------------------------------------------------------------


def issue_key(value: Any) -> str:
    """An issue key (upper-cased) or numeric id; :class:`InvalidInput` otherwise."""
    text = _text(value)
    if _ISSUE_KEY.match(text):
        return text.upper()
    if _NUMERIC_ID.match(text):
        return text
    if not text:
        raise InvalidInput("Tell me which issue, e.g. `ABC-123`.")
    raise InvalidInput(f"`{_shown(text)}` doesn't look like an issue key (e.g. `ABC-123`).")


def project_key(value: Any) -> str:
    """A project key (upper-cased) or numeric id; :class:`InvalidInput` otherwise."""
    text = _text(value)
    if _PROJECT_KEY.match(text):
        return text.upper()
    if _NUMERIC_ID.match(text):
        return text
    if not text:
        raise InvalidInput("Tell me which project, e.g. `ABC`.")
    raise InvalidInput(f"`{_shown(text)}` doesn't look like a project key (e.g. `ABC`).")


def _shown(text: str) -> str:
    clean = text.replace("`", "'")
    return clean if len(clean) <= 40 else clean[:39] + "…"


def _text(value: Any) -> str:
    """A field or option value as stripped text (a select's first value; nothing → "")."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, bool):
        return ""
    return str(value).strip()


def _optional(value: Any) -> str | None:
    return _text(value) or None


def _summary(value: Any) -> str:
    summary = " ".join(_text(value).split())
    if not summary:
        raise InvalidInput("An issue needs a summary.")
    return summary if len(summary) <= _MAX_SUMMARY else summary[: _MAX_SUMMARY - 1] + "…"


def _long_text(value: Any) -> str:
    return _text(value)[:_MAX_TEXT]


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return _text(value).casefold() in {"true", "yes", "on", "1"}


def _words(value: Any) -> tuple[str, ...]:
    return tuple(w for w in _LIST_SEPARATORS.split(_text(value)) if w)


def _event_types(value: Any) -> tuple[str, ...]:
    words = [w.casefold() for w in _words(value)]
    if not words:
        return DEFAULT_EVENT_TYPES
    unknown = [w for w in words if w not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"Unknown event type `{_shown(unknown[0])}`. Choose from: "
            + ", ".join(f"`{t}`" for t in EVENT_TYPES)
            + "."
        )
    return tuple(dict.fromkeys(words))


def _issue_types(value: Any) -> tuple[str, ...]:
    # Names may contain spaces ("Sub-task", "New Feature"), so only commas separate them.
    return tuple(dict.fromkeys(p.strip() for p in _text(value).split(",") if p.strip()))


def _jql(value: Any) -> str | None:
    jql = _text(value)
    if len(jql) > _MAX_JQL:
        raise InvalidInput("That JQL query is too long.")
    return jql or None


# --- envelope parsing -------------------------------------------------------------------------


def _snowflake(data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if isinstance(value, str) and _SNOWFLAKE.match(value):
        return value
    if required:
        raise MalformedMessage(f"command event lacks {key!r}", reason="CommandField")
    return None


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise MalformedMessage(f"command event lacks {key!r}", reason="CommandField")
    return value


def _permissions(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _ephemeral(envelope: Envelope) -> bool:
    if envelope.type != DISCORD_COMMAND:
        return True
    command = envelope.data.get("command")
    if not isinstance(command, Mapping):
        return True
    return command.get("subcommand") not in PUBLIC_SUBCOMMANDS


def parse_invocation(envelope: Envelope) -> Invocation:
    """The common part of a command event; :class:`MalformedMessage` when it cannot be answered."""
    if envelope.type not in (DISCORD_COMMAND, DISCORD_COMPONENT, DISCORD_MODAL_SUBMIT):
        raise MalformedMessage(
            f"{envelope.type!r} is not a command event", reason="CommandEventType"
        )
    data = envelope.data
    token = data.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN:
        raise MalformedMessage("command event lacks the interaction token", reason="CommandField")
    roles = data.get("roles")
    return Invocation(
        event_id=envelope.id,
        event_type=envelope.type,
        interaction_id=_snowflake(data, "interaction_id") or "",
        application_id=_snowflake(data, "application_id") or "",
        token=token,
        guild_id=_snowflake(data, "guild_id", required=False),
        channel_id=_snowflake(data, "channel_id") or "",
        user_id=_snowflake(data, "user_id") or "",
        roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
        permissions=_permissions(data.get("permissions")),
        created_at=envelope.time.timestamp(),
        ephemeral=_ephemeral(envelope),
        followup=envelope.type == DISCORD_COMPONENT,
    )


def parse_request(envelope: Envelope) -> Request:
    """The typed request of a command event (``MalformedMessage`` / :class:`InvalidInput`)."""
    data = envelope.data
    match envelope.type:
        case "discord.command":
            return _command(_mapping(data, "command"), data.get("message"))
        case "discord.component":
            return _component(_mapping(data, "component"))
        case "discord.modal_submit":
            return _modal(_mapping(data, "modal"))
    raise MalformedMessage(f"{envelope.type!r} is not a command event", reason="CommandEventType")


def _key_option(options: Mapping[str, Any]) -> str:
    return issue_key(options.get("key") if options.get("key") is not None else options.get("issue"))


def _create(opts: Mapping[str, Any]) -> Request:
    return CreateIssue(
        summary=_summary(opts.get("summary")),
        description=_long_text(opts.get("description")),
        project=project_key(opts["project"]) if _text(opts.get("project")) else None,
        issue_type=_optional(opts.get("type")),
    )


def _search(opts: Mapping[str, Any]) -> Request:
    jql = _jql(opts.get("jql"))
    if jql is None:
        raise InvalidInput("Give me a JQL query, e.g. `project = ABC AND status = Open`.")
    return SearchIssues(jql=jql)


def _comment(opts: Mapping[str, Any]) -> Request:
    text = _long_text(opts.get("text"))
    if not text:
        raise InvalidInput("A comment needs some text.")
    return CommentIssue(key=_key_option(opts), text=text)


def _subscribe(opts: Mapping[str, Any]) -> Request:
    return Subscribe(
        project=project_key(opts.get("project")),
        event_types=_event_types(opts.get("events")),
        issue_types=_issue_types(opts.get("issue_types")),
        jql=_jql(opts.get("jql")),
        thread=_flag(opts.get("thread")),
    )


def _unsubscribe(opts: Mapping[str, Any]) -> Request:
    target = _text(opts.get("subscription") or opts.get("project") or opts.get("id"))
    if not target:
        raise InvalidInput("Tell me which subscription (its id) or project to remove.")
    return Unsubscribe(target=target[:64])


_SUBCOMMANDS: Final[Mapping[str, Callable[[Mapping[str, Any]], Request]]] = MappingProxyType(
    {
        "create": _create,
        "issue": lambda o: ViewIssue(key=_key_option(o)),
        "search": _search,
        "assign": lambda o: AssignIssue(key=_key_option(o), assignee=_assignee(o.get("user"))),
        "transition": lambda o: TransitionIssue(key=_key_option(o), to=_optional(o.get("to"))),
        "comment": _comment,
        "watch": lambda o: WatchIssue(key=_key_option(o)),
        "subscribe": _subscribe,
        "unsubscribe": _unsubscribe,
        "subscriptions": lambda _: ListSubscriptions(),
    }
)


def _command(command: Mapping[str, Any], message: Any) -> Request:
    if command.get("type") == _MESSAGE_COMMAND:
        if not isinstance(message, Mapping):
            raise MalformedMessage("message command lacks its message", reason="CommandField")
        text = message.get("text")
        return CreateFromMessage(
            message_id=_snowflake(message, "id") or "",
            text=text if isinstance(text, str) else "",
        )
    options = command.get("options")
    sub = command.get("subcommand")
    parse = _SUBCOMMANDS.get(sub) if isinstance(sub, str) else None
    if parse is None:
        return Unsupported(what=f"/jira {_shown(str(sub or command.get('name') or ''))}")
    return parse(options if isinstance(options, Mapping) else {})


def _assignee(value: Any) -> str:
    text = _text(value)
    if not text or text.casefold() == ME:
        return ME
    if text.casefold() in {NOBODY, "unassigned", "nobody"}:
        return NOBODY
    mention = re.fullmatch(r"<@!?([0-9]{1,32})>", text)
    if mention:
        return mention.group(1)
    if _SNOWFLAKE.match(text):
        return text
    raise InvalidInput("Pick a member (or `me`, or `none` to unassign).")


def _component(component: Mapping[str, Any]) -> Request:
    custom_id = component.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise MalformedMessage("component event lacks its custom id", reason="CommandField")
    namespace, _, rest = custom_id.partition(":")
    values = component.get("values")
    picked = [v for v in values if isinstance(v, str)] if isinstance(values, Sequence) else []
    match namespace:
        case "assign-me":
            return AssignIssue(key=issue_key(rest), assignee=ME)
        case "transition":
            is_select = component.get("component_type") == _STRING_SELECT
            return TransitionIssue(
                key=issue_key(rest), to=(picked[0] if is_select and picked else None)
            )
        case "comment":
            return CommentHint(key=issue_key(rest))
        case "watch":
            return WatchIssue(key=issue_key(rest))
    return Unsupported(what="this button")


def _modal(modal: Mapping[str, Any]) -> Request:
    custom_id = modal.get("custom_id")
    fields_value = modal.get("fields")
    if not isinstance(custom_id, str) or not isinstance(fields_value, Mapping):
        raise MalformedMessage("modal event lacks custom id or fields", reason="CommandField")
    fields: Mapping[str, Any] = fields_value
    if custom_id == CREATE_FORM_ID:
        return CreateIssue(**_create_fields(fields))
    if custom_id.startswith(DRAFT_CREATE_PREFIX):
        draft_id = custom_id.removeprefix(DRAFT_CREATE_PREFIX)
        if not draft_id:
            raise MalformedMessage("draft form without a draft id", reason="CommandField")
        return CreateFromDraft(draft_id=draft_id, **_create_fields(fields))
    if custom_id.startswith(ADD_TO_ISSUE_PREFIX):
        message_id = custom_id.removeprefix(ADD_TO_ISSUE_PREFIX)
        if not _SNOWFLAKE.match(message_id):
            raise MalformedMessage("add-to-issue form without a message id", reason="CommandField")
        text = _long_text(fields.get("text"))
        if not text:
            raise InvalidInput("A comment needs some text.")
        return CommentIssue(
            key=issue_key(_text(fields.get("issue"))), text=text, message_id=message_id
        )
    if custom_id.startswith(COMMENT_FORM_PREFIX):
        text = _long_text(fields.get("text"))
        if not text:
            raise InvalidInput("A comment needs some text.")
        return CommentIssue(key=issue_key(custom_id.removeprefix(COMMENT_FORM_PREFIX)), text=text)
    return Unsupported(what="this form")


def _create_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    project = _text(fields.get("project"))
    return {
        "summary": _summary(fields.get("summary")),
        "description": _long_text(fields.get("description")),
        "project": project_key(project) if project else None,
        "issue_type": _optional(fields.get("issuetype") or fields.get("type")),
    }
