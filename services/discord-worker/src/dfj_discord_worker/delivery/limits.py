"""Discord's message limits, checked before a message leaves (the jira-worker fits its own).

The discord-worker does not rewrite what it was asked to post; it packs several messages into
one and must keep the result within Discord's limits, and it refuses (dead-letters, with the
limit named) a message that breaks them instead of spending a request on a certain 400.
Lengths are code points, as Discord counts them. The 6,000 total counts the title,
description, field names and values, footer text and author name of all embeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "ACTION_ROWS",
    "BUTTON_LABEL",
    "EMBEDS",
    "EMBEDS_TOTAL",
    "custom_ids",
    "embed_text_length",
    "problems",
]

CONTENT: Final = 2000
EMBEDS: Final = 10
EMBEDS_TOTAL: Final = 6000
TITLE: Final = 256
DESCRIPTION: Final = 4096
FIELDS: Final = 25
FIELD_NAME: Final = 256
FIELD_VALUE: Final = 1024
FOOTER: Final = 2048
AUTHOR_NAME: Final = 256
ACTION_ROWS: Final = 5
ROW_COMPONENTS: Final = 5
BUTTON_LABEL: Final = 80
CUSTOM_ID: Final = 100
NONCE: Final = 25

ACTION_ROW: Final = 1
BUTTON: Final = 2


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _part(embed: Mapping[str, Any], key: str, inner: str) -> str:
    part = embed.get(key)
    return _text(part.get(inner)) if isinstance(part, Mapping) else ""


def _fields(embed: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    fields = embed.get("fields")
    return [f for f in fields if isinstance(f, Mapping)] if isinstance(fields, list) else []


def embed_text_length(embed: Mapping[str, Any]) -> int:
    """The characters of one embed that count toward the 6,000 total."""
    total = len(_text(embed.get("title"))) + len(_text(embed.get("description")))
    total += len(_part(embed, "footer", "text")) + len(_part(embed, "author", "name"))
    for field in _fields(embed):
        total += len(_text(field.get("name"))) + len(_text(field.get("value")))
    return total


def custom_ids(message: Mapping[str, Any]) -> list[str]:
    """Every ``custom_id`` of the message's components, in order."""
    out: list[str] = []
    for row in _rows(message):
        for component in _components(row):
            custom_id = component.get("custom_id")
            if isinstance(custom_id, str):
                out.append(custom_id)
    return out


def _rows(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = message.get("components")
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def _components(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    inner = row.get("components")
    return [c for c in inner if isinstance(c, Mapping)] if isinstance(inner, list) else []


def problems(message: Mapping[str, Any]) -> list[str]:
    """What in ``message`` breaks a Discord limit (empty when it may be sent)."""
    found: list[str] = []
    if len(_text(message.get("content"))) > CONTENT:
        found.append(f"content is over {CONTENT} characters")
    embeds = message.get("embeds") or []
    if not isinstance(embeds, list):
        return [*found, "embeds is not a list"]
    if len(embeds) > EMBEDS:
        found.append(f"{len(embeds)} embeds (at most {EMBEDS})")
    total = 0
    for index, embed in enumerate(embeds):
        if not isinstance(embed, Mapping):
            found.append(f"embed {index} is not an object")
            continue
        total += embed_text_length(embed)
        found.extend(_embed_problems(index, embed))
    if total > EMBEDS_TOTAL:
        found.append(f"embeds hold {total} characters (at most {EMBEDS_TOTAL})")
    rows = message.get("components") or []
    if not isinstance(rows, list):
        return [*found, "components is not a list"]
    if len(rows) > ACTION_ROWS:
        found.append(f"{len(rows)} action rows (at most {ACTION_ROWS})")
    for index, row in enumerate(rows):
        found.extend(_row_problems(index, row))
    ids = custom_ids(message)
    if len(ids) != len(set(ids)):
        found.append("custom_id values repeat")
    if not _text(message.get("content")) and not embeds:
        found.append("nothing to show (no content, no embeds)")
    return found


def _embed_problems(index: int, embed: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for name, text, limit in (
        ("title", _text(embed.get("title")), TITLE),
        ("description", _text(embed.get("description")), DESCRIPTION),
        ("footer", _part(embed, "footer", "text"), FOOTER),
        ("author", _part(embed, "author", "name"), AUTHOR_NAME),
    ):
        if len(text) > limit:
            found.append(f"embed {index} {name} is over {limit} characters")
    fields = _fields(embed)
    if len(fields) > FIELDS:
        found.append(f"embed {index} has {len(fields)} fields (at most {FIELDS})")
    for f, field in enumerate(fields):
        if not 0 < len(_text(field.get("name"))) <= FIELD_NAME:
            found.append(f"embed {index} field {f} name is empty or over {FIELD_NAME}")
        if not 0 < len(_text(field.get("value"))) <= FIELD_VALUE:
            found.append(f"embed {index} field {f} value is empty or over {FIELD_VALUE}")
    return found


def _row_problems(index: int, row: Any) -> list[str]:
    if not isinstance(row, Mapping) or row.get("type") != ACTION_ROW:
        return [f"component {index} is not an action row"]
    inner = row.get("components")
    if not isinstance(inner, list) or not all(isinstance(c, Mapping) for c in inner):
        return [f"action row {index} components are not a list of objects"]
    components = _components(row)
    found: list[str] = []
    if not 0 < len(components) <= ROW_COMPONENTS:
        found.append(f"action row {index} holds {len(components)} components (1 to 5)")
    for component in components:
        if component.get("type") != BUTTON:
            continue
        if len(_text(component.get("label"))) > BUTTON_LABEL:
            found.append(f"action row {index}: a button label is over {BUTTON_LABEL}")
        custom_id = component.get("custom_id")
        if isinstance(custom_id, str) and not 0 < len(custom_id) <= CUSTOM_ID:
            found.append(f"action row {index}: a custom_id is empty or over {CUSTOM_ID}")
    return found
