"""The Connect descriptor: its shape against the Connect schema's module shapes, and its URLs.

``DESCRIPTOR_SCHEMA`` is a focused transcription of the parts of Atlassian's Jira descriptor
schema (JSON Schema draft-04, ``jira-global-schema.json``; reference §5, §9.2) that this app
uses: the required top-level fields and their patterns, ``authentication``, ``vendor``,
``scopes``, ``lifecycle``, the ``webhook`` module and the page modules (``pageModule`` /
``adminPageModule``, ``additionalProperties: false``). ``apiMigrations`` follows the active
migrations page, not the stale 2019 schema (which knows only ``gdpr``). The small validator
below understands exactly the keywords used.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Final

import pytest

from dfj_common.config import Settings
from dfj_gateway.jira import paths
from dfj_gateway.jira.descriptor import build_descriptor
from dfj_gateway.jira.routes import ROUTES, Auth

if TYPE_CHECKING:
    from services.gateway.tests.jira.conftest import Harness

I18N: Final = {
    "type": "object",
    "required": ["value"],
    "properties": {"value": {"type": "string"}, "i18n": {"type": "string"}},
}
CONDITION: Final = {
    "type": "object",
    "required": ["condition"],
    "properties": {
        "condition": {"type": "string"},
        "invert": {"type": "boolean"},
        "params": {"type": "object"},
    },
}
PAGE_PROPERTIES: Final = {
    "key": {"type": "string", "pattern": r"^[a-zA-Z0-9-]+$"},
    "name": I18N,
    "url": {"type": "string", "pattern": r"^/"},
    "location": {"type": "string"},
    "weight": {"type": "integer"},
    "cacheable": {"type": "boolean"},
    "conditions": {"type": "array", "items": CONDITION},
    "params": {"type": "object"},
    "icon": {"type": "object"},
}
PAGE_MODULE: Final = {
    "type": "object",
    "required": ["name", "url", "key"],
    "additionalProperties": False,
    "properties": PAGE_PROPERTIES,
}
ADMIN_PAGE_MODULE: Final = {
    **PAGE_MODULE,
    "properties": {**PAGE_PROPERTIES, "fullPage": {"type": "boolean"}},
}
WEBHOOK: Final = {
    "type": "object",
    "required": ["event", "url"],
    "additionalProperties": False,
    "properties": {
        "event": {"type": "string"},
        "url": {"type": "string", "pattern": r"^/"},
        "filter": {"type": "string"},
        "excludeBody": {"type": "boolean"},
        "propertyKeys": {"type": "array", "items": {"type": "string"}},
    },
}
SCOPE_NAMES: Final = (
    "none",
    "read",
    "write",
    "delete",
    "project_admin",
    "space_admin",
    "admin",
    "act_as_user",
    "access_email_addresses",
)
SCOPES: Final = [s for name in SCOPE_NAMES for s in (name, name.upper())]
DESCRIPTOR_SCHEMA: Final = {
    "type": "object",
    "required": ["baseUrl", "key", "authentication"],
    "properties": {
        "key": {"type": "string", "pattern": r"^[a-zA-Z0-9-._]+$", "maxLength": 80},
        "name": {"type": "string", "maxLength": 80},
        "description": {"type": "string", "maxLength": 1400},
        "baseUrl": {"type": "string", "pattern": r"^((https|http):\/\/.+|)$", "maxLength": 200},
        "vendor": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 100},
                "url": {
                    "type": "string",
                    "pattern": r"^((https|http):\/\/.+|[^:]+|)$",
                    "maxLength": 200,
                },
            },
        },
        "authentication": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["jwt", "JWT", "none", "NONE"]}},
        },
        "apiVersion": {"type": "integer"},
        "apiMigrations": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "signed-install": {"type": "boolean"},
                "context-qsh": {"type": "boolean"},
                "gdpr": {"type": "boolean"},
            },
        },
        "scopes": {"type": "array", "items": {"enum": SCOPES}},
        "lifecycle": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: {"type": "string", "pattern": r"^/"}
                for name in ("installed", "uninstalled", "enabled", "disabled")
            },
        },
        "links": {"type": "object"},
        "modules": {
            "type": "object",
            "properties": {
                "webhooks": {"type": "array", "items": WEBHOOK},
                "generalPages": {"type": "array", "items": PAGE_MODULE},
                "adminPages": {"type": "array", "items": ADMIN_PAGE_MODULE},
                "configurePage": ADMIN_PAGE_MODULE,
                "postInstallPage": PAGE_MODULE,
            },
        },
    },
}

_TYPES: Final = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


def _type_violation(instance: Any, kind: str | None, where: str) -> str | None:
    if kind == "integer":
        ok = isinstance(instance, int) and not isinstance(instance, bool)
    else:
        ok = kind is None or isinstance(instance, _TYPES[kind])
    return None if ok else f"{where}: wrong type, want {kind}"


def _string_violations(instance: str, schema: dict[str, Any], where: str) -> list[str]:
    found = []
    if "maxLength" in schema and len(instance) > schema["maxLength"]:
        found.append(f"{where}: longer than {schema['maxLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], instance):
        found.append(f"{where}: does not match {schema['pattern']}")
    return found


def _object_violations(instance: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    found = [f"{where}: lacks {n!r}" for n in schema.get("required", []) if n not in instance]
    for name, value in instance.items():
        if name in properties:
            found += violations(value, properties[name], f"{where}.{name}")
        elif schema.get("additionalProperties") is False:
            found.append(f"{where}: unexpected {name!r}")
    return found


def violations(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every way ``instance`` breaks ``schema`` (the draft-04 keywords used above)."""
    wrong_type = _type_violation(instance, schema.get("type"), where)
    if wrong_type is not None:
        return [wrong_type]
    found: list[str] = []
    if "enum" in schema and instance not in schema["enum"]:
        found.append(f"{where}: {instance!r} not in enum")
    if isinstance(instance, str):
        found += _string_violations(instance, schema, where)
    if isinstance(instance, dict):
        found += _object_violations(instance, schema, where)
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            found += violations(item, schema["items"], f"{where}[{index}]")
    return found


def descriptor(**env: str) -> dict[str, Any]:
    """The descriptor for settings from ``env``."""
    return build_descriptor(Settings.from_env(env, env_file=None))


def test_the_descriptor_has_the_shapes_of_the_connect_schema() -> None:
    """Every field and module of our descriptor fits the Connect schema's shapes."""
    assert (
        violations(descriptor(DFJ_PUBLIC_URL="https://dfj.example.test"), DESCRIPTOR_SCHEMA) == []
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("key"), "$: lacks 'key'"),
        (lambda d: d.update(key="bad key!"), "$.key: does not match"),
        (lambda d: d["modules"]["configurePage"].update(key="bad_key"), "configurePage.key"),
        (lambda d: d["modules"]["webhooks"][0].pop("url"), "webhooks[0]: lacks 'url'"),
        (lambda d: d["modules"]["webhooks"][0].update(excludeBody="no"), "want boolean"),
        (lambda d: d["modules"]["postInstallPage"].update(title="x"), "unexpected 'title'"),
        (lambda d: d.update(scopes=["READ", "EVERYTHING"]), "not in enum"),
        (lambda d: d.update(authentication={"type": "oauth"}), "not in enum"),
        (lambda d: d.update(apiVersion="1"), "want integer"),
    ],
)
def test_the_shape_check_catches_broken_descriptors(mutate: Any, expected: str) -> None:
    """The focused schema check fails on each kind of mistake it is meant to catch."""
    broken = copy.deepcopy(descriptor())
    mutate(broken)
    assert any(expected in v for v in violations(broken, DESCRIPTOR_SCHEMA))


def test_the_descriptor_comes_from_settings() -> None:
    """key and baseUrl come from DFJ_APP_KEY and DFJ_PUBLIC_URL (trailing slash dropped)."""
    got = descriptor(DFJ_APP_KEY="dfj-staging", DFJ_PUBLIC_URL="https://stage.example.test/")
    assert got["key"] == "dfj-staging"
    assert got["baseUrl"] == "https://stage.example.test"
    assert got["authentication"] == {"type": "jwt"}
    assert got["apiMigrations"] == {"signed-install": True, "context-qsh": True, "gdpr": True}
    assert got["scopes"] == ["READ", "WRITE", "ACT_AS_USER"]


def test_the_descriptor_subscribes_to_what_the_workers_consume() -> None:
    """Issue created/updated/deleted and comment created/updated/deleted, bodies included."""
    hooks = descriptor()["modules"]["webhooks"]
    assert sorted(h["event"] for h in hooks) == [
        "comment_created",
        "comment_deleted",
        "comment_updated",
        "jira:issue_created",
        "jira:issue_deleted",
        "jira:issue_updated",
    ]
    assert all(h["excludeBody"] is False for h in hooks)


def test_every_descriptor_url_is_a_route_of_the_right_kind() -> None:
    """Lifecycle, webhook and page URLs are served, each with the auth kind Jira will use."""
    table = {(r.method, r.path): r.auth for r in ROUTES}
    got = descriptor()
    lifecycle = got["lifecycle"]
    assert table[("POST", lifecycle["installed"])] is Auth.SIGNED_INSTALL
    assert table[("POST", lifecycle["uninstalled"])] is Auth.SIGNED_INSTALL
    assert table[("POST", lifecycle["enabled"])] is Auth.HS256_QSH
    assert table[("POST", lifecycle["disabled"])] is Auth.HS256_QSH
    for hook in got["modules"]["webhooks"]:
        assert table[("POST", hook["url"])] is Auth.HS256_QSH
    for page in ("configurePage", "postInstallPage"):
        assert table[("GET", got["modules"][page]["url"])] is Auth.PAGE_QSH
    assert table[("GET", paths.DESCRIPTOR)] is Auth.NONE
    assert table[("GET", paths.CONTEXT_API)] is Auth.CONTEXT_QSH


def test_every_route_declares_one_auth_kind() -> None:
    """The route table has no duplicate (method, path) and only the descriptor is open."""
    keys = [(r.method, r.path) for r in ROUTES]
    assert len(keys) == len(set(keys))
    assert [r.path for r in ROUTES if r.auth is Auth.NONE] == [paths.DESCRIPTOR]


async def test_the_descriptor_is_served_without_auth(h: Harness) -> None:
    """GET /atlassian-connect.json answers the descriptor as JSON to anyone."""
    response = await h.client.get("/atlassian-connect.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == build_descriptor(h.settings)
