"""Structured logging: the redaction rules, the configured pipeline, and the leak finder."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from structlog.testing import capture_logs

from dfj_common.clock import ManualClock
from dfj_common.config import Secret
from dfj_common.errors import ConfigError
from dfj_common.logging import (
    CONTENT,
    EMAIL,
    REDACTED,
    HotLogger,
    bind_message_context,
    bound_message_context,
    clear_context,
    configure_logging,
    redact_event_dict,
    redact_text,
    redact_value,
)
from dfj_common.testing import SECRET_PATTERNS, find_leaks


def _b64url(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{_b64url({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url({'iss': 'jira:1'})}.c2lnbmF0dXJlX2J5dGVz"
BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB"
BEARER = "ya29.a0AfH6SMBx-opaque-access-token"
SHARED_SECRET = "connect-shared-secret-6f1c4f3e"
EMAIL_ADDRESS = "alice.smith@example.com"
SIGNATURE_HEX = "ab" * 64
MESSAGE_TEXT = "the launch code is 0000, tell nobody"
KNOWN = (JWT, BOT_TOKEN, BEARER, SHARED_SECRET, EMAIL_ADDRESS, SIGNATURE_HEX, MESSAGE_TEXT)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo configure_logging: structlog config, root handlers and level, bound context."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    config["processors"] = list(config["processors"])
    yield
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(name="sio")
def fixture_sio() -> io.StringIO:
    """A non-TTY stream to render log lines into."""
    return io.StringIO()


def _lines(sio: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sio.getvalue().splitlines() if line.strip()]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestRedactText:
    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            (f"Authorization: Bearer {BEARER}", BEARER),
            (f"authorization: JWT {JWT}", JWT),
            (f"{{'Authorization': 'Bot {BOT_TOKEN}', 'Host': 'discord.com'}}", BOT_TOKEN),
            ('"AUTHORIZATION":"Basic dXNlcjpwYXNz"', "dXNlcjpwYXNz"),
            (f"GET /installed?lic=none&jwt={JWT}&xdm_e=1", JWT),
            (f"https://x.atlassian.net/plugins?jwt=opaque-{SHARED_SECRET}", SHARED_SECRET),
            (f"calling with bearer {BEARER}", BEARER),
            (f"Bot {BOT_TOKEN}", BOT_TOKEN),
            (f"token is {BOT_TOKEN}.", BOT_TOKEN),
            (f"decoded {JWT} ok", JWT),
            (f"user {EMAIL_ADDRESS} linked", EMAIL_ADDRESS),
            (f"sharedSecret={SHARED_SECRET}", SHARED_SECRET),
            (f'{{"sharedSecret": "{SHARED_SECRET}"}}', SHARED_SECRET),
            (f"client_secret: {SHARED_SECRET}", SHARED_SECRET),
            (f"x-signature-ed25519={SIGNATURE_HEX}", SIGNATURE_HEX),
            (f"signature {SIGNATURE_HEX}", SIGNATURE_HEX),
            ("mssql+pyodbc://sa:Pa55word-x@db:1433/dfj", "Pa55word-x"),
            ("Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0a2V5PQ==;", "c2Vj"),
            ("/oauth/callback?code=one-time-code-123&state=st", "one-time-code-123"),
            (f"content='{MESSAGE_TEXT}'", MESSAGE_TEXT),
            (f'{{"description": "{MESSAGE_TEXT}"}}', MESSAGE_TEXT),
        ],
    )
    def test_removes_secret(self, text: str, secret: str) -> None:
        """Every secret shape is removed from free text, wherever it sits."""
        assert secret not in redact_text(text)

    @pytest.mark.parametrize(
        "text",
        [
            "delivered 3 messages to channel 1234567890 in 12 ms",
            "status code=500 from /rest/api/3/issue/PROJ-1",
            "clientKey=ck-123 issueId=10001",
        ],
    )
    def test_keeps_ordinary_text(self, text: str) -> None:
        """Ids, counts, paths and status codes are not mistaken for secrets."""
        assert redact_text(text) == text

    def test_placeholders_are_stable(self) -> None:
        """Redacting already redacted text changes nothing (rules are idempotent)."""
        once = redact_text(f"Authorization: Bearer {BEARER}\n?jwt={JWT} by {EMAIL_ADDRESS}")
        assert once == f"Authorization: {REDACTED}\n?jwt={REDACTED} by {EMAIL}"
        assert redact_text(once) == once

    def test_long_input_is_linear(self) -> None:
        """Pathological long strings are handled quickly (no catastrophic backtracking)."""
        for text in ("a://" * 20_000, "ab." * 50_000, "x@" * 50_000, "'token': " * 10_000):
            assert isinstance(redact_text(text), str)


class TestRedactValue:
    def test_keys_decide(self) -> None:
        """Values under secret, content, email and name keys are replaced; ids stay."""
        out = redact_value(
            {
                "Authorization": f"Bearer {BEARER}",
                "sharedSecret": SHARED_SECRET,
                "client_secret": SHARED_SECRET,
                "access_token": BEARER,
                "refresh_token": BEARER,
                "X-Signature-Ed25519": SIGNATURE_HEX,
                "password": "hunter22",
                "content": MESSAGE_TEXT,
                "message_content": MESSAGE_TEXT,
                "description": MESSAGE_TEXT,
                "body": MESSAGE_TEXT,
                "emailAddress": EMAIL_ADDRESS,
                "displayName": "Alice Smith",
                "tenant": "ck-123",
                "accountId": "5b10ac8d82e05b22cc7d4ef5",
            }
        )
        assert isinstance(out, dict)
        for key in (
            "Authorization",
            "sharedSecret",
            "client_secret",
            "access_token",
            "refresh_token",
            "X-Signature-Ed25519",
            "password",
        ):
            assert out[key] == REDACTED, key
        for key in ("content", "message_content", "description", "body"):
            assert out[key] == CONTENT, key
        assert out["emailAddress"] == EMAIL
        assert out["displayName"] != "Alice Smith"
        assert out["tenant"] == "ck-123"
        assert out["accountId"] == "5b10ac8d82e05b22cc7d4ef5"

    def test_recurses(self) -> None:
        """Nested dicts, lists, tuples and header pairs are walked; types are kept."""
        out = redact_value(
            {
                "request": {
                    "headers": [("Authorization", f"Bearer {BEARER}"), ("Accept", "json")],
                    "query": {"jwt": JWT},
                    "notes": [f"from {EMAIL_ADDRESS}", {"token": BOT_TOKEN}],
                },
                "count": 2,
                "ok": True,
            }
        )
        text = repr(out)
        assert find_leaks(text, KNOWN) == []
        assert isinstance(out, dict)
        assert out["count"] == 2 and out["ok"] is True
        headers = out["request"]["headers"]
        assert headers[1] == ("Accept", "json")
        assert isinstance(headers[0], tuple)

    def test_numbers_and_flags_under_secret_keys_stay(self) -> None:
        """``has_token=True`` or ``token_count=3`` leak nothing and remain useful."""
        assert redact_value({"has_token": True, "token_count": 3, "secret": None}) == {
            "has_token": True,
            "token_count": 3,
            "secret": None,
        }

    def test_secret_objects_and_bytes(self) -> None:
        """Secret values, raw bytes and dataclasses never show their contents."""

        @dataclass
        class Installation:
            client_key: str
            shared_secret: str

        out = redact_value(
            {
                "s": Secret(SHARED_SECRET),
                "raw": SHARED_SECRET.encode(),
                "inst": Installation("ck", SHARED_SECRET),
            }
        )
        assert SHARED_SECRET not in repr(out)
        assert out == {
            "s": REDACTED,
            "raw": f"[{len(SHARED_SECRET)} bytes]",
            "inst": {"client_key": "ck", "shared_secret": REDACTED},
        }

    def test_never_raises(self) -> None:
        """Broken reprs, odd keys, cycles and deep nesting yield placeholders, not errors."""

        class Broken:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        cyclic: dict[str, Any] = {}
        cyclic["self"] = cyclic
        deep: list[Any] = []
        cursor = deep
        for _ in range(100):
            cursor.append([])
            cursor = cursor[0]
        out = redact_value(
            {1: Broken(), ("tuple", "key"): "x", "cyclic": cyclic, "deep": deep, "n": float("nan")}
        )
        assert isinstance(out, dict)
        assert out[1] == "[UNREDACTABLE]"
        assert out["cyclic"] == {"self": "[CYCLE]"}

    def test_time_values_pass(self) -> None:
        """Datetimes are left alone (nothing secret in a timestamp)."""
        when = datetime(2025, 1, 2, tzinfo=UTC)
        assert redact_value({"at": when}) == {"at": when}


class TestRedactEventDict:
    def test_processor_redacts(self) -> None:
        """As a processor it redacts values, keys and the event, keeping internal keys."""
        record = object()
        out = redact_event_dict(
            None,
            "info",
            {
                "event": f"sent with Bot {BOT_TOKEN}",
                "token": BOT_TOKEN,
                EMAIL_ADDRESS: "as key",
                "_record": record,
                "exc_info": True,
            },
        )
        assert out["event"] == f"sent with Bot {REDACTED}"
        assert out["token"] == REDACTED
        assert EMAIL in out and EMAIL_ADDRESS not in out
        assert out["_record"] is record and out["exc_info"] is True

    def test_processor_never_raises(self) -> None:
        """Even an event dict whose items cannot be read gives an event back."""

        class Exploding(dict[str, Any]):
            def items(self) -> Any:
                raise RuntimeError("boom")

        out = redact_event_dict(None, "info", Exploding(event="x"))
        assert "event" in out

    def test_with_capture_logs(self) -> None:
        """structlog's capture_logs sees redacted events when the processor is given."""
        log = structlog.get_logger("test")
        with capture_logs(processors=[redact_event_dict]) as logs:
            log.info(
                "installed",
                sharedSecret=SHARED_SECRET,
                url=f"https://x.atlassian.net/installed?jwt={JWT}",
                headers={"authorization": f"JWT {JWT}"},
                user=EMAIL_ADDRESS,
                content=MESSAGE_TEXT,
                tenant="ck-1",
            )
        assert len(logs) == 1
        entry = logs[0]
        assert entry["sharedSecret"] == REDACTED
        assert entry["url"] == f"https://x.atlassian.net/installed?jwt={REDACTED}"
        assert entry["headers"] == {"authorization": REDACTED}
        assert entry["user"] == EMAIL
        assert entry["content"] == CONTENT
        assert entry["tenant"] == "ck-1"
        assert find_leaks(repr(entry), KNOWN) == []


class TestConfiguredPipeline:
    def test_json_lines(self, sio: io.StringIO) -> None:
        """JSON lines carry service, ISO UTC timestamp, level, logger and bound context."""
        clock = ManualClock(start=1_700_000_000.25)
        configure_logging(service="gateway", fmt="json", stream=sio, clock=clock)
        bind_message_context(event_id="ev-1", tenant="ck-1", delivery_count=2, event_type="t")
        structlog.get_logger("dfj.test").info("handled", queue="jira-events")
        (line,) = _lines(sio)
        assert line == {
            "event": "handled",
            "queue": "jira-events",
            "event_id": "ev-1",
            "tenant": "ck-1",
            "delivery_count": 2,
            "event_type": "t",
            "level": "info",
            "logger": "dfj.test",
            "timestamp": "2023-11-14T22:13:20.250000Z",
            "service": "gateway",
        }

    def test_timestamps_follow_the_clock_across_seconds(self, sio: io.StringIO) -> None:
        """The date and time of a second are formatted once; each line still gets its own."""
        clock = ManualClock(start=1_700_000_000.999999)
        configure_logging(service="gateway", fmt="json", stream=sio, clock=clock)
        log = structlog.get_logger("dfj.test")
        for step in (0.0, 0.000001, 0.5, 86_400.0):
            clock.advance(step)
            log.info("tick")
        assert [line["timestamp"] for line in _lines(sio)] == [
            "2023-11-14T22:13:20.999999Z",
            "2023-11-14T22:13:21.000000Z",
            "2023-11-14T22:13:21.500000Z",
            "2023-11-15T22:13:21.500000Z",
        ]

    # Raw secrets go in on purpose; pytest's own log capture sees them before our formatter.
    @pytest.mark.leaks_allowed
    def test_structlog_and_stdlib_are_redacted(self, sio: io.StringIO) -> None:
        """Our events and library records (message, args, extra) all pass redaction."""
        configure_logging(service="gateway", fmt="json", stream=sio)
        structlog.get_logger("dfj.test").warning(
            "verify failed",
            authorization=f"JWT {JWT}",
            body=MESSAGE_TEXT,
            nested={"shared_secret": SHARED_SECRET, "list": [EMAIL_ADDRESS]},
        )
        logging.getLogger("aiohttp.access").info(
            '127.0.0.1 "GET /installed?jwt=%s HTTP/1.1" 200 "Bearer %s"', JWT, BEARER
        )
        logging.getLogger("azure.identity").warning(
            "token acquired", extra={"access_token": BEARER, "user": EMAIL_ADDRESS}
        )
        output = sio.getvalue()
        lines = _lines(sio)
        assert [line["logger"] for line in lines] == [
            "dfj.test",
            "aiohttp.access",
            "azure.identity",
        ]
        assert all(line["service"] == "gateway" for line in lines)
        assert lines[1]["event"] == (
            f'127.0.0.1 "GET /installed?jwt={REDACTED} HTTP/1.1" 200 "Bearer {REDACTED}"'
        )
        assert lines[2]["access_token"] == REDACTED
        assert find_leaks(output, KNOWN) == []

    # pytest's own log capture formats the raw traceback; our stream must not.
    @pytest.mark.leaks_allowed
    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_alone_our_events_skip_the_stdlib_and_render_the_same(
        self, sio: io.StringIO, fmt: str
    ) -> None:
        """With only our handler on the root (production), the line is written directly.

        It must be the very line the stdlib route renders: same fields, same redaction, same
        traceback handling. pytest's own handlers are set aside for the direct half.
        """
        clock = ManualClock(start=1_700_000_000.0)
        configure_logging(service="w", fmt=fmt, stream=sio, clock=clock)  # type: ignore[arg-type]
        root = logging.getLogger()
        ours = [h for h in root.handlers if h.get_name() == "dfj-structlog"]
        others = [h for h in root.handlers if h not in ours]
        records: list[logging.LogRecord] = []

        class Count(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        def emit() -> None:
            log = structlog.get_logger("dfj.test")
            log.info("linked", user=EMAIL_ADDRESS, token=BOT_TOKEN, n=3, ms=1.5, ok=True)
            try:
                raise ValueError(f"rejected Bot {BOT_TOKEN}")
            except ValueError:
                log.exception("send failed", route="/x")

        for handler in others:
            root.removeHandler(handler)
        try:
            emit()
        finally:
            for handler in others:
                root.addHandler(handler)
        direct = sio.getvalue()
        sio.seek(0)
        sio.truncate()
        counter = Count()
        root.addHandler(counter)
        try:
            emit()
        finally:
            root.removeHandler(counter)
        assert len(records) == 2  # the second time, the stdlib route ran
        assert direct == sio.getvalue()
        assert direct.count("\n") >= 2 and "rejected Bot" in direct
        assert find_leaks(direct, KNOWN) == []

    @pytest.mark.leaks_allowed
    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_a_hot_logger_writes_the_line_structlog_writes(
        self, sio: io.StringIO, fmt: str
    ) -> None:
        """A hot logger's line is structlog's, byte for byte: alone on the root, and through
        the standard library when something else listens (then a record is seen, too)."""
        clock = ManualClock(start=1_700_000_000.5)
        configure_logging(service="w", fmt=fmt, stream=sio, clock=clock)  # type: ignore[arg-type]
        root = logging.getLogger()
        others = [h for h in root.handlers if h.get_name() != "dfj-structlog"]
        records: list[logging.LogRecord] = []

        class Count(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        def fields() -> dict[str, object]:
            return {"route": "/x", "user": EMAIL_ADDRESS, "token": BOT_TOKEN, "n": 3, "ok": None}

        hot = HotLogger("dfj.test.hot")
        lines: list[str] = []
        with bound_message_context(event_id="ev-1"):
            for handler in others:
                root.removeHandler(handler)
            try:
                structlog.get_logger("dfj.test.hot").info("request", **fields())
                lines.append(sio.getvalue())
                sio.seek(0)
                sio.truncate()
                real, hot._structlog = hot._structlog, None  # alone, structlog is not asked
                try:
                    hot.info("request", **fields())
                finally:
                    hot._structlog = real
                lines.append(sio.getvalue())
                sio.seek(0)
                sio.truncate()
            finally:
                for handler in others:
                    root.addHandler(handler)
            counter = Count()
            root.addHandler(counter)
            try:
                hot.info("request", **fields())
            finally:
                root.removeHandler(counter)
        assert len(records) == 1  # the third time, the stdlib route ran
        lines.append(sio.getvalue())
        assert lines[0] == lines[1] == lines[2]
        assert "ev-1" in lines[0] and "/x" in lines[0]
        assert find_leaks(lines[0], KNOWN) == []

    def test_a_hot_logger_honours_levels_and_hands_exceptions_to_structlog(
        self, sio: io.StringIO
    ) -> None:
        configure_logging(service="w", level="warning", fmt="json", stream=sio)
        root = logging.getLogger()
        others = [h for h in root.handlers if h.get_name() != "dfj-structlog"]
        hot = HotLogger("dfj.test.hot")
        for handler in others:
            root.removeHandler(handler)
        try:
            hot.info("below the level")
            hot.warning("kept", n=1)
            try:
                raise ValueError("boom")
            except ValueError:
                hot.exception("failed", route="/x")
        finally:
            for handler in others:
                root.addHandler(handler)
        kept, failed = _lines(sio)
        assert (kept["event"], kept["level"], kept["n"]) == ("kept", "warning", 1)
        assert failed["event"] == "failed" and "ValueError" in json.dumps(failed["exception"])

    def test_other_root_handlers_see_our_events_redacted(self, sio: io.StringIO) -> None:
        """A second handler on the root logger gets our events already redacted."""
        seen: list[logging.LogRecord] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record)

        configure_logging(service="w", fmt="json", stream=sio)
        logging.getLogger().addHandler(Collect())
        structlog.get_logger("dfj.test").info("linked", user=EMAIL_ADDRESS, token=BOT_TOKEN)
        (record,) = seen
        assert find_leaks(str(record.msg), KNOWN) == []
        assert find_leaks(sio.getvalue(), KNOWN) == []

    # Raw secrets go in on purpose; pytest's own log capture sees them before our formatter.
    @pytest.mark.leaks_allowed
    def test_exceptions_are_redacted(self, sio: io.StringIO) -> None:
        """Tracebacks, structured (JSON) and stdlib alike, lose the secrets in their messages."""
        configure_logging(service="w", fmt="json", stream=sio)
        try:
            raise ValueError(f"rejected Bot {BOT_TOKEN} for {EMAIL_ADDRESS}")
        except ValueError:
            structlog.get_logger("dfj.test").exception("send failed")
            logging.getLogger("lib").exception("lib failed with jwt=%s", JWT)
        lines = _lines(sio)
        assert len(lines) == 2
        assert "exception" in lines[0] and "exception" in lines[1]
        assert "ValueError" in json.dumps(lines[0]["exception"])
        assert find_leaks(sio.getvalue(), KNOWN) == []

    # Raw secrets go in on purpose; pytest's own log capture sees them before our formatter.
    @pytest.mark.leaks_allowed
    def test_console_format(self) -> None:
        """Console rendering is redacted too, exceptions included."""
        stream = _Tty()
        configure_logging(service="w", fmt="console", stream=stream)
        try:
            raise RuntimeError(f"Authorization: Bearer {BEARER}")
        except RuntimeError:
            structlog.get_logger("dfj.test").exception("boom", token=BOT_TOKEN)
        output = stream.getvalue()
        assert "boom" in output and "RuntimeError" in output
        assert not output.lstrip().startswith("{")
        assert find_leaks(output, KNOWN) == []

    def test_auto_format_follows_tty(self, sio: io.StringIO) -> None:
        """``auto`` renders JSON to a pipe and console text to a terminal."""
        configure_logging(service="w", stream=sio)
        structlog.get_logger().info("to a pipe")
        assert _lines(sio)[0]["event"] == "to a pipe"

        tty = _Tty()
        configure_logging(service="w", stream=tty)
        structlog.get_logger().info("to a terminal")
        assert "to a terminal" in tty.getvalue()
        with pytest.raises(json.JSONDecodeError):
            json.loads(tty.getvalue().splitlines()[0])

    def test_level_filters_both_sources(self, sio: io.StringIO) -> None:
        """Below the configured level, neither structlog nor stdlib records are written."""
        configure_logging(service="w", level="warning", fmt="json", stream=sio)
        structlog.get_logger("a").info("quiet")
        logging.getLogger("b").info("quiet")
        structlog.get_logger("a").warning("loud")
        logging.getLogger("b").error("loud")
        assert [(line["logger"], line["level"]) for line in _lines(sio)] == [
            ("a", "warning"),
            ("b", "error"),
        ]

    def test_bad_level_names_setting(self) -> None:
        """An unknown level fails with the setting's name."""
        with pytest.raises(ConfigError, match="DFJ_LOG_LEVEL"):
            configure_logging(service="w", level="loud")

    def test_reconfigure_replaces(self, sio: io.StringIO) -> None:
        """A second configure_logging replaces the handler: each line is written once."""
        first = io.StringIO()
        configure_logging(service="w", fmt="json", stream=first)
        configure_logging(service="w", fmt="json", stream=sio)
        logging.getLogger("x").warning("once")
        assert first.getvalue() == ""
        assert len(_lines(sio)) == 1

    def test_context_helpers(self, sio: io.StringIO) -> None:
        """clear_context forgets bound ids; bound_message_context restores what was before."""
        configure_logging(service="w", fmt="json", stream=sio)
        log = structlog.get_logger("ctx")
        bind_message_context(event_id="ev-1", tenant=None)
        with bound_message_context(event_id="ev-2", trace_id="t" * 32):
            log.info("inner")
        log.info("outer")
        clear_context()
        log.info("cleared")
        inner, outer, cleared = _lines(sio)
        assert inner["event_id"] == "ev-2" and inner["trace_id"] == "t" * 32
        assert outer["event_id"] == "ev-1" and "trace_id" not in outer
        assert "tenant" not in outer
        assert "event_id" not in cleared

    def test_trace_ids_from_current_span(self, sio: io.StringIO) -> None:
        """Inside an OpenTelemetry span, lines carry its trace and span ids."""
        configure_logging(service="w", fmt="json", stream=sio)
        provider = TracerProvider()
        with provider.get_tracer("t").start_as_current_span("work") as span:
            structlog.get_logger().info("inside")
        context = span.get_span_context()
        (line,) = _lines(sio)
        assert line["trace_id"] == format(context.trace_id, "032x")
        assert line["span_id"] == format(context.span_id, "016x")
        provider.shutdown()


class TestFindLeaks:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            (f"x {JWT} y", "jwt"),
            (f"Authorization: Bearer {BEARER}", "bearer token"),
            (f"Bot {BOT_TOKEN}", "bot token"),
            (f"raw {BOT_TOKEN}", "discord token"),
            ("/installed?jwt=opaque", "jwt parameter"),
            (f"contact {EMAIL_ADDRESS}", "email"),
        ],
    )
    def test_reports_each_kind(self, text: str, kind: str) -> None:
        """Each secret shape is reported under its kind."""
        assert kind in SECRET_PATTERNS
        assert any(finding.startswith(kind) for finding in find_leaks(text))

    def test_known_secrets_in_any_encoding(self) -> None:
        """Known secrets are found raw, URL-encoded and JSON-escaped; short ones are skipped."""
        secret = 'p@ss/word "quoted"'
        assert find_leaks(f"x {secret} y", [secret])
        assert find_leaks("x p%40ss%2Fword%20%22quoted%22 y", [secret])
        assert find_leaks(json.dumps({"v": secret}), [secret])
        assert find_leaks("abc", ["abc"]) == []

    def test_findings_do_not_repeat_the_secret(self) -> None:
        """A finding shows a short prefix only, so the report is not a leak itself."""
        (finding,) = find_leaks(f"x {SHARED_SECRET} y", [SHARED_SECRET])
        assert SHARED_SECRET not in finding

    def test_placeholders_are_clean(self) -> None:
        """Redacted output and ordinary log text produce no findings."""
        text = redact_text(
            f"Authorization: Bearer {BEARER} Bot {BOT_TOKEN} /x?jwt={JWT} {EMAIL_ADDRESS}"
        )
        assert find_leaks(text, KNOWN) == []
        assert find_leaks("delivered message 123 to channel 456 in 12 ms") == []


def test_key_judgements_stay_right_past_the_memo_bound() -> None:
    """Field names are judged once and remembered (a bounded memo); far more distinct names
    than it holds, and names seen again after it started over, are judged as the first time."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"  # a JWT
    for round_ in range(2):
        for n in range(5_000):
            out = redact_event_dict(
                None, "info", {f"field_{n}": "plain", f"password_{n}": "hunter2", "event": token}
            )
            assert out[f"field_{n}"] == "plain", (round_, n)
            assert out[f"password_{n}"] == REDACTED, (round_, n)
            assert token not in str(out["event"])
