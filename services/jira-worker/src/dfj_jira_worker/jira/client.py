"""The Jira REST client of the jira-worker: as the app, or as a linked Jira user.

:class:`JiraClient` is made once per process; it owns the HTTP session (:mod:`.http`), the
short-lived cache of opened shared secrets (:mod:`.site`) and the cache of user tokens
(:mod:`.user_tokens`). :meth:`JiraClient.as_app` and :meth:`JiraClient.as_user` hand out cheap
:class:`JiraApi` views bound to one installation (and user); make one per message.

- **As the app** every request carries a fresh HS256 JWT whose ``qsh`` hashes exactly the
  method, path and query that go on the wire (:mod:`.app_jwt`). The query is therefore
  encoded here, once, and sent as encoded (``yarl`` is told not to re-quote it), so what Jira
  hashes on its side is what we hashed.
- **As a user** the request carries ``Authorization: Bearer`` with a token from the
  JWT-bearer grant, cached per (site, account, scopes). When Jira answers 401 the token is
  dropped and the request is retried once with a fresh one (tokens can be revoked early).
- On a **Forge** installation the same calls go to its ``apiBaseUrl``: as the app with the
  stored system token (``Bearer``; none valid → :class:`~.errors.JiraTokenPending`, the job
  waits for Forge's next call), as a user with an offline user token minted with the system
  token (:mod:`.offline_tokens`), cached the same way.

Paths are relative to the site's base URL (``/rest/api/3/...``); a base URL with a path of
its own (a proxy, the simulator's ``/sites/acme``) is prefixed when sending and is not part
of the hash. Query values may be a string, a number, a boolean or a sequence of strings (a
repeated parameter). Answers are decoded JSON (``None`` for 204 or an empty body); failures
raise the classes of :mod:`.errors`.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from dfj_common.clock import Clock
from dfj_common.config import Secret
from dfj_common.qsh import percent_encode
from dfj_common.secrets import EnvelopeCipher
from dfj_common.storage import Installation
from dfj_jira_worker.jira.app_jwt import app_token
from dfj_jira_worker.jira.errors import (
    JiraError,
    JiraInstallationIncomplete,
    JiraTokenPending,
    JiraUnavailable,
    error_for_status,
)
from dfj_jira_worker.jira.http import Answer, Transport
from dfj_jira_worker.jira.offline_tokens import mint_offline_token
from dfj_jira_worker.jira.site import SYSTEM_TOKEN_PURPOSE, SharedSecrets, Site, site_of
from dfj_jira_worker.jira.user_tokens import (
    DEFAULT_SCOPES,
    IssuedToken,
    TokenKey,
    UserTokens,
    normalise_scopes,
    request_token,
)

__all__ = ["AccountReport", "JiraApi", "JiraClient", "ParamValue", "Params"]

ParamValue = str | int | bool | Sequence[str]
Params = Mapping[str, ParamValue]

_PATH_SAFE: Final = "/%:@!$&'()*+,;=-._~"  # pchar, "/" and "%" (octets already encoded)
_METHODS_WITHOUT_BODY: Final = frozenset({"GET", "HEAD", "DELETE"})
_JSON: Final = "application/json"
MAX_PROJECTS_PAGE: Final = 100
MAX_REPORTED_ACCOUNTS: Final = 90
#: A system token this close to its expiry is not used: the call could outlive it.
SYSTEM_TOKEN_MARGIN: Final = 120.0


def _segment(value: str | int) -> str:
    """One path segment, fully encoded (an issue key or id never adds a ``/``)."""
    return quote(str(value), safe="")


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if not params:
        return []
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, str):
            pairs.append((name, value))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, int):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(item)) for item in value)
    return pairs


@dataclass(frozen=True, slots=True)
class _Credential:
    header: str = field(repr=False)
    token: Secret | None = field(default=None, repr=False)


class _Auth(Protocol):
    """How a request is authenticated; ``refused`` says whether a 401 deserves one retry."""

    @property
    def actor(self) -> str: ...

    async def credential(
        self, site: Site, method: str, path: str, pairs: Sequence[tuple[str, str]]
    ) -> _Credential: ...

    def refused(self, credential: _Credential) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Parts:
    """What every :class:`JiraApi` of one client shares."""

    transport: Transport
    secrets: SharedSecrets
    tokens: UserTokens
    clock: Clock
    app_key: str
    oauth_url: str


async def _system_token(parts: _Parts, site: Site) -> Secret:
    """The Forge installation's system token, if one valid for a while yet is stored."""
    forge = site.forge
    assert forge is not None
    if forge.sealed_token is None or forge.expires_at is None:
        raise JiraTokenPending(
            f"installation {site.client_key} has no Forge system token yet; "
            "waiting for Forge's next call"
        )
    if forge.expires_at - parts.clock.now() < SYSTEM_TOKEN_MARGIN:
        raise JiraTokenPending(
            f"installation {site.client_key}: the Forge system token has expired; "
            "waiting for Forge's next call"
        )
    return await parts.secrets.open(
        site.client_key,
        forge.sealed_token,
        owner=forge.installation_id,
        purpose=SYSTEM_TOKEN_PURPOSE,
    )


@dataclass(frozen=True, slots=True)
class _AppAuth:
    parts: _Parts
    actor: str = "app"

    async def credential(
        self, site: Site, method: str, path: str, pairs: Sequence[tuple[str, str]]
    ) -> _Credential:
        if site.forge is not None:
            system = await _system_token(self.parts, site)
            return _Credential("Bearer " + system.reveal(), system)
        secret = await self.parts.secrets.get(site)
        token = app_token(
            app_key=site.app_key or self.parts.app_key,
            shared_secret=secret,
            method=method,
            path=path,
            params=pairs,
            now=self.parts.clock.now(),
        )
        return _Credential("JWT " + token)

    def refused(self, credential: _Credential) -> bool:
        # A fresh JWT would be signed with the same secret, and the system token stored is
        # the only one there is: no point.
        return False


@dataclass(frozen=True, slots=True)
class _UserAuth:
    parts: _Parts
    key: TokenKey  # whose token: site, account, normalised scopes
    actor: str = "user"

    async def credential(
        self, site: Site, method: str, path: str, pairs: Sequence[tuple[str, str]]
    ) -> _Credential:
        if site.forge is not None:
            return await self._offline(site)
        oauth_client_id = site.oauth_client_id
        if not oauth_client_id:
            raise JiraInstallationIncomplete(
                f"installation {site.client_key} has no OAuth client id, so users cannot be "
                "impersonated"
            )

        async def fetch() -> IssuedToken:
            secret = await self.parts.secrets.get(site)
            return await request_token(
                self.parts.transport,
                oauth_url=self.parts.oauth_url,
                client_key=site.client_key,
                oauth_client_id=oauth_client_id,
                base_url=site.base_url,
                shared_secret=secret,
                account_id=self.key.account_id,
                scopes=self.key.scopes,
                now=self.parts.clock.now(),
            )

        token = await self.parts.tokens.get(self.key, fetch)
        return _Credential("Bearer " + token.reveal(), token)

    async def _offline(self, site: Site) -> _Credential:
        forge = site.forge
        assert forge is not None

        async def fetch() -> IssuedToken:
            return await mint_offline_token(
                self.parts.transport,
                api_base_url=site.root,
                system_token=await _system_token(self.parts, site),
                cloud_id=forge.cloud_id,
                client_key=site.client_key,
                account_id=self.key.account_id,
                now=self.parts.clock.now(),
            )

        token = await self.parts.tokens.get(self.key, fetch)
        return _Credential("Bearer " + token.reveal(), token)

    def refused(self, credential: _Credential) -> bool:
        if credential.token is not None:
            self.parts.tokens.invalidate(self.key, credential.token)
        return True


class JiraApi:
    """Jira REST for one installation, as the app or as one user (see :class:`JiraClient`)."""

    def __init__(self, parts: _Parts, installation: Installation, auth: _Auth) -> None:
        self._parts = parts
        self._auth = auth
        self._tenant = installation.client_key
        try:
            self._site: Site | None = site_of(installation)
            self._unusable: JiraInstallationIncomplete | None = None
        except JiraInstallationIncomplete as exc:
            self._site = None
            self._unusable = exc

    @property
    def client_key(self) -> str:
        """The site this view calls."""
        return self._tenant

    async def request(
        self, method: str, path: str, *, params: Params | None = None, json: Any = None
    ) -> Any:
        """``method path`` (relative to the site's base URL); the decoded JSON answer."""
        return await self._call(method, path, route=path, params=params, json=json)

    # --- issues ---------------------------------------------------------------------------

    async def get_issue(
        self, issue: str, *, fields: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The issue (key or id) with ``fields`` (Jira's default set when empty)."""
        params: dict[str, ParamValue] = {}
        if fields:
            params["fields"] = ",".join(fields)
        if expand:
            params["expand"] = ",".join(expand)
        found = await self._call(
            "GET",
            f"/rest/api/3/issue/{_segment(issue)}",
            route="/rest/api/3/issue/{issueIdOrKey}",
            params=params,
            action="view this issue",
            subject="That issue",
        )
        return _object(found, "GET /rest/api/3/issue/{issueIdOrKey}")

    async def create_issue(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create an issue from ``fields`` (ADF for rich text); ``{"id", "key", "self"}``."""
        created = await self._call(
            "POST",
            "/rest/api/3/issue",
            route="/rest/api/3/issue",
            json={"fields": dict(fields)},
            action="create issues in this project",
            subject="That project or issue type",
        )
        return _object(created, "POST /rest/api/3/issue")

    async def assign_issue(self, issue: str, account_id: str | None) -> None:
        """Assign the issue to ``account_id`` (None unassigns it)."""
        await self._call(
            "PUT",
            f"/rest/api/3/issue/{_segment(issue)}/assignee",
            route="/rest/api/3/issue/{issueIdOrKey}/assignee",
            json={"accountId": account_id},
            action="assign this issue",
            subject="That issue or user",
        )

    async def get_transitions(self, issue: str) -> list[dict[str, Any]]:
        """The transitions the acting user may make on the issue now."""
        route = "/rest/api/3/issue/{issueIdOrKey}/transitions"
        found = await self._call(
            "GET",
            f"/rest/api/3/issue/{_segment(issue)}/transitions",
            route=route,
            action="view this issue",
            subject="That issue",
        )
        return _items(found, "transitions", f"GET {route}")

    async def transition_issue(self, issue: str, transition_id: str) -> None:
        """Move the issue through the transition ``transition_id``."""
        await self._call(
            "POST",
            f"/rest/api/3/issue/{_segment(issue)}/transitions",
            route="/rest/api/3/issue/{issueIdOrKey}/transitions",
            json={"transition": {"id": str(transition_id)}},
            action="transition this issue",
            subject="That issue",
        )

    async def add_comment(self, issue: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Add a comment whose ``body`` is an ADF document; the created comment."""
        route = "/rest/api/3/issue/{issueIdOrKey}/comment"
        created = await self._call(
            "POST",
            f"/rest/api/3/issue/{_segment(issue)}/comment",
            route=route,
            json={"body": dict(body)},
            action="comment on this issue",
            subject="That issue",
        )
        return _object(created, f"POST {route}")

    async def get_comment(self, issue: str, comment_id: str) -> dict[str, Any]:
        """One comment of the issue."""
        route = "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"
        found = await self._call(
            "GET",
            f"/rest/api/3/issue/{_segment(issue)}/comment/{_segment(comment_id)}",
            route=route,
            action="view this comment",
            subject="That comment",
        )
        return _object(found, f"GET {route}")

    async def add_watcher(self, issue: str, account_id: str) -> None:
        """Add ``account_id`` to the issue's watchers (Jira takes a bare JSON string)."""
        await self._call(
            "POST",
            f"/rest/api/3/issue/{_segment(issue)}/watchers",
            route="/rest/api/3/issue/{issueIdOrKey}/watchers",
            json=account_id,
            action="watch this issue",
            subject="That issue",
        )

    # --- JQL ------------------------------------------------------------------------------

    async def search_jql(
        self, jql: str, *, fields: Sequence[str], max_results: int = 10
    ) -> dict[str, Any]:
        """The first page of issues matching a bounded ``jql`` (``issues``, ``nextPageToken``)."""
        found = await self._call(
            "POST",
            "/rest/api/3/search/jql",
            route="/rest/api/3/search/jql",
            json={"jql": jql, "fields": list(fields), "maxResults": max_results},
            action="search issues",
        )
        return _object(found, "POST /rest/api/3/search/jql")

    async def match_jql(
        self, issue_ids: Sequence[int], jqls: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Which of ``issue_ids`` each JQL matches: one ``{matchedIssues, errors}`` per JQL.

        No call is made without JQLs (``[]``) or without issues (every JQL matches nothing).
        """
        if not jqls:
            return []
        if not issue_ids:
            return [{"matchedIssues": [], "errors": []} for _ in jqls]
        found = await self._call(
            "POST",
            "/rest/api/3/jql/match",
            route="/rest/api/3/jql/match",
            json={"issueIds": [int(i) for i in issue_ids], "jqls": list(jqls)},
            action="search issues",
        )
        return _items(found, "matches", "POST /rest/api/3/jql/match")

    async def parse_jql(self, queries: Sequence[str]) -> list[dict[str, Any]]:
        """Strict validation of each query: one ``{query, structure?, errors?}`` per query."""
        if not queries:
            return []
        found = await self._call(
            "POST",
            "/rest/api/3/jql/parse",
            route="/rest/api/3/jql/parse",
            params={"validation": "strict"},
            json={"queries": list(queries)},
            action="search issues",
        )
        return _items(found, "queries", "POST /rest/api/3/jql/parse")

    # --- projects, users, permissions -----------------------------------------------------

    async def search_projects(self, *, max_results: int = 50) -> list[dict[str, Any]]:
        """The first page of projects the acting user can see (at most 100)."""
        found = await self._call(
            "GET",
            "/rest/api/3/project/search",
            route="/rest/api/3/project/search",
            params={"maxResults": min(max(max_results, 1), MAX_PROJECTS_PAGE)},
            action="browse projects",
        )
        return _items(found, "values", "GET /rest/api/3/project/search")

    async def issue_types_for_project(self, project: str) -> list[dict[str, Any]]:
        """The issue types the acting user can create in ``project`` (key or id)."""
        route = "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes"
        found = await self._call(
            "GET",
            f"/rest/api/3/issue/createmeta/{_segment(project)}/issuetypes",
            route=route,
            action="create issues in this project",
            subject="That project",
        )
        return _items(found, "issueTypes", f"GET {route}")

    async def get_myself(self) -> dict[str, Any]:
        """The acting user."""
        found = await self._call(
            "GET", "/rest/api/3/myself", route="/rest/api/3/myself", action="use Jira"
        )
        return _object(found, "GET /rest/api/3/myself")

    async def bulk_users(self, account_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The users with these account ids, in one request (no call for none)."""
        if not account_ids:
            return []
        found = await self._call(
            "GET",
            "/rest/api/3/user/bulk",
            route="/rest/api/3/user/bulk",
            params={"accountId": list(account_ids), "maxResults": len(account_ids)},
            action="browse users",
        )
        return _items(found, "values", "GET /rest/api/3/user/bulk")

    async def my_permissions(
        self, permissions: Sequence[str], *, project_key: str | None = None
    ) -> dict[str, bool]:
        """Whether the acting user has each of ``permissions`` (globally or in a project)."""
        if not permissions:
            return {}
        params: dict[str, ParamValue] = {"permissions": ",".join(permissions)}
        if project_key is not None:
            params["projectKey"] = project_key
        found = await self._call(
            "GET",
            "/rest/api/3/mypermissions",
            route="/rest/api/3/mypermissions",
            params=params,
            action="check permissions",
            subject="That project",
        )
        granted = _object(found, "GET /rest/api/3/mypermissions").get("permissions")
        granted = granted if isinstance(granted, dict) else {}
        result: dict[str, bool] = {}
        for name in permissions:
            entry = granted.get(name)
            result[name] = isinstance(entry, dict) and entry.get("havePermission") is True
        return result

    # --- personal data reporting -----------------------------------------------------------

    async def report_accounts(self, accounts: Sequence[Mapping[str, str]]) -> AccountReport:
        """Report up to 90 ``{"accountId", "updatedAt"}`` to the Personal Data Reporting API.

        As the app (a user view refuses). ``204`` means nothing changed; ``200`` lists the
        accounts that were ``closed`` (erase them) or ``updated``. ``Cycle-Period`` (days, or
        ISO 8601 ``P<n>D``) says how often an account may be reported again.
        """
        if self._auth.actor != "app":
            raise ValueError("only the app reports accounts")
        if not 1 <= len(accounts) <= MAX_REPORTED_ACCOUNTS:
            raise ValueError(f"report 1 to {MAX_REPORTED_ACCOUNTS} accounts at a time")
        route = "/app/report-accounts/"
        answer = await self._exchange(
            "POST", route, route=route, json={"accounts": [dict(a) for a in accounts]}
        )
        closed: list[str] = []
        updated: list[str] = []
        decoded = _decoded(answer, f"POST {route}")
        if decoded is not None:
            for item in _items(decoded, "accounts", f"POST {route}"):
                account_id, status = item.get("accountId"), item.get("status")
                if isinstance(account_id, str) and status == "closed":
                    closed.append(account_id)
                elif isinstance(account_id, str) and status == "updated":
                    updated.append(account_id)
        return AccountReport(
            closed=tuple(closed),
            updated=tuple(updated),
            cycle_period_seconds=_cycle_period(answer.cycle_period),
        )

    # --- the request itself ---------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        route: str,
        params: Params | None = None,
        json: Any = None,
        action: str = "do that",
        subject: str = "That",
    ) -> Any:
        answer = await self._exchange(
            method, path, route=route, params=params, json=json, action=action, subject=subject
        )
        return _decoded(answer, f"{method.upper()} {route}")

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        route: str,
        params: Params | None = None,
        json: Any = None,
        action: str = "do that",
        subject: str = "That",
    ) -> Answer:
        """The successful (2xx) answer to one request; the error classes otherwise."""
        site = self._site
        if site is None:
            assert self._unusable is not None
            raise self._unusable
        method = method.upper()
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError("path must start with '/' and carry no query; use params=")
        if json is not None and method in _METHODS_WITHOUT_BODY:
            raise ValueError(f"{method} requests carry no body")
        raw_path = quote(path, safe=_PATH_SAFE)
        pairs = _pairs(params)
        query = "&".join(f"{percent_encode(n)}={percent_encode(v)}" for n, v in pairs)
        url = URL(site.root + raw_path + ("?" + query if query else ""), encoded=True)
        body = (
            None
            if json is None
            else jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        )
        auth = self._auth
        transport = self._parts.transport
        for attempt in (1, 2):
            credential = await auth.credential(site, method, raw_path, pairs)
            answer = await transport.send(
                method,
                url,
                authorization=credential.header,
                body=body,
                content_type=_JSON,
                route=route,
                tenant=site.client_key,
                actor=auth.actor,
            )
            status = answer.status
            if 200 <= status < 300:
                return answer
            if status == 401 and attempt == 1 and auth.refused(credential):
                continue
            raise error_for_status(
                status,
                method=method,
                route=route,
                body=answer.body,
                retry_after=answer.retry_after,
                now=self._parts.clock.now(),
                as_user=auth.actor == "user",
                action=action,
                subject=subject,
            )
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class AccountReport:
    """What the Personal Data Reporting API said about a batch of accounts."""

    closed: tuple[str, ...]
    updated: tuple[str, ...]
    cycle_period_seconds: float


_DAY: Final = 86_400.0
DEFAULT_CYCLE_PERIOD: Final = 7 * _DAY


def _cycle_period(header: str | None) -> float:
    """``Cycle-Period`` in seconds: plain days (``7``) or ISO 8601 days (``P7D``)."""
    text = (header or "").strip().upper()
    if text.startswith("P") and text.endswith("D"):
        text = text[1:-1]
    try:
        days = float(text)
    except ValueError:
        return DEFAULT_CYCLE_PERIOD
    return days * _DAY if days > 0 else DEFAULT_CYCLE_PERIOD


def _decoded(answer: Answer, where: str) -> Any:
    """The JSON of a successful answer (None for 204 or an empty body)."""
    if answer.status == 204 or not answer.body.strip():
        return None
    try:
        return jsonlib.loads(answer.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JiraUnavailable(
            f"Jira's answer to {where} is not JSON", status=answer.status
        ) from exc


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JiraError(f"Jira's answer to {where} is not an object", reason="JiraBadResponse")
    return value


def _items(value: Any, key: str, where: str) -> list[dict[str, Any]]:
    items = _object(value, where).get(key)
    if not isinstance(items, list):
        raise JiraError(f"Jira's answer to {where} has no {key!r} list", reason="JiraBadResponse")
    return [item for item in items if isinstance(item, dict)]


class JiraClient:
    """The process's Jira client: one HTTP session, bounded pools, time-outs, token cache.

    ``oauth_url`` is the authorization server of the JWT-bearer grant
    (``DFJ_ATLASSIAN_OAUTH_URL``). A ``session`` passed in stays the caller's to close;
    otherwise one is made on first use and closed by :meth:`close`. ``timeout`` bounds each
    request, start to end, in seconds.
    """

    def __init__(
        self,
        *,
        app_key: str,
        oauth_url: str,
        cipher: EnvelopeCipher,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        max_connections: int = 100,
        max_connections_per_host: int = 16,
    ) -> None:
        transport = Transport(
            clock=clock,
            timeout=timeout,
            user_agent=f"dfj-jira-worker {app_key}",
            session=session,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
        )
        self._parts = _Parts(
            transport=transport,
            secrets=SharedSecrets(cipher, clock=clock),
            tokens=UserTokens(clock=clock),
            clock=clock,
            app_key=app_key,
            oauth_url=oauth_url.rstrip("/"),
        )

    @property
    def token_requests(self) -> int:
        """How many user tokens were requested so far (for metrics and tests)."""
        return self._parts.tokens.fetches

    def as_app(self, installation: Installation) -> JiraApi:
        """Jira REST as the app on ``installation``'s site (an HS256 JWT per request)."""
        return JiraApi(self._parts, installation, _AppAuth(self._parts))

    def as_user(
        self,
        installation: Installation,
        account_id: str,
        *,
        scopes: Sequence[str] = DEFAULT_SCOPES,
    ) -> JiraApi:
        """Jira REST as the user ``account_id`` on that site (impersonation; Jira decides)."""
        if not account_id:
            raise ValueError("account_id must not be empty")
        key = TokenKey(installation.client_key, account_id, normalise_scopes(scopes))
        return JiraApi(self._parts, installation, _UserAuth(self._parts, key))

    async def close(self) -> None:
        """Cancel token requests, forget secrets and tokens, close our session."""
        await self._parts.tokens.close()
        self._parts.secrets.clear()
        await self._parts.transport.close()

    async def __aenter__(self) -> JiraClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
