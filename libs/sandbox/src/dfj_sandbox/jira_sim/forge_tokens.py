"""The OAuth tokens Forge hands a remote, and the offline user-token mutation (forge.md §2).

**System tokens** (``x-forge-oauth-system``). Forge mints one per installation and caches it:
a delivered token is re-used until less than :data:`SYSTEM_TOKEN_MIN_TTL` (2 h) is left, then
a new one is minted for :data:`SYSTEM_TOKEN_LIFETIME` (3 h) — so whatever the remote receives
is valid for at least 2 h, Forge's documented guarantee (its own tokens live 2 to 4 h). The
token is opaque to the app but JWT-shaped (HS256 with a simulator secret), as Forge's are, so
an app may read ``exp``. It is a :class:`~dfj_sandbox.jira_sim.auth.Grant` with
``kind="app"``, ``via="api"``: accepted only as ``Authorization: Bearer`` on
``{sim.url}/ex/jira/<cloudId>/…`` of its own site, acting as the app user.

**Offline user tokens.** ``POST {sim.url}/graphql`` with the system token and the
``offlineUserAuthToken`` mutation (:func:`answer_graphql`) mints a token acting as one user,
for :data:`USER_TOKEN_TTL` seconds, limited to the manifest scopes that ``allowImpersonation``.
GraphQL style: a request the gateway cannot authenticate is HTTP 401; a mutation it refuses
is HTTP 200 with ``success: false`` and ``errors``.

**Scopes.** Forge's classic scopes map onto the Connect scopes the simulator's operations name
(:func:`connect_scopes`). ``write:jira-work`` covers creating, editing *and deleting* issues
and comments on Jira Cloud, so it maps to ``WRITE`` and ``DELETE``; ``report:personal-data``
maps to :data:`REPORT_SCOPE`, which the personal-data reporting API asks of a Forge caller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt

from dfj_sandbox.jira_sim.auth import Grant, GrantStore
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation, site_ari, workspace_ari

__all__ = [
    "REPORT_SCOPE",
    "SCOPE_MAP",
    "SYSTEM_TOKEN_LIFETIME",
    "SYSTEM_TOKEN_MIN_TTL",
    "USER_TOKEN_TTL",
    "ForgeTokens",
    "GraphqlAnswer",
    "OfflineTokenRequest",
    "connect_scopes",
]

SYSTEM_TOKEN_LIFETIME: Final = 3 * 3600
SYSTEM_TOKEN_MIN_TTL: Final = 2 * 3600
USER_TOKEN_TTL: Final = 3600
REPORT_SCOPE: Final = "REPORT_PERSONAL_DATA"
SCOPE_MAP: Final[Mapping[str, frozenset[str]]] = {
    "read:jira-work": frozenset({"READ"}),
    "read:jira-user": frozenset({"READ"}),
    "write:jira-work": frozenset({"WRITE", "DELETE"}),
    "manage:jira-project": frozenset({"PROJECT_ADMIN"}),
    "manage:jira-configuration": frozenset({"ADMIN"}),
    "report:personal-data": frozenset({REPORT_SCOPE}),
}
_MUTATION: Final = "offlineUserAuthToken"


def connect_scopes(forge_scopes: Iterable[str]) -> frozenset[str]:
    """The Connect scopes a set of Forge scopes reaches (unknown scopes reach nothing)."""
    found: set[str] = set()
    for scope in forge_scopes:
        found |= SCOPE_MAP.get(scope, frozenset())
    return frozenset(found)


@dataclass(frozen=True, kw_only=True)
class OfflineTokenRequest:
    """One ``offlineUserAuthToken`` request: for whom, and whether a token was minted."""

    installation_id: str | None
    account_id: str | None
    success: bool
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class GraphqlAnswer:
    """The HTTP status and JSON body of one ``/graphql`` request."""

    status: int
    body: Mapping[str, Any]


class _Refused(Exception):
    def __init__(self, message: str, *, account_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.account_id = account_id


class ForgeTokens:
    """Mints, caches, expires and revokes the Forge tokens of every installation."""

    def __init__(self, grants: GrantStore, *, secret: bytes | None = None) -> None:
        self._grants = grants
        self._secret = secret or uuid.uuid4().bytes + uuid.uuid4().bytes
        self._system: dict[str, tuple[str, float]] = {}
        self.offline_requests: list[OfflineTokenRequest] = []
        self.system_mints = 0

    def _mint(
        self,
        installation: ForgeInstallation,
        *,
        account_id: str,
        kind: str,
        lifetime: int,
        now: float,
    ) -> tuple[str, float]:
        issued = int(now)
        expires = issued + lifetime
        claims = {
            "iss": "forge-sandbox",
            "sub": account_id,
            "aud": "api.atlassian.com",
            "iat": issued,
            "exp": expires,
            "jti": str(uuid.uuid4()),
            "installationId": installation.installation_id,
            "cloudId": installation.cloud_id,
            "tokenType": kind,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), float(expires)

    def system_token(self, installation: ForgeInstallation, *, now: float) -> str:
        """The installation's system token: the cached one while ≥ 2 h is left, else new."""
        cached = self._system.get(installation.installation_id)
        if cached is not None and cached[1] - now >= SYSTEM_TOKEN_MIN_TTL:
            return cached[0]
        site = installation.site
        token, expires = self._mint(
            installation,
            account_id=site.app_user.account_id,
            kind="system",
            lifetime=SYSTEM_TOKEN_LIFETIME,
            now=now,
        )
        self._grants.issue(
            Grant(
                client_key=site.client_key,
                account_id=site.app_user.account_id,
                scopes=connect_scopes(installation.manifest.scopes),
                expires_at=expires,
                kind="app",
                via="api",
                installation=installation.installation_id,
            ),
            token=token,
        )
        self._system[installation.installation_id] = (token, expires)
        self.system_mints += 1
        return token

    def user_token(
        self,
        installation: ForgeInstallation,
        account_id: str,
        *,
        now: float,
        scopes: frozenset[str] | None = None,
    ) -> str:
        """A user token for ``account_id`` (``scopes``: default the impersonation scopes)."""
        token, expires = self._mint(
            installation, account_id=account_id, kind="user", lifetime=USER_TOKEN_TTL, now=now
        )
        chosen = scopes
        if chosen is None:
            chosen = connect_scopes(installation.manifest.impersonation_scopes)
        self._grants.issue(
            Grant(
                client_key=installation.site.client_key,
                account_id=account_id,
                scopes=chosen,
                expires_at=expires,
                kind="user",
                via="api",
                installation=installation.installation_id,
            ),
            token=token,
        )
        return token

    def expire(self, installation: ForgeInstallation, *, now: float) -> int:
        """End every token of ``installation`` now (the next invocation mints a new one)."""
        self._system.pop(installation.installation_id, None)
        return self._grants.expire(lambda g: g.installation == installation.installation_id, at=now)

    def revoke(self, installation: ForgeInstallation) -> int:
        """Forget every token of ``installation`` (uninstall)."""
        self._system.pop(installation.installation_id, None)
        return self._grants.revoke(lambda g: g.installation == installation.installation_id)

    # --- the offlineUserAuthToken mutation ------------------------------------------------

    def answer_graphql(
        self,
        *,
        authorization: str | None,
        body: bytes,
        installations: Iterable[ForgeInstallation],
        now: float,
    ) -> GraphqlAnswer:
        """Answer one ``POST /graphql`` (only the offline user-token mutation is served)."""
        installation = self._caller(authorization, installations, now)
        if installation is None:
            return GraphqlAnswer(status=401, body={"code": 401, "message": "Unauthorized"})
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _graphql_error(400, "The request body is not JSON.")
        query = document.get("query") if isinstance(document, dict) else None
        if not isinstance(query, str) or _MUTATION not in query or "mutation" not in query:
            return _graphql_error(200, "The simulator serves only offlineUserAuthToken.")
        variables = document.get("variables")
        given = variables.get("input") if isinstance(variables, dict) else None
        if not isinstance(given, dict):
            return _graphql_error(200, "Variable 'input' of type OfflineUserAuthTokenInput!")
        try:
            account_id = self._check_input(installation, given)
        except _Refused as refused:
            self.offline_requests.append(
                OfflineTokenRequest(
                    installation_id=installation.installation_id,
                    account_id=refused.account_id,
                    success=False,
                    error=refused.message,
                )
            )
            return GraphqlAnswer(
                status=200,
                body={
                    "data": {
                        _MUTATION: {
                            "success": False,
                            "errors": [{"message": refused.message}],
                            "authToken": None,
                        }
                    }
                },
            )
        token = self.user_token(installation, account_id, now=now)
        self.offline_requests.append(
            OfflineTokenRequest(
                installation_id=installation.installation_id, account_id=account_id, success=True
            )
        )
        return GraphqlAnswer(
            status=200,
            body={
                "data": {
                    _MUTATION: {
                        "success": True,
                        "errors": None,
                        "authToken": {"token": token, "ttl": USER_TOKEN_TTL},
                    }
                }
            },
        )

    def _caller(
        self,
        authorization: str | None,
        installations: Iterable[ForgeInstallation],
        now: float,
    ) -> ForgeInstallation | None:
        """The installation whose valid system token authorizes the request, if any."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        grant = self._grants.lookup(token.strip())
        if grant is None or grant.kind != "app" or grant.via != "api" or now >= grant.expires_at:
            return None
        return next(
            (i for i in installations if i.installed and i.installation_id == grant.installation),
            None,
        )

    @staticmethod
    def _check_input(installation: ForgeInstallation, given: Mapping[str, Any]) -> str:
        user_id = given.get("userId")
        account_id = user_id if isinstance(user_id, str) else None
        if not installation.manifest.impersonation_scopes:
            raise _Refused(
                "The app has no scope with allowImpersonation: true.", account_id=account_id
            )
        contexts = given.get("contextIds")
        mine = {site_ari(installation.cloud_id), workspace_ari(installation.cloud_id)}
        if (
            not isinstance(contexts, list)
            or not contexts
            or not all(isinstance(c, str) and c in mine for c in contexts)
        ):
            raise _Refused(
                "The contextIds are not contexts of this installation.", account_id=account_id
            )
        user = None if account_id is None else installation.site.user(account_id)
        if user is None or not user.active or user.account_type == "app":
            raise _Refused("The user does not exist or is not active.", account_id=account_id)
        return user.account_id


def _graphql_error(status: int, message: str) -> GraphqlAnswer:
    return GraphqlAnswer(status=status, body={"errors": [{"message": message}], "data": None})
