"""One simulated Jira Cloud site: its installation facts, its content and who may see what.

A test builds a site with the builder methods (:meth:`Site.add_user`, :meth:`Site.add_project`,
:meth:`Site.create_issue`, :meth:`Site.update_issue` …); the REST handlers change it through the
same methods after checking permissions, so what a test sets up and what the app does through
REST meet in one place. Builders do not check permissions: a test is Jira's administrator.

New sites come with Jira's usual defaults: a project ``DEMO`` with the issue types Task, Bug
and Story, the simplified workflow To Do → In Progress → Done (every transition global) and the
priorities Highest … Lowest. The app has its own user (``account_type="app"``) that can see
and do everything, which is what an app with broad scopes meets on a real site.

Access rules (what the REST layer asks): a user needs ``BROWSE_PROJECTS`` in the project to see
an issue, and membership of the issue's security level when it has one; a comment with a
visibility is seen only by members of that project role or group.

Every change made through these methods is reported to ``site.observers`` as a typed record
(:mod:`~dfj_sandbox.jira_sim.changes`); that is how an installed app's webhooks follow from
both a test's builder calls and the app's own REST calls. The app's REST credentials exist
from the start (``add_site``); the Connect install flow itself (descriptor, signed
``installed``, ``enabled``) is :meth:`JiraSimulator.install_app`, which sets :attr:`Site.app`;
the Forge install (:meth:`JiraSimulator.install_forge_app`) sets :attr:`Site.forge`, and
:attr:`Site.cloud_id` is the site's id on Atlassian's API gateway (``/ex/jira/{cloudId}``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from dfj_common.clock import Clock
from dfj_sandbox.jira_sim import adf
from dfj_sandbox.jira_sim.changes import (
    Change,
    CommentAdded,
    CommentDeleted,
    CommentUpdated,
    IssueCreated,
    IssueDeleted,
    IssueUpdated,
    Observer,
)
from dfj_sandbox.jira_sim.model import (
    ALL_PROJECTS,
    DONE,
    IN_PROGRESS,
    MEMBER_PERMISSIONS,
    TO_DO,
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
from dfj_sandbox.jira_sim.ratelimit import SiteLimiter
from dfj_sandbox.jira_sim.reporting import Reporting

if TYPE_CHECKING:
    from dfj_sandbox.jira_sim.connect import AppInstallation
    from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation

__all__ = ["DEFAULT_PROJECT_KEY", "DEFAULT_SCOPES", "UNSET", "Site", "Unset", "default_workflow"]

DEFAULT_PROJECT_KEY: Final = "DEMO"
DEFAULT_SCOPES: Final = frozenset({"READ", "WRITE", "DELETE", "ACT_AS_USER"})


class Unset(Enum):
    """The type of :data:`UNSET`: "leave this field as it is"."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET

_PRIORITIES: Final = (
    Priority(id="1", name="Highest", rank=0, status_color="#d04437"),
    Priority(id="2", name="High", rank=1, status_color="#f15C75"),
    Priority(id="3", name="Medium", rank=2, status_color="#f79232"),
    Priority(id="4", name="Low", rank=3, status_color="#707070"),
    Priority(id="5", name="Lowest", rank=4, status_color="#999999"),
)
_DEFAULT_PRIORITY: Final = "3"


def default_workflow() -> Workflow:
    """Jira's simplified workflow: To Do, In Progress, Done, every transition global."""
    return Workflow(
        statuses=(
            Status(id="10000", name="To Do", category=TO_DO),
            Status(id="3", name="In Progress", category=IN_PROGRESS),
            Status(id="10001", name="Done", category=DONE),
        ),
        transitions=(
            Transition(id="11", name="To Do", to="10000"),
            Transition(id="21", name="In Progress", to="3"),
            Transition(id="31", name="Done", to="10001"),
        ),
        initial="10000",
    )


class Site:
    """A Jira Cloud site as the simulator serves it under ``/sites/{name}``."""

    def __init__(
        self,
        *,
        name: str,
        client_key: str,
        shared_secret: str,
        app_key: str,
        oauth_client_id: str,
        scopes: Iterable[str],
        clock: Clock,
        server_url: Callable[[], str],
        with_defaults: bool = True,
        cloud_id: str | None = None,
    ) -> None:
        self.name = name
        # The site's stable id on Atlassian's platform (Forge's cloudId; survives reinstalls).
        self.cloud_id = cloud_id or str(uuid.uuid4())
        self.client_key = client_key
        self.shared_secret = shared_secret
        self.app_key = app_key
        self.oauth_client_id = oauth_client_id
        self.scopes = frozenset(s.upper() for s in scopes)
        self.limiter = SiteLimiter(clock)
        self._clock = clock
        self._server_url = server_url
        self._ids = itertools.count(10000)
        self._issue_type_ids: dict[str, str] = {}
        self._issue_numbers: dict[str, int] = {}
        self.users: dict[str, User] = {}
        self.reporting = Reporting()
        self.projects: dict[str, Project] = {}
        self.priorities: tuple[Priority, ...] = _PRIORITIES
        self.issues: dict[str, Issue] = {}
        self.changelogs: list[Changelog] = []
        self.observers: list[Observer] = []
        # Set by JiraSimulator.install_app, cleared by uninstall_app.
        self.app: AppInstallation | None = None
        # Set by JiraSimulator.install_forge_app / migrate_to_forge, cleared by uninstall.
        self.forge: ForgeInstallation | None = None
        self.signed_in: str | None = None
        app_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{client_key}/{app_key}")
        self.app_user = User(
            account_id=f"557058:{app_id}",
            display_name=app_key,
            account_type="app",
            groups=frozenset({"atlassian-addons"}),
        )
        self.users[self.app_user.account_id] = self.app_user
        if with_defaults:
            self.add_project(DEFAULT_PROJECT_KEY, "Demo project")

    # --- addresses ------------------------------------------------------------------------

    @property
    def base_path(self) -> str:
        """The path prefix of the site on the simulator (``/sites/{name}``)."""
        return f"/sites/{self.name}"

    @property
    def base_url(self) -> str:
        """The site's ``baseUrl`` (what an install payload carries and ``tnt`` names)."""
        return self._server_url() + self.base_path

    def api_url(self, path: str, version: str = "3") -> str:
        """An absolute REST URL, e.g. ``api_url("issue/10001")``."""
        return f"{self.base_url}/rest/api/{version}/{path}"

    def now(self) -> float:
        """The simulator's clock, in epoch seconds."""
        return self._clock.now()

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _notify(self, change: Change) -> None:
        for observer in tuple(self.observers):
            observer(change)

    # --- the browser ----------------------------------------------------------------------

    def sign_in(self, account_id: str) -> User:
        """Make ``account_id`` the user whose browser opens app pages on this site.

        Jira frames an app page with a JWT whose ``sub`` is the signed-in user; the simulator
        has one "browser" per site, so the servlet ``/plugins/servlet/ac/…`` uses this user.
        """
        user = self._require_user(account_id)
        self.signed_in = user.account_id
        return user

    def sign_out(self) -> None:
        """Nobody is signed in any more (app pages answer "log in to Jira")."""
        self.signed_in = None

    # --- rate limits ----------------------------------------------------------------------

    def throttle(
        self,
        count: int = 1,
        *,
        retry_after: float = 5.0,
        status: int = 429,
        reason: str = "jira-burst-based",
    ) -> None:
        """Answer the next ``count`` requests to this site with ``status`` and ``Retry-After``."""
        self.limiter.throttle(count, retry_after=retry_after, status=status, reason=reason)

    def limit_rate(self, requests: int | None, *, per: float = 1.0) -> None:
        """Allow ``requests`` per ``per`` seconds on this site (None: no limit)."""
        self.limiter.limit(requests, per=per)

    # --- users ----------------------------------------------------------------------------

    def add_user(
        self,
        account_id: str | None = None,
        display_name: str | None = None,
        *,
        permissions: Iterable[str] = MEMBER_PERMISSIONS,
        projects: Iterable[str] | None = None,
        roles: Iterable[str] = ("Member",),
        groups: Iterable[str] = ("jira-software-users",),
        active: bool = True,
        time_zone: str = "UTC",
    ) -> User:
        """A user holding ``permissions`` and ``roles`` in ``projects`` (keys; None: all)."""
        account_id = account_id or uuid.uuid4().hex[:24]
        if account_id in self.users:
            raise ValueError(f"user {account_id} exists")
        keys = [ALL_PROJECTS] if projects is None else list(projects)
        granted = frozenset(permissions)
        role_names = frozenset(roles)
        user = User(
            account_id=account_id,
            display_name=display_name or f"User {len(self.users)}",
            active=active,
            time_zone=time_zone,
            groups=frozenset(groups),
            permissions=MappingProxyType(dict.fromkeys(keys, granted)),
            roles=MappingProxyType(dict.fromkeys(keys, role_names)),
        )
        self.users[account_id] = user
        return user

    def user(self, account_id: str) -> User | None:
        """The user with ``account_id``, if the site has one."""
        return self.users.get(account_id)

    def _require_user(self, account_id: str) -> User:
        user = self.users.get(account_id)
        if user is None:
            raise LookupError(f"no user {account_id}")
        return user

    def grant(self, account_id: str, *permissions: str, project: str = ALL_PROJECTS) -> User:
        """Give the user ``permissions`` in ``project`` (a key, or all projects)."""
        user = self._require_user(account_id)
        table = dict(user.permissions)
        table[project] = table.get(project, frozenset()) | frozenset(permissions)
        return self._store_user(replace(user, permissions=MappingProxyType(table)))

    def revoke(self, account_id: str, *permissions: str) -> User:
        """Take ``permissions`` away from the user, in every project."""
        user = self._require_user(account_id)
        removed = frozenset(permissions)
        table = {key: held - removed for key, held in user.permissions.items()}
        return self._store_user(replace(user, permissions=MappingProxyType(table)))

    def set_active(self, account_id: str, active: bool) -> User:
        """Activate or deactivate a user (deactivated users cannot get tokens)."""
        return self._store_user(replace(self._require_user(account_id), active=active))

    def _store_user(self, user: User) -> User:
        self.users[user.account_id] = user
        return user

    # --- projects -------------------------------------------------------------------------

    def add_project(
        self,
        key: str,
        name: str | None = None,
        *,
        issue_types: Iterable[str] = ("Task", "Bug", "Story"),
        workflow: Workflow | None = None,
        roles: Iterable[str] = ("Administrators", "Member"),
        lead: str | None = None,
    ) -> Project:
        """A project; issue types with the same name share one id across the site."""
        key = key.upper()
        if self.project(key) is not None:
            raise ValueError(f"project {key} exists")
        types = tuple(
            IssueType(id=self._issue_type_id(type_name), name=type_name)
            for type_name in issue_types
        )
        project = Project(
            id=self._next_id(),
            key=key,
            name=name or key.title(),
            issue_types=types,
            workflow=workflow or default_workflow(),
            roles=tuple(roles),
            lead=lead,
        )
        self.projects[project.id] = project
        self._issue_numbers[project.id] = 0
        return project

    def _issue_type_id(self, name: str) -> str:
        existing = self._issue_type_ids.get(name.lower())
        if existing is None:
            existing = str(10001 + len(self._issue_type_ids))
            self._issue_type_ids[name.lower()] = existing
        return existing

    def project(self, id_or_key: str) -> Project | None:
        """The project with this id or (case-insensitive) key."""
        found = self.projects.get(id_or_key)
        if found is not None:
            return found
        wanted = id_or_key.upper()
        for project in self.projects.values():
            if project.key == wanted:
                return project
        return None

    def _require_project(self, id_or_key: str) -> Project:
        project = self.project(id_or_key)
        if project is None:
            raise LookupError(f"no project {id_or_key}")
        return project

    def add_security_level(
        self, project: str, name: str, *, members: Iterable[str] = ()
    ) -> SecurityLevel:
        """A security level of ``project`` whose issues only ``members`` may see."""
        found = self._require_project(project)
        level = SecurityLevel(id=self._next_id(), name=name, members=frozenset(members))
        self.projects[found.id] = replace(found, security_levels=(*found.security_levels, level))
        return level

    def add_level_member(self, level_id: str, account_id: str) -> SecurityLevel:
        """Let ``account_id`` see issues of the security level ``level_id``."""
        for project in self.projects.values():
            for index, level in enumerate(project.security_levels):
                if level.id == level_id:
                    changed = replace(level, members=level.members | {account_id})
                    levels = list(project.security_levels)
                    levels[index] = changed
                    self.projects[project.id] = replace(project, security_levels=tuple(levels))
                    return changed
        raise LookupError(f"no security level {level_id}")

    def priority(self, id_or_name: str) -> Priority | None:
        """The priority with this id or (case-insensitive) name."""
        for priority in self.priorities:
            if priority.id == id_or_name or priority.name.lower() == id_or_name.lower():
                return priority
        return None

    # --- issue lookups --------------------------------------------------------------------

    def issue(self, id_or_key: str) -> Issue | None:
        """The issue with this id or (case-insensitive) key."""
        found = self.issues.get(id_or_key)
        if found is not None:
            return found
        wanted = id_or_key.upper()
        for issue in self.issues.values():
            if issue.key == wanted:
                return issue
        return None

    def _require_issue(self, issue: Issue | str) -> Issue:
        key = issue if isinstance(issue, str) else issue.id
        found = self.issue(key)
        if found is None:
            raise LookupError(f"no issue {key}")
        return found

    def project_of(self, issue: Issue) -> Project:
        """The project ``issue`` belongs to."""
        return self.projects[issue.project_id]

    def status_of(self, issue: Issue) -> Status:
        """The status ``issue`` is in."""
        return self.project_of(issue).workflow.status(issue.status_id)

    def issue_type_of(self, issue: Issue) -> IssueType:
        """The issue type of ``issue``."""
        found = self.project_of(issue).issue_type(issue.issue_type_id)
        if found is None:
            raise LookupError(f"issue type {issue.issue_type_id} is not in the project")
        return found

    def priority_of(self, issue: Issue) -> Priority | None:
        """The priority of ``issue``, if it has one."""
        return None if issue.priority_id is None else self.priority(issue.priority_id)

    def security_level_of(self, issue: Issue) -> SecurityLevel | None:
        """The security level of ``issue``, if it has one."""
        if issue.security_level_id is None:
            return None
        return self.project_of(issue).security_level(issue.security_level_id)

    # --- access ---------------------------------------------------------------------------

    def may(self, user: User, permission: str, project: Project) -> bool:
        """Whether ``user`` holds ``permission`` in ``project`` (the app holds them all)."""
        if not user.active:
            return False
        if user.account_type == "app":
            return True
        return user.holds(permission, project.key)

    def can_see(self, user: User, issue: Issue) -> bool:
        """Browse permission on the project, and membership of the issue's security level."""
        if not self.may(user, "BROWSE_PROJECTS", self.project_of(issue)):
            return False
        level = self.security_level_of(issue)
        return level is None or user.account_type == "app" or user.account_id in level.members

    def can_see_comment(self, user: User, issue: Issue, comment: Comment) -> bool:
        """Whether ``user`` may read ``comment`` (its role or group restriction)."""
        if not self.can_see(user, issue):
            return False
        visibility = comment.visibility
        if visibility is None or user.account_type == "app":
            return True
        if visibility.type == "role":
            return user.in_role(visibility.value, self.project_of(issue).key)
        return visibility.value in user.groups

    def visible_issues(self, user: User) -> Iterator[Issue]:
        """Every issue ``user`` may see, in creation order."""
        return (issue for issue in self.issues.values() if self.can_see(user, issue))

    # --- issue changes --------------------------------------------------------------------

    def create_issue(
        self,
        project: str = DEFAULT_PROJECT_KEY,
        summary: str = "An issue",
        *,
        issue_type: str = "Task",
        description: str | Mapping[str, Any] | None = None,
        priority: str | None = _DEFAULT_PRIORITY,
        assignee: str | None = None,
        reporter: str | None = None,
        labels: Iterable[str] = (),
        security_level: str | None = None,
        status: str | None = None,
    ) -> Issue:
        """A new issue; names or ids are accepted for type, priority, level and status."""
        found = self._require_project(project)
        kind = found.issue_type(issue_type)
        if kind is None:
            raise LookupError(f"project {found.key} has no issue type {issue_type}")
        status_id = found.workflow.initial if status is None else self._status_id(found, status)
        level_id = None
        if security_level is not None:
            level = found.security_level(security_level)
            if level is None:
                raise LookupError(f"project {found.key} has no security level {security_level}")
            level_id = level.id
        for person in (assignee, reporter):
            if person is not None:
                self._require_user(person)
        self._issue_numbers[found.id] += 1
        now = self._clock.now()
        issue = Issue(
            id=self._next_id(),
            key=f"{found.key}-{self._issue_numbers[found.id]}",
            project_id=found.id,
            issue_type_id=kind.id,
            summary=summary,
            status_id=status_id,
            priority_id=None if priority is None else self._priority_id(priority),
            created=now,
            updated=now,
            description=_as_document(description),
            assignee=assignee,
            reporter=reporter,
            labels=tuple(labels),
            security_level_id=level_id,
            watchers=() if reporter is None else (reporter,),
        )
        self.issues[issue.id] = issue
        self._notify(IssueCreated(issue=issue, by=None, at=now))
        return issue

    def _status_id(self, project: Project, id_or_name: str) -> str:
        for candidate in project.workflow.statuses:
            if candidate.id == id_or_name or candidate.name.lower() == id_or_name.lower():
                return candidate.id
        raise LookupError(f"project {project.key} has no status {id_or_name}")

    def _priority_id(self, id_or_name: str) -> str:
        found = self.priority(id_or_name)
        if found is None:
            raise LookupError(f"no priority {id_or_name}")
        return found.id

    def update_issue(
        self,
        issue: Issue | str,
        *,
        by: str | None = None,
        summary: str | Unset = UNSET,
        description: str | Mapping[str, Any] | Unset | None = UNSET,
        issue_type: str | Unset = UNSET,
        priority: str | Unset | None = UNSET,
        assignee: str | Unset | None = UNSET,
        labels: Iterable[str] | Unset = UNSET,
        security_level: str | Unset | None = UNSET,
        status: str | Unset = UNSET,
    ) -> Changelog:
        """Change fields of an issue; the changelog says what changed (``by``: the author).

        Fields left :data:`UNSET` stay as they are. A changelog with no items (nothing really
        changed) is returned but not recorded, and ``updated`` stays.
        """
        old = self._require_issue(issue)
        project = self.project_of(old)
        new = old
        if not isinstance(summary, Unset):
            new = replace(new, summary=summary)
        if not isinstance(description, Unset):
            new = replace(new, description=_as_document(description))
        if not isinstance(issue_type, Unset):
            kind = project.issue_type(issue_type)
            if kind is None:
                raise LookupError(f"project {project.key} has no issue type {issue_type}")
            new = replace(new, issue_type_id=kind.id)
        if not isinstance(priority, Unset):
            new = replace(
                new, priority_id=None if priority is None else self._priority_id(priority)
            )
        if not isinstance(assignee, Unset):
            if assignee is not None:
                self._require_user(assignee)
            new = replace(new, assignee=assignee)
        if not isinstance(labels, Unset):
            new = replace(new, labels=tuple(labels))
        if not isinstance(security_level, Unset):
            level_id = None
            if security_level is not None:
                level = project.security_level(security_level)
                if level is None:
                    raise LookupError(f"no security level {security_level}")
                level_id = level.id
            new = replace(new, security_level_id=level_id)
        if not isinstance(status, Unset):
            new = replace(new, status_id=self._status_id(project, status))
        return self._commit(old, new, by)

    def transition_issue(
        self, issue: Issue | str, transition_id: str, *, by: str | None = None
    ) -> Changelog:
        """Take the workflow transition ``transition_id`` (LookupError if not available)."""
        found = self._require_issue(issue)
        for transition in self.project_of(found).workflow.available(found.status_id):
            if transition.id == transition_id:
                return self.update_issue(found, by=by, status=transition.to)
        raise LookupError(f"transition {transition_id} is not available for {found.key}")

    def _commit(self, old: Issue, new: Issue, by: str | None) -> Changelog:
        now = self._clock.now()
        items = tuple(self._diff(old, new))
        changelog = Changelog(
            id=self._next_id() if items else "",
            issue_id=old.id,
            author=by or self.app_user.account_id,
            created=now,
            items=items,
        )
        if items:
            stored = replace(new, updated=now)
            self.issues[old.id] = stored
            self.changelogs.append(changelog)
            self._notify(IssueUpdated(issue=stored, changelog=changelog, at=now))
        return changelog

    def _diff(self, old: Issue, new: Issue) -> Iterator[ChangeItem]:
        project = self.project_of(old)
        if old.summary != new.summary:
            yield ChangeItem(
                field="summary", field_id="summary", from_string=old.summary, to_string=new.summary
            )
        if old.description != new.description:
            yield ChangeItem(
                field="description",
                field_id="description",
                from_string=adf.to_text(old.description) or None,
                to_string=adf.to_text(new.description) or None,
            )
        if old.issue_type_id != new.issue_type_id:
            yield _named_change(
                "issuetype",
                "issuetype",
                old.issue_type_id,
                new.issue_type_id,
                lambda i: _name(project.issue_type(i)),
            )
        if old.priority_id != new.priority_id:
            yield _named_change(
                "priority",
                "priority",
                old.priority_id,
                new.priority_id,
                lambda i: _name(self.priority(i)),
            )
        if old.assignee != new.assignee:
            yield _named_change(
                "assignee",
                "assignee",
                old.assignee,
                new.assignee,
                lambda a: _display(self.users.get(a)),
            )
        if old.labels != new.labels:
            yield ChangeItem(
                field="labels",
                field_id="labels",
                from_string=" ".join(old.labels) or None,
                to_string=" ".join(new.labels) or None,
            )
        if old.security_level_id != new.security_level_id:
            yield _named_change(
                "security",
                "security",
                old.security_level_id,
                new.security_level_id,
                lambda i: _name(project.security_level(i)),
            )
        if old.status_id != new.status_id:
            yield _named_change(
                "status",
                "status",
                old.status_id,
                new.status_id,
                lambda i: project.workflow.status(i).name,
            )

    def delete_issue(self, issue: Issue | str, *, by: str | None = None) -> Issue:
        """Remove an issue; the removed record is returned (``by``: who deleted it)."""
        found = self._require_issue(issue)
        del self.issues[found.id]
        self._notify(IssueDeleted(issue=found, by=by, at=self._clock.now()))
        return found

    # --- comments and watchers ------------------------------------------------------------

    def add_comment(
        self,
        issue: Issue | str,
        body: str | Mapping[str, Any],
        *,
        author: str | None = None,
        visibility: Visibility | tuple[Literal["role", "group"], str] | None = None,
    ) -> Comment:
        """Add a comment (``author`` defaults to the app user; body text becomes ADF)."""
        found = self._require_issue(issue)
        author = author or self.app_user.account_id
        self._require_user(author)
        if isinstance(visibility, tuple):
            visibility = Visibility(type=visibility[0], value=visibility[1])
        now = self._clock.now()
        document = _as_document(body)
        comment = Comment(
            id=self._next_id(),
            author=author,
            body=document if document is not None else adf.document(""),
            created=now,
            updated=now,
            update_author=author,
            visibility=visibility,
        )
        stored = replace(found, comments=(*found.comments, comment), updated=now)
        self.issues[found.id] = stored
        self._notify(CommentAdded(issue=stored, comment=comment, at=now))
        return comment

    def update_comment(
        self,
        issue: Issue | str,
        comment_id: str,
        body: str | Mapping[str, Any],
        *,
        by: str | None = None,
    ) -> Comment:
        """Replace a comment's body."""
        found = self._require_issue(issue)
        old = found.comment(comment_id)
        if old is None:
            raise LookupError(f"no comment {comment_id} on {found.key}")
        now = self._clock.now()
        document = _as_document(body)
        new = replace(
            old,
            body=document if document is not None else adf.document(""),
            updated=now,
            update_author=by or self.app_user.account_id,
        )
        comments = tuple(new if c.id == comment_id else c for c in found.comments)
        stored = replace(found, comments=comments, updated=now)
        self.issues[found.id] = stored
        self._notify(CommentUpdated(issue=stored, comment=new, at=now))
        return new

    def delete_comment(
        self, issue: Issue | str, comment_id: str, *, by: str | None = None
    ) -> Comment:
        """Remove a comment; the removed record is returned (``by``: who removed it)."""
        found = self._require_issue(issue)
        old = found.comment(comment_id)
        if old is None:
            raise LookupError(f"no comment {comment_id} on {found.key}")
        comments = tuple(c for c in found.comments if c.id != comment_id)
        stored = replace(found, comments=comments)
        self.issues[found.id] = stored
        self._notify(CommentDeleted(issue=stored, comment=old, by=by, at=self._clock.now()))
        return old

    def add_watcher(self, issue: Issue | str, account_id: str) -> Issue:
        """Add ``account_id`` to the issue's watchers (no-op if already watching)."""
        found = self._require_issue(issue)
        self._require_user(account_id)
        if account_id in found.watchers:
            return found
        changed = replace(found, watchers=(*found.watchers, account_id))
        self.issues[found.id] = changed
        return changed

    def remove_watcher(self, issue: Issue | str, account_id: str) -> Issue:
        """Remove ``account_id`` from the issue's watchers."""
        found = self._require_issue(issue)
        changed = replace(found, watchers=tuple(w for w in found.watchers if w != account_id))
        self.issues[found.id] = changed
        return changed


def _as_document(value: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return adf.document(value)
    return value


def _name(record: IssueType | Priority | SecurityLevel | None) -> str | None:
    return None if record is None else record.name


def _display(user: User | None) -> str | None:
    return None if user is None else user.display_name


def _named_change(
    name: str,
    field_id: str,
    old: str | None,
    new: str | None,
    describe: Callable[[str], str | None],
) -> ChangeItem:
    return ChangeItem(
        field=name,
        field_id=field_id,
        from_=old,
        from_string=None if old is None else describe(old),
        to=new,
        to_string=None if new is None else describe(new),
    )
