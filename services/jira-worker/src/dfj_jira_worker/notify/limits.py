"""Discord's message limits, and helpers that cut anything down to fit instead of failing.

Discord answers 400 to a message that breaks any of these, and the discord-worker sends our
messages as they are, so every message leaves the jira-worker already within them. Lengths are
counted in code points (Discord's API is Python and uses ``len``), so Python's ``len`` is the
right measure. The 6000 total counts the title, description, field names and values, footer
text and author name of *all* embeds of a message.

What cannot be cut meaningfully — a ``custom_id`` (we would route a click nowhere), a select
option's ``value``, a link button's or an embed's URL — is dropped instead, along with its
component.

Text shown as Markdown (embed descriptions and field values) is escaped first
(:func:`escape_markdown`), so a Jira summary or comment cannot format, mask a link or fake a
quote in our message; titles, footers and author names are not Markdown and stay as they are.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "ACTION_ROWS",
    "AUTHOR_NAME",
    "BUTTON_LABEL",
    "BUTTON_URL",
    "CONTENT",
    "CUSTOM_ID",
    "DESCRIPTION",
    "ELLIPSIS",
    "EMBEDS",
    "EMBEDS_TOTAL",
    "EMBED_URL",
    "FIELDS",
    "FIELD_NAME",
    "FIELD_VALUE",
    "FOOTER",
    "OPTION_TEXT",
    "ROW_COMPONENTS",
    "SELECT_OPTIONS",
    "SELECT_PLACEHOLDER",
    "THREAD_NAME",
    "TITLE",
    "embed_text_length",
    "escape_markdown",
    "fit_markdown",
    "fit_message",
    "truncate",
]

TITLE: Final = 256
DESCRIPTION: Final = 4096
FIELD_NAME: Final = 256
FIELD_VALUE: Final = 1024
FIELDS: Final = 25
FOOTER: Final = 2048
AUTHOR_NAME: Final = 256
EMBEDS_TOTAL: Final = 6000
EMBEDS: Final = 10
CONTENT: Final = 2000
ACTION_ROWS: Final = 5
ROW_COMPONENTS: Final = 5
CUSTOM_ID: Final = 100
BUTTON_LABEL: Final = 80
BUTTON_URL: Final = 512
EMBED_URL: Final = 2048
SELECT_OPTIONS: Final = 25
OPTION_TEXT: Final = 100
SELECT_PLACEHOLDER: Final = 150
THREAD_NAME: Final = 100

ELLIPSIS: Final = "…"
#: Shown where Discord demands a non-empty string (field names and values) and we have none.
BLANK: Final = "\u200b"

ACTION_ROW: Final = 1
BUTTON: Final = 2
STRING_SELECT: Final = 3
LINK_STYLE: Final = 5

# Characters that format anywhere (emphasis, code, spoilers, masked links, mentions and
# timestamps written as <@id> / <t:…>), and those that format only at the start of a line
# (headings, subtext, lists, quotes). A backslash before them shows them literally. URLs are
# left alone: a backslash inside one would break the link.
_INLINE_MARKUP: Final = frozenset("\\*_~`|[]<")
_LINE_START_MARKUP: Final = re.compile(r"^([ \t]*)([-+>#]|\d+\.)", re.MULTILINE)
_URL: Final = re.compile(r"https?://[^\s<>]+", re.IGNORECASE)


def truncate(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else cut and ended with "…"."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[: limit - 1].rstrip()
    # A cut right after a lone escaping backslash would escape the ellipsis: drop it too.
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut + ELLIPSIS


def escape_markdown(text: str) -> str:
    """``text`` with Discord Markdown neutralised (shown literally, nothing formatted)."""
    out: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        out.append(_escape_plain(text[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(_escape_plain(text[position:]))
    return _LINE_START_MARKUP.sub(_escape_line_start, "".join(out))


def _escape_plain(text: str) -> str:
    return "".join(f"\\{c}" if c in _INLINE_MARKUP else c for c in text)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker[0].isdigit():
        return f"{indent}{marker[:-1]}\\."
    return f"{indent}\\{marker}"


def fit_markdown(text: str, limit: int) -> str:
    """``text`` escaped for Markdown and cut to ``limit`` without splitting an escape."""
    escaped = escape_markdown(text)
    if len(escaped) <= limit:
        return escaped
    if limit <= 0:
        return ""
    # The longest prefix of the plain text whose escaped form leaves room for the ellipsis
    # (escaped length grows with the prefix, so a binary search finds it).
    low, high = 0, min(len(text), limit - 1)
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape_markdown(text[:middle].rstrip())) <= limit - 1:
            low = middle
        else:
            high = middle - 1
    return escape_markdown(text[:low].rstrip()) + ELLIPSIS


# --- whole messages -------------------------------------------------------------------------


def embed_text_length(embed: Mapping[str, Any]) -> int:
    """The characters of an embed that count toward the 6000 total."""
    total = len(_s(embed.get("title"))) + len(_s(embed.get("description")))
    total += len(_s(_m(embed.get("footer")).get("text")))
    total += len(_s(_m(embed.get("author")).get("name")))
    for field in _fields(embed):
        total += len(_s(field.get("name"))) + len(_s(field.get("value")))
    return total


def fit_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` within every limit above; never raises for JSON-shaped input."""
    out = copy.deepcopy(dict(message))
    if isinstance(out.get("content"), str):
        out["content"] = truncate(out["content"], CONTENT)
        if not out["content"]:
            del out["content"]
    embeds = [dict(e) for e in out.get("embeds") or () if isinstance(e, Mapping)][:EMBEDS]
    out["embeds"] = _fit_embeds(embeds)
    if "components" in out:
        out["components"] = _fit_rows(out.get("components"))
    return out


def _fit_embeds(embeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for embed in embeds:
        _fit_embed(embed)
    for embed in reversed(embeds):
        if sum(embed_text_length(e) for e in embeds) <= EMBEDS_TOTAL:
            break
        _shrink(embed, sum(embed_text_length(e) for e in embeds) - EMBEDS_TOTAL)
    return embeds


def _fit_embed(embed: dict[str, Any]) -> None:
    url = embed.get("url")
    if url is not None and (not isinstance(url, str) or not 0 < len(url) <= EMBED_URL):
        del embed["url"]  # a cut URL would lead somewhere else
    _fit_text(embed, "title", TITLE)
    _fit_text(embed, "description", DESCRIPTION)
    for key, inner, limit in (("footer", "text", FOOTER), ("author", "name", AUTHOR_NAME)):
        part = embed.get(key)
        if isinstance(part, Mapping):
            embed[key] = dict(part)
            _fit_text(embed[key], inner, limit)
            if inner not in embed[key]:
                del embed[key]
    if "fields" in embed:
        fields = []
        for field in _fields(embed)[:FIELDS]:
            fitted = dict(field)
            fitted["name"] = truncate(_s(field.get("name")), FIELD_NAME) or BLANK
            fitted["value"] = truncate(_s(field.get("value")), FIELD_VALUE) or BLANK
            fields.append(fitted)
        embed["fields"] = fields


def _shrink(embed: dict[str, Any], excess: int) -> None:
    """Take ``excess`` characters off one embed: description, then fields, footer, author, title."""
    description = _s(embed.get("description"))
    if excess > 0 and description:
        embed["description"] = truncate(description, max(len(description) - excess, 0))
        excess -= len(description) - len(embed["description"])
        if not embed["description"]:
            del embed["description"]
    fields = _fields(embed)
    while excess > 0 and fields:
        last = fields.pop()
        excess -= len(_s(last.get("name"))) + len(_s(last.get("value")))
    if "fields" in embed:
        embed["fields"] = fields
    for key, inner in (("footer", "text"), ("author", "name")):
        part = embed.get(key)
        if excess > 0 and isinstance(part, dict):
            excess -= len(_s(part.get(inner)))
            del embed[key]
    title = _s(embed.get("title"))
    if excess > 0 and title:
        embed["title"] = truncate(title, max(len(title) - excess, 1))


def _fit_text(obj: dict[str, Any], key: str, limit: int) -> None:
    if key not in obj:
        return
    value = truncate(_s(obj.get(key)), limit)
    if value:
        obj[key] = value
    else:
        del obj[key]  # Discord refuses empty strings where it accepts an absent key


def _fit_rows(rows: object) -> list[dict[str, Any]]:
    fitted: list[dict[str, Any]] = []
    for row in rows if isinstance(rows, list) else ():
        if len(fitted) == ACTION_ROWS:
            break
        if not isinstance(row, Mapping):
            continue
        parts = [c for c in map(_fit_component, _list(row.get("components"))) if c is not None]
        if any(p.get("type") != BUTTON for p in parts):
            parts = parts[:1]  # a select fills its row alone
        if parts:
            fitted.append({**row, "type": ACTION_ROW, "components": parts[:ROW_COMPONENTS]})
    return fitted


def _fit_component(component: object) -> dict[str, Any] | None:
    if not isinstance(component, Mapping):
        return None
    out = dict(component)
    if out.get("style") == LINK_STYLE:
        # A link button has a URL and no custom_id (Discord refuses one with both).
        out.pop("custom_id", None)
        url = out.get("url")
        if not isinstance(url, str) or not 0 < len(url) <= BUTTON_URL:
            return None
    else:
        out.pop("url", None)
        custom_id = out.get("custom_id")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= CUSTOM_ID:
            return None
    if "label" in out:
        out["label"] = truncate(_s(out.get("label")), BUTTON_LABEL) or ELLIPSIS
    if "placeholder" in out:
        out["placeholder"] = truncate(_s(out.get("placeholder")), SELECT_PLACEHOLDER)
    if "options" in out:
        options = [o for o in map(_fit_option, _list(out.get("options"))) if o is not None]
        if not options:
            return None
        out["options"] = options[:SELECT_OPTIONS]
        for key in ("min_values", "max_values"):
            if isinstance(out.get(key), int):
                out[key] = max(0, min(out[key], len(out["options"])))
    return out


def _fit_option(option: object) -> dict[str, Any] | None:
    if not isinstance(option, Mapping):
        return None
    value = option.get("value")
    if not isinstance(value, str) or not 0 < len(value) <= OPTION_TEXT:
        return None
    out = dict(option)
    out["label"] = truncate(_s(option.get("label")), OPTION_TEXT) or value
    if "description" in out:
        out["description"] = truncate(_s(out.get("description")), OPTION_TEXT)
        if not out["description"]:
            del out["description"]
    return out


def _s(value: object) -> str:
    return value if isinstance(value, str) else ""


def _m(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _fields(embed: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in _list(embed.get("fields")) if isinstance(f, Mapping)]
