"""Checking what the app sends Discord against Discord's own OpenAPI document (3.1).

The pinned ``discord-openapi.json`` is JSON Schema 2020-12 throughout, so it is used as it is:
every ``$ref`` is made absolute and the whole document is registered once in a
:mod:`referencing` registry; a Draft 2020-12 validator per operation (built on first use, then
kept) checks the JSON body. A body that breaks the spec is answered the way Discord answers
it — 400 ``{"code": 50035, "message": "Invalid Form Body", "errors": {...}}`` with one
``_errors`` list per offending field — and is recorded, so tests can assert it never happened.

**Corrections.** Discord says to follow its docs where the spec disagrees; the known
disagreements are corrected in a copy of the document (:data:`CORRECTIONS`): message
``content`` is at most 2,000 characters (the spec says 4,000), a modal has at most 5
components (40), ``default_member_permissions`` is a string bitset such as ``"0"`` (the spec
types it as an integer), and in answers field errors carry string codes such as
``BASE_TYPE_REQUIRED`` (the spec says integers). Each correction states what the spec says,
so loading fails loudly if a newer spec no longer does: a reminder to look again. Rules the
spec cannot express (the 6,000-character embed total, legacy component layout) live in
:mod:`~dfj_sandbox.discord_sim.limits`.

**Unions.** ``oneOf`` is checked as ``anyOf``. Discord's unions are of variants told apart
by a ``type`` constant (or of a value and ``null``), so at most one can match anyway, and
``anyOf`` stops at the first match where ``oneOf`` must try every variant: three times
faster on a message with components, which the benchmarks notice.

**Finding the file.** An explicit path, else ``DFJ_DISCORD_OPENAPI``, else
``shared/specs/discord-openapi.json`` beside the repository (searched upwards from here). A
missing file is an error, never a skip.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from dfj_sandbox._specs import locate

__all__ = [
    "CORRECTIONS",
    "SPEC_ENV",
    "SPEC_FILE",
    "Correction",
    "DiscordSpec",
    "FieldError",
    "locate_spec",
]

SPEC_ENV: Final = "DFJ_DISCORD_OPENAPI"
SPEC_FILE: Final = "discord-openapi.json"
_ROOT: Final = "https://dfj-sandbox.invalid/discord-openapi.json"
_MAX_ERRORS: Final = 10
_MAX_SCANNED: Final = 100
_PERMISSIONS_INTEGER: Final = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": 18014398509481983,
}
_PERMISSIONS_STRING: Final = {"type": ["string", "null"], "pattern": "^[0-9]{1,20}$"}


@dataclass(frozen=True, kw_only=True)
class Correction:
    """One place where the docs overrule the spec: the JSON pointer, both values, and why."""

    pointer: str
    spec: Any
    docs: Any
    why: str


def _schema(name: str, *rest: str) -> str:
    return "/".join(("", "components", "schemas", name, *rest))


CORRECTIONS: Final[tuple[Correction, ...]] = (
    Correction(
        pointer=_schema("MessageCreateRequest", "properties", "content", "maxLength"),
        spec=4000,
        docs=2000,
        why="Create Message: content is at most 2000 characters (resources/message).",
    ),
    Correction(
        pointer=_schema("MessageEditRequestPartial", "properties", "content", "maxLength"),
        spec=4000,
        docs=2000,
        why="Edit Message: content is at most 2000 characters (resources/message).",
    ),
    Correction(
        pointer=_schema(
            "ModalInteractionCallbackRequestData", "properties", "components", "maxItems"
        ),
        spec=40,
        docs=5,
        why="A modal has between 1 and 5 components (interactions/receiving-and-responding).",
    ),
    *(
        Correction(
            pointer=_schema(name, "properties", "default_member_permissions"),
            spec=_PERMISSIONS_INTEGER,
            docs=_PERMISSIONS_STRING,
            why='default_member_permissions is a string bitset, e.g. "0" '
            "(interactions/application-commands).",
        )
        for name in (
            "ApplicationCommandCreateRequest",
            "ApplicationCommandUpdateRequest",
            "ApplicationCommandPatchRequestPartial",
        )
    ),
    Correction(
        pointer=_schema("InnerErrors", "properties", "_errors", "items"),
        spec={"$ref": _ROOT + "#/components/schemas/Error"},
        docs={
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        },
        why='Field errors carry string codes such as "BASE_TYPE_REQUIRED" (reference,'
        " Error Messages); only the top-level code is an integer.",
    ),
)
"""The docs' values that replace the spec's (see the module docstring)."""


@dataclass(frozen=True, kw_only=True)
class FieldError:
    """One invalid field: where (``path``), Discord's error code and message."""

    path: tuple[str | int, ...]
    code: str
    message: str


def locate_spec(
    explicit: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where Discord's OpenAPI document is (FileNotFoundError saying how to point at it)."""
    return locate(
        SPEC_FILE,
        env_var=SPEC_ENV,
        what="Discord's OpenAPI document",
        explicit=explicit,
        environ=environ,
    )


def _absolute_refs(node: Any) -> Any:
    if isinstance(node, list):
        return [_absolute_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _absolute_refs(value) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = _ROOT + ref
    return out


def _unions_as_any_of(node: Any) -> Any:
    if isinstance(node, list):
        return [_unions_as_any_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {("anyOf" if k == "oneOf" else k): _unions_as_any_of(v) for k, v in node.items()}


def _pointer_parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/")]


def _at(document: Any, pointer: str) -> Any:
    node = document
    for part in _pointer_parts(pointer):
        node = node[part]
    return node


def _put(document: Any, pointer: str, value: Any) -> None:
    *parents, last = _pointer_parts(pointer)
    node = document
    for part in parents:
        node = node[part]
    node[last] = copy.deepcopy(value)


class DiscordSpec:
    """Discord's HTTP API document as validators for request bodies and responses."""

    def __init__(self, document: Mapping[str, Any], *, source: str = "<memory>") -> None:
        self.source = source
        raw = _absolute_refs(copy.deepcopy(dict(document)))
        corrected = copy.deepcopy(raw)
        for correction in CORRECTIONS:
            found = _at(raw, correction.pointer)
            if found != correction.spec:
                raise ValueError(
                    f"{source}: {correction.pointer} is {found!r}, not {correction.spec!r};"
                    " the spec changed, review CORRECTIONS"
                )
            _put(corrected, correction.pointer, correction.docs)
        self._documents = {True: _unions_as_any_of(corrected), False: _unions_as_any_of(raw)}
        self._registries: dict[bool, Registry[Any]] = {
            flag: Registry().with_resource(_ROOT, DRAFT202012.create_resource(doc))
            for flag, doc in self._documents.items()
        }
        self._validators: dict[tuple[str, bool], Draft202012Validator] = {}

    @classmethod
    def load(cls, path: str | Path) -> DiscordSpec:
        """Read the document at ``path`` (ValueError unless it is OpenAPI 3.1)."""
        file = Path(path)
        with file.open(encoding="utf-8") as handle:
            document = json.load(handle)
        if not str(document.get("openapi", "")).startswith("3.1"):
            raise ValueError(f"{file} is not an OpenAPI 3.1 document")
        return cls(document, source=str(file))

    # --- lookups --------------------------------------------------------------------------

    def has_operation(self, method: str, template: str) -> bool:
        """Whether the spec documents ``method template``."""
        item = self._documents[False]["paths"].get(template, {})
        return method.lower() in item

    def operation_id(self, method: str, template: str) -> str:
        """The spec's ``operationId`` for ``method template`` (KeyError if none)."""
        return str(self._documents[False]["paths"][template][method.lower()]["operationId"])

    def _operation(self, method: str, template: str, corrected: bool) -> Mapping[str, Any]:
        return self._documents[corrected]["paths"][template][method.lower()]  # type: ignore[no-any-return]

    # --- validation -----------------------------------------------------------------------

    def _validator(
        self, key: str, schema: Mapping[str, Any], corrected: bool
    ) -> Draft202012Validator:
        validator = self._validators.get((key, corrected))
        if validator is None:
            validator = Draft202012Validator(dict(schema), registry=self._registries[corrected])
            self._validators[(key, corrected)] = validator
        return validator

    def check_body(
        self, method: str, template: str, body: Any, *, corrected: bool = True
    ) -> list[FieldError]:
        """Every way a JSON request body breaks the operation's schema (docs-corrected)."""
        operation = self._operation(method, template, corrected)
        content = (operation.get("requestBody") or {}).get("content", {})
        media = content.get("application/json")
        if not media or "schema" not in media:
            return []
        key = f"{method.upper()} {template} body"
        return self._errors(self._validator(key, media["schema"], corrected), body)

    def check_schema(self, name: str, value: Any, *, corrected: bool = True) -> list[FieldError]:
        """Every way ``value`` breaks ``components/schemas/<name>``."""
        schema = {"$ref": f"{_ROOT}#/components/schemas/{name}"}
        return self._errors(self._validator(f"schema {name}", schema, corrected), value)

    def check_response(self, method: str, template: str, status: int, body: Any) -> list[str]:
        """How an answer breaks the spec (an undocumented 2xx, or a body off its schema)."""
        responses = self._operation(method, template, True).get("responses", {})
        documented = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        if documented is None:
            return [f"status {status} is not documented"] if 200 <= status < 300 else []
        if "$ref" in documented:
            documented = _at(self._documents[True], documented["$ref"].split("#", 1)[1])
        schema = ((documented.get("content") or {}).get("application/json") or {}).get("schema")
        if not schema or body is None:
            return []
        validator = self._validator(f"{method.upper()} {template} {status}", schema, True)
        return [
            f"{'/'.join(map(str, e.path)) or '<root>'}: {e.code}: {e.message}"
            for e in self._errors(validator, body)
        ]

    def _errors(self, validator: Draft202012Validator, value: Any) -> list[FieldError]:
        found: list[FieldError] = []
        for count, error in enumerate(validator.iter_errors(value)):
            if count >= _MAX_SCANNED:
                break
            found.extend(_field_errors(_deepest(error)))
        unique = {(e.path, e.code, e.message): e for e in found}
        ordered = sorted(unique.values(), key=_order)
        return ordered[:_MAX_ERRORS]


def _order(error: FieldError) -> tuple[int, tuple[tuple[int, str], ...]]:
    steps = tuple((p, "") if isinstance(p, int) else (-1, p) for p in error.path)
    return len(error.path), steps


def _depth(error: ValidationError) -> int:
    deepest = len(error.absolute_path)
    for child in error.context or ():
        deepest = max(deepest, _depth(child))
    return deepest


def _wrong_kind(errors: Iterable[ValidationError], depth: int) -> bool:
    """Whether a union branch failed on the object's own ``type`` (it is another variant)."""
    for error in errors:
        path = tuple(error.absolute_path)
        if len(path) == depth + 1 and path[-1] == "type":
            return True
        if _wrong_kind(error.context or (), depth):
            return True
    return False


def _deepest(error: ValidationError) -> ValidationError:
    """For a failed union, the best error of the variant the value was meant to be.

    A branch that rejects the object's ``type`` property, or the value's JSON type, is another
    variant; among the rest, the one that got furthest into the value wins.
    """
    while error.context:
        depth = len(error.absolute_path)
        branches: dict[Any, list[ValidationError]] = {}
        for child in error.context:
            branches.setdefault(child.relative_schema_path[0], []).append(child)
        ranked = sorted(
            branches.values(),
            key=lambda errs: (
                not _wrong_kind(errs, depth),
                not all(e.validator == "type" for e in errs),
                max(_depth(e) for e in errs),
            ),
            reverse=True,
        )
        best = ranked[0]
        if _wrong_kind(best, depth) and len(ranked) > 1:
            return error
        error = max(best, key=_depth)
    return error


_TYPE_CODES: Final[Mapping[str, tuple[str, str]]] = {
    "integer": ("NUMBER_TYPE_COERCE", 'Value "{value}" is not int.'),
    "number": ("NUMBER_TYPE_COERCE", 'Value "{value}" is not a number.'),
    "string": ("BASE_TYPE_STRING", 'Could not interpret "{value}" as string.'),
    "boolean": ("BASE_TYPE_BOOLEAN", "Must be either true or false."),
    "array": ("BASE_TYPE_ARRAY", "Must be an array."),
    "object": ("MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"),
}


def _field_errors(error: ValidationError) -> Iterable[FieldError]:
    path = tuple(error.absolute_path)
    kind = error.validator
    limit = error.validator_value
    if kind == "required" and isinstance(error.instance, Mapping):
        for name in _sequence(limit):
            if name not in error.instance:
                yield FieldError(
                    path=(*path, str(name)),
                    code="BASE_TYPE_REQUIRED",
                    message="This field is required",
                )
        return
    if kind in ("maxLength", "maxItems"):
        yield FieldError(
            path=path, code="BASE_TYPE_MAX_LENGTH", message=f"Must be {limit} or fewer in length."
        )
    elif kind in ("minLength", "minItems"):
        yield FieldError(
            path=path, code="BASE_TYPE_MIN_LENGTH", message=f"Must be {limit} or more in length."
        )
    elif kind == "type":
        expected = [t for t in _sequence(limit) if t != "null"]
        code, text = _TYPE_CODES.get(
            str(expected[0]) if expected else "", ("BASE_TYPE_INVALID", "Invalid value.")
        )
        yield FieldError(path=path, code=code, message=text.format(value=str(error.instance)[:40]))
    elif kind in ("enum", "const"):
        choices = _sequence(limit) if kind == "enum" else [limit]
        shown = ", ".join(json.dumps(c) for c in choices if c is not None)
        yield FieldError(
            path=path, code="BASE_TYPE_CHOICES", message=f"Value must be one of ({shown})."
        )
    elif kind == "maximum":
        yield FieldError(
            path=path,
            code="NUMBER_TYPE_MAX",
            message=f"int value should be less than or equal to {limit}.",
        )
    elif kind == "minimum":
        yield FieldError(
            path=path,
            code="NUMBER_TYPE_MIN",
            message=f"int value should be greater than or equal to {limit}.",
        )
    elif kind == "pattern":
        yield FieldError(
            path=path,
            code="STRING_TYPE_REGEX",
            message="String value did not match validation regex.",
        )
    else:
        text = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        yield FieldError(path=path, code="BASE_TYPE_INVALID", message=text)


def _sequence(value: Any) -> Sequence[Any]:
    if isinstance(value, list | tuple):
        return value
    return [value]
