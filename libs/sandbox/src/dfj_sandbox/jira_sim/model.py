"""The records a simulated Jira site is made of: users, projects, workflows, issues, comments.

Every record is a frozen dataclass; the :class:`~dfj_sandbox.jira_sim.site.Site` replaces a record
when it changes, so a changelog is simply the difference between the old and the new record and
nothing handed out to a test can change under its feet.

Permission keys are Jira's own (``BROWSE_PROJECTS``, ``CREATE_ISSUES`` …) with Jira's ids, so
``/mypermissions`` answers the way Jira does. A user's project permissions are kept per project
key, with ``"*"`` meaning every project of the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "ALL_PROJECTS",
    "DONE",
    "IN_PROGRESS",
    "MEMBER_PERMISSIONS",
    "PERMISSIONS",
    "TO_DO",
    "ChangeItem",
    "Changelog",
    "Comment",
    "Issue",
    "IssueType",
    "PermissionInfo",
    "Priority",
    "Project",
    "SecurityLevel",
    "Status",
    "StatusCategory",
    "Transition",
    "User",
    "Visibility",
    "Workflow",
]

ALL_PROJECTS: Final = "*"
"""The project key that stands for every project in a user's permission or role table."""


@dataclass(frozen=True, kw_only=True)
class PermissionInfo:
    """One of Jira's permissions, as ``/mypermissions`` describes it."""

    id: str
    key: str
    name: str
    type: Literal["PROJECT", "GLOBAL"]
    description: str


def _permission(pid: str, key: str, name: str, description: str) -> PermissionInfo:
    return PermissionInfo(id=pid, key=key, name=name, type="PROJECT", description=description)


PERMISSIONS: Final[Mapping[str, PermissionInfo]] = MappingProxyType(
    {
        info.key: info
        for info in (
            _permission("10", "BROWSE_PROJECTS", "Browse Projects", "View projects and issues."),
            _permission("11", "CREATE_ISSUES", "Create Issues", "Create issues."),
            _permission("12", "EDIT_ISSUES", "Edit Issues", "Edit issues."),
            _permission("13", "ASSIGN_ISSUES", "Assign Issues", "Assign issues to people."),
            _permission("14", "RESOLVE_ISSUES", "Resolve Issues", "Resolve and reopen issues."),
            _permission("15", "ADD_COMMENTS", "Add Comments", "Add comments to issues."),
            _permission("16", "DELETE_ISSUES", "Delete Issues", "Delete issues."),
            _permission("17", "ASSIGNABLE_USER", "Assignable User", "Be assigned to issues."),
            _permission("18", "CLOSE_ISSUES", "Close Issues", "Close issues."),
            _permission("21", "LINK_ISSUES", "Link Issues", "Link issues together."),
            _permission("23", "ADMINISTER_PROJECTS", "Administer Projects", "Administer projects."),
            _permission(
                "26", "SET_ISSUE_SECURITY", "Set Issue Security", "Set issue security levels."
            ),
            _permission(
                "31",
                "VIEW_VOTERS_AND_WATCHERS",
                "View Voters and Watchers",
                "View who voted for and watches issues.",
            ),
            _permission(
                "32", "MANAGE_WATCHERS", "Manage Watchers", "Manage the watcher list of issues."
            ),
            _permission("34", "EDIT_ALL_COMMENTS", "Edit All Comments", "Edit all comments."),
            _permission("35", "EDIT_OWN_COMMENTS", "Edit Own Comments", "Edit one's own comments."),
            _permission("36", "DELETE_ALL_COMMENTS", "Delete All Comments", "Delete all comments."),
            _permission(
                "37", "DELETE_OWN_COMMENTS", "Delete Own Comments", "Delete one's own comments."
            ),
            _permission("46", "TRANSITION_ISSUES", "Transition Issues", "Transition issues."),
        )
    }
)
"""The project permissions the simulator knows, by key."""

MEMBER_PERMISSIONS: Final = frozenset(
    {
        "BROWSE_PROJECTS",
        "CREATE_ISSUES",
        "EDIT_ISSUES",
        "ASSIGN_ISSUES",
        "ASSIGNABLE_USER",
        "RESOLVE_ISSUES",
        "CLOSE_ISSUES",
        "TRANSITION_ISSUES",
        "ADD_COMMENTS",
        "EDIT_OWN_COMMENTS",
        "DELETE_OWN_COMMENTS",
        "LINK_ISSUES",
        "VIEW_VOTERS_AND_WATCHERS",
    }
)
"""What an ordinary project member may do (no watcher management, no administration)."""


# --- workflow -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StatusCategory:
    """Jira's fixed status categories (``new``, ``indeterminate``, ``done``)."""

    id: int
    key: str
    name: str
    color_name: str


TO_DO: Final = StatusCategory(id=2, key="new", name="To Do", color_name="blue-gray")
IN_PROGRESS: Final = StatusCategory(
    id=4, key="indeterminate", name="In Progress", color_name="yellow"
)
DONE: Final = StatusCategory(id=3, key="done", name="Done", color_name="green")


@dataclass(frozen=True, kw_only=True)
class Status:
    """A workflow status."""

    id: str
    name: str
    category: StatusCategory
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Transition:
    """A workflow transition to ``to`` (a status id); no ``sources`` means a global one."""

    id: str
    name: str
    to: str
    sources: frozenset[str] = frozenset()

    def leaves(self, status_id: str) -> bool:
        """Whether this transition can be taken from ``status_id``."""
        if self.sources:
            return status_id in self.sources
        return status_id != self.to


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """Statuses, the transitions between them, and the status a new issue starts in."""

    statuses: tuple[Status, ...]
    transitions: tuple[Transition, ...]
    initial: str

    def status(self, status_id: str) -> Status:
        """The status with ``status_id`` (KeyError if the workflow has none)."""
        for status in self.statuses:
            if status.id == status_id:
                return status
        raise KeyError(status_id)

    def available(self, status_id: str) -> tuple[Transition, ...]:
        """The transitions that can be taken from ``status_id``."""
        return tuple(t for t in self.transitions if t.leaves(status_id))


# --- project ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IssueType:
    """An issue type of a project."""

    id: str
    name: str
    description: str = ""
    subtask: bool = False
    hierarchy_level: int = 0


@dataclass(frozen=True, kw_only=True)
class Priority:
    """A site-wide priority; ``rank`` orders them (0 is the highest)."""

    id: str
    name: str
    rank: int
    status_color: str = "#4a6785"


@dataclass(frozen=True, kw_only=True)
class SecurityLevel:
    """An issue security level: an issue carrying it is visible only to its ``members``."""

    id: str
    name: str
    members: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Project:
    """A project: its issue types, workflow, security levels and role names."""

    id: str
    key: str
    name: str
    issue_types: tuple[IssueType, ...]
    workflow: Workflow
    security_levels: tuple[SecurityLevel, ...] = ()
    roles: tuple[str, ...] = ("Administrators", "Member")
    lead: str | None = None
    default_assignee: str | None = None

    def issue_type(self, id_or_name: str) -> IssueType | None:
        """The issue type with this id or (case-insensitive) name."""
        for issue_type in self.issue_types:
            if issue_type.id == id_or_name or issue_type.name.lower() == id_or_name.lower():
                return issue_type
        return None

    def security_level(self, id_or_name: str) -> SecurityLevel | None:
        """The security level with this id or (case-insensitive) name."""
        for level in self.security_levels:
            if level.id == id_or_name or level.name.lower() == id_or_name.lower():
                return level
        return None


# --- users --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class User:
    """A Jira user (or the app's own user, ``account_type="app"``).

    ``permissions`` and ``roles`` map a project key (or :data:`ALL_PROJECTS`) to what the user
    holds there. No email is kept: the app never needs one.
    """

    account_id: str
    display_name: str
    active: bool = True
    time_zone: str = "UTC"
    locale: str = "en_US"
    account_type: Literal["atlassian", "app", "customer", "unknown"] = "atlassian"
    groups: frozenset[str] = frozenset()
    permissions: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    roles: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    def holds(self, permission: str, project_key: str) -> bool:
        """Whether the user holds ``permission`` in the project ``project_key``."""
        return permission in self.permissions.get(
            project_key, frozenset()
        ) or permission in self.permissions.get(ALL_PROJECTS, frozenset())

    def in_role(self, role: str, project_key: str) -> bool:
        """Whether the user is in the project role ``role`` (case-insensitive)."""
        wanted = role.lower()
        held = self.roles.get(project_key, frozenset()) | self.roles.get(ALL_PROJECTS, frozenset())
        return any(name.lower() == wanted for name in held)


# --- issues -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Visibility:
    """Who may see a comment: members of a project role or of a group."""

    type: Literal["role", "group"]
    value: str


@dataclass(frozen=True, kw_only=True)
class Comment:
    """A comment; ``body`` is an Atlassian Document Format document."""

    id: str
    author: str
    body: Mapping[str, Any]
    created: float
    updated: float
    update_author: str
    visibility: Visibility | None = None


@dataclass(frozen=True, kw_only=True)
class Issue:
    """An issue; people are account ids, times are epoch seconds."""

    id: str
    key: str
    project_id: str
    issue_type_id: str
    summary: str
    status_id: str
    priority_id: str | None
    created: float
    updated: float
    description: Mapping[str, Any] | None = None
    assignee: str | None = None
    reporter: str | None = None
    labels: tuple[str, ...] = ()
    security_level_id: str | None = None
    comments: tuple[Comment, ...] = ()
    watchers: tuple[str, ...] = ()

    @property
    def number(self) -> int:
        """The number part of the key (``ABC-12`` → 12)."""
        return int(self.key.rsplit("-", 1)[1])

    def comment(self, comment_id: str) -> Comment | None:
        """The comment with ``comment_id``, if the issue has it."""
        for comment in self.comments:
            if comment.id == comment_id:
                return comment
        return None


@dataclass(frozen=True, kw_only=True)
class ChangeItem:
    """One changed field, as Jira's changelog and webhooks describe it."""

    field: str
    field_id: str
    fieldtype: str = "jira"
    from_: str | None = None
    from_string: str | None = None
    to: str | None = None
    to_string: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The item as Jira writes it (``from``/``to`` are ids, the strings are for people)."""
        return {
            "field": self.field,
            "fieldtype": self.fieldtype,
            "fieldId": self.field_id,
            "from": self.from_,
            "fromString": self.from_string,
            "to": self.to,
            "toString": self.to_string,
        }


@dataclass(frozen=True, kw_only=True)
class Changelog:
    """The changes one update made to one issue."""

    id: str
    issue_id: str
    author: str
    created: float
    items: tuple[ChangeItem, ...]

    def fields(self) -> frozenset[str]:
        """The field ids this changelog touches."""
        return frozenset(item.field_id for item in self.items)
