"""JQL against a site: check that fields, operators and values exist, then match and order.

:func:`compile_query` turns a parsed :class:`~dfj_sandbox.jira_sim.jql.Query` into a predicate
over issues and a sort, for one caller (``currentUser()`` is the caller). Every problem is
collected, so the error list reads like Jira's: ``Field 'foo' does not exist or you do not have
permission to view it.``, ``The value 'NOPE' does not exist for the field 'project'.``, ``The
operator '~' is not supported by the 'project' field.``

Fields: ``project``, ``issuetype`` (``type``), ``status``, ``statusCategory``, ``priority``,
``level`` (security level), ``labels``, ``assignee``, ``reporter``, ``key`` (``issuekey``,
``issue``, ``id``), ``summary``, ``description``, ``comment``, ``text``, ``created``, ``updated``.
Names or ids are accepted for projects, types, statuses and priorities.

Jira's semantics kept here: ``!=`` and ``NOT IN`` never match an empty field (``assignee !=
bob`` leaves out unassigned issues); ``= EMPTY`` means ``IS EMPTY``; ``~`` matches words
(a trailing ``*`` matches a prefix). ``NOT`` is plain negation of what it wraps. Without an
``ORDER BY`` results come newest first (descending id); every sort direction defaults to ASC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from dfj_sandbox.jira_sim import adf
from dfj_sandbox.jira_sim.jql import (
    Clause,
    EmptyKeyword,
    Function,
    ListOperand,
    Negation,
    Node,
    Query,
    SortKey,
    Value,
)
from dfj_sandbox.jira_sim.model import Issue, User
from dfj_sandbox.jira_sim.site import Site

__all__ = ["CompiledQuery", "JqlError", "compile_query"]

Predicate = Callable[[Issue], bool]

_KEY_PATTERN: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")
_PERIOD: Final = re.compile(r"^([+-]?)((?:\d+[wdhm]\s*)+)$")
_PERIOD_PART: Final = re.compile(r"(\d+)([wdhm])")
_DATE_FORMATS: Final = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_UNIT_SECONDS: Final = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
_EQUALITY: Final = frozenset({"=", "!=", "in", "not in", "is", "is not"})
_TEXT_OPERATORS: Final = frozenset({"~", "!~", "is", "is not"})
_DATE_OPERATORS: Final = frozenset(
    {"=", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"}
)
_WORD: Final = re.compile(r"\w+")
_TERM: Final = re.compile(r"[\w*]+")


class JqlError(ValueError):
    """A query that parses but does not make sense on this site."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = tuple(dict.fromkeys(messages))


@dataclass(frozen=True, kw_only=True)
class CompiledQuery:
    """A query ready to run: ``matches`` one issue, ``order`` a list of them."""

    query: Query
    predicate: Predicate
    sort: Callable[[list[Issue]], list[Issue]]

    def matches(self, issue: Issue) -> bool:
        """Whether ``issue`` satisfies the restriction."""
        return self.predicate(issue)

    def order(self, issues: Iterable[Issue]) -> list[Issue]:
        """``issues`` in the query's order."""
        return self.sort(list(issues))


@dataclass(frozen=True, kw_only=True)
class _Context:
    site: Site
    user: User
    errors: list[str]

    def fail(self, message: str) -> Predicate:
        self.errors.append(message)
        return _never


def _never(_: Issue) -> bool:
    return False


def _always(_: Issue) -> bool:
    return True


# --- operands -----------------------------------------------------------------------------


def _items(operand: Any) -> tuple[Value | Function | EmptyKeyword, ...]:
    if isinstance(operand, ListOperand):
        return operand.items
    return (operand,)


@dataclass(frozen=True, kw_only=True)
class _Wanted:
    values: frozenset[str]
    empty: bool


Resolver = Callable[[str], Iterable[str] | None]


def _wanted(
    clause: Clause,
    ctx: _Context,
    resolve: Resolver,
    *,
    allow_empty: bool = True,
    functions: dict[str, Callable[[], str]] | None = None,
) -> _Wanted:
    values: set[str] = set()
    empty = False
    for item in _items(clause.operand):
        if isinstance(item, EmptyKeyword):
            if not allow_empty:
                ctx.errors.append(
                    f"The field '{clause.field}' does not support searching for EMPTY values."
                )
            empty = True
        elif isinstance(item, Function):
            values.update(_function_value(clause, item, ctx, functions or {}))
        else:
            found = resolve(item.text)
            if found is None:
                ctx.errors.append(
                    f"The value '{item.text}' does not exist for the field '{clause.field}'."
                )
            else:
                values.update(found)
    return _Wanted(values=frozenset(values), empty=empty)


def _function_value(
    clause: Clause, call: Function, ctx: _Context, functions: dict[str, Callable[[], str]]
) -> list[str]:
    known = {"currentuser", "now", "startofday", "endofday"}
    name = call.name.lower()
    if name not in known:
        ctx.errors.append(f"Unable to find JQL function '{call.name}()'.")
        return []
    if name not in functions:
        ctx.errors.append(
            f"The function '{call.name}' is not supported by the field '{clause.field}'."
        )
        return []
    if call.arguments:
        ctx.errors.append(
            f"Function '{call.name}' expected '0' arguments but received '{len(call.arguments)}'."
        )
        return []
    return [functions[name]()]


def _single_valued(
    clause: Clause, ctx: _Context, get: Callable[[Issue], str | None], resolve: Resolver, **kw: Any
) -> Predicate:
    if clause.operator not in _EQUALITY:
        return _unsupported(clause, ctx)
    if clause.operator in ("is", "is not"):
        if not kw.get("allow_empty", True):
            return ctx.fail(
                f"The field '{clause.field}' does not support searching for EMPTY values."
            )
        return (
            (lambda i: get(i) is None)
            if clause.operator == "is"
            else (lambda i: get(i) is not None)
        )
    wanted = _wanted(clause, ctx, resolve, **kw)
    if clause.operator in ("=", "in"):
        return lambda i: (value := get(i)) in wanted.values or (wanted.empty and value is None)
    return lambda i: (value := get(i)) is not None and value not in wanted.values


def _multi_valued(
    clause: Clause, ctx: _Context, get: Callable[[Issue], tuple[str, ...]]
) -> Predicate:
    if clause.operator not in _EQUALITY:
        return _unsupported(clause, ctx)
    if clause.operator == "is":
        return lambda i: not get(i)
    if clause.operator == "is not":
        return lambda i: bool(get(i))
    wanted = _wanted(clause, ctx, lambda text: [text.casefold()])
    if clause.operator in ("=", "in"):
        return lambda i: (
            any(v.casefold() in wanted.values for v in get(i)) or (wanted.empty and not get(i))
        )
    return lambda i: bool(get(i)) and not any(v.casefold() in wanted.values for v in get(i))


def _unsupported(clause: Clause, ctx: _Context) -> Predicate:
    return ctx.fail(
        f"The operator '{clause.operator}' is not supported by the '{clause.field}' field."
    )


# --- fields -------------------------------------------------------------------------------


def _project(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site

    def resolve(text: str) -> list[str] | None:
        wanted = text.lower()
        found = [
            p.id
            for p in site.projects.values()
            if p.id == text or p.key.lower() == wanted or p.name.lower() == wanted
        ]
        return found or None

    return _single_valued(clause, ctx, lambda i: i.project_id, resolve, allow_empty=False)


def _issue_type(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site

    def resolve(text: str) -> list[str] | None:
        found = {
            t.id
            for p in site.projects.values()
            for t in p.issue_types
            if t.id == text or t.name.lower() == text.lower()
        }
        return sorted(found) or None

    return _single_valued(clause, ctx, lambda i: i.issue_type_id, resolve, allow_empty=False)


def _status(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site

    def resolve(text: str) -> list[str] | None:
        found = {
            s.id
            for p in site.projects.values()
            for s in p.workflow.statuses
            if s.id == text or s.name.lower() == text.lower()
        }
        return sorted(found) or None

    return _single_valued(clause, ctx, lambda i: i.status_id, resolve, allow_empty=False)


def _status_category(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site
    categories = {
        s.category.key: s.category for p in site.projects.values() for s in p.workflow.statuses
    }

    def resolve(text: str) -> list[str] | None:
        wanted = text.lower()
        found = [
            key
            for key, c in categories.items()
            if str(c.id) == text or c.key == wanted or c.name.lower() == wanted
        ]
        return found or None

    return _single_valued(
        clause, ctx, lambda i: site.status_of(i).category.key, resolve, allow_empty=False
    )


def _priority(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site

    def resolve(text: str) -> list[str] | None:
        found = site.priority(text)
        return None if found is None else [found.id]

    return _single_valued(clause, ctx, lambda i: i.priority_id, resolve)


def _level(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site

    def resolve(text: str) -> list[str] | None:
        found = [
            level.id
            for p in site.projects.values()
            for level in p.security_levels
            if level.id == text or level.name.lower() == text.lower()
        ]
        return found or None

    return _single_valued(clause, ctx, lambda i: i.security_level_id, resolve)


def _person(get: Callable[[Issue], str | None]) -> Callable[[Clause, _Context], Predicate]:
    def compile_person(clause: Clause, ctx: _Context) -> Predicate:
        site = ctx.site
        caller = ctx.user.account_id

        def resolve(text: str) -> list[str] | None:
            return [text] if text in site.users else None

        return _single_valued(clause, ctx, get, resolve, functions={"currentuser": lambda: caller})

    return compile_person


def _issue_key(clause: Clause, ctx: _Context) -> Predicate:
    site = ctx.site
    user = ctx.user
    if clause.operator not in ("=", "!=", "in", "not in"):
        if clause.operator in ("is", "is not"):
            return ctx.fail(
                f"The field '{clause.field}' does not support searching for EMPTY values."
            )
        return _unsupported(clause, ctx)
    ids: set[str] = set()
    for item in _items(clause.operand):
        if isinstance(item, EmptyKeyword):
            ctx.errors.append(
                f"The field '{clause.field}' does not support searching for EMPTY values."
            )
            continue
        if isinstance(item, Function):
            _function_value(clause, item, ctx, {})
            continue
        text = item.text
        if not text.isdigit() and not _KEY_PATTERN.match(text):
            ctx.errors.append(f"The issue key '{text}' for field '{clause.field}' is invalid.")
            continue
        found = site.issue(text)
        if found is None or not site.can_see(user, found):
            ctx.errors.append(
                f"An issue with key '{text}' does not exist for field '{clause.field}'."
            )
            continue
        ids.add(found.id)
    if clause.operator in ("=", "in"):
        return lambda i: i.id in ids
    return lambda i: i.id not in ids


def _text(get: Callable[[Site, User, Issue], str]) -> Callable[[Clause, _Context], Predicate]:
    def compile_text(clause: Clause, ctx: _Context) -> Predicate:
        site = ctx.site
        user = ctx.user
        if clause.operator not in _TEXT_OPERATORS:
            return _unsupported(clause, ctx)
        if clause.operator in ("is", "is not"):
            empty = clause.operator == "is"
            return lambda i: (get(site, user, i) == "") == empty
        operand = clause.operand
        if not isinstance(operand, Value):
            return ctx.fail(
                f"The field '{clause.field}' only supports text values with '{clause.operator}'."
            )
        terms = [t.lower() for t in _TERM.findall(operand.text)]
        if not terms:
            return ctx.fail(
                f"The field '{clause.field}' does not support searching for an empty string."
            )

        def contains(issue: Issue) -> bool:
            words = set(_WORD.findall(get(site, user, issue).lower()))
            return all(_term_matches(term, words) for term in terms)

        if clause.operator == "~":
            return contains
        return lambda i: not contains(i)

    return compile_text


def _term_matches(term: str, words: set[str]) -> bool:
    stem = term.rstrip("*")
    if not stem:
        return bool(words)
    return any(word.startswith(stem) for word in words)


def _summary_text(site: Site, user: User, issue: Issue) -> str:
    return issue.summary


def _description_text(site: Site, user: User, issue: Issue) -> str:
    return adf.to_text(issue.description)


def _comment_text(site: Site, user: User, issue: Issue) -> str:
    return "\n".join(
        adf.to_text(c.body) for c in issue.comments if site.can_see_comment(user, issue, c)
    )


def _all_text(site: Site, user: User, issue: Issue) -> str:
    return "\n".join(
        (
            _summary_text(site, user, issue),
            _description_text(site, user, issue),
            _comment_text(site, user, issue),
        )
    )


def _date(get: Callable[[Issue], float]) -> Callable[[Clause, _Context], Predicate]:
    def compile_date(clause: Clause, ctx: _Context) -> Predicate:
        if clause.operator not in _DATE_OPERATORS:
            return _unsupported(clause, ctx)
        if clause.operator in ("is", "is not"):
            return _never if clause.operator == "is" else _always
        now = ctx.site.now()
        day = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        functions = {
            "now": lambda: str(now),
            "startofday": lambda: str(day.timestamp()),
            "endofday": lambda: str((day + timedelta(days=1)).timestamp() - 0.001),
        }
        instants: list[float] = []
        for item in _items(clause.operand):
            if isinstance(item, EmptyKeyword):
                continue
            if isinstance(item, Function):
                instants.extend(float(v) for v in _function_value(clause, item, ctx, functions))
                continue
            instant = _instant(item.text, now)
            if instant is None:
                ctx.errors.append(
                    f"Date value '{item.text}' for field '{clause.field}' is invalid. Valid"
                    " formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd',"
                    " 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
                )
                continue
            instants.append(instant)
        if not instants:
            return _never
        op = clause.operator
        if op in ("=", "in"):
            return lambda i: get(i) in instants
        if op in ("!=", "not in"):
            return lambda i: get(i) not in instants
        bound = instants[0]
        compare: dict[str, Callable[[float], bool]] = {
            "<": lambda v: v < bound,
            "<=": lambda v: v <= bound,
            ">": lambda v: v > bound,
            ">=": lambda v: v >= bound,
        }
        check = compare[op]
        return lambda i: check(get(i))

    return compile_date


def _instant(text: str, now: float) -> float | None:
    period = _PERIOD.match(text.strip())
    if period:
        sign = -1 if period.group(1) == "-" else 1
        seconds = sum(
            int(count) * _UNIT_SECONDS[unit]
            for count, unit in _PERIOD_PART.findall(period.group(2))
        )
        return now + sign * seconds
    for layout in _DATE_FORMATS:
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


FieldCompiler = Callable[[Clause, _Context], Predicate]

_FIELDS: Final[dict[str, FieldCompiler]] = {
    "project": _project,
    "issuetype": _issue_type,
    "type": _issue_type,
    "status": _status,
    "statuscategory": _status_category,
    "priority": _priority,
    "level": _level,
    "labels": lambda clause, ctx: _multi_valued(clause, ctx, lambda i: i.labels),
    "assignee": _person(lambda i: i.assignee),
    "reporter": _person(lambda i: i.reporter),
    "key": _issue_key,
    "issuekey": _issue_key,
    "issue": _issue_key,
    "id": _issue_key,
    "summary": _text(_summary_text),
    "description": _text(_description_text),
    "comment": _text(_comment_text),
    "text": _text(_all_text),
    "created": _date(lambda i: i.created),
    "updated": _date(lambda i: i.updated),
}


def _compile(node: Node, ctx: _Context) -> Predicate:
    if isinstance(node, Clause):
        compiler = _FIELDS.get(node.field.lower())
        if compiler is None:
            return ctx.fail(
                f"Field '{node.field}' does not exist or you do not have permission to view it."
            )
        return compiler(node, ctx)
    if isinstance(node, Negation):
        inner = _compile(node.clause, ctx)
        return lambda i: not inner(i)
    parts = tuple(_compile(c, ctx) for c in node.clauses)
    if node.operator == "and":
        return lambda i: all(p(i) for p in parts)
    return lambda i: any(p(i) for p in parts)


# --- ordering -----------------------------------------------------------------------------

SortValue = Callable[[Issue], Any]


def _sort_values(site: Site) -> dict[str, SortValue | None]:
    def key_order(issue: Issue) -> tuple[str, int]:
        return site.project_of(issue).key, issue.number

    def person(account: str | None) -> str | None:
        user = None if account is None else site.users.get(account)
        return None if user is None else user.display_name.lower()

    def priority(issue: Issue) -> int | None:
        found = site.priority_of(issue)
        return None if found is None else -found.rank

    return {
        "key": key_order,
        "issuekey": key_order,
        "issue": key_order,
        "id": lambda i: int(i.id),
        "created": lambda i: i.created,
        "updated": lambda i: i.updated,
        "priority": priority,
        "status": lambda i: site.status_of(i).name.lower(),
        "summary": lambda i: i.summary.lower(),
        "assignee": lambda i: person(i.assignee),
        "reporter": lambda i: person(i.reporter),
        "project": lambda i: site.project_of(i).key,
        "issuetype": lambda i: site.issue_type_of(i).name.lower(),
        "type": lambda i: site.issue_type_of(i).name.lower(),
        "labels": None,
        "level": None,
        "description": None,
        "comment": None,
        "text": None,
        "statuscategory": None,
    }


def _sorter(keys: tuple[SortKey, ...], ctx: _Context) -> Callable[[list[Issue]], list[Issue]]:
    table = _sort_values(ctx.site)
    steps: list[tuple[SortValue, bool]] = []
    for key in keys:
        name = key.field.lower()
        if name not in table:
            ctx.errors.append(
                f"Field '{key.field}' does not exist or you do not have permission to view it."
            )
            continue
        value = table[name]
        if value is None:
            ctx.errors.append(f"Field '{key.field}' does not support sorting.")
            continue
        steps.append((value, key.direction == "desc"))
    if not keys:
        steps = [(lambda i: int(i.id), True)]

    def sort(issues: list[Issue]) -> list[Issue]:
        ordered = list(issues)
        for value, descending in reversed(steps):

            def sort_key(issue: Issue, value: SortValue = value) -> tuple[bool, Any]:
                got = value(issue)
                return (got is None, got if got is not None else 0)

            ordered.sort(key=sort_key, reverse=descending)
        return ordered

    return sort


def compile_query(query: Query, site: Site, user: User) -> CompiledQuery:
    """``query`` checked against ``site`` and bound to ``user`` (JqlError lists every problem)."""
    ctx = _Context(site=site, user=user, errors=[])
    predicate = _always if query.where is None else _compile(query.where, ctx)
    sort = _sorter(query.order_by, ctx)
    if ctx.errors:
        raise JqlError(ctx.errors)
    return CompiledQuery(query=query, predicate=predicate, sort=sort)
