"""Cross-cutting HTTP behaviour: one log line per request, and no input ever reaching a 500.

Handlers record what the log line should say (tenant, event id, a rejection reason) with
:func:`note`; the wrapper writes the canonical line after the response: route, method,
status, latency and those fields — never bodies, headers, tokens, signatures or JWTs.

Not an aiohttp middleware, though it was one: any app middleware puts two more coroutine
layers under every request (aiohttp's own ``current_app`` fix-up and the middleware), and
that machinery measured 8 µs of an interaction's ~230 (paired runs, one core). Instead every
route is registered with :func:`add_route`, which wraps its handler once, and a catch-all
route registered last (:func:`add_fallback`) answers what no route matched — the JSON 404, or
the JSON 405 with its ``Allow`` header — through the same wrapper. At startup the app refuses
to run with a route that was added without :func:`add_route` (it would have no log line and no
500 guard).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from dfj_common.logging import HotLogger

__all__ = ["add_fallback", "add_route", "json_error", "note", "require_wrapped_routes"]

_NOTES: Final = web.RequestKey("dfj_log_notes", dict[str, Any])
_WRAPPED: Final = web.AppKey("dfj_wrapped_handlers", set[Handler])
_LOG: Final = web.AppKey("dfj_request_log", HotLogger)
UNMATCHED: Final = "unmatched"  # the log line's route for what no route matched


def note(request: web.Request, **fields: Any) -> None:
    """Add fields to this request's log line (e.g. ``tenant=``, ``event_id=``, ``reason=``)."""
    try:
        request[_NOTES].update(fields)
    except KeyError:  # a request no wrapper saw (a handler called directly)
        request[_NOTES] = fields


def json_error(status: int, reason: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """A small JSON error body: the status and a short, safe reason."""
    return web.json_response({"error": reason}, status=status, headers=headers)


def add_route(
    app: web.Application, method: str, path: str, handler: Handler, *, head: bool = False
) -> None:
    """Serve ``method path`` with ``handler``, logged and guarded; ``head`` adds HEAD too."""
    resource = app.router.add_resource(path)
    wrapped = _wrap(app, handler, route=resource.canonical)
    resource.add_route(method, wrapped)
    if head:
        resource.add_route("HEAD", wrapped)


def add_fallback(app: web.Application) -> None:
    """The catch-all route, registered after every other: JSON 404 and 405 for the rest.

    aiohttp tries the most specific path first and this one (indexed under ``/``) last, so it
    only sees what no route took — including a known path with a method it does not allow,
    whose allowed methods it asks the other resources for.
    """
    resource = app.router.add_resource("/{tail:.*}")

    async def unmatched(request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for other in request.app.router.resources():
            if other is not resource:
                _, methods = await other.resolve(request)
                allowed |= methods
        if allowed:
            return json_error(
                405, "method not allowed", headers={"Allow": ",".join(sorted(allowed))}
            )
        return json_error(404, "not found")

    resource.add_route("*", _wrap(app, unmatched, route=UNMATCHED))


async def require_wrapped_routes(app: web.Application) -> None:
    """Refuse to start with a route added without :func:`add_route` (no log line, no guard)."""
    bare = _unwrapped(app.router.routes(), app.get(_WRAPPED, set()))
    if bare:
        raise RuntimeError(
            "routes added without dfj_gateway.middleware.add_route (they would have no log "
            "line and no 500 guard): " + ", ".join(bare)
        )


def _unwrapped(routes: Iterable[web.AbstractRoute], wrapped: set[Handler]) -> list[str]:
    return [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in routes
        if route.handler not in wrapped
    ]


def _wrap(app: web.Application, handler: Handler, *, route: str) -> Handler:
    if _LOG not in app:
        # One logger per app: the same line as structlog's, at about half the price.
        app[_LOG] = HotLogger("dfj.gateway.http")
        app[_WRAPPED] = set()
        app.on_startup.append(require_wrapped_routes)
    wrapped = _logged(app[_LOG], handler, route=route)
    app[_WRAPPED].add(wrapped)
    return wrapped


def _logged(log: HotLogger, handler: Handler, *, route: str) -> Handler:
    async def logged(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        notes: dict[str, Any] = {}
        request[_NOTES] = notes
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            if exc.status >= 400 and exc.content_type != "application/json":
                # aiohttp's own errors (a 413 from a body read, say) get the same JSON shape.
                return json_error(exc.status, exc.reason.lower())
            raise
        except Exception:
            # A bug, not bad input; keep the details in the log (redacted), not in the answer.
            log.exception("unhandled error", route=route)
            return json_error(500, "internal error")
        finally:
            log.info(
                "request",
                route=route,
                method=request.method,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
                **notes,
            )

    return logged
