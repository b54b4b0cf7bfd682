"""The REST v3 operations the simulator serves, by the spec's method and path template.

:data:`ROUTES` maps ``(METHOD, path template)`` — the template exactly as Jira's OpenAPI
document spells it — to the handler, so the router that checks requests against the spec is
also the one that dispatches them. The handlers live in ``rest_*`` modules by subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from dfj_sandbox.jira_sim.rest_app import get_app_property, server_info
from dfj_sandbox.jira_sim.rest_comments import (
    add_comment,
    add_watcher,
    delete_comment,
    get_comment,
    get_comments,
    get_watchers,
    remove_watcher,
    update_comment,
)
from dfj_sandbox.jira_sim.rest_common import Handler, Limits, Refusal, Reply, RestRequest
from dfj_sandbox.jira_sim.rest_issues import (
    assign_issue,
    create_issue,
    delete_issue,
    do_transition,
    edit_issue,
    get_issue,
    get_transitions,
)
from dfj_sandbox.jira_sim.rest_jql import match_issues, parse_jql, search_get, search_post
from dfj_sandbox.jira_sim.rest_meta import (
    bulk_users,
    create_meta_issue_types,
    get_project,
    get_user,
    my_permissions,
    myself,
    search_projects,
)

__all__ = ["ROUTES", "Handler", "Limits", "Refusal", "Reply", "RestRequest"]

ROUTES: Final[Mapping[tuple[str, str], Handler]] = {
    ("GET", "/rest/api/3/issue/{issueIdOrKey}"): get_issue,
    ("PUT", "/rest/api/3/issue/{issueIdOrKey}"): edit_issue,
    ("DELETE", "/rest/api/3/issue/{issueIdOrKey}"): delete_issue,
    ("POST", "/rest/api/3/issue"): create_issue,
    ("PUT", "/rest/api/3/issue/{issueIdOrKey}/assignee"): assign_issue,
    ("GET", "/rest/api/3/issue/{issueIdOrKey}/transitions"): get_transitions,
    ("POST", "/rest/api/3/issue/{issueIdOrKey}/transitions"): do_transition,
    ("GET", "/rest/api/3/issue/{issueIdOrKey}/comment"): get_comments,
    ("POST", "/rest/api/3/issue/{issueIdOrKey}/comment"): add_comment,
    ("GET", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"): get_comment,
    ("PUT", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"): update_comment,
    ("DELETE", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"): delete_comment,
    ("GET", "/rest/api/3/issue/{issueIdOrKey}/watchers"): get_watchers,
    ("POST", "/rest/api/3/issue/{issueIdOrKey}/watchers"): add_watcher,
    ("DELETE", "/rest/api/3/issue/{issueIdOrKey}/watchers"): remove_watcher,
    ("GET", "/rest/api/3/search/jql"): search_get,
    ("POST", "/rest/api/3/search/jql"): search_post,
    ("POST", "/rest/api/3/jql/match"): match_issues,
    ("POST", "/rest/api/3/jql/parse"): parse_jql,
    ("GET", "/rest/api/3/project/search"): search_projects,
    ("GET", "/rest/api/3/project/{projectIdOrKey}"): get_project,
    ("GET", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes"): create_meta_issue_types,
    ("GET", "/rest/api/3/myself"): myself,
    ("GET", "/rest/api/3/user"): get_user,
    ("GET", "/rest/api/3/user/bulk"): bulk_users,
    ("GET", "/rest/api/3/mypermissions"): my_permissions,
    ("GET", "/rest/api/3/serverInfo"): server_info,
    (
        "GET",
        "/rest/atlassian-connect/1/addons/{addonKey}/properties/{propertyKey}",
    ): get_app_property,
}
"""The operations served, by the spec's method and path template."""
