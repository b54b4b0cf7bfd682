"""Interaction response bodies, shaped per Discord's docs and its OpenAPI spec (pure).

Callback types: PONG 1, CHANNEL_MESSAGE_WITH_SOURCE 4, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE 5,
DEFERRED_UPDATE_MESSAGE 6, APPLICATION_COMMAND_AUTOCOMPLETE_RESULT 8, MODAL 9. A deferred
message may carry only the EPHEMERAL flag (64). Gateway messages never ping anyone
(``allowed_mentions: {"parse": []}``).

Modals use the current shape: top-level Label components (type 18, label ≤ 45 characters)
wrapping a Text Input (4) or a String Select (3); at most 5 components (the docs' limit, stricter
than the spec's 40), title ≤ 45, custom id ≤ 100, text values ≤ 4000.

Autocomplete choices come from the metadata cache the jira-worker keeps per site. Cached values
are lists, read leniently (a malformed entry is skipped, never an error):

- ``projects``/``all``: ``[{"key": "ABC", "name": "Alpha"}, …]`` (or plain keys) → name
  ``"ABC — Alpha"``, value ``"ABC"``;
- ``issuetypes``/``<project key or all>``: ``[{"id": "10001", "name": "Bug"}, …]`` → name
  ``"Bug"``, value the id (the name when there is no id);
- ``recent-issues``/``all``: ``["ABC-1", …]`` or ``[{"key": "ABC-1"}, …]`` → the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "EPHEMERAL",
    "MAX_CHOICES",
    "PONG",
    "Choice",
    "add_to_issue_modal",
    "autocomplete_result",
    "choices_from_cache",
    "comment_modal",
    "create_issue_modal",
    "deferred_message",
    "deferred_update",
    "ephemeral_message",
    "filter_choices",
]

EPHEMERAL: Final = 1 << 6
MAX_CHOICES: Final = 25
_CHOICE_LEN: Final = 100
_TITLE_LEN: Final = 45
_TEXT_LEN: Final = 4000
_SUMMARY_LEN: Final = 255
_CONTENT_LEN: Final = 2000
_SHORT: Final = 1
_PARAGRAPH: Final = 2
_STRING_SELECT: Final = 3
_TEXT_INPUT: Final = 4
_LABEL: Final = 18

PONG: Final[Mapping[str, Any]] = {"type": 1}


def deferred_message(*, ephemeral: bool) -> dict[str, Any]:
    """Type 5: "thinking…" now, the worker edits the original response later."""
    if ephemeral:
        return {"type": 5, "data": {"flags": EPHEMERAL}}
    return {"type": 5}


def deferred_update() -> dict[str, Any]:
    """Type 6: acknowledge a component click; the worker edits the message later."""
    return {"type": 6}


def ephemeral_message(content: str) -> dict[str, Any]:
    """Type 4 with flags 64: a message only the user sees, pinging no one."""
    return {
        "type": 4,
        "data": {
            "content": content[:_CONTENT_LEN],
            "flags": EPHEMERAL,
            "allowed_mentions": {"parse": []},
        },
    }


@dataclass(frozen=True, slots=True)
class Choice:
    """An autocomplete choice (both parts 1-100 characters)."""

    name: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _choice(name: str, value: str) -> Choice | None:
    name, value = name.strip(), value.strip()
    if not name or not value or len(value) > _CHOICE_LEN:
        return None
    return Choice(_clip(name, _CHOICE_LEN), value)


def _entry(item: Any, kind: str) -> Choice | None:
    if isinstance(item, str):
        return _choice(item, item)
    if not isinstance(item, Mapping):
        return None
    key, name, ident = (item.get(k) for k in ("key", "name", "id"))
    if kind == "projects" and isinstance(key, str):
        return _choice(f"{key} — {name}" if isinstance(name, str) and name else key, key)
    if kind == "issuetypes" and isinstance(name, str):
        return _choice(name, ident if isinstance(ident, str) and ident else name)
    if isinstance(key, str):
        return _choice(key, key)
    return None


def choices_from_cache(kind: str, value: Any) -> list[Choice]:
    """Choices from one cached metadata value (see the module docstring for the shapes)."""
    if not isinstance(value, list):
        return []
    out: list[Choice] = []
    seen: set[str] = set()
    for item in value:
        choice = _entry(item, kind)
        if choice is not None and choice.value not in seen:
            seen.add(choice.value)
            out.append(choice)
    return out


def filter_choices(
    candidates: Sequence[Choice], typed: str, *, limit: int = MAX_CHOICES
) -> list[Choice]:
    """Those matching what the user typed (case-insensitive; prefixes first), at most ``limit``."""
    needle = typed.strip().casefold()
    if not needle:
        return list(candidates[:limit])
    prefix: list[Choice] = []
    inner: list[Choice] = []
    for choice in candidates:
        name, value = choice.name.casefold(), choice.value.casefold()
        if name.startswith(needle) or value.startswith(needle):
            prefix.append(choice)
        elif needle in name or needle in value:
            inner.append(choice)
    return (prefix + inner)[:limit]


def autocomplete_result(choices: Sequence[Choice]) -> dict[str, Any]:
    """Type 8 with at most 25 choices (an empty list is a valid "nothing matches")."""
    return {"type": 8, "data": {"choices": [c.to_json() for c in choices[:MAX_CHOICES]]}}


def _text_input(
    custom_id: str,
    label: str,
    *,
    value: str = "",
    paragraph: bool = False,
    required: bool = True,
    max_length: int = _TEXT_LEN,
    placeholder: str | None = None,
) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": _TEXT_INPUT,
        "custom_id": custom_id,
        "style": _PARAGRAPH if paragraph else _SHORT,
        "required": required,
        "max_length": max_length,
    }
    if value:
        component["value"] = value[:max_length]
    if placeholder:
        component["placeholder"] = placeholder[:100]
    return {"type": _LABEL, "label": label, "component": component}


def _select(custom_id: str, label: str, choices: Sequence[Choice], selected: str) -> dict[str, Any]:
    options = [
        {"label": c.name, "value": c.value, **({"default": True} if c.value == selected else {})}
        for c in choices
    ]
    return {
        "type": _LABEL,
        "label": label,
        "component": {
            "type": _STRING_SELECT,
            "custom_id": custom_id,
            "options": options,
            "min_values": 1,
            "max_values": 1,
            "required": True,
        },
    }


def _modal(custom_id: str, title: str, components: list[dict[str, Any]]) -> dict[str, Any]:
    if not 0 < len(custom_id) <= 100 or not 0 < len(components) <= 5:
        raise ValueError("a modal needs a 1-100 character custom id and 1 to 5 components")
    return {
        "type": 9,
        "data": {
            "custom_id": custom_id,
            "title": _clip(title, _TITLE_LEN),
            "components": components,
        },
    }


def create_issue_modal(
    *,
    custom_id: str,
    title: str,
    prefill: Mapping[str, str],
    projects: Sequence[Choice] = (),
) -> dict[str, Any]:
    """The "create issue" form: summary, description, project, issue type, prefilled.

    The project is a select when the site's cached projects fit one (1-25, including the
    prefilled key, if any); otherwise a text input.
    """
    project = prefill.get("project", "").upper()
    known = {c.value for c in projects}
    if 0 < len(projects) <= MAX_CHOICES and (not project or project in known):
        project_field = _select("project", "Project", projects, project)
    else:
        project_field = _text_input(
            "project", "Project key", value=project, max_length=64, placeholder="e.g. ABC"
        )
    components = [
        _text_input(
            "summary", "Summary", value=prefill.get("summary", ""), max_length=_SUMMARY_LEN
        ),
        _text_input(
            "description",
            "Description",
            value=prefill.get("description", ""),
            paragraph=True,
            required=False,
        ),
        project_field,
        _text_input(
            "issuetype",
            "Issue type",
            value=prefill.get("type", ""),
            required=False,
            max_length=64,
            placeholder="e.g. Task (the project's default when empty)",
        ),
    ]
    return _modal(custom_id, title, components)


def add_to_issue_modal(*, custom_id: str, text: str) -> dict[str, Any]:
    """ "Add to Jira issue": which issue, and the message's text as the comment (editable)."""
    return _modal(
        custom_id,
        "Add to a Jira issue",
        [
            _text_input("issue", "Issue key", max_length=64, placeholder="e.g. ABC-123"),
            _text_input("text", "Comment", value=text, paragraph=True),
        ],
    )


def comment_modal(*, custom_id: str, issue_key: str) -> dict[str, Any]:
    """The "comment on an issue" form: one paragraph."""
    return _modal(
        custom_id,
        f"Comment on {issue_key}",
        [_text_input("text", "Comment", paragraph=True)],
    )
