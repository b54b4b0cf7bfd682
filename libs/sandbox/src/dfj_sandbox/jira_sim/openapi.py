"""Checking requests (and, in tests, responses) against Jira's own OpenAPI document.

The simulator is only worth something if what passes here would pass on Jira, so every request
is held against the pinned ``jira-platform-openapi.json`` (OpenAPI 3.0.1): the path must match
one of its templates and the method must exist there; required query parameters must be
present and parse as their type (arrays are comma-separated or repeated, as Jira takes them);
the JSON body must satisfy the operation's ``requestBody`` schema. A request that violates the
spec is answered 400 and recorded, so tests can assert that the app never sent one.

**From OpenAPI 3.0 to JSON Schema.** The document is converted once, as a whole: ``nullable:
true`` becomes a ``"null"`` type (or an ``anyOf`` with null where there is no type), every
``$ref`` is made absolute so a small schema can point into the big document through a
:mod:`referencing` registry, and ``additionalProperties: false`` is dropped where it sits beside
``anyOf``/``oneOf``/``allOf`` with no ``properties`` (Atlassian's generator emits it there, and
taken literally it would forbid every property of every variant). Validation is Draft 4, the
dialect OpenAPI 3.0 schemas descend from. Validators are built on first use and kept per
operation, so thousands of requests pay for compilation once.

**Where the spec is wrong.** A few operations are documented more strictly than Jira behaves;
:data:`RELAXATIONS` lists them (each with the documented behaviour that contradicts the schema)
and the simulator validates those bodies against the corrected schema.

**Finding the file.** An explicit path, else ``DFJ_JIRA_OPENAPI``, else ``shared/specs/`` beside
the repository (searched upwards from this file). A missing file is an error, never a skip.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT4

from dfj_sandbox._specs import locate

__all__ = [
    "RELAXATIONS",
    "SPEC_ENV",
    "SPEC_FILE",
    "OpenApiSpec",
    "Operation",
    "Parameter",
    "RouteError",
    "SpecViolation",
    "ValidRequest",
    "locate_spec",
]

SPEC_ENV: Final = "DFJ_JIRA_OPENAPI"
SPEC_FILE: Final = "jira-platform-openapi.json"
_ROOT_URI: Final = "https://dfj-sandbox.invalid/jira-platform-openapi.json"
_MAX_ERRORS: Final = 5
_MAX_MESSAGE: Final = 240
_INTEGER: Final = re.compile(r"^[+-]?\d+$")

RELAXATIONS: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    # "accountId": null unassigns the issue (the operation's own description says so), but
    # the User schema types accountId as a plain string.
    ("PUT", "/rest/api/3/issue/{issueIdOrKey}/assignee"): ("accountId",),
}
"""Per operation, the body properties the spec forgets to mark nullable."""


@dataclass(frozen=True, kw_only=True)
class SpecViolation:
    """A request the spec does not allow, as the simulator recorded it."""

    method: str
    path: str
    template: str | None
    operation_id: str | None
    message: str


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A query or path parameter of an operation."""

    name: str
    location: str
    required: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One method on one path template."""

    method: str
    template: str
    operation_id: str
    parameters: tuple[Parameter, ...]
    body_media_types: tuple[str, ...]
    body_required: bool
    connect_scope: str | None
    deprecated: bool


@dataclass(frozen=True, kw_only=True)
class ValidRequest:
    """What validation yields: typed query parameters, path parameters and the parsed body."""

    params: Mapping[str, Any]
    path_params: Mapping[str, str]
    body: Any


class RouteError(LookupError):
    """No operation for this path (404) or not for this method (405)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def locate_spec(
    explicit: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where the Jira OpenAPI document is (FileNotFoundError saying how to point at it)."""
    return locate(
        SPEC_FILE,
        env_var=SPEC_ENV,
        what="the Jira OpenAPI document",
        explicit=explicit,
        environ=environ,
    )


# --- OpenAPI 3.0 → JSON Schema (Draft 4) --------------------------------------------------


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = _ROOT_URI + ref
    composed = any(isinstance(out.get(k), list) for k in ("anyOf", "oneOf", "allOf"))
    if out.get("additionalProperties") is False and "properties" not in out and composed:
        del out["additionalProperties"]
    if out.get("nullable") is True:
        del out["nullable"]
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _message(error: ValidationError, root: str) -> str:
    where = root + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.path)
    text = error.message
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "…"
    return f"{where}: {text}"


def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{_group(segment[1:-1])}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


class OpenApiSpec:
    """The Jira platform REST API as a router and a set of validators."""

    def __init__(self, document: Mapping[str, Any], *, source: str = "<memory>") -> None:
        self.source = source
        self._document = _convert(copy.deepcopy(dict(document)))
        resource = DRAFT4.create_resource(self._document)
        self._registry: Registry[Any] = Registry().with_resource(_ROOT_URI, resource)
        self._operations: dict[tuple[str, str], Operation] = {}
        self._raw: dict[tuple[str, str], Mapping[str, Any]] = {}
        routes: dict[int, list[tuple[tuple[int, ...], str, re.Pattern[str]]]] = {}
        for template, item in self._document.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method, raw in item.items():
                if method == "parameters" or not isinstance(raw, dict):
                    continue
                key = (method.upper(), template)
                self._raw[key] = raw
                self._operations[key] = self._operation(method.upper(), template, raw, shared)
            segments = template.strip("/").split("/")
            rank = tuple(1 if s.startswith("{") else 0 for s in segments)
            routes.setdefault(len(segments), []).append((rank, template, _template_regex(template)))
        self._routes = {size: sorted(entries) for size, entries in routes.items()}
        self._validators: dict[str, Draft4Validator] = {}

    @classmethod
    def load(cls, path: str | Path) -> OpenApiSpec:
        """Read and convert the document at ``path``."""
        file = Path(path)
        with file.open(encoding="utf-8") as handle:
            document = json.load(handle)
        if not str(document.get("openapi", "")).startswith("3.0"):
            raise ValueError(f"{file} is not an OpenAPI 3.0 document")
        return cls(document, source=str(file))

    def _operation(
        self, method: str, template: str, raw: Mapping[str, Any], shared: Iterable[Any]
    ) -> Operation:
        parameters = [
            Parameter(
                name=p["name"],
                location=p.get("in", "query"),
                required=bool(p.get("required", False)),
                schema=p.get("schema", {}),
            )
            for p in (*shared, *raw.get("parameters", ()))
            if isinstance(p, dict) and "name" in p
        ]
        body = raw.get("requestBody") or {}
        return Operation(
            method=method,
            template=template,
            operation_id=str(raw.get("operationId", f"{method} {template}")),
            parameters=tuple(parameters),
            body_media_types=tuple(body.get("content", {})),
            body_required=bool(body.get("required", False)),
            connect_scope=raw.get("x-atlassian-connect-scope"),
            deprecated=bool(raw.get("deprecated", False)),
        )

    # --- routing --------------------------------------------------------------------------

    def operations(self) -> Iterator[Operation]:
        """Every operation of the document."""
        return iter(self._operations.values())

    def operation(self, method: str, template: str) -> Operation:
        """The operation ``method template`` (KeyError if the spec has none)."""
        return self._operations[(method.upper(), template)]

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation serving ``method path`` and its path parameters (RouteError if none).

        Literal segments win over templated ones (``/issue/createmeta/…`` before
        ``/issue/{issueIdOrKey}/…``); among the templates that match, the first one that has
        the method is taken.
        """
        size = len(path.strip("/").split("/"))
        matched: list[tuple[str, dict[str, str]]] = []
        for _, template, pattern in self._routes.get(size, ()):
            found = pattern.match(path)
            if found is None:
                continue
            values = found.groupdict()
            names = [s[1:-1] for s in template.strip("/").split("/") if s.startswith("{")]
            params = {name: values[_group(name)] for name in names}
            operation = self._operations.get((method.upper(), template))
            if operation is not None:
                return operation, params
            matched.append((template, params))
        if matched:
            raise RouteError(
                405, f"{method.upper()} is not an operation of {matched[0][0]} in the Jira spec"
            )
        raise RouteError(404, f"{path} matches no path of the Jira spec")

    # --- validation -----------------------------------------------------------------------

    def _validator(self, key: str, schema: Mapping[str, Any]) -> Draft4Validator:
        validator = self._validators.get(key)
        if validator is None:
            validator = Draft4Validator(dict(schema), registry=self._registry)
            self._validators[key] = validator
        return validator

    def _body_schema(self, operation: Operation) -> Mapping[str, Any] | None:
        raw = self._raw[(operation.method, operation.template)]
        content = (raw.get("requestBody") or {}).get("content", {})
        media = content.get("application/json") or content.get("*/*")
        if not media or "schema" not in media:
            return None
        schema: dict[str, Any] = dict(media["schema"])
        nullable = RELAXATIONS.get((operation.method, operation.template))
        if nullable:
            schema = self._resolved(schema)
            properties = dict(schema.get("properties", {}))
            for name in nullable:
                properties[name] = {"anyOf": [{"type": "null"}, properties.get(name, {})]}
            schema["properties"] = properties
        return schema

    def _resolved(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return copy.deepcopy(dict(schema))
        target: Any = self._document
        for part in ref.split("#", 1)[1].strip("/").split("/"):
            target = target[part]
        return copy.deepcopy(dict(target))

    def check_request(
        self,
        operation: Operation,
        query: Iterable[tuple[str, str]],
        path_params: Mapping[str, str],
        body: bytes,
        content_type: str,
    ) -> tuple[ValidRequest, list[str]]:
        """Typed parameters and parsed body, and every way the request breaks the spec."""
        problems: list[str] = []
        given: dict[str, list[str]] = {}
        for name, value in query:
            given.setdefault(name, []).append(value)
        params: dict[str, Any] = {}
        for parameter in operation.parameters:
            if parameter.location != "query":
                continue
            raw = given.get(parameter.name)
            if raw is None:
                if parameter.required:
                    problems.append(f"query parameter '{parameter.name}' is required")
                continue
            value, problem = _coerce(parameter.name, parameter.schema, raw)
            if problem is not None:
                problems.append(problem)
                continue
            key = f"{operation.method} {operation.template} ?{parameter.name}"
            validator = self._validator(key, parameter.schema)
            problems.extend(
                _message(e, f"query.{parameter.name}") for e in validator.iter_errors(value)
            )
            params[parameter.name] = value
        parsed: Any = None
        if not body:
            if operation.body_required:
                problems.append("a request body is required")
        elif not operation.body_media_types:
            problems.append(f"{operation.operation_id} takes no request body")
        else:
            parsed, body_problems = self._check_body(operation, body, content_type)
            problems.extend(body_problems)
        return ValidRequest(params=params, path_params=dict(path_params), body=parsed), problems

    def _check_body(
        self, operation: Operation, body: bytes, content_type: str
    ) -> tuple[Any, list[str]]:
        media = content_type.split(";", 1)[0].strip().lower()
        json_accepted = "application/json" in operation.body_media_types or (
            "*/*" in operation.body_media_types
        )
        if not json_accepted:
            return None, [f"{operation.operation_id} takes {', '.join(operation.body_media_types)}"]
        if media != "application/json":
            return None, [f"Content-Type must be application/json, got '{media or 'none'}'"]
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, ["the request body is not valid JSON"]
        schema = self._body_schema(operation)
        if schema is None:
            return parsed, []
        validator = self._validator(f"{operation.method} {operation.template} body", schema)
        errors = sorted(validator.iter_errors(parsed), key=lambda e: list(map(str, e.path)))
        return parsed, [_message(e, "body") for e in errors[:_MAX_ERRORS]]

    def check_response(self, operation: Operation, status: int, body: Any) -> list[str]:
        """How a response breaks the spec (an undocumented 2xx, or a body off its schema)."""
        raw = self._raw[(operation.method, operation.template)]
        responses = raw.get("responses", {})
        documented = responses.get(str(status)) or responses.get("default")
        if documented is None:
            if 200 <= status < 300:
                return [f"status {status} is not documented for {operation.operation_id}"]
            return []
        media = (documented.get("content") or {}).get("application/json") or {}
        schema = media.get("schema")
        if not schema or body is None:
            return []
        validator = self._validator(f"{operation.method} {operation.template} {status}", schema)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.path)))
        return [_message(e, "response") for e in errors[:_MAX_ERRORS]]


def _coerce(name: str, schema: Mapping[str, Any], raw: list[str]) -> tuple[Any, str | None]:
    kind = schema.get("type")
    if kind == "array":
        item_schema = schema.get("items") or {}
        values = []
        for piece in (p for v in raw for p in v.split(",")):
            value, problem = _scalar(name, item_schema.get("type"), piece)
            if problem is not None:
                return None, problem
            values.append(value)
        return values, None
    return _scalar(name, kind, raw[0])


def _integer(text: str) -> int:
    if not _INTEGER.match(text.strip()):
        raise ValueError(text)
    return int(text)


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


_SCALARS: Final[Mapping[str, tuple[Callable[[str], Any], str]]] = {
    "integer": (_integer, "an integer"),
    "number": (float, "a number"),
    "boolean": (_boolean, "true or false"),
}


def _scalar(name: str, kind: Any, text: str) -> tuple[Any, str | None]:
    converter = _SCALARS.get(kind) if isinstance(kind, str) else None
    if converter is None:
        return text, None
    convert, described = converter
    try:
        return convert(text), None
    except ValueError:
        return None, f"query parameter '{name}' must be {described}, got '{text[:40]}'"
