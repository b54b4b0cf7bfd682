"""How Forge calls a remote's endpoints: signed per attempt, retried, in order per site.

:class:`ForgeInvoker` makes one backend invocation (forge.md §1.2, §1.3): ``POST`` to the
endpoint's URL with a JSON body and

- ``Authorization: Bearer <FIT>`` — a Forge Invocation Token signed *for this attempt* with
  the platform's current key (:mod:`dfj_sandbox.forge_signing`), ``app.module`` naming the
  module that caused the call (``core:endpoint`` + the trigger's key);
- ``x-forge-oauth-system`` — the installation's system token, when the endpoint has
  ``auth.appSystemToken.enabled`` (cached and rotated by
  :class:`~dfj_sandbox.jira_sim.forge_tokens.ForgeTokens`);
- ``x-b3-traceid`` / ``x-b3-spanid``, fresh per attempt.

**Retries** (triggers and lifecycle events): any answer but a 2xx — Forge treats 3xx as an
error too, and 401 as "the remote could not verify the FIT" — and no answer (timeout,
refused connection) are retried, up to :attr:`ForgePolicy.max_retries` times. A retried body
carries ``retryContext: {retryCount, retryReason, retryData: null}``, the reason being
``INVALID_FORGE_INVOCATION_TOKEN`` after a 401, ``TIMEOUT_ERROR`` after a timeout, else
``INVALID_REMOTE_INVOCATION_ERROR``.

:class:`ForgeDispatcher` is the product-event side: one per installed site, observing it like
the Connect webhook dispatcher (and sharing its queue, holds and retry loop,
:class:`~dfj_sandbox.jira_sim.dispatch.OrderedDispatcher`), posting each event to every
trigger that lists it — except, for a trigger with ``filter.ignoreSelf``, a change the app
made with its system token.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

import aiohttp

from dfj_sandbox.forge_signing import ENDPOINT_MODULE, InstallKeyPair, UiContext, sign_fit
from dfj_sandbox.jira_sim.changes import Change
from dfj_sandbox.jira_sim.delivery import DeliveryAttempt, ForgeDelivery, post_once
from dfj_sandbox.jira_sim.dispatch import Job, OrderedDispatcher, RetrySchedule, deliver
from dfj_sandbox.jira_sim.forge_events import events_for
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation, ForgePolicy
from dfj_sandbox.jira_sim.forge_tokens import ForgeTokens, connect_scopes
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "INVALID_FIT",
    "INVALID_REMOTE",
    "TIMEOUT",
    "ForgeDispatcher",
    "ForgeInvoker",
    "retry_reason",
]

INVALID_FIT: Final = "INVALID_FORGE_INVOCATION_TOKEN"
INVALID_REMOTE: Final = "INVALID_REMOTE_INVOCATION_ERROR"
TIMEOUT: Final = "TIMEOUT_ERROR"


def retry_reason(attempt: DeliveryAttempt) -> str:
    """Forge's ``retryReason`` after the failed ``attempt``."""
    if attempt.status == 401:
        return INVALID_FIT
    if attempt.status is None and attempt.error == "timeout":
        return TIMEOUT
    return INVALID_REMOTE


def _always(_attempt: DeliveryAttempt) -> bool:
    return True


class ForgeInvoker:
    """Signs and sends Forge's calls to remotes (see the module docstring)."""

    def __init__(
        self,
        *,
        http: Callable[[], aiohttp.ClientSession],
        key: Callable[[], InstallKeyPair],
        tokens: ForgeTokens,
        policy: Callable[[], ForgePolicy],
        now: Callable[[], float],
    ) -> None:
        self._http = http
        self._key = key
        self._tokens = tokens
        self._policy = policy
        self._now = now

    def headers(
        self,
        installation: ForgeInstallation,
        endpoint: str,
        *,
        module_key: str,
        module_type: str = ENDPOINT_MODULE,
        ui: UiContext | None = None,
    ) -> dict[str, str]:
        """The headers of one invocation of ``endpoint`` (a fresh FIT and trace ids).

        ``x-forge-oauth-user`` is added only for a UI invocation (``ui``) of an endpoint with
        ``appUserToken`` enabled: Forge never sends a user token to triggers.
        """
        now = self._now()
        spec = installation.manifest.endpoints[endpoint]
        fit = sign_fit(
            self._key(),
            installation.subject,
            module_key=module_key,
            module_type=module_type,
            ui=ui,
            now=now,
        )
        headers = {
            "Authorization": f"Bearer {fit}",
            "Content-Type": "application/json",
            "x-b3-traceid": secrets.token_hex(16),
            "x-b3-spanid": secrets.token_hex(8),
        }
        if spec.system_token:
            headers["x-forge-oauth-system"] = self._tokens.system_token(installation, now=now)
        if ui is not None and spec.user_token:
            # The session user's token reaches every scope of the app, not only the
            # impersonation ones (those limit *offline* tokens).
            headers["x-forge-oauth-user"] = self._tokens.user_token(
                installation,
                ui.principal,
                now=now,
                scopes=connect_scopes(installation.manifest.scopes),
            )
        return headers

    def job(
        self,
        installation: ForgeInstallation,
        *,
        endpoint: str,
        module_key: str,
        event: str,
        body: Mapping[str, Any],
        records: list[ForgeDelivery],
        timeout: Callable[[ForgePolicy], float] = lambda policy: policy.timeout,
    ) -> Job[ForgeDelivery]:
        """A recorded invocation of ``endpoint`` with ``body``, to be delivered (and retried)."""
        record = ForgeDelivery(
            site=installation.site.name,
            installation_id=installation.installation_id,
            event=event,
            module_key=module_key,
            endpoint=endpoint,
            url=installation.endpoint_url(endpoint),
            body=body,
        )
        records.append(record)

        async def attempt(retry: int, previous: DeliveryAttempt | None) -> DeliveryAttempt:
            policy = self._policy()
            sent = dict(body)
            if previous is not None:
                sent["retryContext"] = {
                    "retryCount": retry,
                    "retryReason": retry_reason(previous),
                    "retryData": None,
                }
            wire = {"payload": sent} if policy.wrap_payload else sent
            return await post_once(
                self._http(),
                record.url,
                body=json.dumps(wire).encode("utf-8"),
                headers=self.headers(installation, endpoint, module_key=module_key),
                timeout=timeout(policy),
                retry=retry,
            )

        return Job(record=record, attempt=attempt)

    async def call(self, job: Job[ForgeDelivery], *, retries: bool) -> ForgeDelivery:
        """Deliver ``job`` now (not queued), retried like a trigger if ``retries``."""
        policy = self._policy()
        schedule: RetrySchedule = policy if retries else replace(policy, max_retries=0)
        await deliver(job.record, job.attempt, schedule=schedule, worth_retrying=_always)
        return job.record


class ForgeDispatcher(OrderedDispatcher):
    """Posts one site's product events to its Forge installation's triggers, in order."""

    def __init__(
        self,
        site: Site,
        *,
        invoker: ForgeInvoker,
        policy: Callable[[], ForgePolicy],
        records: Callable[[], list[ForgeDelivery]],
        self_generated: Callable[[], bool],
    ) -> None:
        super().__init__(site, name="forge-events")
        self._invoker = invoker
        self._policy = policy
        self._records = records
        self._self_generated = self_generated

    def schedule(self) -> RetrySchedule:
        return self._policy()

    def worth_retrying(self, attempt: DeliveryAttempt) -> bool:
        """Forge retries every failure (see the module docstring)."""
        return True

    def observe(self, change: Change) -> None:
        """Queue the events ``change`` causes for every trigger listing them."""
        installation = self._site.forge
        if installation is None or not installation.installed or self.closed:
            return
        by_app = self._self_generated()
        for event, body in events_for(self._site, change, self_generated=by_app):
            for trigger in installation.manifest.triggers_for(event):
                if trigger.ignore_self and by_app:
                    continue
                self.enqueue(
                    self._invoker.job(
                        installation,
                        endpoint=trigger.endpoint,
                        module_key=trigger.key,
                        event=event,
                        body=body,
                        records=self._records(),
                    )
                )
