"""A Jira Cloud simulator that speaks the real protocol, for tests, the demo and benchmarks.

``async with JiraSimulator() as sim`` serves sites on loopback; ``sim.add_site()`` installs the
app on a new site (a default project, workflow and priorities included) and the builders on
:class:`Site` fill it. The app's real client talks to ``site.base_url`` with Connect JWTs or
impersonation tokens from ``sim.oauth_url``, and every request is checked against Jira's
OpenAPI document. :mod:`~dfj_sandbox.jira_sim.webhooks` builds the bodies Jira would post.
"""

from dfj_sandbox.jira_sim.jql import JqlSyntaxError, Query, parse
from dfj_sandbox.jira_sim.jql_eval import CompiledQuery, JqlError, compile_query
from dfj_sandbox.jira_sim.model import (
    ALL_PROJECTS,
    MEMBER_PERMISSIONS,
    PERMISSIONS,
    ChangeItem,
    Changelog,
    Comment,
    Issue,
    IssueType,
    Priority,
    Project,
    SecurityLevel,
    Status,
    Transition,
    User,
    Visibility,
    Workflow,
)
from dfj_sandbox.jira_sim.openapi import SPEC_ENV, OpenApiSpec, SpecViolation, locate_spec
from dfj_sandbox.jira_sim.routes import Limits
from dfj_sandbox.jira_sim.server import TOKEN_PATH, Call, JiraSimulator
from dfj_sandbox.jira_sim.site import DEFAULT_PROJECT_KEY, DEFAULT_SCOPES, UNSET, Site

__all__ = [
    "ALL_PROJECTS",
    "DEFAULT_PROJECT_KEY",
    "DEFAULT_SCOPES",
    "MEMBER_PERMISSIONS",
    "PERMISSIONS",
    "SPEC_ENV",
    "TOKEN_PATH",
    "UNSET",
    "Call",
    "ChangeItem",
    "Changelog",
    "Comment",
    "CompiledQuery",
    "Issue",
    "IssueType",
    "JiraSimulator",
    "JqlError",
    "JqlSyntaxError",
    "Limits",
    "OpenApiSpec",
    "Priority",
    "Project",
    "Query",
    "SecurityLevel",
    "Site",
    "SpecViolation",
    "Status",
    "Transition",
    "User",
    "Visibility",
    "Workflow",
    "compile_query",
    "locate_spec",
    "parse",
]
