"""Fixtures of the notification tests: the pinned specs and Discord's limits, read independently.

- ``discord_spec`` / ``jira_spec``: assert a value matches a schema of the pinned OpenAPI specs
  in ``shared/specs`` (skipped when shared/ is absent outside CI).
- ``violations``: an independent reading of Discord's message limits (not the code under
  test), listing every limit a message breaks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

REPO = Path(__file__).resolve().parents[4]
SHARED = REPO.parent / "shared"

SpecCheck = Callable[[str, Any], None]


def shared_path(relative: str) -> Path:
    """A file under shared/; skipped when absent outside CI, a failure in CI."""
    path = SHARED / relative
    if not path.is_file():
        message = f"{path} is missing (shared/ is expected beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@cache
def _registry(path: Path, uri: str, draft7: bool) -> Registry[Any]:
    document = json.loads(path.read_text())
    specification = DRAFT7 if draft7 else DRAFT202012
    resource: Resource[Any] = Resource.from_contents(document, default_specification=specification)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return registry


def _checker(relative: str, uri: str, *, draft7: bool) -> SpecCheck:
    registry = _registry(shared_path(relative), uri, draft7)
    validator_class = jsonschema.Draft7Validator if draft7 else jsonschema.Draft202012Validator

    def check(schema: str, instance: Any) -> None:
        ref = {"$ref": f"{uri}#/components/schemas/{schema}"}
        errors = [e.message for e in validator_class(ref, registry=registry).iter_errors(instance)]
        assert not errors, f"{schema}: {errors}"

    return check


@pytest.fixture(name="discord_spec")
def _discord_spec() -> SpecCheck:
    """Assert a value matches a schema of Discord's pinned OpenAPI spec (3.1)."""
    return _checker("specs/discord-openapi.json", "urn:discord-openapi", draft7=False)


@pytest.fixture(name="jira_spec")
def _jira_spec() -> SpecCheck:
    """Assert a value matches a schema of Jira's pinned OpenAPI spec (3.0, read as draft 7)."""
    return _checker("specs/jira-platform-openapi.json", "urn:jira-openapi", draft7=True)


# --- an independent reading of Discord's limits ----------------------------------------------


def discord_violations(message: Mapping[str, Any]) -> list[str]:
    """Every documented message limit ``message`` breaks (empty when Discord would accept it)."""
    found: list[str] = []
    _over(found, "content", message.get("content"), 2000)
    embeds = message.get("embeds") or []
    if len(embeds) > 10:
        found.append("more than 10 embeds")
    total = sum(_embed_violations(found, n, e) for n, e in enumerate(embeds))
    if total > 6000:
        found.append(f"embeds hold {total} > 6000 characters")
    rows = message.get("components") or []
    if len(rows) > 5:
        found.append("more than 5 action rows")
    for row in rows:
        _row_violations(found, row)
    return found


def _over(found: list[str], what: str, value: object, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        found.append(f"{what} has {len(value)} > {limit}")
    if isinstance(value, str) and not value:
        found.append(f"{what} is empty")


def _embed_violations(found: list[str], n: int, embed: Mapping[str, Any]) -> int:
    """Record the embed's violations; return the characters it counts toward 6000."""
    footer = (embed.get("footer") or {}).get("text")
    author = (embed.get("author") or {}).get("name")
    texts = [embed.get("title"), embed.get("description"), footer, author]
    for what, value, limit in (
        ("title", embed.get("title"), 256),
        ("description", embed.get("description"), 4096),
        ("footer", footer, 2048),
        ("author", author, 256),
        ("url", embed.get("url"), 2048),
    ):
        _over(found, f"embed {n} {what}", value, limit)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        found.append(f"embed {n} has {len(fields)} fields")
    for f in fields:
        _over(found, f"embed {n} field name", f.get("name"), 256)
        _over(found, f"embed {n} field value", f.get("value"), 1024)
        texts += [f.get("name"), f.get("value")]
    return sum(len(t) for t in texts if isinstance(t, str))


def _row_violations(found: list[str], row: Mapping[str, Any]) -> None:
    parts = row.get("components") or []
    if row.get("type") != 1 or not 1 <= len(parts) <= 5:
        found.append("an action row is not 1 to 5 components")
    for part in parts:
        _over(found, "custom_id", part.get("custom_id"), 100)
        _over(found, "label", part.get("label"), 80)
        link = part.get("style") == 5
        if link and (not part.get("url") or "custom_id" in part):
            found.append("a link button needs a url and no custom_id")
        if not link and (not part.get("custom_id") or "url" in part):
            found.append("a component needs a custom_id and no url")
        options = part.get("options") or []
        if len(options) > 25:
            found.append("more than 25 options")
        for option in options:
            for key in ("label", "value", "description"):
                _over(found, f"option {key}", option.get(key), 100)


@pytest.fixture(name="violations")
def _violations() -> Callable[[Mapping[str, Any]], list[str]]:
    return discord_violations
