"""Discord's limits: anything is cut down to fit, marked with "…", and never raises.

hypothesis is not installed in this workspace, so the properties are checked over tables of
extreme inputs and over seeded random messages; the limits are checked by the conftest's
independent reading of them and by Discord's pinned OpenAPI schema.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from dfj_jira_worker.notify.limits import (
    EMBEDS_TOTAL,
    embed_text_length,
    escape_markdown,
    fit_markdown,
    fit_message,
    truncate,
)

if TYPE_CHECKING:
    from notify.conftest import SpecCheck

Violations = Callable[[Mapping[str, Any]], list[str]]
NASTY = "*_~`|[]<>#-\\\n 🎉👩‍💻東京é\u0301\u200b\U0010ffff"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven char", 10, "eleven ch…"),
        ("trailing space here", 10, "trailing…"),
        ("anything", 1, "…"),
        ("anything", 0, ""),
        ("", 0, ""),
        ("🎉" * 20, 5, "🎉🎉🎉🎉…"),
        ("ab\\cdef", 4, "ab…"),  # the cut would leave a lone escaping backslash
        ("a\\\\bcdef", 4, "a\\\\…"),  # an escaped backslash is kept whole
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    """Fitting text is untouched; longer text is cut to the limit and marked."""
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= max(limit, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "plain words"),
        (
            "**bold** _it_ ~~s~~ `c` ||spoiler||",
            "\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~ \\`c\\` \\|\\|spoiler\\|\\|",
        ),
        ("[masked](https://evil.example)", "\\[masked\\](https://evil.example)"),
        ("<@123> <t:1700000000:R>", "\\<@123> \\<t:1700000000:R>"),
        (
            "# heading\n-# small\n- item\n  + sub\n> quote\n12. ordered",
            "\\# heading\n\\-# small\n\\- item\n  \\+ sub\n\\> quote\n12\\. ordered",
        ),
        ("not # a heading, 3.5 - x > y", "not # a heading, 3.5 - x > y"),
        ("a\\b", "a\\\\b"),
        ("see https://x.example/a_b*c~d", "see https://x.example/a_b*c~d"),
    ],
)
def test_escape_markdown(text: str, expected: str) -> None:
    """Markup is shown literally; URLs are left whole so they stay links."""
    assert escape_markdown(text) == expected


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 10, 99, 300])
@pytest.mark.parametrize("text", ["*" * 500, "\\" * 500, "a_" * 300, NASTY * 30, "x" * 1000])
def test_fit_markdown_never_splits_an_escape(text: str, limit: int) -> None:
    """Escaped and cut text fits, ends with "…", and never ends on a lone backslash."""
    fitted = fit_markdown(text, limit)
    assert len(fitted) <= limit
    if limit and len(escape_markdown(text)) > limit:
        assert fitted.endswith("…")
        head = fitted[:-1]
        assert (len(head) - len(head.rstrip("\\"))) % 2 == 0


def test_a_message_within_limits_is_left_as_it_is() -> None:
    """fit_message changes nothing that already fits (and copies, never mutates)."""
    message: dict[str, Any] = {
        "content": "hi",
        "embeds": [{"title": "t", "description": "d", "fields": [{"name": "n", "value": "v"}]}],
        "components": [
            {"type": 1, "components": [{"type": 2, "style": 2, "label": "L", "custom_id": "a:1"}]}
        ],
        "allowed_mentions": {"parse": []},
    }
    original = repr(message)
    assert fit_message(message) == message
    assert repr(message) == original


def test_everything_at_once_too_long_is_cut_to_fit(
    violations: Violations, discord_spec: SpecCheck
) -> None:
    """Every text over its limit, too many of everything: the result is one Discord accepts."""
    huge = NASTY * 400
    button = {"type": 2, "style": 2, "label": huge, "custom_id": "ok:1"}
    message: dict[str, Any] = {
        "content": huge,
        "embeds": [
            {
                "title": huge,
                "description": huge,
                "fields": [{"name": huge, "value": huge, "inline": True} for _ in range(40)],
                "footer": {"text": huge},
                "author": {"name": huge},
                "color": 0x123456,
            }
            for _ in range(15)
        ],
        "components": [
            {"type": 1, "components": [dict(button) for _ in range(8)]} for _ in range(8)
        ]
        + [
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 2, "label": "x", "custom_id": "y" * 101},
                    {"type": 2, "style": 5, "label": "x", "url": "https://a.example/" + "p" * 600},
                ],
            },
            {
                "type": 1,
                "components": [
                    {
                        "type": 3,
                        "custom_id": "transition:ABC-1",
                        "placeholder": huge,
                        "max_values": 40,
                        "options": [
                            {"label": huge, "value": str(i), "description": huge} for i in range(40)
                        ]
                        + [{"label": "bad", "value": "v" * 101}],
                    }
                ],
            },
        ],
        "allowed_mentions": {"parse": []},
    }
    fitted = fit_message(message)
    assert violations(fitted) == []
    discord_spec("MessageCreateRequest", fitted)
    assert sum(embed_text_length(e) for e in fitted["embeds"]) <= EMBEDS_TOTAL
    assert len(fitted["embeds"]) == 10
    assert fitted["embeds"][0]["title"].endswith("…")
    # Ids that cannot be cut are dropped with their component, never shortened.
    ids = [c.get("custom_id") for row in fitted["components"] for c in row["components"]]
    assert "y" * 101 not in ids
    assert all(len(i) <= 100 for i in ids if i)


def test_a_select_keeps_25_options_and_only_valid_values() -> None:
    """Too many options are cut to 25; an option whose value is too long is dropped."""
    select = {
        "type": 3,
        "custom_id": "transition:ABC-1",
        "max_values": 30,
        "options": [{"label": "bad", "value": "v" * 101}]
        + [{"label": f"to {i}", "value": str(i)} for i in range(30)],
    }
    fitted = fit_message({"embeds": [], "components": [{"type": 1, "components": [select]}]})
    (row,) = fitted["components"]
    (fitted_select,) = row["components"]
    assert [o["value"] for o in fitted_select["options"]] == [str(i) for i in range(25)]
    assert fitted_select["max_values"] == 25


def _random_text(rng: random.Random) -> str:
    size = rng.choice([0, 1, 5, 80, 101, 257, 1025, 2049, 4097, 7000])
    return "".join(rng.choice(NASTY + "abc ") for _ in range(size))


def _random_message(rng: random.Random) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return value if rng.random() < 0.7 else None

    embeds = []
    for _ in range(rng.randint(0, 12)):
        embed = {
            "title": maybe(_random_text(rng)),
            "description": maybe(_random_text(rng)),
            "footer": maybe({"text": _random_text(rng)}),
            "author": maybe({"name": _random_text(rng)}),
            "fields": maybe(
                [
                    {"name": _random_text(rng), "value": _random_text(rng)}
                    for _ in range(rng.randint(0, 30))
                ]
            ),
        }
        embeds.append({k: v for k, v in embed.items() if v is not None})
    rows = [
        {
            "type": 1,
            "components": [
                {
                    "type": 2,
                    "style": rng.choice([1, 2, 5]),
                    "label": _random_text(rng),
                    "custom_id": "c" * rng.choice([1, 50, 100, 101]),
                    "url": "https://x.example/" + "u" * rng.choice([1, 600]),
                }
                for _ in range(rng.randint(0, 7))
            ],
        }
        for _ in range(rng.randint(0, 7))
    ]
    message: dict[str, Any] = {"embeds": embeds, "components": rows}
    if rng.random() < 0.5:
        message["content"] = _random_text(rng)
    return message


@pytest.mark.parametrize("seed", range(60))
def test_random_messages_always_fit(seed: int, violations: Violations) -> None:
    """Seeded random messages of every size come out within every limit."""
    fitted = fit_message(_random_message(random.Random(seed)))
    assert violations(fitted) == []
