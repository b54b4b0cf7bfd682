"""JQL operations: search (``/search/jql``), match (``/jql/match``) and parse (``/jql/parse``).

Search answers only issues the caller may see, pages with an opaque ``nextPageToken`` bound to
the query, refuses unbounded queries (no restriction) as Jira does, and returns only ids unless
``fields`` asks for more. Match evaluates each JQL over the given issue ids, in order; an
invalid JQL yields that entry's ``errors`` instead of failing the request. Parse returns Jira's
query structure, with ``validation`` deciding whether site-level errors count.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from dfj_sandbox.jira_sim.jql import JqlSyntaxError, Query, structure
from dfj_sandbox.jira_sim.jql_eval import CompiledQuery, JqlError, compile_query
from dfj_sandbox.jira_sim.render import (
    issue_json,
    select_fields,
)
from dfj_sandbox.jira_sim.rest_common import (
    Refusal,
    Reply,
    RestRequest,
    csv_values,
    json_object,
)

__all__ = ["match_issues", "parse_jql", "search_get", "search_post"]

_ID_FIELDS: Final = frozenset({"id", "key"})


def _compile(req: RestRequest, text: str) -> CompiledQuery:
    query: Query = req.jql.parse(text)
    return compile_query(query, req.site, req.viewer)


def _page_token(offset: int, jql: str) -> str:
    digest = hashlib.sha256(jql.encode("utf-8")).hexdigest()[:16]
    raw = json.dumps({"o": offset, "q": digest}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _page_offset(token: str, jql: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        offset = int(data["o"])
        digest = hashlib.sha256(jql.encode("utf-8")).hexdigest()[:16]
        if data["q"] != digest or offset < 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError):
        raise Refusal(400, "The provided next page token is invalid or expired.") from None
    return offset


def _search(req: RestRequest, options: Mapping[str, Any]) -> Reply:
    site = req.site
    jql = str(options.get("jql") or "")
    try:
        compiled = _compile(req, jql)
    except JqlSyntaxError as error:
        raise Refusal(400, error.message) from None
    except JqlError as error:
        raise Refusal(400, *error.messages) from None
    if compiled.query.where is None:
        raise Refusal(
            400,
            "Unbounded JQL queries are not allowed here. Please add a search restriction to"
            " your query.",
        )
    requested = csv_values(options.get("fields"))
    only_ids = not requested or set(requested) <= _ID_FIELDS
    limits = req.limits
    maximum = limits.max_search_ids if only_ids else limits.max_search_results
    given = options.get("maxResults")
    size = max(0, min(50 if given is None else int(given), maximum))
    token = options.get("nextPageToken")
    offset = 0 if not token else _page_offset(str(token), jql)
    matched = compiled.order(i for i in site.visible_issues(req.viewer) if compiled.matches(i))
    chosen = matched[offset : offset + size]
    expand = frozenset(csv_values(options.get("expand")))
    wanted = select_fields(requested, ())
    issues: list[dict[str, Any]] = []
    for issue in chosen:
        if not requested or set(requested) == {"id"}:
            issues.append({"id": issue.id})
        else:
            issues.append(issue_json(site, issue, req.viewer, fields=wanted, expand=expand))
    body: dict[str, Any] = {"issues": issues, "isLast": offset + size >= len(matched)}
    if not body["isLast"]:
        body["nextPageToken"] = _page_token(offset + size, jql)
    return Reply(status=200, body=body)


def search_get(req: RestRequest) -> Reply:
    """``GET /search/jql``."""
    return _search(req, req.params)


def search_post(req: RestRequest) -> Reply:
    """``POST /search/jql``."""
    return _search(req, json_object(req.body))


def match_issues(req: RestRequest) -> Reply:
    """``POST /jql/match``: per JQL, which of ``issueIds`` match (as the caller sees them)."""
    site = req.site
    body = json_object(req.body)
    ids = [int(i) for i in body.get("issueIds", [])]
    jqls = [str(j) for j in body.get("jqls", [])]
    if len(ids) > req.limits.max_match_issue_ids:
        raise Refusal(
            400, f"The number of issue IDs cannot exceed {req.limits.max_match_issue_ids}."
        )
    if len(jqls) > req.limits.max_match_jqls:
        raise Refusal(400, f"The number of JQL queries cannot exceed {req.limits.max_match_jqls}.")
    candidates = []
    for issue_id in ids:
        issue = site.issues.get(str(issue_id))
        if issue is not None and site.can_see(req.viewer, issue):
            candidates.append(issue)
    matches: list[dict[str, Any]] = []
    for text in jqls:
        try:
            compiled = _compile(req, text)
        except JqlSyntaxError as error:
            matches.append({"matchedIssues": [], "errors": [error.message]})
            continue
        except JqlError as error:
            matches.append({"matchedIssues": [], "errors": list(error.messages)})
            continue
        matched = [int(i.id) for i in candidates if compiled.matches(i)]
        matches.append({"matchedIssues": list(dict.fromkeys(matched)), "errors": []})
    return Reply(status=200, body={"matches": matches})


def parse_jql(req: RestRequest) -> Reply:
    """``POST /jql/parse?validation=strict|warn|none``."""
    mode = str(req.params.get("validation", "strict"))
    body = json_object(req.body)
    results: list[dict[str, Any]] = []
    for text in body.get("queries", []):
        entry: dict[str, Any] = {"query": text}
        try:
            query = req.jql.parse(text)
        except JqlSyntaxError as error:
            entry["errors"] = [error.message]
            results.append(entry)
            continue
        problems: list[str] = []
        if mode != "none":
            try:
                compile_query(query, req.site, req.viewer)
            except JqlError as error:
                problems = list(error.messages)
        if problems:
            entry["errors"] = problems
        if not problems or mode == "warn":
            entry["structure"] = structure(query)
        results.append(entry)
    return Reply(status=200, body={"queries": results})
