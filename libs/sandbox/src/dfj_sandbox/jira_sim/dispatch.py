"""Webhooks from a site to its installed app: signed, in order, retried like Jira Cloud.

One :class:`WebhookDispatcher` per site with an installed app. It observes the site
(``site.observers``): every change becomes the webhook bodies Jira sends for it
(:func:`~dfj_sandbox.jira_sim.webhooks.bodies_for`), built at once so they describe the moment
of the change, and each body whose event the descriptor registered is queued for every module
registered for it. A single task per site then delivers the queue:

- ``POST baseUrl + module url`` with the JSON body, ``Authorization: JWT`` HS256 with the
  site's shared secret — signed again on every attempt, so ``iat``/``exp`` are fresh and a
  re-install's new secret is used — with ``iss`` = clientKey and the ``qsh`` of the module
  path relative to the ``baseUrl`` and the module URL's own query;
- ``X-Atlassian-Webhook-Identifier``: unique per event and module, the same on every retry
  (the app dedupes on it); ``X-Atlassian-Webhook-Retry``: ``0`` on the first attempt, then
  1, 2, …; ``X-Atlassian-Webhook-Flow: Primary``.

**Retries.** Jira Cloud retries when the app answers 408, 409, 425, 429 or 5xx, or when the
connection fails or times out; any other answer is final (reference §6, Atlassian's "new
Jira Cloud webhook retry policy"). Jira does not publish its schedule — retried webhooks may
arrive up to about 30 minutes late, and after the last retry they are listed by ``GET
/rest/api/3/webhook/failed`` for 72 hours. The simulator keeps Jira's classification with a
sandbox-sized schedule (:class:`WebhookPolicy`: 0.2 s doubling to 5 s, at most 5 retries).

**Order.** Deliveries of one site go out one at a time, in the order the changes happened.
A delivery being retried *blocks the next one of the same site* until it is delivered or
given up (recorded as ``failed``), so the retry budget bounds the wait and a dead endpoint
cannot hold the queue forever. This is stricter than Jira, which promises no order at all;
it makes tests deterministic, and an app that copes with Jira's disorder copes with this.
Other sites are not held up.

A dispatcher can be held (``hold``/``release``, by reason): the simulator holds it while the
app is being (re-)installed, so no webhook overtakes ``installed``/``enabled``, and while a
test has called ``pause_webhooks``. Every delivery is a
:class:`~dfj_sandbox.jira_sim.delivery.WebhookDelivery` in the simulator's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from dfj_sandbox.jira_signing import auth_header, sign_request
from dfj_sandbox.jira_sim.changes import Change
from dfj_sandbox.jira_sim.connect import WebhookModule, split_relative
from dfj_sandbox.jira_sim.delivery import WebhookDelivery, post_once
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.jira_sim.webhooks import bodies_for

__all__ = ["FLOW", "WebhookDispatcher", "WebhookPolicy"]

FLOW: Final = "Primary"
_USER_AGENT: Final = "Atlassian Webhook HTTP Client (dfj-sandbox)"


@dataclass(frozen=True, kw_only=True)
class WebhookPolicy:
    """Retry schedule of webhook deliveries (Jira's real one is not published; see module).

    Retry ``n`` waits ``min(first_delay * factor ** (n - 1), max_delay)`` seconds; after
    ``max_retries`` retries the delivery is given up. ``timeout`` bounds each attempt.
    """

    first_delay: float = 0.2
    factor: float = 2.0
    max_delay: float = 5.0
    max_retries: int = 5
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.first_delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("delays must be non-negative and the factor at least 1")
        if self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("max_retries must be non-negative and timeout positive")

    def delay(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1 for the first retry)."""
        return float(min(self.first_delay * self.factor ** (retry - 1), self.max_delay))


@dataclass(frozen=True, kw_only=True)
class _Queued:
    record: WebhookDelivery
    path: str
    query: list[tuple[str, str]]
    payload: bytes | None


class WebhookDispatcher:
    """Delivers one site's webhooks to its app; ``start`` it, ``close`` it when done."""

    def __init__(
        self,
        site: Site,
        *,
        http: aiohttp.ClientSession,
        policy: Callable[[], WebhookPolicy],
        records: Callable[[], list[WebhookDelivery]],
    ) -> None:
        self._site = site
        self._http = http
        self._policy = policy
        self._records = records
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._unfinished = 0
        self._holds: set[str] = set()
        self._open = asyncio.Event()
        self._open.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Observe the site and start the delivery task."""
        self._site.observers.append(self.observe)
        self._task = asyncio.create_task(self._run(), name=f"jira-webhooks:{self._site.name}")

    async def close(self) -> None:
        """Stop observing, cancel the task; whatever was not delivered is ``cancelled``."""
        self._closed = True
        with contextlib.suppress(ValueError):
            self._site.observers.remove(self.observe)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            item.record.outcome = "cancelled"
            self._done()

    def hold(self, reason: str) -> None:
        """Send nothing (a delivery under way finishes its attempt) until ``release``."""
        self._holds.add(reason)
        self._open.clear()

    def release(self, reason: str) -> None:
        """Drop the hold ``reason``; deliveries resume once no hold is left."""
        self._holds.discard(reason)
        if not self._holds:
            self._open.set()

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight."""
        return self._unfinished

    async def idle(self) -> None:
        """Wait until nothing is queued or in flight."""
        await self._queue.join()

    # --- observing ------------------------------------------------------------------------

    def observe(self, change: Change) -> None:
        """Queue the webhooks ``change`` causes (only events the descriptor registered)."""
        app = self._site.app
        if app is None or self._closed or not app.webhook_modules:
            return
        for event, body in bodies_for(self._site, change):
            for module in app.modules_for(event):
                self._enqueue(app.app_url, module, event, body)

    def _enqueue(
        self,
        app_url: Callable[[str], str],
        module: WebhookModule,
        event: str,
        body: dict[str, Any],
    ) -> None:
        relative = module.resolve(body)
        path, query = split_relative(relative)
        record = WebhookDelivery(
            site=self._site.name,
            identifier=str(uuid.uuid4()),
            event=event,
            url=app_url(relative),
            body=None if module.exclude_body else body,
        )
        self._records().append(record)
        payload = None if module.exclude_body else json.dumps(body).encode("utf-8")
        self._unfinished += 1
        self._queue.put_nowait(_Queued(record=record, path=path, query=query, payload=payload))

    # --- delivering -----------------------------------------------------------------------

    def _done(self) -> None:
        self._unfinished -= 1
        self._queue.task_done()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                if item.record.outcome == "pending":
                    item.record.outcome = "cancelled"
                raise
            finally:
                self._done()

    async def _deliver(self, item: _Queued) -> None:
        policy = self._policy()
        record = item.record
        retry = 0
        while True:
            await self._open.wait()
            attempt = await post_once(
                self._http,
                record.url,
                body=item.payload,
                headers=self._headers(item, retry),
                timeout=policy.timeout,
                retry=retry,
            )
            record.attempts.append(attempt)
            if attempt.ok:
                record.outcome = "delivered"
                return
            if not attempt.worth_retrying:
                record.outcome = "refused"
                return
            if retry >= policy.max_retries:
                record.outcome = "failed"
                return
            retry += 1
            await asyncio.sleep(policy.delay(retry))

    def _headers(self, item: _Queued, retry: int) -> dict[str, str]:
        site = self._site
        token = sign_request(
            site.shared_secret,
            client_key=site.client_key,
            method="POST",
            path=item.path,
            query=item.query,
            now=site.now(),
        )
        headers = {
            **auth_header(token),
            "X-Atlassian-Webhook-Identifier": item.record.identifier,
            "X-Atlassian-Webhook-Retry": str(retry),
            "X-Atlassian-Webhook-Flow": FLOW,
            "User-Agent": _USER_AGENT,
        }
        if item.payload is not None:
            headers["Content-Type"] = "application/json"
        return headers
