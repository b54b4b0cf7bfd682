"""Cross-cutting HTTP behaviour: one log line per request, and no input ever reaching a 500.

Handlers record what the log line should say (tenant, event id, a rejection reason) with
:func:`note`; the middleware writes the canonical line after the response: route, method,
status, latency and those fields — never bodies, headers, tokens, signatures or JWTs.
"""

from __future__ import annotations

import time
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dfj_common.logging import HotLogger

__all__ = ["error_middleware", "note"]

_NOTES: Final = web.RequestKey("dfj_log_notes", dict[str, Any])


def note(request: web.Request, **fields: Any) -> None:
    """Add fields to this request's log line (e.g. ``tenant=``, ``event_id=``, ``reason=``)."""
    try:
        request[_NOTES].update(fields)
    except KeyError:  # a request the middleware did not see (a handler called directly)
        request[_NOTES] = fields


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def json_error(status: int, reason: str) -> web.Response:
    """A small JSON error body: the status and a short, safe reason."""
    return web.json_response({"error": reason}, status=status)


def error_middleware() -> Middleware:
    """The app's outermost middleware: the request's log line, and no 500 for bad input.

    The line goes through a :class:`~dfj_common.logging.HotLogger`, made once per app: the
    same line as structlog's, at about half the price (it is written for every request).
    """
    log = HotLogger("dfj.gateway.http")

    @web.middleware
    async def logged(request: web.Request, handler: Handler) -> web.StreamResponse:
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
                # aiohttp's own 404/405/413 pages become the same JSON shape as ours.
                return json_error(exc.status, exc.reason.lower())
            raise
        except Exception:
            # A bug, not bad input; keep the details in the log (redacted), not in the answer.
            log.exception("unhandled error", route=_route_name(request))
            return json_error(500, "internal error")
        finally:
            log.info(
                "request",
                route=_route_name(request),
                method=request.method,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
                **notes,
            )

    return logged
