"""Acting as a Jira user on a Forge installation: offline user tokens (forge.md §2).

Forge's replacement for Connect's JWT-bearer grant: the remote asks Atlassian's GraphQL API,
with the installation's app **system token**, for a token that acts as one user::

    POST https://api.atlassian.com/graphql      Authorization: Bearer <system token>
    mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) {
      offlineUserAuthToken(input: $input) { success errors { message } authToken { token ttl } }
    }
    input = {contextIds: ["ari:cloud:jira::site/<cloudId>"], userId: "<accountId>"}

The GraphQL endpoint is on the host of the installation's ``apiBaseUrl`` (``/graphql``), so
the simulator and production are addressed alike. The token is used like the system token,
on ``apiBaseUrl``, and cached per (installation, account) for its ``ttl`` by the same
:class:`~.user_tokens.UserTokens` cache as Connect's. Atlassian allows 1,000 mints a minute
per app: the cache is what keeps a busy channel under it.

Failures: a refused system token (401/403) means it lapsed early — the job waits for Forge's
next one (:class:`~.errors.JiraTokenPending`); ``success: false`` (the user is gone, or the
app may not impersonate) is :class:`~.errors.JiraUnauthorized` for that user; 429 and 5xx are
retried as for any Jira call.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import urlsplit

from yarl import URL

from dfj_common.config import Secret
from dfj_jira_worker.jira.errors import (
    JiraRateLimited,
    JiraTokenPending,
    JiraUnauthorized,
    JiraUnavailable,
    retry_after_seconds,
)
from dfj_jira_worker.jira.http import Transport
from dfj_jira_worker.jira.user_tokens import IssuedToken

__all__ = ["GRAPHQL_PATH", "OFFLINE_AUTH_MUTATION", "graphql_url", "mint_offline_token"]

GRAPHQL_PATH: Final = "/graphql"
OFFLINE_AUTH_MUTATION: Final = (
    "mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) "
    "{ offlineUserAuthToken(input: $input) { success errors { message } "
    "authToken { token ttl } } }"
)


def graphql_url(api_base_url: str) -> str:
    """Atlassian's GraphQL endpoint for an installation whose API is at ``api_base_url``."""
    parts = urlsplit(api_base_url)
    return f"{parts.scheme}://{parts.netloc}{GRAPHQL_PATH}"


def _result(body: bytes) -> dict[str, Any]:
    try:
        decoded: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JiraUnavailable("the GraphQL API answered with no JSON") from exc
    data = decoded.get("data") if isinstance(decoded, dict) else None
    result = data.get("offlineUserAuthToken") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise JiraUnavailable("the GraphQL API answered without offlineUserAuthToken")
    return result


async def mint_offline_token(
    transport: Transport,
    *,
    api_base_url: str,
    system_token: Secret,
    cloud_id: str,
    client_key: str,
    account_id: str,
    now: float,
) -> IssuedToken:
    """A token acting as ``account_id`` on the installation of ``cloud_id``."""
    body = {
        "query": OFFLINE_AUTH_MUTATION,
        "variables": {
            "input": {"contextIds": [f"ari:cloud:jira::site/{cloud_id}"], "userId": account_id}
        },
    }
    answer = await transport.send(
        "POST",
        URL(graphql_url(api_base_url)),
        authorization="Bearer " + system_token.reveal(),
        body=json.dumps(body, separators=(",", ":")).encode("utf-8"),
        content_type="application/json",
        route=GRAPHQL_PATH,
        tenant=client_key,
        actor="user",
    )
    status = answer.status
    where = f"the GraphQL API answered {status}"
    if status == 429:
        raise JiraRateLimited(
            where, retry_after=retry_after_seconds(answer.retry_after, now=now), status=status
        )
    if status >= 500:
        raise JiraUnavailable(where, status=status)
    if status in (401, 403):
        raise JiraTokenPending(f"{where}: the system token was refused")
    if not 200 <= status < 300:
        raise JiraUnavailable(where, status=status)
    result = _result(answer.body)
    auth = result.get("authToken")
    token = auth.get("token") if isinstance(auth, dict) else None
    ttl = auth.get("ttl") if isinstance(auth, dict) else None
    if result.get("success") is not True or not isinstance(token, str) or not token:
        raise JiraUnauthorized(
            "the GraphQL API would not mint an offline token: cannot act as the user", status=status
        )
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise JiraUnavailable("the GraphQL API answered without a usable ttl")
    return IssuedToken(Secret(token), float(ttl))
