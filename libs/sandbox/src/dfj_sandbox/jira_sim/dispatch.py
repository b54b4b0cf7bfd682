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
Other sites are not held up. The queue, the holds and the retry loop are
:class:`OrderedDispatcher` and :func:`deliver`, shared with the Forge trigger dispatcher
(:mod:`~dfj_sandbox.jira_sim.forge_dispatch`), which differs only in what it sends.

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
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import aiohttp

from dfj_sandbox.jira_signing import auth_header, sign_request
from dfj_sandbox.jira_sim.changes import Change
from dfj_sandbox.jira_sim.connect import WebhookModule, split_relative
from dfj_sandbox.jira_sim.delivery import DeliveryAttempt, Outcome, WebhookDelivery, post_once
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.jira_sim.webhooks import bodies_for

__all__ = [
    "FLOW",
    "DeliveryRecord",
    "Job",
    "OrderedDispatcher",
    "RetrySchedule",
    "WebhookDispatcher",
    "WebhookPolicy",
    "deliver",
    "wait_idle",
]

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


class RetrySchedule(Protocol):
    """How often and when a delivery is tried again (:class:`WebhookPolicy`, ForgePolicy)."""

    @property
    def max_retries(self) -> int: ...

    def delay(self, retry: int) -> float: ...


class DeliveryRecord(Protocol):
    """What a delivery loop fills in: one attempt per HTTP request, and the outcome."""

    attempts: list[DeliveryAttempt]
    outcome: Outcome


async def deliver(
    record: DeliveryRecord,
    attempt: Callable[[int, DeliveryAttempt | None], Awaitable[DeliveryAttempt]],
    *,
    schedule: RetrySchedule,
    worth_retrying: Callable[[DeliveryAttempt], bool],
    gate: asyncio.Event | None = None,
) -> None:
    """Try ``attempt(retry, previous)`` until it is delivered, refused or out of retries.

    Each attempt waits for ``gate`` (a held dispatcher) first; ``previous`` is the attempt
    before (None on the first), so a caller can say why it retries. The outcome is set on
    ``record``: ``delivered`` (2xx), ``refused`` (not worth retrying) or ``failed``.
    """
    retry = 0
    previous: DeliveryAttempt | None = None
    while True:
        if gate is not None:
            await gate.wait()
        previous = await attempt(retry, previous)
        record.attempts.append(previous)
        if previous.ok:
            record.outcome = "delivered"
            return
        if not worth_retrying(previous):
            record.outcome = "refused"
            return
        if retry >= schedule.max_retries:
            record.outcome = "failed"
            return
        retry += 1
        await asyncio.sleep(schedule.delay(retry))


R = TypeVar("R", bound=DeliveryRecord)


@dataclass(frozen=True, kw_only=True)
class Job(Generic[R]):
    """One queued delivery: its record and how to make attempt ``retry``."""

    record: R
    attempt: Callable[[int, DeliveryAttempt | None], Awaitable[DeliveryAttempt]]


class OrderedDispatcher(ABC):
    """One site's deliveries, one at a time in the order queued; ``start``, then ``close``.

    A subclass decides what a change becomes (:meth:`observe`, calling :meth:`enqueue`), how
    often to retry (:meth:`schedule`) and which failures are worth it (:meth:`worth_retrying`).
    """

    def __init__(self, site: Site, *, name: str) -> None:
        self._site = site
        self._name = name
        self._queue: asyncio.Queue[Job[Any]] = asyncio.Queue()
        self._unfinished = 0
        self._holds: set[str] = set()
        self._open = asyncio.Event()
        self._open.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @abstractmethod
    def observe(self, change: Change) -> None:
        """Queue whatever ``change`` causes (an observer: must not block or raise)."""

    @abstractmethod
    def schedule(self) -> RetrySchedule:
        """The retry schedule in force now."""

    def worth_retrying(self, attempt: DeliveryAttempt) -> bool:
        """Whether a failed attempt is tried again (Jira's webhook rule by default)."""
        return attempt.worth_retrying

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Observe the site and start the delivery task."""
        self._site.observers.append(self.observe)
        self._task = asyncio.create_task(self._run(), name=f"{self._name}:{self._site.name}")

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

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (a closed dispatcher queues nothing)."""
        return self._closed

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

    # --- delivering -----------------------------------------------------------------------

    def enqueue(self, job: Job[Any]) -> None:
        """Deliver ``job`` after everything queued before it."""
        self._unfinished += 1
        self._queue.put_nowait(job)

    def _done(self) -> None:
        self._unfinished -= 1
        self._queue.task_done()

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await deliver(
                    job.record,
                    job.attempt,
                    schedule=self.schedule(),
                    worth_retrying=self.worth_retrying,
                    gate=self._open,
                )
            except asyncio.CancelledError:
                if job.record.outcome == "pending":
                    job.record.outcome = "cancelled"
                raise
            finally:
                self._done()


async def wait_idle(dispatchers: Callable[[], Iterable[OrderedDispatcher]], timeout: float) -> None:
    """Wait until none of ``dispatchers()`` has anything queued or in flight.

    The set is asked again after each wait, since a delivery may start another site's.
    TimeoutError after ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        while any(d.pending for d in dispatchers()):
            for dispatcher in list(dispatchers()):
                await dispatcher.idle()


class WebhookDispatcher(OrderedDispatcher):
    """Delivers one site's Connect webhooks to its app (see the module docstring)."""

    def __init__(
        self,
        site: Site,
        *,
        http: aiohttp.ClientSession,
        policy: Callable[[], WebhookPolicy],
        records: Callable[[], list[WebhookDelivery]],
    ) -> None:
        super().__init__(site, name="jira-webhooks")
        self._http = http
        self._policy = policy
        self._records = records

    def schedule(self) -> RetrySchedule:
        return self._policy()

    # --- observing ------------------------------------------------------------------------

    def observe(self, change: Change) -> None:
        """Queue the webhooks ``change`` causes (only events the descriptor registered)."""
        app = self._site.app
        if app is None or self.closed or not app.webhook_modules:
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

        async def attempt(retry: int, _previous: DeliveryAttempt | None) -> DeliveryAttempt:
            return await post_once(
                self._http,
                record.url,
                body=payload,
                headers=self._headers(record, path, query, payload, retry),
                timeout=self._policy().timeout,
                retry=retry,
            )

        self.enqueue(Job(record=record, attempt=attempt))

    def _headers(
        self,
        record: WebhookDelivery,
        path: str,
        query: list[tuple[str, str]],
        payload: bytes | None,
        retry: int,
    ) -> dict[str, str]:
        site = self._site
        token = sign_request(
            site.shared_secret,
            client_key=site.client_key,
            method="POST",
            path=path,
            query=query,
            now=site.now(),
        )
        headers = {
            **auth_header(token),
            "X-Atlassian-Webhook-Identifier": record.identifier,
            "X-Atlassian-Webhook-Retry": str(retry),
            "X-Atlassian-Webhook-Flow": FLOW,
            "User-Agent": _USER_AGENT,
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return headers
