"""Just enough Atlassian Document Format (ADF) for the simulator.

REST v3 takes and returns rich text (``description``, comment ``body``) as ADF documents;
webhooks and ``renderedFields`` show it as plain text or HTML. The simulator keeps ADF as it was
given and derives text and HTML from its ``text`` nodes, paragraph by paragraph.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = ["document", "is_document", "to_html", "to_text"]


def document(text: str) -> dict[str, Any]:
    """An ADF document with one paragraph per line of ``text``."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        for line in text.split("\n")
        if line
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def is_document(value: object) -> bool:
    """Whether ``value`` has the shape of an ADF document (``type: doc``, ``version: 1``)."""
    return (
        isinstance(value, Mapping)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
    )


def _block_texts(node: Mapping[str, Any]) -> list[str]:
    """The text of each top-level block of ``node`` (nested inline text joined)."""
    blocks: list[str] = []
    for child in node.get("content") or ():
        if isinstance(child, Mapping):
            blocks.append(_inline_text(child))
    return blocks


def _inline_text(node: Mapping[str, Any]) -> str:
    if node.get("type") == "text":
        text = node.get("text")
        return text if isinstance(text, str) else ""
    if node.get("type") == "hardBreak":
        return "\n"
    parts = [_inline_text(c) for c in node.get("content") or () if isinstance(c, Mapping)]
    return "".join(parts)


def to_text(doc: Mapping[str, Any] | None) -> str:
    """The plain text of ``doc``: blocks separated by newlines."""
    if doc is None:
        return ""
    return "\n".join(_block_texts(doc))


def to_html(doc: Mapping[str, Any] | None) -> str:
    """``doc`` rendered the way ``renderedFields`` shows it: escaped text in ``<p>`` blocks."""
    if doc is None:
        return ""
    return "".join(f"<p>{html.escape(text)}</p>" for text in _block_texts(doc))
