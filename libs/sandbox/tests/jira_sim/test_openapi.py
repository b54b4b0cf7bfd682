"""Requests are held against Jira's OpenAPI document; violations are answered and recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dfj_common.clock import ManualClock
from dfj_sandbox.jira_sim import SPEC_ENV, JiraSimulator, OpenApiSpec, locate_spec
from dfj_sandbox.jira_sim.openapi import RouteError

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.conftest import JiraClient

TINY: dict[str, Any] = {
    "openapi": "3.0.1",
    "info": {"title": "tiny", "version": "1"},
    "paths": {
        "/rest/api/3/thing/{id}": {
            "put": {
                "operationId": "putThing",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "n",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    },
                },
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        }
                    }
                },
            }
        }
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "nullable": True},
                    "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
                    "part": {
                        "anyOf": [{"$ref": "#/components/schemas/Part"}],
                        "additionalProperties": False,
                    },
                },
            },
            "Part": {"type": "object", "properties": {"size": {"type": "integer"}}},
        }
    },
}


async def test_a_malformed_body_is_a_recorded_violation(jira: JiraClient) -> None:
    """``issueIds`` must be integers: 400 naming the problem, and ``spec_violations`` says so."""
    answer = await jira.app(
        "POST", "/rest/api/3/jql/match", json={"issueIds": ["10001"], "jqls": []}
    )
    assert answer.status == 400
    assert answer.body["errorMessages"] == ["body.issueIds[0]: '10001' is not of type 'integer'"]
    [violation] = jira.sim.spec_violations
    assert (violation.method, violation.template, violation.operation_id) == (
        "POST",
        "/rest/api/3/jql/match",
        "matchIssues",
    )
    assert "issueIds" in violation.message


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "fragment"),
    [
        (
            "POST",
            "/rest/api/3/jql/match",
            [],
            {"issueIds": []},
            400,
            "'jqls' is a required property",
        ),
        (
            "POST",
            "/rest/api/3/jql/match",
            [],
            {"issueIds": [], "jqls": [], "extra": 1},
            400,
            "Additional properties",
        ),
        (
            "POST",
            "/rest/api/3/jql/parse",
            [],
            {"queries": ["a = b"]},
            400,
            "'validation' is required",
        ),
        (
            "POST",
            "/rest/api/3/jql/parse",
            [("validation", "loose")],
            {"queries": ["a = b"]},
            400,
            "is not one of",
        ),
        (
            "GET",
            "/rest/api/3/search/jql",
            [("jql", "project = DEMO"), ("maxResults", "many")],
            None,
            400,
            "must be an integer",
        ),
        (
            "GET",
            "/rest/api/3/search/jql",
            [("jql", "project = DEMO"), ("reconcileIssues", "1,x")],
            None,
            400,
            "must be an integer",
        ),
        (
            "GET",
            "/rest/api/3/issue/DEMO-1",
            [("updateHistory", "maybe")],
            None,
            400,
            "must be true or false",
        ),
        ("GET", "/rest/api/3/user/bulk", [], None, 400, "'accountId' is required"),
        ("POST", "/rest/api/3/issue", [], None, 400, "a request body is required"),
        ("GET", "/rest/api/3/myself", [], {"unexpected": True}, 400, "takes no request body"),
        ("GET", "/rest/api/3/no/such/thing", [], None, 404, "matches no path"),
        ("PATCH", "/rest/api/3/issue/DEMO-1", [], None, 405, "PATCH is not an operation"),
    ],
)
async def test_requests_off_the_spec_are_refused_and_recorded(  # noqa: PLR0917 - parametrized
    jira: JiraClient,
    method: str,
    path: str,
    params: list[tuple[str, str]],
    body: Any,
    status: int,
    fragment: str,
) -> None:
    """Required parameters, types, enums, body schema, unknown paths and methods."""
    jira.site.create_issue(summary="Target")
    answer = await jira.app(method, path, params=params, json=body)
    assert answer.status == status
    assert any(fragment in m for m in answer.body["errorMessages"]), answer.body
    assert len(jira.sim.spec_violations) == 1
    assert fragment in jira.sim.spec_violations[0].message


async def test_a_body_must_be_json_of_the_right_media_type(jira: JiraClient) -> None:
    """Not JSON at all: 400; a form where JSON is expected: 415."""
    broken = await jira.app(
        "POST",
        "/rest/api/3/jql/match",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status == 400
    assert broken.body["errorMessages"] == ["the request body is not valid JSON"]
    form = await jira.app(
        "POST",
        "/rest/api/3/jql/match",
        data=b"issueIds=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 415
    assert len(jira.sim.spec_violations) == 2


async def test_operations_in_the_spec_but_not_served_are_not_violations(jira: JiraClient) -> None:
    """``dashboard`` exists in Jira; the simulator says it does not serve it."""
    answer = await jira.app("GET", "/rest/api/3/dashboard")
    assert answer.status == 404
    assert jira.sim.spec_violations == []
    assert jira.sim.unserved == ["GET /rest/api/3/dashboard"]


async def test_unauthenticated_requests_are_refused_before_the_spec_check(jira: JiraClient) -> None:
    """No credentials: 401 and nothing recorded as the app's violation."""
    answer = await jira.send("POST", "/rest/api/3/jql/match", authorization=None, json={"bad": 1})
    assert answer.status == 401
    assert jira.sim.spec_violations == []


def test_the_spec_is_found_beside_the_repository() -> None:
    """Without an override, ``shared/specs/`` above this checkout is where it is."""
    found = locate_spec(environ={})
    assert found.name == "jira-platform-openapi.json"
    assert found.parent.name == "specs"


def test_conversion_maps_nullable_refs_and_composition(tmp_path: Path) -> None:
    """``nullable`` admits null (in enums too); refs resolve; anyOf beside additionalProperties."""
    file = tmp_path / "tiny.json"
    file.write_text(json.dumps(TINY), encoding="utf-8")
    spec = OpenApiSpec.load(file)
    operation, params = spec.match("PUT", "/rest/api/3/thing/abc")
    assert params == {"id": "abc"}
    ok = json.dumps({"name": None, "kind": None, "part": {"size": 2}}).encode()
    valid, problems = spec.check_request(operation, [("n", "3")], params, ok, "application/json")
    assert problems == []
    assert valid.params == {"n": 3}
    bad = json.dumps({"name": 1, "kind": "c", "other": True}).encode()
    _, problems = spec.check_request(operation, [("n", "0")], params, bad, "application/json")
    assert problems == [
        "query.n: 0 is less than the minimum of 1",
        "body: Additional properties are not allowed ('other' was unexpected)",
        "body.kind: 'c' is not one of ['a', 'b', None]",
        "body.name: 1 is not of type 'string', 'null'",
    ]
    assert spec.check_response(operation, 200, {"name": "x"}) == []
    assert spec.check_response(operation, 200, {"name": 5}) == [
        "response.name: 5 is not of type 'string', 'null'"
    ]
    assert spec.check_response(operation, 201, None) == [
        "status 201 is not documented for putThing"
    ]
    with pytest.raises(RouteError) as missing:
        spec.match("GET", "/rest/api/3/thing/abc")
    assert missing.value.status == 405


def test_the_jira_spec_checks_responses_too(spec: OpenApiSpec) -> None:
    """A matchIssues answer with string ids is caught (the response check can fail)."""
    operation = spec.operation("POST", "/rest/api/3/jql/match")
    good = {"matches": [{"matchedIssues": [1], "errors": []}]}
    assert spec.check_response(operation, 200, good) == []
    bad = {"matches": [{"matchedIssues": ["1"]}]}
    assert spec.check_response(operation, 200, bad) == [
        "response.matches[0]: 'errors' is a required property",
        "response.matches[0].matchedIssues[0]: '1' is not of type 'integer'",
    ]


def test_literal_segments_win_over_templates(spec: OpenApiSpec) -> None:
    """``createmeta`` is not an issue key."""
    operation, params = spec.match("GET", "/rest/api/3/issue/createmeta/DEMO/issuetypes")
    assert operation.operation_id == "getCreateIssueMetaIssueTypes"
    assert params == {"projectIdOrKey": "DEMO"}


async def test_the_spec_location_can_be_overridden(tmp_path: Path) -> None:
    """``DFJ_JIRA_OPENAPI`` names the file the simulator loads."""
    file = tmp_path / "tiny.json"
    file.write_text(json.dumps(TINY), encoding="utf-8")
    async with JiraSimulator(clock=ManualClock(), environ={SPEC_ENV: str(file)}) as sim:
        assert sim.spec.source == str(file)


async def test_a_missing_spec_fails_the_start_loudly(tmp_path: Path) -> None:
    """No silent skipping: start() raises and says how to point at the file."""
    sim = JiraSimulator(clock=ManualClock(), environ={SPEC_ENV: str(tmp_path / "absent.json")})
    with pytest.raises(FileNotFoundError, match=SPEC_ENV):
        await sim.start()
    with pytest.raises(FileNotFoundError):
        await JiraSimulator(clock=ManualClock(), spec=tmp_path / "absent.json").start()


def test_a_document_that_is_not_openapi_3_0_is_refused(tmp_path: Path) -> None:
    """The Discord spec (3.1) or anything else is not mistaken for Jira's."""
    file = tmp_path / "other.json"
    file.write_text(json.dumps({"openapi": "3.1.0", "paths": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"not an OpenAPI 3\.0"):
        OpenApiSpec.load(file)
