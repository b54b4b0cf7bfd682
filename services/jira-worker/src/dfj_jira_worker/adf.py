"""Atlassian Document Format (ADF) to and from plain text.

Jira REST v3 carries rich text (descriptions, comment bodies) as ADF, a JSON tree::

    {"version": 1, "type": "doc", "content": [
        {"type": "paragraph", "content": [
            {"type": "text", "text": "see "},
            {"type": "text", "text": "https://x.y", "marks": [{"type": "link",
                                                              "attrs": {"href": "https://x.y"}}]},
            {"type": "hardBreak"}, ...]}]}

Block nodes (paragraph, heading, lists, codeBlock, blockquote, panel, table, …) hold other
nodes in ``content``; inline nodes (text, hardBreak, mention, emoji, inlineCard, date, status)
sit inside them. Text nodes must not be empty, and a ``link`` mark carries ``attrs.href``.

Two directions, both used where Discord and Jira meet:

- :func:`text_to_adf` — what a Discord user typed (a comment, a description) becomes a document
  Jira accepts: paragraphs split on blank lines, a single newline is a ``hardBreak``, and bare
  ``http(s)://`` URLs get a ``link`` mark so they stay clickable in Jira.
- :func:`adf_to_text` — any document Jira returns becomes plain text for an embed: paragraphs
  and blocks separated by a blank line, headings as their text, bullet items as ``- item`` and
  ordered items as ``1. item`` (nested lists indented by two spaces), blockquotes as ``> ``,
  code blocks as their text, mentions as ``@name``, emoji as their ``shortName``, inline cards
  as their URL, a linked text as ``text (url)`` unless it *is* the URL, dates as ``YYYY-MM-DD``.
  Unknown nodes contribute their text children, so a new node type degrades instead of
  vanishing. Jira's documents come from other people's clients: anything malformed (wrong
  types, missing keys, cycles of absurd depth) is skipped, and the function never raises.
  With ``limit`` the walk stops once enough text is collected (a huge comment costs no more
  than its excerpt) and the result is cut to ``limit`` characters, ending with "…".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["adf_to_text", "text_to_adf"]

ELLIPSIS: Final = "…"
#: Deeper trees are cut off here, so hostile nesting cannot exhaust the stack.
MAX_DEPTH: Final = 64

# A URL runs to the next whitespace or angle bracket/quote; trailing sentence punctuation is
# not part of it ("see https://x.y." links https://x.y).
_URL: Final = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING_PUNCT: Final = ".,;:!?'\")]}"
_BLANK_LINE: Final = re.compile(r"\n[ \t\f\v]*\n")
_MANY_NEWLINES: Final = re.compile(r"\n{3,}")

_INLINE: Final = frozenset(
    {
        "text",
        "hardBreak",
        "mention",
        "emoji",
        "inlineCard",
        "date",
        "status",
        "placeholder",
        "mediaInline",
        "inlineExtension",
    }
)
# Blocks whose children are blocks, joined like paragraphs.
_CONTAINERS: Final = frozenset(
    {
        "doc",
        "panel",
        "expand",
        "nestedExpand",
        "layoutSection",
        "layoutColumn",
        "bodiedExtension",
        "extensionFrame",
        "multiBodiedExtension",
        "decisionList",
        "taskList",
    }
)
_SKIPPED: Final = frozenset({"media", "mediaGroup", "mediaSingle", "extension", "placeholder"})


# --- text → ADF ---------------------------------------------------------------------------


def text_to_adf(text: str) -> dict[str, Any]:
    """An ADF document (version 1) for plain ``text``; blank text gives one without content."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p.strip("\n") for p in _BLANK_LINE.split(normalised)]
    content = [_paragraph(p) for p in paragraphs if p.strip()]
    return {"version": 1, "type": "doc", "content": content}


def _paragraph(text: str) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    for index, line in enumerate(text.split("\n")):
        if index:
            nodes.append({"type": "hardBreak"})
        nodes.extend(_linked(line))
    return {"type": "paragraph", "content": nodes}


def _linked(line: str) -> Iterable[dict[str, Any]]:
    """Text nodes of one line, bare URLs carrying a ``link`` mark (no empty text nodes)."""
    position = 0
    for match in _URL.finditer(line):
        url = _trim_url(match.group(0))
        if not _has_host(url):
            continue
        start, end = match.start(), match.start() + len(url)
        if start > position:
            yield {"type": "text", "text": line[position:start]}
        yield {"type": "text", "text": url, "marks": [{"type": "link", "attrs": {"href": url}}]}
        position = end
    if position < len(line):
        yield {"type": "text", "text": line[position:]}


def _trim_url(url: str) -> str:
    while url and url[-1] in _TRAILING_PUNCT:
        # Keep a closing parenthesis that closes one opened inside the URL (wiki links).
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _has_host(url: str) -> bool:
    rest = url.split("://", 1)[1] if "://" in url else ""
    return bool(rest) and rest[0] not in "/?#"


# --- ADF → text ---------------------------------------------------------------------------


def adf_to_text(doc: Any, *, limit: int | None = None) -> str:
    """Plain text of any ADF value (see the module docstring); never raises.

    A plain string (Jira REST v2 bodies) is returned as it is, a list is read as a document's
    content, and anything else gives "". With ``limit``, the result has at most ``limit``
    characters.
    """
    try:
        if isinstance(doc, str):
            text = doc
        else:
            walker = _Walker(None if limit is None else max(limit, 0) + 1)
            if isinstance(doc, Mapping):
                text = walker.block(doc, 0)
            elif isinstance(doc, list | tuple):
                text = walker.blocks(doc, 0)
            else:
                text = ""
        text = _MANY_NEWLINES.sub("\n\n", text.replace("\r\n", "\n")).strip()
    except Exception:  # a last resort: foreign input must never break a handler
        text = ""
    return text if limit is None else _clip(text, limit)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


class _Walker:
    """One conversion: the text budget left (None = unlimited) shared by every node."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.budget <= 0

    def spend(self, text: str) -> str:
        if self.budget is not None:
            self.budget -= len(text)
        return text

    # Blocks ------------------------------------------------------------------------------

    def block(self, node: Mapping[str, Any], depth: int) -> str:
        """The text of a block node (may span several lines)."""
        if depth > MAX_DEPTH or self.exhausted:
            return ""
        kind = node.get("type")
        if kind in _SKIPPED:
            return ""
        if kind in _INLINE:
            return self.inline(node, depth)
        render = self._BLOCKS.get(kind) if isinstance(kind, str) else None
        if render is not None:
            return render(self, node, depth + 1)
        # Containers and unknown blocks: their children, whatever they are.
        return self.blocks(_content(node), depth + 1)

    def blocks(self, content: Sequence[Any], depth: int, *, joiner: str = "\n\n") -> str:
        """Children that may be blocks or inline runs, blocks separated by ``joiner``."""
        parts: list[str] = []
        run: list[Mapping[str, Any]] = []
        for child in _nodes(content):
            if self.exhausted:
                break
            if _is_inline(child):
                run.append(child)
                continue
            if run:
                parts.append(self.inline_run(run, depth))
                run = []
            parts.append(self.block(child, depth))
        if run:
            parts.append(self.inline_run(run, depth))
        return joiner.join(p for p in parts if p.strip())

    def _text_block(self, node: Mapping[str, Any], depth: int) -> str:
        # paragraph, heading, codeBlock, taskItem, decisionItem: their inline text.
        return self.inline_run(_content(node), depth)

    def _rule(self, _node: Mapping[str, Any], _depth: int) -> str:
        return self.spend("---")

    def _card(self, node: Mapping[str, Any], _depth: int) -> str:
        return self.spend(_url_attr(node))

    def _quote(self, node: Mapping[str, Any], depth: int) -> str:
        inner = self.blocks(_content(node), depth)
        if not inner.strip():
            return ""
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))

    def _list(self, node: Mapping[str, Any], depth: int) -> str:
        ordered = node.get("type") == "orderedList"
        number = _start(node) if ordered else 0
        lines: list[str] = []
        for item in _nodes(_content(node)):
            if self.exhausted:
                break
            if item.get("type") == "listItem":
                text = self.blocks(_content(item), depth + 1, joiner="\n")
            else:
                text = self.block(item, depth + 1)
            if not text.strip():
                continue
            marker = f"{number}. " if ordered else "- "
            number += 1
            first, *rest = text.split("\n")
            lines.append(marker + first)
            lines.extend("  " + line if line else line for line in rest)
        return "\n".join(lines)

    def _table(self, node: Mapping[str, Any], depth: int) -> str:
        rows: list[str] = []
        for row in _nodes(_content(node)):
            cells = (
                self.blocks(_content(c), depth + 2, joiner=" ").replace("\n", " ")
                for c in _nodes(_content(row))
            )
            text = " | ".join(c for c in cells if c)
            if text:
                rows.append(text)
        return "\n".join(rows)

    _BLOCKS: Final[Mapping[str, Callable[[_Walker, Mapping[str, Any], int], str]]] = {
        "paragraph": _text_block,
        "heading": _text_block,
        "codeBlock": _text_block,
        "taskItem": _text_block,
        "decisionItem": _text_block,
        "rule": _rule,
        "blockCard": _card,
        "embedCard": _card,
        "blockquote": _quote,
        "bulletList": _list,
        "orderedList": _list,
        "table": _table,
    }

    # Inline ------------------------------------------------------------------------------

    def inline_run(self, content: Sequence[Any], depth: int) -> str:
        """Inline children concatenated; a block among them is put on its own line."""
        out: list[str] = []
        for child in _nodes(content):
            if self.exhausted:
                break
            if _is_inline(child):
                out.append(self.inline(child, depth))
            else:
                text = self.block(child, depth)
                if text:
                    out.append(f"\n{text}\n")
        return "".join(out)

    def inline(self, node: Mapping[str, Any], depth: int) -> str:
        """The text of an inline node."""
        if depth > MAX_DEPTH:
            return ""
        kind = node.get("type")
        if kind in {"placeholder", "mediaInline", "inlineExtension"}:
            return ""
        read = _INLINE_TEXT.get(kind) if isinstance(kind, str) else None
        if read is not None:
            return self.spend(read(node))
        # An unknown inline-looking node: its own text, else its children's.
        own = node.get("text")
        if isinstance(own, str):
            return self.spend(own)
        return self.inline_run(_content(node), depth + 1)


# --- small readers ------------------------------------------------------------------------


def _nodes(content: Sequence[Any]) -> Iterable[Mapping[str, Any]]:
    return (c for c in content if isinstance(c, Mapping))


def _content(node: Mapping[str, Any]) -> Sequence[Any]:
    content = node.get("content")
    return content if isinstance(content, list | tuple) else ()


def _attrs(node: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, Mapping) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _is_inline(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    if kind in _INLINE:
        return True
    # Unknown node types that carry text and no children behave like text.
    known = kind in _CONTAINERS or kind in _SKIPPED
    return not known and isinstance(node.get("text"), str) and not _content(node)


def _url_attr(node: Mapping[str, Any]) -> str:
    attrs = _attrs(node)
    url = _str(attrs.get("url"))
    if url:
        return url
    data = attrs.get("data")
    return _str(data.get("url")) if isinstance(data, Mapping) else ""


def _linked_text(node: Mapping[str, Any]) -> str:
    text = _str(node.get("text"))
    marks = node.get("marks")
    if not isinstance(marks, list):
        return text
    for mark in marks:
        if isinstance(mark, Mapping) and mark.get("type") == "link":
            href = _str(_attrs(mark).get("href"))
            if href and href != text:
                return f"{text} ({href})" if text else href
    return text


def _date(value: object) -> str:
    try:
        millis = int(value) if isinstance(value, str | int) and not isinstance(value, bool) else 0
        if not millis:
            return ""
        return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


def _start(node: Mapping[str, Any]) -> int:
    order = _attrs(node).get("order")
    if isinstance(order, int) and not isinstance(order, bool) and 0 <= order < 10**9:
        return order
    return 1


def _mention(node: Mapping[str, Any]) -> str:
    attrs = _attrs(node)
    name = _str(attrs.get("text")) or _str(attrs.get("displayName"))
    if not name:
        return "@user"
    return name if name.startswith("@") else f"@{name}"


def _emoji(node: Mapping[str, Any]) -> str:
    attrs = _attrs(node)
    return _str(attrs.get("shortName")) or _str(attrs.get("text"))


_INLINE_TEXT: Final[Mapping[str, Callable[[Mapping[str, Any]], str]]] = {
    "text": _linked_text,
    "hardBreak": lambda _node: "\n",
    "mention": _mention,
    "emoji": _emoji,
    "inlineCard": _url_attr,
    "date": lambda node: _date(_attrs(node).get("timestamp")),
    "status": lambda node: _str(_attrs(node).get("text")),
}
