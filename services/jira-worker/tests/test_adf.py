"""ADF ↔ plain text: Jira-valid documents out, readable text in, and no input that breaks it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from dfj_jira_worker.adf import MAX_DEPTH, adf_to_text, text_to_adf


def para(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def link(href: str) -> dict[str, Any]:
    return {"type": "link", "attrs": {"href": href}}


def doc(*content: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "type": "doc", "content": list(content)}


def item(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "listItem", "content": list(content)}


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from walk(child)


# --- text → ADF ---------------------------------------------------------------------------


def test_plain_text_is_one_paragraph_of_one_text_node() -> None:
    """The simplest input gives the simplest valid document."""
    assert text_to_adf("hello") == doc(para(text("hello")))


def test_blank_lines_split_paragraphs_and_single_newlines_are_hard_breaks() -> None:
    """A blank line (even with spaces on it) starts a paragraph; a newline inside one breaks."""
    got = text_to_adf("one\ntwo\n\n  \n\nthree\r\nfour")
    assert got == doc(
        para(text("one"), {"type": "hardBreak"}, text("two")),
        para(text("three"), {"type": "hardBreak"}, text("four")),
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "see https://x.atlassian.net/browse/A-1",
            [text("see "), "https://x.atlassian.net/browse/A-1"],
        ),
        ("http://a.b/c?d=1&e=2#f end", ["http://a.b/c?d=1&e=2#f", text(" end")]),
        ("(https://a.b/c).", [text("("), "https://a.b/c", text(").")]),
        ("https://en.wikipedia.org/wiki/A_(b)", ["https://en.wikipedia.org/wiki/A_(b)"]),
        (
            "two https://a.b and https://c.d!",
            [text("two "), "https://a.b", text(" and "), "https://c.d", text("!")],
        ),
        ("<https://a.b> quiet", [text("<"), "https://a.b", text("> quiet")]),
        ("HTTPS://UPPER.CASE/x", ["HTTPS://UPPER.CASE/x"]),
    ],
)
def test_bare_urls_get_a_link_mark(line: str, expected: list[Any]) -> None:
    """A URL becomes its own text node with a link to itself; punctuation around it stays text."""
    nodes = [text(e, link(e)) if isinstance(e, str) else e for e in expected]
    assert text_to_adf(line) == doc(para(*nodes))


@pytest.mark.parametrize("line", ["https://", "http:///path", "ftp://a.b/c", "mailto:a@b.c"])
def test_things_that_are_not_web_urls_stay_text(line: str) -> None:
    """Only http(s) URLs with a host are linked."""
    assert text_to_adf(line) == doc(para(text(line)))


@pytest.mark.parametrize("blank", ["", "   ", "\n\n", "\r\n \r\n", "\t"])
def test_blank_text_gives_an_empty_document(blank: str) -> None:
    """Nothing to say is a document with no content, not an empty text node."""
    assert text_to_adf(blank) == {"version": 1, "type": "doc", "content": []}


@pytest.mark.parametrize(
    "sample",
    [
        "a\n\n\n\nb",
        "\n\nleading and trailing\n\n",
        "emoji 🎉 and ZWJ 👩‍💻 and RTL שלום",
        "x" * 10_000,
        "line\n" * 500,
        "https://a.b" * 20,
        "\x00 control \x1b chars",
    ],
)
def test_documents_never_hold_empty_text_nodes_and_survive_json(sample: str) -> None:
    """Jira refuses empty text nodes; every node has a type and the document is plain JSON."""
    got = text_to_adf(sample)
    assert got["version"] == 1
    assert got["type"] == "doc"
    for node in walk(got):
        assert isinstance(node["type"], str)
        if node["type"] == "text":
            assert node["text"]
    assert json.loads(json.dumps(got)) == got


@pytest.mark.parametrize(
    "sample",
    [
        "hello",
        "one\ntwo",
        "para one\n\npara two\nwith a break",
        "see https://x.atlassian.net/browse/A-1 now",
        "emoji 🎉",
    ],
)
def test_text_survives_a_round_trip(sample: str) -> None:
    """What a user typed reads back the same from the document made of it."""
    assert adf_to_text(text_to_adf(sample)) == sample


# --- ADF → text ---------------------------------------------------------------------------


def test_a_rich_document_reads_as_plain_text() -> None:
    """Headings, lists, code, quotes, mentions, emoji, cards, links, tables and dates."""
    rich = doc(
        {"type": "heading", "attrs": {"level": 2}, "content": [text("Title")]},
        {
            "type": "bulletList",
            "content": [
                item(
                    para(text("one")),
                    {"type": "orderedList", "content": [item(para(text("sub")))]},
                ),
                item(
                    para(
                        {"type": "mention", "attrs": {"id": "5b10", "text": "@Ann Lee"}},
                        text(" thanks "),
                        {"type": "emoji", "attrs": {"shortName": ":tada:", "text": "🎉"}},
                    )
                ),
            ],
        },
        {"type": "orderedList", "attrs": {"order": 3}, "content": [item(para(text("c")))]},
        {"type": "codeBlock", "attrs": {"language": "py"}, "content": [text("x = 1\ny = 2")]},
        {"type": "blockquote", "content": [para(text("q1")), para(text("q2"))]},
        {"type": "rule"},
        para(
            {"type": "inlineCard", "attrs": {"url": "https://c.d/1"}},
            text(" and "),
            text("the docs", link("https://e.f")),
            text(" on "),
            {"type": "date", "attrs": {"timestamp": "1700000000000"}},
            text(" "),
            {"type": "status", "attrs": {"text": "IN PROGRESS", "color": "blue"}},
        ),
        {
            "type": "table",
            "content": [
                {
                    "type": "tableRow",
                    "content": [
                        {"type": "tableHeader", "content": [para(text("h1"))]},
                        {"type": "tableHeader", "content": [para(text("h2"))]},
                    ],
                },
                {
                    "type": "tableRow",
                    "content": [
                        {"type": "tableCell", "content": [para(text("a"))]},
                        {"type": "tableCell", "content": [para(text("b"))]},
                    ],
                },
            ],
        },
        {"type": "panel", "attrs": {"panelType": "info"}, "content": [para(text("note"))]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "m"}}]},
        {"type": "blockCard", "attrs": {"url": "https://g.h/2"}},
    )
    assert adf_to_text(rich) == "\n".join(
        [
            "Title",
            "",
            "- one",
            "  1. sub",
            "- @Ann Lee thanks :tada:",
            "",
            "3. c",
            "",
            "x = 1",
            "y = 2",
            "",
            "> q1",
            ">",
            "> q2",
            "",
            "---",
            "",
            "https://c.d/1 and the docs (https://e.f) on 2023-11-14 IN PROGRESS",
            "",
            "h1 | h2",
            "a | b",
            "",
            "note",
            "",
            "https://g.h/2",
        ]
    )


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"type": "mention", "attrs": {"id": "1", "text": "Bo"}}, "@Bo"),
        ({"type": "mention", "attrs": {"id": "1"}}, "@user"),
        ({"type": "emoji", "attrs": {"text": "🙂"}}, "🙂"),
        ({"type": "hardBreak"}, ""),
        ({"type": "inlineCard", "attrs": {"data": {"url": "https://j.k"}}}, "https://j.k"),
        ({"type": "date", "attrs": {"timestamp": "not a number"}}, ""),
        ({"type": "date", "attrs": {"timestamp": 10**30}}, ""),
        ({"type": "placeholder", "attrs": {"text": "Type here"}}, ""),
        (text("https://same.url", link("https://same.url")), "https://same.url"),
        (text("x", {"type": "strong"}, "not a mark"), "x"),  # type: ignore[arg-type]
    ],
)
def test_inline_nodes(node: dict[str, Any], expected: str) -> None:
    """Each inline node kind in a paragraph reads as documented."""
    assert adf_to_text(doc(para(node))) == expected


def test_unknown_nodes_give_their_text_children() -> None:
    """A node type added to ADF later degrades to its text, block or inline."""
    future = doc(
        {"type": "fancyBlock", "content": [para(text("inside"))]},
        para(text("a "), {"type": "fancyInline", "text": "b"}, text(" c")),
        para({"type": "wrapper", "content": [text("deep")]}),
    )
    assert adf_to_text(future) == "inside\n\na b c\n\ndeep"


def test_a_plain_string_or_a_content_list_is_accepted() -> None:
    """REST v2 bodies are strings; a bare content list reads like a document."""
    assert adf_to_text("  v2 body  ") == "v2 body"
    assert adf_to_text([para(text("x")), para(text("y"))]) == "x\n\ny"


@pytest.mark.parametrize(
    "junk",
    [
        None,
        42,
        3.5,
        True,
        b"bytes",
        {},
        {"type": "doc"},
        {"type": "doc", "content": "not a list"},
        {"type": "doc", "content": [None, 1, "s", [], {"no": "type"}]},
        {"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text"}]}]},
        {"type": "doc", "content": [{"type": "text", "text": 5}]},
        {"type": "doc", "content": [{"type": 7, "content": [text("x")]}]},
        {"type": "doc", "content": [{"type": "mention", "attrs": "nope"}]},
        {"type": "doc", "content": [{"type": "orderedList", "attrs": {"order": "9"}}]},
        {"type": "doc", "content": [{"type": "table", "content": [{"type": "tableRow"}]}]},
        {"type": "doc", "content": [text("x", {"type": "link", "attrs": None})]},
    ],
)
def test_malformed_input_never_raises(junk: Any) -> None:
    """Broken values give text (possibly empty), never an exception."""
    assert isinstance(adf_to_text(junk), str)
    assert isinstance(adf_to_text(junk, limit=5), str)


def test_hostile_nesting_is_cut_off_not_a_recursion_error() -> None:
    """Ten thousand nested blockquotes read without exhausting the stack."""
    node: dict[str, Any] = para(text("bottom"))
    for _ in range(10_000):
        node = {"type": "blockquote", "content": [node]}
    assert adf_to_text(doc(node)) == ""  # the text is below the cut, and no "> > >" is left
    # The rest of the document still reads (the cut is local, not a failure of the whole).
    assert adf_to_text(doc(para(text("top")), node, para(text("end")))) == "top\n\nend"
    shallow: dict[str, Any] = para(text("bottom"))
    for _ in range(MAX_DEPTH // 4):
        shallow = {"type": "panel", "content": [shallow]}
    assert adf_to_text(doc(shallow)) == "bottom"


@pytest.mark.parametrize("limit", [0, 1, 2, 10, 300])
def test_the_limit_is_respected_and_marked(limit: int) -> None:
    """A long document is cut to ``limit`` characters, ending with an ellipsis."""
    long = doc(*(para(text(f"paragraph {i} " + "word " * 20)) for i in range(200)))
    got = adf_to_text(long, limit=limit)
    assert len(got) <= limit
    if limit >= 1:
        assert got.endswith("…")
        assert got.startswith("paragraph 0"[: limit - 1].rstrip())


def test_a_short_document_is_not_marked() -> None:
    """Text that fits is returned whole."""
    assert adf_to_text(doc(para(text("exactly ten"))), limit=11) == "exactly ten"
    assert adf_to_text(doc(para(text("exactly ten"))), limit=10) == "exactly t…"


def test_a_huge_document_with_a_limit_stops_early() -> None:
    """With a limit, only about that much text is collected (the rest is not walked)."""
    huge = doc(*(para(text("x" * 1000)) for _ in range(20_000)))
    assert adf_to_text(huge, limit=300) == "x" * 299 + "…"


def _random_node(rng: random.Random, depth: int) -> Any:
    kinds = [
        "doc", "paragraph", "heading", "text", "hardBreak", "mention", "emoji", "inlineCard",
        "bulletList", "orderedList", "listItem", "codeBlock", "blockquote", "table", "tableRow",
        "tableCell", "panel", "rule", "date", "status", "media", "mediaSingle", "unknown", None, 3,
    ]  # fmt: skip
    roll = rng.random()
    if roll < 0.08:
        return rng.choice([None, 1, "s", [], 2.5, True, {"type": []}])
    node: dict[str, Any] = {"type": rng.choice(kinds)}
    if rng.random() < 0.5:
        node["text"] = rng.choice(["", "a", "🎉", "x" * 50, 7, None, "\n\n"])
    if rng.random() < 0.4:
        node["attrs"] = rng.choice(
            [
                None,
                "x",
                {"text": rng.choice(["@a", "b", 3])},
                {"shortName": ":x:"},
                {"url": 5},
                {"timestamp": rng.choice(["1", "-5", "9" * 40, 1.5])},
                {"order": rng.choice([-1, 0, 2, "3", 10**12])},
            ]
        )
    if rng.random() < 0.3:
        node["marks"] = rng.choice(
            [None, "m", [{"type": "link", "attrs": {"href": rng.choice([1, "h"])}}]]
        )
    if depth < 8 and rng.random() < 0.7:
        node["content"] = [_random_node(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    elif rng.random() < 0.1:
        node["content"] = rng.choice(["str", 5, {"a": 1}])
    return node


@pytest.mark.parametrize("seed", range(300))
def test_random_trees_never_raise_and_respect_limits(seed: int) -> None:
    """Seeded random trees of valid and invalid nodes: always text, always within the limit."""
    rng = random.Random(seed)
    tree = _random_node(rng, 0)
    assert isinstance(adf_to_text(tree), str)
    limit = rng.randint(0, 120)
    assert len(adf_to_text(tree, limit=limit)) <= limit
