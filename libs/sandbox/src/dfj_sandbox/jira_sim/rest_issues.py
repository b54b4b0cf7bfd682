"""Issue operations: read, create, edit, delete, assign, and workflow transitions.

Fields are read the way Jira reads them: ``summary`` (required on create, at most 255
characters), ``description`` (an ADF document), ``priority``/``security`` (by id or name),
``labels`` (no spaces), ``assignee`` (needs ASSIGN_ISSUES, and an assignable user); anything
else is "cannot be set". Edits and transitions change the site through
:meth:`~dfj_sandbox.jira_sim.site.Site.update_issue`, so each leaves a changelog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dfj_sandbox.jira_sim import adf
from dfj_sandbox.jira_sim.model import Issue, Project
from dfj_sandbox.jira_sim.render import (
    ALL_FIELDS,
    issue_json,
    select_fields,
    status_json,
)
from dfj_sandbox.jira_sim.rest_common import (
    NOT_ADF,
    UNSETTABLE,
    Refusal,
    Reply,
    RestRequest,
    csv_values,
    json_object,
    reference,
    reject_fields,
    require,
    visible_issue,
)

__all__ = [
    "assign_issue",
    "create_issue",
    "delete_issue",
    "do_transition",
    "edit_issue",
    "get_issue",
    "get_transitions",
]

# --- issues -------------------------------------------------------------------------------


def get_issue(req: RestRequest) -> Reply:
    """``GET /issue/{issueIdOrKey}``: all fields unless ``fields`` says otherwise."""
    issue = visible_issue(req)
    wanted = select_fields(req.params.get("fields"), ALL_FIELDS)
    expand = frozenset(csv_values(req.params.get("expand")))
    return Reply(
        status=200, body=issue_json(req.site, issue, req.viewer, fields=wanted, expand=expand)
    )


@dataclass(kw_only=True)
class _Changes:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class _FieldError(ValueError):
    """A field value Jira would refuse; the message goes into ``errors[field]``."""


def _summary(req: RestRequest, project: Project, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise _FieldError("You must specify a summary of the issue.")
    if len(value) > 255:
        raise _FieldError("Summary must be less than 255 characters.")
    return value


def _description(req: RestRequest, project: Project, value: Any) -> Any:
    if value is not None and not adf.is_document(value):
        raise _FieldError(NOT_ADF)
    return value


def _priority(req: RestRequest, project: Project, value: Any) -> Any:
    ref = reference(value, "id", "name")
    found = None if ref is None else req.site.priority(ref)
    if found is None:
        raise _FieldError("The priority selected is invalid.")
    return found.id


def _checked_labels(labels: Iterable[Any]) -> tuple[str, ...]:
    chosen = list(labels)
    if not all(isinstance(v, str) for v in chosen):
        raise _FieldError("The labels must be a list of strings.")
    if bad := next((v for v in chosen if " " in v or not v), None):
        raise _FieldError(f"The label '{bad}' contains spaces which is invalid.")
    return tuple(chosen)


def _labels(req: RestRequest, project: Project, value: Any) -> Any:
    if not isinstance(value, list):
        raise _FieldError("The labels must be a list of strings.")
    return _checked_labels(value)


def _assignee(req: RestRequest, project: Project, value: Any) -> Any:
    site = req.site
    if not site.may(req.viewer, "ASSIGN_ISSUES", project):
        raise _FieldError(UNSETTABLE.format("assignee"))
    if value is None:
        return None
    account = reference(value, "accountId", "id")
    user = None if account is None else site.user(account)
    if user is None or not site.may(user, "ASSIGNABLE_USER", project) or user.account_type == "app":
        raise _FieldError(f"User '{account}' cannot be assigned issues.")
    return user.account_id


def _reporter(req: RestRequest, project: Project, value: Any) -> Any:
    account = reference(value, "accountId", "id")
    if account is None or req.site.user(account) is None:
        raise _FieldError("Specify a valid user as the reporter.")
    return account


def _security(req: RestRequest, project: Project, value: Any) -> Any:
    ref = reference(value, "id", "name")
    level = None if ref is None else project.security_level(ref)
    if level is None:
        raise _FieldError("The security level is invalid.")
    return level.id


FieldReader = Callable[[RestRequest, Project, Any], Any]

_EDITABLE: Final[Mapping[str, FieldReader]] = {
    "summary": _summary,
    "description": _description,
    "priority": _priority,
    "labels": _labels,
    "assignee": _assignee,
    "security": _security,
}
_CREATABLE: Final[Mapping[str, FieldReader]] = {**_EDITABLE, "reporter": _reporter}


def _read_fields(
    req: RestRequest, project: Project, fields: Mapping[str, Any], *, creating: bool
) -> _Changes:
    readers = _CREATABLE if creating else _EDITABLE
    out = _Changes()
    for name, value in fields.items():
        if creating and name in ("project", "issuetype"):
            continue
        reader = readers.get(name)
        if reader is None:
            out.errors[name] = UNSETTABLE.format(name)
            continue
        try:
            out.values[name] = reader(req, project, value)
        except _FieldError as error:
            out.errors[name] = str(error)
    return out


def _label_updates(current: tuple[str, ...], operations: Any, out: _Changes) -> None:
    labels = list(current)
    if not isinstance(operations, list):
        out.errors["labels"] = "The labels update must be a list of operations."
        return
    for operation in operations:
        if not isinstance(operation, Mapping):
            out.errors["labels"] = "The labels update must be a list of operations."
            return
        if "set" in operation and isinstance(operation["set"], list):
            labels = [str(v) for v in operation["set"]]
        elif isinstance(operation.get("add"), str):
            if operation["add"] not in labels:
                labels.append(operation["add"])
        elif isinstance(operation.get("remove"), str):
            labels = [v for v in labels if v != operation["remove"]]
        else:
            out.errors["labels"] = "Unsupported labels operation."
            return
    try:
        out.values["labels"] = _checked_labels(labels)
    except _FieldError as error:
        out.errors["labels"] = str(error)


def _read_update(
    req: RestRequest, issue: Issue, project: Project, update: Any, out: _Changes
) -> list[Any]:
    """Apply ``update`` operations; the comment bodies to add come back to the caller."""
    comments: list[Any] = []
    if not update:
        return comments
    if not isinstance(update, Mapping):
        out.errors["update"] = "The update must be an object."
        return comments
    for name, operations in update.items():
        if name == "labels":
            _label_updates(issue.labels, operations, out)
        elif name == "comment" and isinstance(operations, list):
            for operation in operations:
                add = operation.get("add") if isinstance(operation, Mapping) else None
                if not isinstance(add, Mapping) or not adf.is_document(add.get("body")):
                    out.errors["comment"] = NOT_ADF
                else:
                    comments.append(add["body"])
        elif name in ("summary", "description") and isinstance(operations, list) and operations:
            last = operations[-1]
            if isinstance(last, Mapping) and "set" in last:
                read = _read_fields(req, project, {name: last["set"]}, creating=False)
                out.values.update(read.values)
                out.errors.update(read.errors)
            else:
                out.errors[name] = f"Unsupported {name} operation."
        else:
            out.errors[name] = UNSETTABLE.format(name)
    return comments


def create_issue(req: RestRequest) -> Reply:
    """``POST /issue``: needs a project, an issue type and a summary, and CREATE_ISSUES."""
    site = req.site
    body = json_object(req.body)
    fields = json_object(body.get("fields"))
    errors: dict[str, str] = {}
    project_ref = reference(fields.get("project"), "id", "key")
    project = None if project_ref is None else site.project(project_ref)
    if project is not None and not site.may(req.viewer, "BROWSE_PROJECTS", project):
        project = None
    if project is None:
        errors["project"] = "Specify a valid project ID or key"
        reject_fields(errors)
    require(
        req,
        "CREATE_ISSUES",
        project,
        "You do not have permission to create issues in this project.",
    )
    type_ref = reference(fields.get("issuetype"), "id", "name")
    issue_type = None if type_ref is None else project.issue_type(type_ref)
    if type_ref is None:
        errors["issuetype"] = "Specify an issue type"
    elif issue_type is None:
        errors["issuetype"] = "The issue type selected is invalid."
    changes = _read_fields(req, project, fields, creating=True)
    errors.update(changes.errors)
    if "summary" not in fields:
        errors["summary"] = "You must specify a summary of the issue."
    if body.get("update"):
        errors["update"] = "The simulator does not take update operations when creating an issue."
    if errors or issue_type is None:
        reject_fields(errors)
    values = changes.values
    issue = site.create_issue(
        project.id,
        values["summary"],
        issue_type=issue_type.id,
        description=values.get("description"),
        priority=values.get("priority", "3"),
        assignee=values.get("assignee"),
        reporter=values.get("reporter", req.viewer.account_id),
        labels=values.get("labels", ()),
        security_level=values.get("security"),
    )
    return Reply(
        status=201,
        body={"id": issue.id, "key": issue.key, "self": site.api_url(f"issue/{issue.id}")},
    )


def _apply(req: RestRequest, issue: Issue, values: Mapping[str, Any]) -> None:
    kwargs: dict[str, Any] = {}
    mapping = {"security": "security_level"}
    for name, value in values.items():
        kwargs[mapping.get(name, name)] = value
    if kwargs:
        req.site.update_issue(issue, by=req.viewer.account_id, **kwargs)


def edit_issue(req: RestRequest) -> Reply:
    """``PUT /issue/{issueIdOrKey}``: edit fields (EDIT_ISSUES), labels/summary updates."""
    issue = visible_issue(req)
    project = req.site.project_of(issue)
    require(
        req, "EDIT_ISSUES", project, "You do not have permission to edit issues in this project."
    )
    body = json_object(req.body)
    fields = json_object(body.get("fields"))
    changes = _read_fields(req, project, fields, creating=False)
    comments = _read_update(req, issue, project, body.get("update"), changes)
    if changes.errors:
        reject_fields(changes.errors)
    _apply(req, issue, changes.values)
    for comment_body in comments:
        req.site.add_comment(issue.id, comment_body, author=req.viewer.account_id)
    if req.params.get("returnIssue"):
        fresh = req.site.issue(issue.id)
        assert fresh is not None
        return Reply(status=200, body=issue_json(req.site, fresh, req.viewer))
    return Reply(status=204)


def delete_issue(req: RestRequest) -> Reply:
    """``DELETE /issue/{issueIdOrKey}`` (DELETE_ISSUES)."""
    issue = visible_issue(req)
    require(
        req,
        "DELETE_ISSUES",
        req.site.project_of(issue),
        "You do not have permission to delete issues in this project.",
    )
    req.site.delete_issue(issue, by=req.viewer.account_id)
    return Reply(status=204)


def assign_issue(req: RestRequest) -> Reply:
    """``PUT /issue/{k}/assignee``: ``accountId`` null unassigns, ``"-1"`` is the default."""
    issue = visible_issue(req)
    site = req.site
    project = site.project_of(issue)
    require(req, "ASSIGN_ISSUES", project, "You do not have permission to assign issues.")
    body = json_object(req.body)
    if "accountId" not in body:
        raise Refusal(400, errors={"assignee": "Specify the accountId of the assignee, or null."})
    account = body["accountId"]
    if account == "-1":
        account = project.default_assignee
    if account is not None:
        user = site.user(str(account))
        if (
            user is None
            or user.account_type == "app"
            or not site.may(user, "ASSIGNABLE_USER", project)
        ):
            raise Refusal(400, errors={"assignee": f"User '{account}' cannot be assigned issues."})
    site.update_issue(issue, by=req.viewer.account_id, assignee=account)
    return Reply(status=204)


# --- transitions --------------------------------------------------------------------------


def get_transitions(req: RestRequest) -> Reply:
    """``GET /issue/{k}/transitions``: empty for a caller without TRANSITION_ISSUES."""
    issue = visible_issue(req)
    site = req.site
    project = site.project_of(issue)
    listed: list[dict[str, Any]] = []
    if site.may(req.viewer, "TRANSITION_ISSUES", project):
        wanted = req.params.get("transitionId")
        with_fields = "transitions.fields" in csv_values(req.params.get("expand"))
        for transition in project.workflow.available(issue.status_id):
            if wanted is not None and transition.id != wanted:
                continue
            entry: dict[str, Any] = {
                "id": transition.id,
                "name": transition.name,
                "to": status_json(site, project.workflow.status(transition.to)),
                "hasScreen": False,
                "isGlobal": not transition.sources,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            if with_fields:
                entry["fields"] = {}
            listed.append(entry)
    return Reply(status=200, body={"expand": "transitions", "transitions": listed})


def do_transition(req: RestRequest) -> Reply:
    """``POST /issue/{k}/transitions``: the transition, then its fields and comment."""
    issue = visible_issue(req)
    site = req.site
    project = site.project_of(issue)
    require(
        req, "TRANSITION_ISSUES", project, "You do not have permission to transition this issue."
    )
    body = json_object(req.body)
    transition_id = reference(body.get("transition"), "id")
    if transition_id is None:
        raise Refusal(400, "Missing 'transition' identifier")
    if not any(t.id == transition_id for t in project.workflow.available(issue.status_id)):
        raise Refusal(400, f"Transition id '{transition_id}' is not valid for this issue.")
    fields = json_object(body.get("fields"))
    changes = _read_fields(req, project, fields, creating=False)
    comments = _read_update(req, issue, project, body.get("update"), changes)
    if comments:
        require(
            req, "ADD_COMMENTS", project, "You do not have the permission to comment on this issue."
        )
    if changes.errors:
        reject_fields(changes.errors)
    site.transition_issue(issue, transition_id, by=req.viewer.account_id)
    fresh = site.issue(issue.id)
    assert fresh is not None
    _apply(req, fresh, changes.values)
    for comment_body in comments:
        site.add_comment(issue.id, comment_body, author=req.viewer.account_id)
    return Reply(status=204)
