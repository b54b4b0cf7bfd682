"""Packing notifications that wait for one channel into one Discord message.

Discord lets a channel take 5 messages per 5 seconds; a message may carry 10 embeds. When a
burst waits for a channel, posting the waiting notifications in order as one message each of
up to 10 embeds gets them there about ten times sooner, and in the same order.

Only plain notifications pack: a message with nothing but ``embeds``, ``components`` and
``allowed_mentions``, where every message of the pack has the same ``allowed_mentions``. The
pack keeps the embeds in order, within 10 embeds and 6,000 characters; it keeps the button
rows of the first issues up to Discord's 5 rows — a row whose ``custom_id`` is already in the
pack (the same issue twice) is left out, as Discord refuses repeated ids — and, when it shows
more than one issue, starts each button's label with the issue it acts on. Every embed keeps
its own link, so an issue whose buttons did not fit is still one click away.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from dfj_discord_worker.delivery import limits

__all__ = ["Pack", "pack", "packable"]

_PACKABLE_KEYS: Final = frozenset({"embeds", "components", "allowed_mentions"})
_SEPARATOR: Final = " · "


@dataclass(frozen=True, slots=True)
class Pack:
    """One message to post, made of the first ``size`` messages given."""

    body: dict[str, Any]
    size: int


def packable(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` may share a post with others."""
    embeds = message.get("embeds")
    return (
        set(message) <= _PACKABLE_KEYS
        and isinstance(embeds, list)
        and bool(embeds)
        and not limits.problems(message)
    )


def pack(messages: Sequence[Mapping[str, Any]], *, most: int | None = None) -> Pack:
    """The longest prefix of ``messages`` (at least the first, at most ``most``) that fits in
    one message, packed; the first alone, unchanged, when nothing else may join it."""
    if not messages:
        raise ValueError("nothing to pack")
    head = messages[0]
    limit = len(messages) if most is None else max(1, min(most, len(messages)))
    if limit == 1 or not packable(head):
        return Pack(copy.deepcopy(dict(head)), 1)
    embeds: list[Any] = list(head["embeds"])
    total = sum(limits.embed_text_length(e) for e in embeds)
    members: list[Mapping[str, Any]] = [head]
    for message in messages[1:limit]:
        if not packable(message) or message.get("allowed_mentions") != head.get("allowed_mentions"):
            break
        more = message["embeds"]
        size = sum(limits.embed_text_length(e) for e in more)
        if len(embeds) + len(more) > limits.EMBEDS or total + size > limits.EMBEDS_TOTAL:
            break
        embeds.extend(more)
        total += size
        members.append(message)
    if len(members) == 1:
        return Pack(copy.deepcopy(dict(head)), 1)
    body: dict[str, Any] = {"embeds": copy.deepcopy(embeds)}
    rows = _rows(members)
    if rows or "components" in head:
        body["components"] = rows
    if "allowed_mentions" in head:
        body["allowed_mentions"] = copy.deepcopy(head["allowed_mentions"])
    return Pack(body, len(members))


def _rows(members: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The button rows of the pack, in order, as many as fit, each label naming its issue."""
    rows: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    seen_links: set[str] = set()
    for member in members:
        for row in member.get("components") or []:
            if len(rows) == limits.ACTION_ROWS:
                return rows
            ids = set(limits.custom_ids({"components": [row]}))
            links = {str(c["url"]) for c in row["components"] if isinstance(c.get("url"), str)}
            if ids & seen_ids or (not ids and links and links <= seen_links):
                continue  # the same issue's row is in the pack already
            seen_ids |= ids
            seen_links |= links
            rows.append(_labelled(row, _subject(row)))
    return rows


def _subject(row: Mapping[str, Any]) -> str | None:
    """What a row's buttons act on: the part of their ``custom_id`` after the action
    (``assign-me:KEY``), or the last path segment of a link (``…/browse/KEY``)."""
    for component in row["components"]:
        custom_id = component.get("custom_id")
        if isinstance(custom_id, str) and ":" in custom_id:
            return custom_id.split(":", 1)[1] or None
    for component in row["components"]:
        url = component.get("url")
        if isinstance(url, str):
            last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
            return last or None
    return None


def _labelled(row: Mapping[str, Any], subject: str | None) -> dict[str, Any]:
    out = copy.deepcopy(dict(row))
    if subject is None:
        return out
    for component in out["components"]:
        label = component.get("label")
        if isinstance(label, str) and not label.startswith(subject):
            text = f"{subject}{_SEPARATOR}{label}"
            if len(text) > limits.BUTTON_LABEL:
                text = text[: limits.BUTTON_LABEL - 1] + "…"
            component["label"] = text
    return out
