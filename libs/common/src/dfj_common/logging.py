"""Structured logging with redaction, for every service.

One pipeline for structlog and the standard library: structlog events are handed to
:class:`structlog.stdlib.ProcessorFormatter` on a single root handler, and library records
(aiohttp, azure, sqlalchemy) enter the same formatter through ``foreign_pre_chain``. Both meet
the same final chain — exceptions formatted, **redacted**, rendered — so nothing a library logs
bypasses redaction::

    structlog event ─ merge_contextvars → level, logger, time, service, trace → redact ─┐
    stdlib record  ─ (same, plus the record's ``extra``) ──────────────────────────────┤
                                          format exceptions → redact → JSON | console ─┘

Our own events are redacted before they become ``LogRecord``s, so other handlers on the root
logger see them clean too; a library's record is redacted only by our formatter (another
handler would see the library's raw message).

Output is one JSON object per line when the stream is not a terminal (containers), a console
rendering otherwise. Per message, workers call :func:`clear_context` then
:func:`bind_message_context`, so every line of a delivery carries its ids. What is removed, and
why, is documented in :mod:`dfj_common._redact`; put :func:`redact_event_dict` last before a
renderer when building another pipeline (after exception formatting, or tracebacks go
unredacted).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from dfj_common._redact import (
    CONTENT,
    EMAIL,
    PLACEHOLDERS,
    REDACTED,
    classify_key,
    redact_keyed,
    redact_mapping,
    redact_text,
    redact_value,
)
from dfj_common.clock import Clock, SystemClock
from dfj_common.errors import ConfigError

__all__ = [
    "CONTENT",
    "EMAIL",
    "REDACTED",
    "HotLogger",
    "bind_message_context",
    "bound_message_context",
    "clear_context",
    "configure_logging",
    "redact_event_dict",
    "redact_mapping",
    "redact_text",
    "redact_value",
]

LogFormat = Literal["auto", "json", "console"]

_LEVELS: Final = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
# Keys structlog and ProcessorFormatter use for their own bookkeeping; left untouched.
_INTERNAL: Final = frozenset({"exc_info", "stack_info"})
# Marks the handler configure_logging installed, so a second call replaces it.
_HANDLER_NAME: Final = "dfj-structlog"
# Values our own processors put there (clock, level, logger, service, trace ids): not input.
_OURS: Final = frozenset({"timestamp", "level", "logger", "service", "trace_id", "span_id"})
_ADDED_AT_FORMAT: Final = frozenset({"exception", "stack"})
_UNJUDGED: Final = _INTERNAL | _OURS
_REDACTED_MARK: Final = "_dfj_redacted"


def _mark_redacted(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict[_REDACTED_MARK] = True
    return event_dict


# Loggers that are chatty at INFO (the Azure SDK logs every HTTP request it makes).
_QUIET: Final = ("azure.core.pipeline.policies.http_logging_policy",)


def redact_event_dict(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every value of the event dict (never raises).

    Keys starting with ``_`` (ProcessorFormatter's ``_record``) and ``exc_info`` pass through;
    place this after ``format_exc_info``/``dict_tracebacks`` so tracebacks are redacted too.
    """
    try:
        # A structlog event was redacted before it became a record; at the formatter only what
        # was added since (a rendered traceback) needs a look. The dict is the formatter's own
        # copy (or, on the direct path, the first pass's), so it is changed in place.
        if event_dict.get(_REDACTED_MARK) is True:
            return _redact_added(event_dict)
        out: EventDict = {}
        plans = _PLANS
        for key, value in event_dict.items():
            plan = plans.get(key)
            if plan is None:
                plan = _plan(key)
            clean, how = plan
            kind = type(value)
            # The shapes of almost every field (text, numbers, None under a plain name) inline;
            # the rest (and anything under a key that names what it holds) as ``_field`` decides.
            if how == _PLAIN:
                if kind is str:
                    out[clean] = redact_text(value)
                elif kind is int or kind is float or kind is bool or value is None:
                    out[clean] = value
                else:
                    out[clean] = _field(key, value)
            elif how == _AS_IS:
                out[key] = value
            else:
                out[clean] = _field(key, value)
        return out
    except Exception:
        return {"event": "[log event could not be redacted]"}


def _redact_added(event_dict: EventDict) -> EventDict:
    del event_dict[_REDACTED_MARK]
    for key in _ADDED_AT_FORMAT:
        if key in event_dict:
            event_dict[key] = _field(key, event_dict[key])
    return event_dict


# How redact_event_dict treats a key: left as it is (ours, or bookkeeping), a name that says
# nothing of its value (the event text too, whatever it were judged), or a name that does
# (``token``, ``email``: its value is judged by ``redact_keyed``).
_AS_IS: Final = 0
_PLAIN: Final = 1
_JUDGED: Final = 2
# Field names repeat from line to line: each is scrubbed and judged once, and found again with
# one dict lookup (an ``lru_cache`` call costs twice that, for each field of each line).
_PLANS: dict[Any, tuple[str, int]] = {}
_MAX_PLANS: Final = 4096


def _plan(key: Any) -> tuple[str, int]:
    if key in _UNJUDGED or key.startswith("_"):
        plan = (key, _AS_IS)
    elif key == "event":
        plan = (key, _PLAIN)
    else:
        plan = (redact_text(key), _PLAIN if classify_key(key) is None else _JUDGED)
    if len(_PLANS) >= _MAX_PLANS:  # names made from data, not code: start again
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _field(key: str, value: object) -> object:
    """``redact_keyed``, with the shapes of almost every field (text, numbers) inlined."""
    kind = type(value)
    if kind is str:
        judged = classify_key(key)
        return redact_text(value) if judged is None else PLACEHOLDERS[judged]  # type: ignore[arg-type]
    if kind is int or kind is float:
        judged = classify_key(key)
        return value if judged is None or judged == "secret" else PLACEHOLDERS[judged]
    return redact_keyed(key, value)


def bind_message_context(
    *,
    event_id: str | None = None,
    tenant: str | None = None,
    delivery_count: int | None = None,
    trace_id: str | None = None,
    event_type: str | None = None,
    **extra: object,
) -> None:
    """Bind the ids of the message being handled to every log line of this task."""
    values = {
        "event_id": event_id,
        "tenant": tenant,
        "delivery_count": delivery_count,
        "trace_id": trace_id,
        "event_type": event_type,
        **extra,
    }
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_context() -> None:
    """Forget everything bound for this task (call at the start of each message or request)."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def bound_message_context(**values: Any) -> Iterator[None]:
    """Bind like :func:`bind_message_context` for a block, restoring the previous values after."""
    tokens = structlog.contextvars.bind_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def configure_logging(
    *,
    service: str,
    level: str | int = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    clock: Clock | None = None,
) -> None:
    """Route structlog and stdlib logging through one redacting pipeline to ``stream``.

    ``stream`` defaults to ``sys.stderr`` as it is when called (stdout stays free for the CLI's
    output). ``fmt="auto"`` renders JSON unless the stream is a terminal. Calling again
    replaces the previous configuration.
    """
    numeric = _level(level)
    if fmt not in ("auto", "json", "console"):
        raise ConfigError(f"DFJ_LOG_FORMAT must be auto, json or console; got {fmt!r}")
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _isatty(out))

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _Timestamper(clock or SystemClock()),
        _add_service(service),
        _add_trace_context,
    ]
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if use_json:
        final.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        # Formatted here (not by ConsoleRenderer) so the traceback text is redacted too.
        final.append(structlog.processors.format_exc_info)
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    final += [redact_event_dict, renderer]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=final,
    )
    handler = _RootHandler(out)
    # The same chain, minus the record bookkeeping; and, for hot loggers, the whole pipeline
    # minus the steps that do nothing to a plain event (level filter, positional arguments,
    # stack and exception rendering, the second redaction pass).
    direct = _DirectWriter(handler, final[1:], hot=[*shared, redact_event_dict], renderer=renderer)
    handler.direct = direct
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            shared[0],
            structlog.stdlib.filter_by_level,
            *shared[1:],
            structlog.stdlib.PositionalArgumentsFormatter(),
            # Redacted before the event becomes a LogRecord, so any other handler on the root
            # logger (pytest's capture, a vendor's) sees a clean event too.
            redact_event_dict,
            _mark_redacted,
            direct,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: tests and re-configuration must reach loggers made at import time.
        cache_logger_on_first_use=False,
    )


def _level(level: str | int) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.strip().lower() in _LEVELS:
        return _LEVELS[level.strip().lower()]
    raise ConfigError(f"DFJ_LOG_LEVEL must be one of {', '.join(sorted(_LEVELS))}; got {level!r}")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class _Timestamper:
    """ISO 8601 UTC timestamps from an injected clock (``2025-01-02T03:04:05.678901Z``)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # The last whole second seen and its formatted date and time, as one tuple (threads
        # log too): a busy service logs many lines a second, and only the microseconds differ.
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        micros = round(self._clock.now() * 1_000_000)
        second, fraction = divmod(micros, 1_000_000)
        seen, prefix = self._second
        if second != seen:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, prefix)
        event_dict["timestamp"] = f"{prefix}.{fraction:06d}Z"
        return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Correlate with the current OpenTelemetry span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


class _RootHandler(logging.StreamHandler[TextIO]):
    """The root handler :func:`configure_logging` installs; hot loggers find its writer here."""

    direct: _DirectWriter | None = None


class _DirectWriter:
    """The last structlog processor: render our own event and write it, when nobody else listens.

    Handing an event to the standard library costs two ``LogRecord``s, a frame walk and the
    handler plumbing — most of a log line's price, on every request. When our handler is the
    only one (production), the event runs through the formatter's own final chain here and is
    written under the handler's lock: the same line, at about half the cost. When anything
    else listens (pytest's capture, a vendor's handler), the event goes the stdlib way, so
    every listener still sees it.
    """

    def __init__(
        self,
        handler: logging.StreamHandler[TextIO],
        chain: list[Processor],
        *,
        hot: list[Processor],
        renderer: Processor,
    ) -> None:
        self._handler = handler
        self._chain = chain
        self._hot = hot
        self._renderer = renderer

    def alone(self, logger: object) -> bool:
        """Whether our handler is the only one that would see ``logger``'s events."""
        handlers = logging.root.handlers
        return (
            len(handlers) == 1
            and handlers[0] is self._handler
            and not getattr(logger, "handlers", None)
        )

    def __call__(
        self, logger: WrappedLogger, method: str, event_dict: EventDict
    ) -> tuple[tuple[EventDict], dict[str, dict[str, Any]]]:
        if not self.alone(logger):
            return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(
                logger, method, event_dict
            )
        rendered: Any = event_dict
        for processor in self._chain:
            rendered = processor(logger, method, rendered)
        self._write(rendered)
        raise structlog.DropEvent

    def write_hot(
        self, logger: logging.Logger, method: str, event: str, fields: dict[str, Any]
    ) -> None:
        """Render and write a plain event (no exception, no positional arguments) directly."""
        event_dict: Any = fields
        event_dict["event"] = event
        for processor in self._hot:
            event_dict = processor(logger, method, event_dict)
        self._write(self._renderer(logger, method, event_dict))

    def _write(self, rendered: object) -> None:
        handler = self._handler
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write(f"{rendered}\n")
                handler.stream.flush()
            except (
                OSError,
                ValueError,
            ):  # a closed or broken stream: drop the line, as logging does
                pass


class HotLogger:
    """A logger for a line written very often (the gateway's one per request).

    ``info`` writes the very line structlog would (same processors, same redaction), minus
    structlog's wrapper and the steps that do nothing to a plain event: about half the cost.
    It takes that path only where :class:`_DirectWriter` would write directly (our handler
    alone on the root) and the event is plain; otherwise, and for every other level, it is
    the structlog logger of the same name. Make one per app or service, not one per line.
    """

    def __init__(self, name: str) -> None:
        self._stdlib = logging.getLogger(name)
        self._structlog = structlog.get_logger(name)

    def info(self, event: str, **fields: Any) -> None:
        handlers = logging.root.handlers
        direct = getattr(handlers[0], "direct", None) if handlers else None
        if (
            isinstance(direct, _DirectWriter)
            and direct.alone(self._stdlib)  # the root has our handler only, the logger none
            and "exc_info" not in fields
            and "stack_info" not in fields
        ):
            if self._stdlib.isEnabledFor(logging.INFO):
                direct.write_hot(self._stdlib, "info", event, fields)
            return
        self._structlog.info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._structlog.warning(event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._structlog.exception(event, **fields)


def _json_default(value: object) -> object:
    """Whatever redaction left as an object (datetimes, UUIDs) is rendered as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
