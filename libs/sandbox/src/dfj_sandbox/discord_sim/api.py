"""The REST pipeline: every API request, in the order Discord takes it.

1. the invalid-request ban (a Cloudflare-style 429: text body, no ``Via``);
2. the route (404 / 405, code 0);
3. authentication (401 ``{"message": "401: Unauthorized", "code": 0}``);
4. the global limit, for bot routes only;
5. faults injected with :meth:`RestApi.fail_next`;
6. the route's bucket (429 of scope ``user``);
7. the interaction webhook's token (see :mod:`~dfj_sandbox.discord_sim.ledger`);
8. the body: JSON only, then the spec with the docs' corrections, then the documented
   whole-body rules (400, code 50035; each refusal is recorded as a spec violation);
9. the handler.

Every answer but the ban carries ``Via``, and every bucketed one the ``X-RateLimit-*``
headers; 401, 403 and non-shared 429 answers are counted as invalid requests. Each answer is
recorded as a :class:`~dfj_sandbox.discord_sim.records.Call` (template and major parameter,
never the URL), and optionally checked against the spec's response schema.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from aiohttp import web

from dfj_common.clock import Clock
from dfj_sandbox.discord_sim.errors import (
    INVALID_JSON,
    INVALID_WEBHOOK_TOKEN,
    UNKNOWN_WEBHOOK,
    Refusal,
    Reply,
    error_reply,
    form_error,
    http_error,
)
from dfj_sandbox.discord_sim.ledger import InteractionLedger, InteractionRecord
from dfj_sandbox.discord_sim.model import Application
from dfj_sandbox.discord_sim.oauth import OAuthServer
from dfj_sandbox.discord_sim.openapi import DiscordSpec, FieldError
from dfj_sandbox.discord_sim.ratelimit import BucketState, RateLimiter, Rejection, Scope
from dfj_sandbox.discord_sim.records import AuthKind, Call, SpecViolation
from dfj_sandbox.discord_sim.rest import Caller, Options, RestRequest
from dfj_sandbox.discord_sim.routes import Route, Router
from dfj_sandbox.discord_sim.uploads import _UPLOAD_ROUTES, Upload, read_multipart
from dfj_sandbox.discord_sim.world import World

__all__ = ["RestApi"]

_VIA: Final = {"Via": "1.1 google"}
_JSON: Final = "application/json"
_MULTIPART: Final = "multipart/form-data"
_CONTENT_TYPES: Final = (
    "Expected \"Content-Type\" header to be one of {'application/json',"
    " 'application/x-www-form-urlencoded', 'multipart/form-data'}."
)


@dataclass(frozen=True)
class _Fault:
    key: str
    status: int
    count: int
    scope: Scope
    retry_after: float
    applied: bool


@dataclass
class _Pending:
    """What one request's record will say, filled in as the pipeline learns it."""

    method: str
    template: str | None
    auth: AuthKind = "none"
    major: str | None = None
    bucket: str | None = None
    scope: Scope | Literal["cloudflare"] | None = None
    injected: bool = False


class RestApi:
    """Serves ``/api/v10/…`` for the simulator; holds the call records and injected faults."""

    def __init__(
        self,
        *,
        world: World,
        ledger: InteractionLedger,
        limiter: RateLimiter,
        oauth: OAuthServer,
        options: Options,
        spec: Callable[[], DiscordSpec],
        validate_responses: bool = False,
        validate_requests: bool = True,
    ) -> None:
        self.world = world
        self.ledger = ledger
        self.limiter = limiter
        self.oauth = oauth
        self.options = options
        self._spec = spec
        self.validate_responses = validate_responses
        self.validate_requests = validate_requests
        self._router = Router()
        self._faults: list[_Fault] = []
        self.calls: list[Call] = []
        self.uploads: list[Upload] = []
        self.spec_violations: list[SpecViolation] = []
        self.response_violations: list[str] = []

    @property
    def spec(self) -> DiscordSpec:
        """The loaded spec."""
        return self._spec()

    @property
    def clock(self) -> Clock:
        """The world's clock."""
        return self.world.clock

    @property
    def application(self) -> Application:
        """The application (it may be replaced, e.g. when a redirect URI is added)."""
        return self.world.application

    # --- faults ---------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        status: int = 500,
        count: int = 1,
        *,
        scope: Scope = "shared",
        retry_after: float = 1.0,
        applied: bool = False,
    ) -> None:
        """Plan a fault (see :meth:`DiscordSimulator.fail_next`); ValueError if it cannot be."""
        method, _, template = route.partition(" ") if " " in route else ("*", "", route)
        key = f"{method.upper()} {template}"
        if method == "*":
            if template not in self._router.templates:
                raise ValueError(f"no route {route!r}")
        elif key not in self._router.keys:
            raise ValueError(f"no route {route!r}")
        if status == 429 and applied:
            raise ValueError("a 429 is never applied")
        if status != 429 and not 500 <= status < 600:
            raise ValueError("inject 429 or a 5xx")
        self._faults.append(
            _Fault(
                key=key,
                status=status,
                count=count,
                scope=scope,
                retry_after=retry_after,
                applied=applied,
            )
        )

    def _fault_for(self, route: Route) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            method, _, template = fault.key.partition(" ")
            if fault.count > 0 and template == route.template and method in ("*", route.method):
                self._faults[index] = replace(fault, count=fault.count - 1)
                return fault
        self._faults = [f for f in self._faults if f.count > 0]
        return None

    # --- recording ------------------------------------------------------------------------

    def _record(self, pending: _Pending, status: int, user_agent: str | None) -> None:
        rate_limited = status == 429
        self.calls.append(
            Call(
                method=pending.method,
                template=pending.template,
                major=pending.major,
                status=status,
                auth=pending.auth,
                at=self.clock.now(),
                rate_limited=rate_limited,
                scope=pending.scope if rate_limited else None,
                bucket=pending.bucket,
                injected=pending.injected,
                user_agent=user_agent,
            )
        )
        if pending.scope != "cloudflare":
            self.limiter.note(status, shared=pending.scope == "shared")

    def record_plain(self, method: str, template: str, status: int, agent: str | None) -> None:
        """Record a call outside the pipeline (the OAuth2 endpoints)."""
        self._record(_Pending(method=method, template=template), status, agent)

    # --- the API --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one API request."""
        user_agent = request.headers.get("User-Agent")
        path = "/" + request.match_info["tail"]
        route, params, known = self._router.match(request.method, path)
        pending = _Pending(method=request.method, template=route.template if route else None)
        banned = self.limiter.banned_for()
        if banned is not None:
            pending.scope = "cloudflare"
            self._record(pending, 429, user_agent)
            return web.Response(
                status=429,
                text="error code: 1015",
                content_type="text/plain",
                headers={"Retry-After": str(int(banned) + 1)},
            )
        if route is None:
            reply = http_error(405 if known else 404)
            return self._send(pending, reply, None, user_agent)
        raw = await request.read()
        reply, state = self._serve(route, params, request, raw, pending)
        return self._send(pending, reply, state, user_agent, route=route)

    def _authenticate(self, route: Route, header: str | None) -> Caller | None:
        app = self.application
        if header is not None and header.startswith("Bot "):
            ok = hmac.compare_digest(header[4:].encode(), app.bot_token.encode())
            return Caller(kind="bot") if ok else None
        if header is not None and header.lower().startswith("bearer "):
            grant = self.oauth.grant_for(header[7:].strip())
            if grant is None or route.auth != "user":
                return None
            return Caller(kind="bearer", grant=grant)
        if header:
            return None
        return Caller(kind="none") if route.auth in ("webhook", "callback") else None

    def _major(self, route: Route, params: Mapping[str, str]) -> tuple[str, str]:
        """(bucket key, recorded form) of the major parameter."""
        if route.major == "webhook":
            token = params["webhook_token"]
            record = self.ledger.by_token(token)
            shown = f"{params['webhook_id']}:{record.id if record else '?'}"
            return f"{params['webhook_id']}/{token}", shown
        if route.major is None:
            return "", ""
        return params[route.major], params[route.major]

    def _serve(
        self,
        route: Route,
        params: Mapping[str, str],
        request: web.Request,
        raw: bytes,
        pending: _Pending,
    ) -> tuple[Reply, BucketState | None]:
        header = request.headers.get("Authorization")
        caller = self._authenticate(route, header)
        if caller is None:
            pending.auth = "invalid" if header else "none"
            return http_error(401), None
        pending.auth = caller.kind
        bucket_key, pending.major = self._major(route, params)
        if caller.kind == "bot" and route.auth in ("bot", "user"):
            rejection = self.limiter.take_global("bot")
            if rejection is not None:
                pending.scope = "global"
                return self._too_many(rejection), None
        fault = self._fault_for(route)
        if fault is not None and not fault.applied:
            pending.injected = True
            return self._fault_reply(fault, route, caller, bucket_key, pending)
        state: BucketState | None = None
        if route.bucket is not None:
            taken = self.limiter.take(route.bucket, caller.identity, bucket_key)
            if isinstance(taken, Rejection):
                pending.scope = "user"
                pending.bucket = taken.state.bucket if taken.state else None
                return self._too_many(taken), None
            state = taken
            pending.bucket = state.bucket
        try:
            reply = self._handle(route, params, request, raw, caller)
        except Refusal as refusal:
            reply = refusal.reply
        if fault is not None:
            pending.injected = True
            reply = http_error(fault.status)
        return reply, state

    def _fault_reply(
        self, fault: _Fault, route: Route, caller: Caller, bucket_key: str, pending: _Pending
    ) -> tuple[Reply, BucketState | None]:
        if fault.status != 429:
            return http_error(fault.status), None
        state = None
        if route.bucket is not None:
            state = self.limiter.peek(route.bucket, caller.identity, bucket_key)
            pending.bucket = state.bucket
            if fault.scope == "user":
                state = replace(state, remaining=0)
        pending.scope = fault.scope
        rejection = Rejection(retry_after=fault.retry_after, scope=fault.scope, state=state)
        return self._too_many(rejection), None

    @staticmethod
    def _too_many(rejection: Rejection) -> Reply:
        return Reply(status=429, body=rejection.body(), headers=rejection.headers())

    def _webhook(self, params: Mapping[str, str]) -> InteractionRecord:
        if params["webhook_id"] != self.application.id:
            raise Refusal(error_reply(404, UNKNOWN_WEBHOOK))
        record = self.ledger.by_token(params["webhook_token"])
        if record is None:
            raise Refusal(error_reply(401, INVALID_WEBHOOK_TOKEN))
        expired = record.expired(self.clock.now(), self.options.token_lifetime)
        if expired or not record.acknowledged:
            raise Refusal(error_reply(404, UNKNOWN_WEBHOOK))
        return record

    def _handle(
        self,
        route: Route,
        params: Mapping[str, str],
        request: web.Request,
        raw: bytes,
        caller: Caller,
    ) -> Reply:
        interaction = self._webhook(params) if route.auth == "webhook" else None
        body: Any = None
        uploads: list[Upload] = []
        if raw and route.method in ("POST", "PUT", "PATCH"):
            if request.content_type == _MULTIPART and route.template in _UPLOAD_ROUTES:
                parsed = read_multipart(raw, request.headers.get("Content-Type", ""), route)
                if isinstance(parsed, Reply):
                    return parsed
                body, uploads = parsed
            elif request.content_type != _JSON:
                errors = [FieldError(path=(), code="CONTENT_TYPE_INVALID", message=_CONTENT_TYPES)]
                return form_error(errors)
            else:
                try:
                    body = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return error_reply(400, INVALID_JSON)
        if route.method in ("POST", "PUT", "PATCH"):
            problems = self._check(route.method, route.template, body, route)
            if problems:
                return form_error(problems)
        reply = self._dispatch(
            route, params, request, body=body, caller=caller, interaction=interaction
        )
        if uploads and 200 <= reply.status < 300:
            self.uploads.extend(uploads)
        return reply

    def _dispatch(
        self,
        route: Route,
        params: Mapping[str, str],
        request: web.Request,
        *,
        body: Any,
        caller: Caller,
        interaction: InteractionRecord | None,
    ) -> Reply:
        req = RestRequest(
            world=self.world,
            ledger=self.ledger,
            options=self.options,
            caller=caller,
            path_params=params,
            query=dict(request.rel_url.query),
            body=body,
            interaction=interaction,
        )
        return route.handler(req)

    def _check(
        self, method: str, template: str, body: Any, route: Route | None
    ) -> list[FieldError]:
        spec = self.spec
        problems = (
            spec.check_body(method, template, body)
            if self.validate_requests and spec.has_operation(method, template)
            else []
        )
        if route is not None and route.rules is not None and not problems:
            problems = route.rules(body)
        if problems:
            operation_id = (
                spec.operation_id(method, template)
                if spec.has_operation(method, template)
                else None
            )
            self.spec_violations.append(
                SpecViolation(
                    method=method,
                    template=template,
                    operation_id=operation_id,
                    errors=tuple(problems),
                )
            )
        return problems

    def _send(
        self,
        pending: _Pending,
        reply: Reply,
        state: BucketState | None,
        user_agent: str | None,
        *,
        route: Route | None = None,
    ) -> web.StreamResponse:
        self._record(pending, reply.status, user_agent)
        headers = dict(_VIA)
        if state is not None:
            headers.update(state.headers())
        headers.update(reply.headers)
        if route is not None and self.validate_responses and reply.status != 429:
            spec = self.spec
            if spec.has_operation(route.method, route.template):
                for problem in spec.check_response(
                    route.method, route.template, reply.status, reply.body
                ):
                    self.response_violations.append(f"{route.key} {reply.status}: {problem}")
        if reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        return web.json_response(reply.body, status=reply.status, headers=headers)
