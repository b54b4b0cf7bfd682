"""The answers to commands, as Discord-ready message bodies (pure).

A body is ``{"content"?, "embeds", "components", "allowed_mentions": {"parse": []}}`` — the
discord-worker sends it as it is, so every Discord limit is kept here: :func:`fit` clips each
text to its limit with "…", drops what does not fit (embeds past 10, fields past 25, rows past
5, buttons past 5 a row, options past 25, components whose custom id is too long) and trims the
embeds' total text to 6000 characters. It never fails, whatever Jira returned. Nobody is ever
pinged (``allowed_mentions`` parses nothing), so showing ``<@id>`` only names a member.

Jira values are read leniently (a missing field shows as "—" or "None"): what Jira returns is
other people's data, and a half-filled issue is no reason to fail an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from dfj_common.storage import Subscription
from dfj_jira_worker.adf import adf_to_text
from dfj_jira_worker.commands.suggest import Suggestion

__all__ = [
    "BLUE",
    "GREEN",
    "MAX_SELECT_OPTIONS",
    "assigned",
    "browse_url",
    "busy",
    "comment_added",
    "comment_hint",
    "created",
    "draft_expired",
    "draft_offered",
    "fit",
    "forbidden",
    "issue_view",
    "link_prompt",
    "message_link",
    "no_text_to_suggest",
    "not_connected",
    "search_results",
    "site_unavailable",
    "subscribed",
    "subscription_list",
    "text",
    "transition_picker",
    "transitioned",
    "unknown_transition",
    "unsubscribed",
    "unsupported",
    "watching",
]

ELLIPSIS: Final = "…"
CONTENT: Final = 2000
EMBEDS: Final = 10
EMBED_TITLE: Final = 256
EMBED_DESCRIPTION: Final = 4096
EMBED_FIELDS: Final = 25
FIELD_NAME: Final = 256
FIELD_VALUE: Final = 1024
FOOTER: Final = 2048
AUTHOR: Final = 256
EMBEDS_TOTAL: Final = 6000
ROWS: Final = 5
ROW_BUTTONS: Final = 5
CUSTOM_ID: Final = 100
BUTTON_LABEL: Final = 80
MAX_SELECT_OPTIONS: Final = 25
OPTION_TEXT: Final = 100
PLACEHOLDER: Final = 150
URL: Final = 512

_ACTION_ROW: Final = 1
_BUTTON: Final = 2
_STRING_SELECT: Final = 3
_PRIMARY: Final = 1
_SECONDARY: Final = 2
_LINK: Final = 5

BLUE: Final = 0x2684FF
GREEN: Final = 0x36B37E
YELLOW: Final = 0xFFAB00
GREY: Final = 0x6B778C
RED: Final = 0xDE350B
_STATUS_COLOURS: Final = {"new": GREY, "indeterminate": BLUE, "done": GREEN}

_DESCRIPTION_EXCERPT: Final = 700
_SEARCH_LINE: Final = 180

DISCORD_WEB: Final = "https://discord.com"


def message_link(guild_id: str, channel_id: str, message_id: str) -> str:
    """The Discord link that opens a message."""
    return f"{DISCORD_WEB}/channels/{guild_id}/{channel_id}/{message_id}"


# --- limits -----------------------------------------------------------------------------------


def clip(value: Any, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters, ending with "…" when cut."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def _fit_field(field: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": clip(field.get("name") or "—", FIELD_NAME),
        "value": clip(field.get("value") or "—", FIELD_VALUE),
    }
    if field.get("inline"):
        out["inline"] = True
    return out


def _fit_embed(embed: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in embed.items():
        if key == "title":
            out[key] = clip(value, EMBED_TITLE)
        elif key == "description":
            out[key] = clip(value, EMBED_DESCRIPTION)
        elif key == "fields":
            out[key] = [_fit_field(f) for f in list(value)[:EMBED_FIELDS]]
        elif key == "footer":
            out[key] = {**value, "text": clip(value.get("text"), FOOTER)}
        elif key == "author":
            out[key] = {**value, "name": clip(value.get("name"), AUTHOR)}
        elif key == "url":
            if isinstance(value, str) and len(value) <= URL:
                out[key] = value
        else:
            out[key] = value
    return out


def _budgeted(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return clip(text, budget) if budget > 0 else ""


def _fit_total(embeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spend the 6000-character total in reading order: title, description, fields, footer.

    Whatever comes after the budget ran out is clipped or dropped; an embed left with no text
    is dropped.
    """
    budget = EMBEDS_TOTAL
    out: list[dict[str, Any]] = []
    for embed in embeds:
        trimmed = dict(embed)
        for key in ("title", "description"):
            if key in trimmed:
                trimmed[key] = _budgeted(trimmed[key], budget)
                budget -= len(trimmed[key])
                if not trimmed[key]:
                    del trimmed[key]
        if "fields" in trimmed:
            kept = []
            for f in trimmed["fields"]:
                size = len(f["name"]) + len(f["value"])
                if size > budget:
                    break
                kept.append(f)
                budget -= size
            trimmed["fields"] = kept
        for key, part in (("author", "name"), ("footer", "text")):
            if key in trimmed:
                text = _budgeted(trimmed[key].get(part, ""), budget)
                budget -= len(text)
                if text:
                    trimmed[key] = {**trimmed[key], part: text}
                else:
                    del trimmed[key]
        if any(trimmed.get(k) for k in ("title", "description", "fields", "footer", "author")):
            out.append(trimmed)
    return out


def _fit_component(component: Mapping[str, Any]) -> dict[str, Any] | None:
    custom_id = component.get("custom_id")
    if custom_id is not None and not 0 < len(str(custom_id)) <= CUSTOM_ID:
        return None
    out = dict(component)
    if "label" in out:
        out["label"] = clip(out["label"], BUTTON_LABEL)
    if "url" in out and len(str(out["url"])) > URL:
        return None
    if "placeholder" in out:
        out["placeholder"] = clip(out["placeholder"], PLACEHOLDER)
    if "options" in out:
        options = [
            {
                **o,
                "label": clip(o.get("label") or "—", OPTION_TEXT),
                "value": str(o.get("value", "")),
                **(
                    {"description": clip(o["description"], OPTION_TEXT)}
                    if o.get("description")
                    else {}
                ),
            }
            for o in list(out["options"])[:MAX_SELECT_OPTIONS]
            if 0 < len(str(o.get("value", ""))) <= OPTION_TEXT
        ]
        if not options:
            return None
        out["options"] = options
    return out


def _fit_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        children = [_fit_component(c) for c in list(row.get("components", []))[:ROW_BUTTONS]]
        kept = [c for c in children if c is not None]
        if kept:
            out.append({"type": _ACTION_ROW, "components": kept})
        if len(out) == ROWS:
            break
    return out


def fit(message: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` within every Discord limit (see the module docstring); never raises."""
    out: dict[str, Any] = {"allowed_mentions": {"parse": []}}
    content = message.get("content")
    if content:
        out["content"] = clip(content, CONTENT)
    embeds = [_fit_embed(e) for e in list(message.get("embeds", []))[:EMBEDS]]
    out["embeds"] = _fit_total(embeds)
    out["components"] = _fit_rows(list(message.get("components", [])))
    if "flags" in message:
        out["flags"] = message["flags"]
    return out


# --- building blocks --------------------------------------------------------------------------


def text(content: str, *, components: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A plain answer."""
    return fit({"content": content, "components": list(components)})


def _row(*components: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": _ACTION_ROW, "components": list(components)}


def _button(label: str, custom_id: str, *, primary: bool = False) -> dict[str, Any]:
    return {
        "type": _BUTTON,
        "style": _PRIMARY if primary else _SECONDARY,
        "label": label,
        "custom_id": custom_id,
    }


def _link_button(label: str, url: str) -> dict[str, Any]:
    return {"type": _BUTTON, "style": _LINK, "label": label, "url": url}


def browse_url(site_url: str, key: str) -> str:
    """The issue's page in Jira."""
    return f"{site_url.rstrip('/')}/browse/{quote(key, safe='')}"


def _field(fields: Mapping[str, Any], name: str, part: str = "name") -> str | None:
    value = fields.get(name)
    if isinstance(value, Mapping):
        shown = value.get(part)
        return shown if isinstance(shown, str) and shown else None
    return None


def _fields(issue: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = issue.get("fields")
    return fields if isinstance(fields, Mapping) else {}


def _md(value: str) -> str:
    """Text safe inside a markdown link label (no brackets that would end it)."""
    return value.replace("[", "(").replace("]", ")")


# --- answers ----------------------------------------------------------------------------------


def not_connected() -> dict[str, Any]:
    return text(
        "This server isn't connected to a Jira site yet. A member with **Manage Server** can "
        "connect it with `/jira connect` (the code comes from the app's page in Jira)."
    )


def site_unavailable() -> dict[str, Any]:
    return text(
        "The Jira site this server is connected to has disabled or removed the app, so I "
        "can't reach it. A Jira admin can enable it again."
    )


def link_prompt(reason: str | None = None) -> dict[str, Any]:
    """Ask the user to link their Jira account (the linker handles the button)."""
    lead = reason or "Link your Jira account first, so I can act in Jira as you."
    return text(
        f"{lead} Your Jira permissions then decide what you can see and do.",
        components=[_row(_button("Link your Jira account", "link:start", primary=True))],
    )


_CAPABILITY_WORDS: Final = {
    "view": "look up Jira issues",
    "create": "create Jira issues",
    "act": "change Jira issues",
    "manage": "manage this channel's Jira subscriptions",
}


def forbidden(capability: str) -> dict[str, Any]:
    what = _CAPABILITY_WORDS.get(capability, "do that")
    extra = (
        " That needs **Manage Server** or a role the server allows for it."
        if capability == "manage"
        else " This server allows that only for some roles."
    )
    return text(f"You can't {what} here.{extra}")


def busy() -> dict[str, Any]:
    return text("Jira is busy, try again in a moment.")


def unsupported(what: str) -> dict[str, Any]:
    return text(f"I can't handle {what} (any more). Try `/jira help`.")


def created(key: str, summary: str, url: str) -> dict[str, Any]:
    """The created issue, linked."""
    return fit(
        {
            "content": f"Created [{_md(key)}]({url}): {summary}",
            "components": [_row(_link_button("Open in Jira", url))],
        }
    )


def draft_expired() -> dict[str, Any]:
    return text(
        "This draft has expired (drafts last a few minutes). Run *Create issue from message* "
        "on the message again to get fresh suggestions."
    )


def no_text_to_suggest() -> dict[str, Any]:
    return text("That message has no text I could turn into an issue.")


def draft_offered(
    draft_id: str, suggestion: Suggestion, *, project: str | None, minutes: int
) -> dict[str, Any]:
    """The suggested fields and the "Review and create" button (the gateway opens the form)."""
    fields = [
        {"name": "Project", "value": project or "choose in the form", "inline": True},
        {"name": "Type", "value": suggestion.issue_type or "—", "inline": True},
        {"name": "Priority", "value": suggestion.priority or "—", "inline": True},
    ]
    embed = {
        "title": suggestion.summary,
        "description": clip(suggestion.description, 500),
        "color": BLUE,
        "fields": fields,
        "footer": {"text": f"Suggested fields; you can edit them. Expires in {minutes} minutes."},
    }
    return fit(
        {
            "content": "Here is a draft issue from that message:",
            "embeds": [embed],
            "components": [
                _row(_button("Review and create", f"draft-review:{draft_id}", primary=True))
            ],
        }
    )


def issue_view(
    issue: Mapping[str, Any], transitions: Sequence[Mapping[str, Any]], *, site_url: str
) -> dict[str, Any]:
    """An issue with its status, people and the actions the user may take on it."""
    key = str(issue.get("key") or "")
    fields = _fields(issue)
    url = browse_url(site_url, key)
    status = fields.get("status")
    category = status.get("statusCategory", {}).get("key") if isinstance(status, Mapping) else None
    embed: dict[str, Any] = {
        "title": f"{key}: {fields['summary']}" if fields.get("summary") else key,
        "url": url,
        "color": _STATUS_COLOURS.get(str(category), BLUE),
        "fields": [
            {"name": "Status", "value": _field(fields, "status") or "—", "inline": True},
            {
                "name": "Assignee",
                "value": _field(fields, "assignee", "displayName") or "Unassigned",
                "inline": True,
            },
            {"name": "Priority", "value": _field(fields, "priority") or "None", "inline": True},
            {"name": "Type", "value": _field(fields, "issuetype") or "—", "inline": True},
        ],
    }
    description = adf_to_text(fields.get("description"), limit=_DESCRIPTION_EXCERPT)
    if description:
        embed["description"] = description
    project = fields.get("project")
    if isinstance(project, Mapping) and project.get("name"):
        embed["footer"] = {"text": f"{project.get('name')} ({project.get('key') or '?'})"}
    rows = []
    picker = _transition_select(key, transitions)
    if picker is not None:
        rows.append(picker)
    rows.append(
        _row(
            _button("Assign to me", f"assign-me:{key}", primary=True),
            _button("Comment", f"comment:{key}"),
            _button("Watch", f"watch:{key}"),
            _link_button("Open in Jira", url),
        )
    )
    return fit({"embeds": [embed], "components": rows})


def _transition_select(key: str, transitions: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    options = []
    for t in transitions[:MAX_SELECT_OPTIONS]:
        ident, name = t.get("id"), t.get("name")
        if not isinstance(ident, str) or not ident:
            continue
        option: dict[str, Any] = {"label": name or ident, "value": ident}
        target = t.get("to")
        if isinstance(target, Mapping) and target.get("name"):
            option["description"] = f"→ {target['name']}"
        options.append(option)
    if not options:
        return None
    return _row(
        {
            "type": _STRING_SELECT,
            "custom_id": f"transition:{key}",
            "placeholder": "Move to…",
            "options": options,
            "min_values": 1,
            "max_values": 1,
        }
    )


def transition_picker(key: str, transitions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The transitions the user may take, as a select; or why there are none."""
    picker = _transition_select(key, transitions)
    if picker is None:
        return text(f"You can't move {key} anywhere right now (no transitions available to you).")
    return fit({"content": f"Move {key} to:", "components": [picker]})


def _transition_names(transitions: Sequence[Mapping[str, Any]]) -> str:
    names = [str(t.get("name")) for t in transitions if t.get("name")]
    return ", ".join(f"`{n}`" for n in names[:MAX_SELECT_OPTIONS]) or "none"


def unknown_transition(
    key: str, wanted: str, transitions: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    return text(
        f"{key} has no transition `{clip(wanted, 60)}` available to you. "
        f"Available: {_transition_names(transitions)}."
    )


def transitioned(key: str, transition: Mapping[str, Any], *, site_url: str) -> dict[str, Any]:
    target = transition.get("to")
    where = target.get("name") if isinstance(target, Mapping) else None
    name = where or transition.get("name") or "its next status"
    url = browse_url(site_url, key)
    return fit(
        {
            "content": f"Moved [{_md(key)}]({url}) to **{name}**.",
            "components": [_row(_link_button("Open in Jira", url))],
        }
    )


def assigned(key: str, *, to_user: str | None, site_url: str) -> dict[str, Any]:
    """``to_user``: None for the asking user, "" for nobody, else a Discord user id."""
    url = browse_url(site_url, key)
    if to_user is None:
        who = "you"
    elif to_user == "":
        who = "nobody (unassigned)"
    else:
        who = f"<@{to_user}>"
    return text(f"Assigned [{_md(key)}]({url}) to {who}.")


def comment_added(key: str, comment_id: str | None, *, site_url: str) -> dict[str, Any]:
    url = browse_url(site_url, key)
    if comment_id:
        url += f"?focusedCommentId={quote(comment_id, safe='')}"
    return fit(
        {
            "content": f"Comment added to [{_md(key)}]({url}).",
            "components": [_row(_link_button("Open in Jira", url))],
        }
    )


def comment_hint(key: str) -> dict[str, Any]:
    return text(f"To comment on {key}, run `/jira comment key:{key}` (a form opens).")


def watching(key: str, *, site_url: str) -> dict[str, Any]:
    return text(f"You're now watching [{_md(key)}]({browse_url(site_url, key)}).")


def search_results(
    jql: str, result: Mapping[str, Any], *, site_url: str, limit: int = 10
) -> dict[str, Any]:
    """The first page of a search, one line per issue."""
    issues = result.get("issues")
    found = [i for i in issues if isinstance(i, Mapping)] if isinstance(issues, list) else []
    if not found:
        return text(f"No issues match `{clip(jql, 200)}` (that you can see).")
    lines = []
    for issue in found[:limit]:
        key = str(issue.get("key") or issue.get("id") or "?")
        fields = _fields(issue)
        parts = [f"[{_md(key)}]({browse_url(site_url, key)})", str(fields.get("summary") or "")]
        status = _field(fields, "status")
        if status:
            parts.append(f"· {status}")
        assignee = _field(fields, "assignee", "displayName")
        if assignee:
            parts.append(f"· {assignee}")
        lines.append(clip(" ".join(p for p in parts if p), _SEARCH_LINE))
    embed: dict[str, Any] = {
        "title": f"Issues matching {jql}",
        "description": "\n".join(lines),
        "color": BLUE,
    }
    components = []
    if result.get("isLast") is False or len(found) > limit:
        embed["footer"] = {"text": f"The first {min(len(found), limit)} results."}
        search = f"{site_url.rstrip('/')}/issues/?jql={quote(jql, safe='')}"
        components.append(_row(_link_button("See all in Jira", search)))
    return fit({"embeds": [embed], "components": components})


def _describe(subscription: Subscription) -> str:
    parts = [f"events: {', '.join(subscription.event_types)}"]
    if subscription.issue_types:
        parts.append(f"issue types: {', '.join(subscription.issue_types)}")
    if subscription.jql:
        parts.append(f"JQL: `{clip(subscription.jql, 300)}`")
    if subscription.delivery_mode == "thread":
        parts.append("one thread per issue")
    return "\n".join(parts)


def subscribed(subscription: Subscription, *, existed: bool = False) -> dict[str, Any]:
    lead = (
        "This channel already has that subscription"
        if existed
        else f"This channel now gets updates from **{subscription.project_key}**"
    )
    return fit(
        {
            "content": f"{lead} (id `{subscription.id}`).",
            "embeds": [
                {
                    "title": f"{subscription.project_key} → this channel",
                    "description": _describe(subscription),
                    "color": GREEN,
                }
            ],
        }
    )


def unsubscribed(removed: Sequence[Subscription], target: str) -> dict[str, Any]:
    if not removed:
        return text(
            f"This channel has no subscription `{clip(target, 64)}` "
            "(an id from `/jira subscriptions`, or a project key)."
        )
    projects = ", ".join(dict.fromkeys(s.project_key for s in removed))
    count = "1 subscription" if len(removed) == 1 else f"{len(removed)} subscriptions"
    return text(f"Removed {count} ({projects}) from this channel.")


def subscription_list(subscriptions: Sequence[Subscription]) -> dict[str, Any]:
    if not subscriptions:
        return text("This channel has no Jira subscriptions. Add one with `/jira subscribe`.")
    fields = [
        {"name": f"{s.project_key} · {s.id}", "value": _describe(s)}
        for s in subscriptions[:EMBED_FIELDS]
    ]
    embed: dict[str, Any] = {
        "title": "Jira subscriptions of this channel",
        "color": BLUE,
        "fields": fields,
    }
    if len(subscriptions) > EMBED_FIELDS:
        embed["footer"] = {"text": f"{len(subscriptions) - EMBED_FIELDS} more not shown."}
    return fit({"embeds": [embed]})
