"""What every REST handler shares: the request it gets, the reply it gives, Jira's refusals.

A handler takes a :class:`RestRequest` that has already been authenticated and checked against
the OpenAPI document, and returns a :class:`Reply` or raises :class:`Refusal`. Jira's rules
for the caller (an impersonated user, or the app) are enforced in the handlers with these
helpers: an issue the caller may not browse is answered 404 as if it did not exist, because
Jira hides existence (:func:`visible_issue`); an action the caller may not take is 403 with
``{"errorMessages": [...], "errors": {}}`` (:func:`require`); invalid input is 400 with the
offending field in ``errors`` (:func:`reject_fields`), in Jira's words where they are known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from dfj_sandbox.jira_sim.auth import Caller
from dfj_sandbox.jira_sim.jql import ParseCache
from dfj_sandbox.jira_sim.model import Issue, Project, User
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "HIDDEN_ISSUE",
    "NOT_ADF",
    "UNSETTABLE",
    "Handler",
    "Limits",
    "Refusal",
    "Reply",
    "RestRequest",
    "csv_values",
    "json_object",
    "page_window",
    "reference",
    "reject_fields",
    "require",
    "visible_issue",
]

HIDDEN_ISSUE: Final = "Issue does not exist or you do not have permission to see it."
UNSETTABLE: Final = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
NOT_ADF: Final = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Sizes Jira refuses beyond (configurable, since Atlassian does not publish them all)."""

    max_match_issue_ids: int = 1000
    max_match_jqls: int = 1000
    max_search_results: int = 100
    max_search_ids: int = 5000


@dataclass(frozen=True, kw_only=True)
class RestRequest:
    """One authenticated, spec-checked request to a site."""

    site: Site
    caller: Caller
    params: Mapping[str, Any]
    path_params: Mapping[str, str]
    body: Any
    jql: ParseCache
    limits: Limits = field(default_factory=Limits)

    @property
    def viewer(self) -> User:
        """The user whose permissions apply (the app user for app JWTs)."""
        return self.caller.user


@dataclass(frozen=True, kw_only=True)
class Reply:
    """Status, JSON body (None for no body) and extra headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """Raised by a handler to answer with a Jira error body."""

    def __init__(
        self, status: int, *messages: str, errors: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, messages)
        self.reply = Reply(
            status=status, body={"errorMessages": list(messages), "errors": dict(errors or {})}
        )


Handler = Callable[[RestRequest], Reply]


# --- shared checks ------------------------------------------------------------------------


def visible_issue(req: RestRequest) -> Issue:
    """The path's issue, or 404 with Jira's wording if it is missing *or* hidden."""
    found = req.site.issue(req.path_params["issueIdOrKey"])
    if found is None or not req.site.can_see(req.viewer, found):
        raise Refusal(404, HIDDEN_ISSUE)
    return found


def require(req: RestRequest, permission: str, project: Project, message: str) -> None:
    """403 with ``message`` unless the caller holds ``permission`` in ``project``."""
    if not req.site.may(req.viewer, permission, project):
        raise Refusal(403, message)


def csv_values(value: Any) -> list[str]:
    """A parameter given comma-separated, repeated, or both, as one list."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def page_window(req: RestRequest, default: int, maximum: int) -> tuple[int, int]:
    """``startAt`` and ``maxResults`` (clamped to ``maximum``) of a paged operation."""
    start = max(0, int(req.params.get("startAt", 0)))
    size = int(req.params.get("maxResults", default))
    return start, max(0, min(size, maximum))


def reject_fields(field_errors: Mapping[str, str]) -> NoReturn:
    """400 with one entry per offending field."""
    raise Refusal(400, errors=field_errors)


def json_object(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (the spec check came first)."""
    return value if isinstance(value, Mapping) else {}


def reference(value: Any, *names: str) -> str | None:
    """The first of ``names`` set in an object such as ``{"id": …}`` or ``{"key": …}``."""
    if isinstance(value, Mapping):
        for name in names:
            found = value.get(name)
            if isinstance(found, str | int) and str(found):
                return str(found)
    return None
