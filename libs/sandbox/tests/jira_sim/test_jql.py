"""The JQL subset: what parses (and how), what matches, how results are ordered, what errs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.jira_sim import JiraSimulator, OpenApiSpec, Site
from dfj_sandbox.jira_sim.jql import JqlSyntaxError, ParseCache, parse, structure
from dfj_sandbox.jira_sim.jql_eval import JqlError, compile_query

DAY = 86400.0


@pytest.fixture(name="jql_site")
def _jql_site(spec: OpenApiSpec, cast: Callable[[Site], None]) -> Site:
    """DEMO-1 … DEMO-4 and OPS-1; DEMO-1 is two days older than the rest."""
    clock = ManualClock(1_800_000_000.0)
    site = JiraSimulator(clock=clock, spec=spec).add_site("jql")
    cast(site)
    site.create_issue(
        summary="Login page crashes",
        issue_type="Bug",
        priority="High",
        assignee="alice",
        reporter="bob",
        labels=["frontend", "urgent"],
    )
    clock.advance(2 * DAY)
    notes = site.create_issue(
        summary="Write release notes",
        priority="Medium",
        reporter="alice",
        labels=["docs"],
        status="In Progress",
    )
    site.add_comment(notes, "Mention the rollback procedure", author="alice")
    site.create_issue(
        summary="Crash on logout",
        issue_type="Bug",
        priority="Low",
        assignee="dora",
        reporter="alice",
        status="Done",
    )
    site.create_issue(
        "OPS",
        "Disk full",
        issue_type="Incident",
        priority="Highest",
        assignee="carol",
        reporter="carol",
    )
    site.create_issue(summary="Salary review", security_level="Staff")
    return site


def _run(site: Site, text: str, user: str = "alice") -> list[str]:
    viewer = site.user(user)
    assert viewer is not None
    compiled = compile_query(parse(text), site, viewer)
    return [
        i.key for i in compiled.order(i for i in site.visible_issues(viewer) if compiled.matches(i))
    ]


MATCHES: list[tuple[str, set[str]]] = [
    ("project = DEMO", {"DEMO-1", "DEMO-2", "DEMO-3", "DEMO-4"}),
    ('project = "Demo project"', {"DEMO-1", "DEMO-2", "DEMO-3", "DEMO-4"}),
    ("project in (DEMO, OPS) AND type = Bug", {"DEMO-1", "DEMO-3"}),
    ("issuetype = Incident", {"OPS-1"}),
    ("status = 'In Progress'", {"DEMO-2"}),
    ("status = 3", {"DEMO-2"}),
    ("status != Done", {"DEMO-1", "DEMO-2", "DEMO-4", "OPS-1"}),
    ("statusCategory = done", {"DEMO-3"}),
    ("priority in (Highest, High)", {"DEMO-1", "OPS-1"}),
    ("priority = 2", {"DEMO-1"}),
    ("labels = frontend", {"DEMO-1"}),
    ("labels in (docs, urgent)", {"DEMO-1", "DEMO-2"}),
    ("labels != docs", {"DEMO-1"}),
    ("labels is EMPTY", {"DEMO-3", "DEMO-4", "OPS-1"}),
    ("assignee = currentUser()", {"DEMO-1"}),
    ("assignee is EMPTY", {"DEMO-2", "DEMO-4"}),
    ("assignee = EMPTY", {"DEMO-2", "DEMO-4"}),
    ("assignee is not EMPTY", {"DEMO-1", "DEMO-3", "OPS-1"}),
    ("assignee != alice", {"DEMO-3", "OPS-1"}),
    ("assignee not in (alice, carol)", {"DEMO-3"}),
    ("assignee in (alice, EMPTY)", {"DEMO-1", "DEMO-2", "DEMO-4"}),
    ("reporter = bob", {"DEMO-1"}),
    ("key = DEMO-2", {"DEMO-2"}),
    ("issuekey in (DEMO-1, ops-1)", {"DEMO-1", "OPS-1"}),
    ("key != DEMO-1 AND project = DEMO", {"DEMO-2", "DEMO-3", "DEMO-4"}),
    ("summary ~ crash", {"DEMO-1", "DEMO-3"}),
    ('summary ~ "release notes"', {"DEMO-2"}),
    ("summary ~ 'rel*'", {"DEMO-2"}),
    ("summary !~ crash AND project = DEMO", {"DEMO-2", "DEMO-4"}),
    ("text ~ rollback", {"DEMO-2"}),
    ("comment ~ rollback", {"DEMO-2"}),
    ("project = DEMO AND (assignee = alice OR assignee = dora)", {"DEMO-1", "DEMO-3"}),
    ("NOT project = DEMO", {"OPS-1"}),
    ("project = DEMO AND NOT (status = Done OR labels = docs)", {"DEMO-1", "DEMO-4"}),
    ("project = OPS || priority = Low", {"OPS-1", "DEMO-3"}),
    ("project = DEMO && labels = urgent", {"DEMO-1"}),
    ("project = DEMO & !(labels = urgent)", {"DEMO-2", "DEMO-3", "DEMO-4"}),
    ('PROJECT = demo and STATUS = "to do"', {"DEMO-1", "DEMO-4"}),
    ("created < -1d", {"DEMO-1"}),
    ("created >= -1d AND project = DEMO", {"DEMO-2", "DEMO-3", "DEMO-4"}),
    ('updated > "2020-01-01"', {"DEMO-1", "DEMO-2", "DEMO-3", "DEMO-4", "OPS-1"}),
    ("created <= now() AND level = Staff", {"DEMO-4"}),
    ("level is EMPTY AND project = OPS", {"OPS-1"}),
]


@pytest.mark.parametrize(("jql", "expected"), MATCHES)
def test_queries_match_the_expected_issues(jql_site: Site, jql: str, expected: set[str]) -> None:
    """Each query of the table, as alice (who may see the Staff issue)."""
    assert set(_run(jql_site, jql)) == expected


def test_matching_is_as_the_caller_sees(jql_site: Site) -> None:
    """``currentUser()`` is the caller; the Staff issue is not visible to bob."""
    assert _run(jql_site, "reporter = currentUser()", user="bob") == ["DEMO-1"]
    assert set(_run(jql_site, "project = DEMO", user="bob")) == {"DEMO-1", "DEMO-2", "DEMO-3"}


@pytest.mark.parametrize(
    ("jql", "keys"),
    [
        ("project = DEMO", ["DEMO-4", "DEMO-3", "DEMO-2", "DEMO-1"]),
        ("project = DEMO ORDER BY key", ["DEMO-1", "DEMO-2", "DEMO-3", "DEMO-4"]),
        ("project = DEMO order by key desc", ["DEMO-4", "DEMO-3", "DEMO-2", "DEMO-1"]),
        ("project = DEMO ORDER BY priority DESC, key", ["DEMO-1", "DEMO-2", "DEMO-4", "DEMO-3"]),
        (
            "project = DEMO ORDER BY assignee ASC, key DESC",
            ["DEMO-1", "DEMO-3", "DEMO-4", "DEMO-2"],
        ),
        ("project = DEMO ORDER BY created DESC, key ASC", ["DEMO-2", "DEMO-3", "DEMO-4", "DEMO-1"]),
        (
            "project in (OPS, DEMO) ORDER BY project DESC, summary",
            ["OPS-1", "DEMO-3", "DEMO-1", "DEMO-4", "DEMO-2"],
        ),
    ],
)
def test_order_by(jql_site: Site, jql: str, keys: list[str]) -> None:
    """Sort keys apply left to right; without ORDER BY the newest come first."""
    assert _run(jql_site, jql) == keys


SEMANTIC_ERRORS: list[tuple[str, list[str]]] = [
    ("foo = bar", ["Field 'foo' does not exist or you do not have permission to view it."]),
    ("project = NOPE", ["The value 'NOPE' does not exist for the field 'project'."]),
    ("project ~ DEMO", ["The operator '~' is not supported by the 'project' field."]),
    ("summary = x", ["The operator '=' is not supported by the 'summary' field."]),
    ("assignee = nobody", ["The value 'nobody' does not exist for the field 'assignee'."]),
    ("key = DEMO-999", ["An issue with key 'DEMO-999' does not exist for field 'key'."]),
    ("key = garbage", ["The issue key 'garbage' for field 'key' is invalid."]),
    ("project is EMPTY", ["The field 'project' does not support searching for EMPTY values."]),
    ("assignee = foo()", ["Unable to find JQL function 'foo()'."]),
    (
        "project = currentUser()",
        ["The function 'currentUser' is not supported by the field 'project'."],
    ),
    (
        "assignee = currentUser(x)",
        ["Function 'currentUser' expected '0' arguments but received '1'."],
    ),
    ("project = DEMO ORDER BY labels", ["Field 'labels' does not support sorting."]),
    (
        "project = DEMO ORDER BY nope",
        ["Field 'nope' does not exist or you do not have permission to view it."],
    ),
    (
        "foo = 1 AND project = NOPE",
        [
            "Field 'foo' does not exist or you do not have permission to view it.",
            "The value 'NOPE' does not exist for the field 'project'.",
        ],
    ),
]


@pytest.mark.parametrize(("jql", "messages"), SEMANTIC_ERRORS)
def test_queries_that_make_no_sense_on_the_site(
    jql_site: Site, jql: str, messages: list[str]
) -> None:
    """Every problem is reported, in Jira's words."""
    viewer = jql_site.user("alice")
    assert viewer is not None
    with pytest.raises(JqlError) as raised:
        compile_query(parse(jql), jql_site, viewer)
    assert list(raised.value.messages) == messages


def test_an_issue_the_caller_cannot_see_does_not_exist_for_key(jql_site: Site) -> None:
    """bob asking for the Staff issue by key is told it does not exist."""
    bob = jql_site.user("bob")
    assert bob is not None
    with pytest.raises(JqlError):
        compile_query(parse("key = DEMO-4"), jql_site, bob)


def test_an_invalid_date_is_reported() -> None:
    """Jira lists the date formats it takes."""
    site = JiraSimulator(clock=ManualClock()).add_site("dates")
    viewer = site.app_user
    with pytest.raises(JqlError) as raised:
        compile_query(parse("created > someday"), site, viewer)
    assert raised.value.messages[0].startswith(
        "Date value 'someday' for field 'created' is invalid."
    )


OPERATORS = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and"
    " 'IS NOT'."
)
SYNTAX_ERRORS: list[tuple[str, str]] = [
    ("project = ", "Expecting either a value, list or function before the end of the query."),
    ("project DEMO", f"Expecting operator but got 'DEMO'. {OPERATORS} (line 1, character 9)"),
    (
        'summary ~ "unterminated',
        "The quoted string 'unterminated' has not been completed. (line 1, character 11)",
    ),
    ("project = DEMO AND", "Expecting a field name before the end of the query."),
    ("(project = DEMO", "Expecting ')' before the end of the query."),
    (
        "project = DEMO status = Done",
        "Expecting either 'OR' or 'AND' but got 'status'. (line 1, character 16)",
    ),
    (
        "project = AND",
        "Expecting either a value, list or function but got 'AND'. You must surround 'AND' in"
        " quotation characters to use it as a value. (line 1, character 11)",
    ),
    ("project in DEMO", "Expecting '(' but got 'DEMO'. (line 1, character 12)"),
    ("project in (DEMO OPS)", "Expecting ',' or ')' but got 'OPS'. (line 1, character 18)"),
    (
        "project in ()",
        "Expecting either a value, list or function but got ')'. (line 1, character 13)",
    ),
    ("assignee is alice", "Expecting 'EMPTY' or 'NULL' but got 'alice'. (line 1, character 13)"),
    ("ORDER key", "Expecting 'BY' but got 'key'. (line 1, character 7)"),
    (
        "summary ~ win*",
        "The character '*' is a reserved JQL character. You must enclose it in a string or use"
        " the escape '\\u002a' instead. (line 1, character 14)",
    ),
    (
        "project = DEMO\nAND status Done",
        f"Expecting operator but got 'Done'. {OPERATORS} (line 2, character 12)",
    ),
    (
        'summary ~ "bad \\q"',
        "The escape sequence '\\q' in the string is illegal. (line 1, character 16)",
    ),
    (
        "status WAS Done",
        "The operator 'WAS' is not supported by this Jira simulator. (line 1, character 8)",
    ),
    (
        "AND = x",
        "Expecting a field name but got 'AND'. You must surround 'AND' in quotation characters"
        " to use it as a field name. (line 1, character 1)",
    ),
]


@pytest.mark.parametrize(("jql", "message"), SYNTAX_ERRORS)
def test_syntax_errors_read_like_jiras(jql: str, message: str) -> None:
    """Position (line, character) where Jira gives one; "before the end" at the end."""
    with pytest.raises(JqlSyntaxError) as raised:
        parse(jql)
    assert raised.value.message == f"Error in the JQL Query: {message}"


def test_strings_unescape_and_keywords_count_only_unquoted() -> None:
    """``"AND"`` is a value; escapes are decoded; single quotes work; quoting is kept."""
    query = parse('summary ~ "say \\"hi\\"" AND status = \'AND\' AND labels = "\\u0041"')
    assert structure(query)["where"]["clauses"] == [
        {
            "field": {"name": "summary"},
            "operator": "~",
            "operand": {"value": 'say "hi"', "encodedValue": '"say \\"hi\\""'},
        },
        {
            "field": {"name": "status"},
            "operator": "=",
            "operand": {"value": "AND", "encodedValue": '"AND"'},
        },
        {
            "field": {"name": "labels"},
            "operator": "=",
            "operand": {"value": "A", "encodedValue": '"A"'},
        },
    ]


def test_the_structure_is_jiras_jql_query_object() -> None:
    """Compound clauses, lists, functions, EMPTY, NOT and ORDER BY."""
    query = parse(
        "project in (DEMO, OPS) AND (assignee = currentUser() OR assignee IS EMPTY) AND NOT"
        " labels = x ORDER BY priority DESC, key"
    )
    expected: dict[str, Any] = {
        "where": {
            "operator": "and",
            "clauses": [
                {
                    "field": {"name": "project"},
                    "operator": "in",
                    "operand": {
                        "values": [
                            {"value": "DEMO", "encodedValue": "DEMO"},
                            {"value": "OPS", "encodedValue": "OPS"},
                        ],
                        "encodedOperand": "(DEMO, OPS)",
                    },
                },
                {
                    "operator": "or",
                    "clauses": [
                        {
                            "field": {"name": "assignee"},
                            "operator": "=",
                            "operand": {
                                "function": "currentUser",
                                "arguments": [],
                                "encodedOperand": "currentUser()",
                            },
                        },
                        {
                            "field": {"name": "assignee"},
                            "operator": "is",
                            "operand": {"keyword": "empty"},
                        },
                    ],
                },
                {
                    "operator": "not",
                    "clauses": [
                        {
                            "field": {"name": "labels"},
                            "operator": "=",
                            "operand": {"value": "x", "encodedValue": "x"},
                        }
                    ],
                },
            ],
        },
        "orderBy": {
            "fields": [
                {"field": {"name": "priority"}, "direction": "desc"},
                {"field": {"name": "key"}},
            ]
        },
    }
    assert structure(query) == expected


def test_a_query_may_be_only_an_ordering() -> None:
    """``ORDER BY key`` parses (unbounded: no restriction)."""
    query = parse("order by key")
    assert query.where is None
    assert structure(query) == {"orderBy": {"fields": [{"field": {"name": "key"}}]}}
    assert parse("").where is None


def test_the_parse_cache_remembers_answers_and_errors() -> None:
    """A cached syntax error is raised again, with the same message."""
    cache = ParseCache(size=2)
    first = cache.parse("project = A")
    assert cache.parse("project = A") is first
    for _ in range(2):
        with pytest.raises(JqlSyntaxError, match="Expecting operator"):
            cache.parse("project A")
    cache.parse("project = B")
    cache.parse("project = C")
    assert cache.parse("project = A") is not first  # evicted, parsed again
