"""Sending interactions to the app the way Discord does, and judging the answers.

Discord POSTs each interaction to the app's endpoint with ``X-Signature-Ed25519`` (hex
Ed25519 over ``timestamp + raw body``, by the application's key) and
``X-Signature-Timestamp`` (Unix seconds, here from the injected clock). The answer counts as
the initial response only if it is a 200 ``application/json`` interaction response that the
spec (with the docs' corrections) and the rules for the interaction's type accept, and it
came within the deadline (3 s, measured in real time: it is the app's own latency). A 202 or
204 with no body leaves the interaction to the callback route. A refused answer is recorded
as a spec violation of the ``interaction response``.

Discord also probes the endpoint: a PING signed by some other key must be answered 401, or
the endpoint is removed. :meth:`InteractionSender.verify_endpoint` does what saving the URL
in the Developer Portal does: a valid PING that must get ``{"type": 1}`` and such a probe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp

from dfj_sandbox.discord_signing import DiscordSigner, encode
from dfj_sandbox.discord_sim.builders import InteractionBuilder
from dfj_sandbox.discord_sim.callbacks import apply_callback, callback_errors
from dfj_sandbox.discord_sim.ledger import InteractionLedger, InteractionRecord
from dfj_sandbox.discord_sim.openapi import DiscordSpec, FieldError
from dfj_sandbox.discord_sim.records import (
    EndpointCheck,
    InteractionResult,
    ProbeResult,
    SpecViolation,
)
from dfj_sandbox.discord_sim.rest import Options
from dfj_sandbox.discord_sim.routes import ROUTES
from dfj_sandbox.discord_sim.world import World

__all__ = ["CALLBACK_TEMPLATE", "INTERACTION_RESPONSE", "InteractionSender"]

CALLBACK_TEMPLATE: Final = "/interactions/{interaction_id}/{interaction_token}/callback"
INTERACTION_RESPONSE: Final = "interaction response"
_USER_AGENT: Final = "Discord-Interactions/1.0 (+https://discord.com)"
_JSON: Final = "application/json"
_NOT_JSON: Final = FieldError(
    path=(),
    code="INTERACTION_RESPONSE_INVALID",
    message="The answer is not an application/json interaction response.",
)

Posted = tuple[int, Any, dict[str, str], float]


class InteractionSender:
    """Signs and posts interactions; applies the answers Discord would accept."""

    def __init__(
        self,
        *,
        world: World,
        ledger: InteractionLedger,
        builder: InteractionBuilder,
        options: Options,
        spec: Callable[[], DiscordSpec],
        violations: list[SpecViolation],
    ) -> None:
        self._world = world
        self._ledger = ledger
        self._builder = builder
        self._options = options
        self._spec = spec
        self._violations = violations
        self._callback_rules = next(r for r in ROUTES if r.template == CALLBACK_TEMPLATE).rules
        self._session: aiohttp.ClientSession | None = None
        self.probes: list[ProbeResult] = []

    async def start(self) -> None:
        """Open the HTTP client."""
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _now(self) -> int:
        return int(self._world.clock.now())

    async def _post(self, endpoint_url: str, raw: bytes, headers: Mapping[str, str]) -> Posted:
        if self._session is None:
            raise RuntimeError("the Discord simulator is not started")
        sent = {**headers, "User-Agent": _USER_AGENT}
        timeout = aiohttp.ClientTimeout(total=self._options.callback_deadline + 7.0)
        started = time.perf_counter()
        try:
            async with self._session.post(
                endpoint_url, data=raw, headers=sent, timeout=timeout
            ) as response:
                text = await response.read()
                answer_headers = dict(response.headers)
                status = response.status
                content_type = response.content_type
        except (TimeoutError, aiohttp.ClientError):
            return 0, None, {}, time.perf_counter() - started
        elapsed = time.perf_counter() - started
        body: Any = None
        if text and content_type == _JSON:
            try:
                body = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None
        elif text:
            body = text.decode("utf-8", "replace")
        return status, body, answer_headers, elapsed

    async def send(
        self, endpoint_url: str, body: Mapping[str, Any], *, timestamp: int | str | None = None
    ) -> InteractionResult:
        """Register the token, sign and post ``body``, and take the answer as Discord would."""
        world = self._world
        record = self._ledger.add(InteractionRecord.from_body(body, issued_at=world.clock.now()))
        raw = encode(body)
        stamp = self._now() if timestamp is None else timestamp
        headers = world.application.signer.headers(raw, timestamp=stamp)
        status, answer, answer_headers, elapsed = await self._post(endpoint_url, raw, headers)
        acknowledged = False
        if status == 200:
            problems = self._judge(record, answer, answer_headers)
            if elapsed > self._options.callback_deadline:
                self._ledger.update(record, late=True)
            elif not problems and isinstance(answer, Mapping):
                apply_callback(world, self._ledger, record, answer)
                acknowledged = True
        elif status == 0:
            self._ledger.update(record, late=True)
        return InteractionResult(
            status=status,
            body=answer,
            headers=answer_headers,
            elapsed=elapsed,
            interaction_id=record.id,
            token=record.token,
            acknowledged=acknowledged,
        )

    def _judge(
        self, record: InteractionRecord, answer: Any, headers: Mapping[str, str]
    ) -> list[FieldError]:
        if not isinstance(answer, Mapping) or _JSON not in headers.get("Content-Type", ""):
            problems = [_NOT_JSON]
        else:
            problems = self._spec().check_body("POST", CALLBACK_TEMPLATE, answer)
            if not problems and self._callback_rules is not None:
                problems = self._callback_rules(answer)
            problems = problems or callback_errors(record, answer)
        if problems:
            self._violations.append(
                SpecViolation(
                    method="POST",
                    template=INTERACTION_RESPONSE,
                    operation_id="create_interaction_response",
                    errors=tuple(problems),
                )
            )
        return problems

    async def probe(self, endpoint_url: str) -> ProbeResult:
        """A PING signed by another key; passed when the endpoint answers 401."""
        raw = encode(self._builder.ping())
        headers = DiscordSigner.generate().headers(raw, timestamp=self._now())
        status, _, _, _ = await self._post(endpoint_url, raw, headers)
        result = ProbeResult(status=status, passed=status == 401)
        self.probes.append(result)
        return result

    async def verify_endpoint(self, endpoint_url: str) -> EndpointCheck:
        """A signed PING (must be PONG, as JSON), then the probe."""
        raw = encode(self._builder.ping())
        headers = self._world.application.signer.headers(raw, timestamp=self._now())
        status, answer, answer_headers, _ = await self._post(endpoint_url, raw, headers)
        pong = (
            isinstance(answer, Mapping)
            and answer.get("type") == 1
            and _JSON in answer_headers.get("Content-Type", "")
        )
        return EndpointCheck(ping_status=status, pong=pong, probe=await self.probe(endpoint_url))
