"""What the simulator records about its calls *to* the app, and how one HTTP attempt is made.

Jira calls the app in two ways: lifecycle callbacks (``installed``, ``enabled``,
``uninstalled``; see :mod:`~dfj_sandbox.jira_sim.connect`) and webhooks (see
:mod:`~dfj_sandbox.jira_sim.dispatch`). Both are a JSON POST that may be tried more than
once, so both are recorded the same way: one record per delivery with one
:class:`DeliveryAttempt` per HTTP attempt and a final :data:`Outcome`.

Which answers are worth another attempt follows Jira Cloud's webhook retry policy
(reference §6): 408, 409, 425, 429 and every 5xx, plus a connection that fails or times out.
Any other status is final — a 2xx is delivered, a 3xx or another 4xx is refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp

__all__ = [
    "RETRY_STATUSES",
    "DeliveryAttempt",
    "ForgeDelivery",
    "LifecycleDelivery",
    "Outcome",
    "WebhookDelivery",
    "post_once",
    "retryable",
]

RETRY_STATUSES: Final = frozenset({408, 409, 425, 429})
"""4xx statuses Jira retries (besides every 5xx)."""

Outcome = Literal["pending", "delivered", "refused", "failed", "cancelled"]
"""``delivered``: a 2xx; ``refused``: a final non-2xx (not retried); ``failed``: the retry
budget ran out; ``cancelled``: the simulator stopped delivering (uninstall, close)."""


def retryable(status: int) -> bool:
    """Whether Jira would try again after this answer."""
    return status >= 500 or status in RETRY_STATUSES


@dataclass(frozen=True, kw_only=True)
class DeliveryAttempt:
    """One HTTP attempt: the retry number (0 first), the status or why there was none."""

    retry: int
    status: int | None
    error: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def worth_retrying(self) -> bool:
        """No answer at all, or one Jira retries."""
        return self.status is None or retryable(self.status)


class _Attempted:
    """What every delivery record says about its attempts."""

    attempts: list[DeliveryAttempt]

    @property
    def statuses(self) -> list[int | None]:
        """The status of each attempt (None: no answer), in order."""
        return [attempt.status for attempt in self.attempts]


@dataclass(kw_only=True)
class WebhookDelivery(_Attempted):
    """One webhook event for one registered module, with every attempt made for it.

    ``identifier`` is what ``X-Atlassian-Webhook-Identifier`` carried on every attempt;
    ``body`` is the JSON that was posted (None when the module has ``excludeBody``).
    """

    site: str
    identifier: str
    event: str
    url: str
    body: Mapping[str, Any] | None = field(default=None, repr=False)
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    outcome: Outcome = "pending"


@dataclass(kw_only=True)
class LifecycleDelivery(_Attempted):
    """One lifecycle callback (``installed``, ``enabled``, ``uninstalled``) and its attempts."""

    site: str
    event: str
    url: str
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    outcome: Outcome = "pending"


@dataclass(kw_only=True)
class ForgeDelivery(_Attempted):
    """One Forge invocation of a remote endpoint (a trigger, lifecycle, scheduled or
    pre-uninstall call) and every attempt made for it.

    ``event`` is the Forge event (``avi:jira:created:issue``, ``avi:forge:installed:app``) or
    the module kind (``scheduledTrigger``, ``preUninstall``); ``module_key`` the manifest
    module that caused it; ``body`` the event as first sent (retries add ``retryContext``).
    """

    site: str
    installation_id: str
    event: str
    module_key: str
    endpoint: str
    url: str
    body: Mapping[str, Any] | None = field(default=None, repr=False)
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    outcome: Outcome = "pending"


async def post_once(
    http: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    retry: int,
) -> DeliveryAttempt:
    """POST once; every failure to get an answer becomes an attempt without a status.

    Redirects are not followed: Jira posts to the URL the descriptor names, and a redirect is
    an answer (a final one) like any other status.
    """
    started = time.monotonic()
    try:
        async with http.post(
            url,
            data=body,
            headers=dict(headers),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            await response.read()
            status: int | None = response.status
            error = None
    except TimeoutError:
        status, error = None, "timeout"
    except (aiohttp.ClientError, OSError) as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"
    return DeliveryAttempt(
        retry=retry, status=status, error=error, elapsed=time.monotonic() - started
    )
