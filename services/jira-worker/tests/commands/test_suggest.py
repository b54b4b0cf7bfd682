"""Field suggestions: the heuristic's rules, and Azure OpenAI over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from commands.harness import Harness
from dfj_jira_worker.commands.suggest import (
    AzureOpenAISuggester,
    FallbackSuggester,
    HeuristicSuggester,
    IssueTypeOption,
    SuggestionUnavailable,
    first_sentence,
    parse_answer,
)

API_KEY = "azure-openai-key-for-tests-1234"
DEPLOYMENT = "gpt-4o-mini"
TYPES = [IssueTypeOption("1", "Task"), IssueTypeOption("2", "Bug"), IssueTypeOption("3", "Story")]


@pytest.mark.parametrize(
    ("text", "issue_type", "priority"),
    [
        ("The app crashes on start", "Bug", None),
        ("Upload fails with an exception", "Bug", None),
        ("Checkout is broken!!! This is an outage", "Bug", "Highest"),
        ("There is an error in the report, please fix asap", "Bug", "High"),
        ("As a user I want to export CSV", "Story", None),
        ("It would be nice to have dark mode", "Story", None),
        ("We would like a new feature: tags", "Story", None),
        ("Update the docs for the release", "Task", None),
        ("Minor: typo on the about page", "Task", "Low"),
        ("nit: rename this variable", "Task", "Low"),
        ("Blocker for the release: update the licence", "Task", "Highest"),
        ("critical: rotate the keys", "Task", "Highest"),
        ("urgent: renew the certificate", "Task", "High"),
        ("Debugging session notes", "Task", None),  # "bug" inside a word is not a bug
    ],
)
def test_heuristic_rules(text: str, issue_type: str, priority: str | None) -> None:
    """Type and priority from the words of the message."""
    suggestion = HeuristicSuggester().suggest_now(text)
    assert (suggestion.issue_type, suggestion.priority) == (issue_type, priority)
    assert suggestion.description == text
    assert suggestion.source == "heuristic"


@pytest.mark.parametrize(
    ("text", "summary"),
    [
        ("First sentence. Second one.", "First sentence."),
        ("Is it broken? I think so", "Is it broken?"),
        ("\n\n  ## Heading line\nbody", "Heading line"),
        ("> quoted   text   here\nmore", "quoted text here"),
        ("no punctuation at all", "no punctuation at all"),
        ("version 1.2.3 is out", "version 1.2.3 is out"),
        ("   \n  ", "Issue from Discord"),
    ],
)
def test_first_sentence(text: str, summary: str) -> None:
    assert first_sentence(text) == summary


def test_a_long_first_sentence_is_clipped() -> None:
    summary = first_sentence("word " * 200)
    assert len(summary) == 255
    assert summary.endswith("…")


def test_heuristic_types_follow_the_site() -> None:
    """A suggested type the site lacks becomes "Task", or the site's first type."""
    with_task = [IssueTypeOption("9", "task"), IssueTypeOption("8", "Epic")]
    assert HeuristicSuggester().suggest_now("a bug", issue_types=with_task).issue_type == "task"
    only_epic = [IssueTypeOption("8", "Epic")]
    assert HeuristicSuggester().suggest_now("a bug", issue_types=only_epic).issue_type == "Epic"
    bug = [IssueTypeOption("8", "BUG")]
    assert HeuristicSuggester().suggest_now("a bug", issue_types=bug).issue_type == "BUG"


# --- Azure OpenAI over loopback ---------------------------------------------------------------


def _completion(content: Any, *, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content},
            }
        ],
    }


GOOD = {
    "summary": "Uploads crash the app",
    "description": "Uploading any file crashes the app.",
    "issue_type": "bug",
    "priority": "High",
}


@dataclass
class FakeAzure:
    """A chat-completions endpoint that records requests and answers as told."""

    answer: Any = field(default_factory=lambda: _completion(json.dumps(GOOD)))
    status: int = 200
    delay_until: asyncio.Event | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "api_key": request.headers.get("api-key"),
                "body": await request.json(),
            }
        )
        if self.delay_until is not None:
            await self.delay_until.wait()
        if isinstance(self.answer, bytes):
            return web.Response(body=self.answer, status=self.status, content_type="text/plain")
        return web.json_response(self.answer, status=self.status)


@pytest.fixture
async def azure() -> AsyncIterator[tuple[FakeAzure, str, aiohttp.ClientSession]]:
    fake = FakeAzure()
    app = web.Application()
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", fake.handle)
    server = TestServer(app)
    await server.start_server()
    session = aiohttp.ClientSession()
    yield fake, str(server.make_url("")).rstrip("/"), session
    if fake.delay_until is not None:
        fake.delay_until.set()
    await session.close()
    await server.close()


def _suggester(url: str, session: aiohttp.ClientSession, **kwargs: Any) -> AzureOpenAISuggester:
    return AzureOpenAISuggester(
        session=session,
        endpoint=url,
        deployment=DEPLOYMENT,
        api_key=API_KEY,
        api_version="2024-10-21",
        **kwargs,
    )


async def test_azure_good_answer(azure: tuple[FakeAzure, str, aiohttp.ClientSession]) -> None:
    """A well-formed JSON answer becomes the suggestion, names as the site spells them."""
    fake, url, session = azure
    text = "When I upload a file the whole app crashes"
    suggestion = await _suggester(url, session).suggest(text, issue_types=TYPES)
    assert suggestion.summary == "Uploads crash the app"
    assert suggestion.issue_type == "Bug"
    assert suggestion.priority == "High"
    assert suggestion.source == "azure-openai"
    (sent,) = fake.requests
    assert sent["path"] == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert sent["query"] == {"api-version": "2024-10-21"}
    assert sent["api_key"] == API_KEY
    body = sent["body"]
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    assert '["Task", "Bug", "Story"]' in body["messages"][0]["content"]
    assert body["messages"][1] == {"role": "user", "content": text}


@pytest.mark.parametrize(
    "answer",
    [
        _completion("this is not JSON"),
        _completion(json.dumps({**GOOD, "issue_type": "Epic"})),
        _completion(json.dumps({**GOOD, "priority": "Whenever"})),
        _completion(json.dumps({**GOOD, "extra": "key"})),
        _completion(json.dumps({k: v for k, v in GOOD.items() if k != "priority"})),
        _completion(json.dumps({**GOOD, "summary": "  "})),
        _completion(json.dumps({**GOOD, "summary": 42})),
        _completion(json.dumps(["a", "list"])),
        _completion(None),
        _completion(json.dumps(GOOD), finish_reason="content_filter"),
        _completion(json.dumps(GOOD), finish_reason="length"),
        {"choices": []},
        {"error": {"code": "429"}},
        b"<html>gateway timeout</html>",
    ],
)
async def test_azure_garbage_falls_back_to_the_heuristic(
    azure: tuple[FakeAzure, str, aiohttp.ClientSession], answer: Any
) -> None:
    """Anything but a strictly valid answer: the heuristic answers instead."""
    fake, url, session = azure
    fake.answer = answer
    with pytest.raises(SuggestionUnavailable):
        await _suggester(url, session).suggest("The export is broken", issue_types=TYPES)
    composed = FallbackSuggester(_suggester(url, session), HeuristicSuggester())
    suggestion = await composed.suggest("The export is broken", issue_types=TYPES)
    assert suggestion.source == "heuristic"
    assert suggestion.issue_type == "Bug"


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
async def test_azure_http_errors_fall_back(
    azure: tuple[FakeAzure, str, aiohttp.ClientSession], status: int
) -> None:
    fake, url, session = azure
    fake.status = status
    composed = FallbackSuggester(_suggester(url, session), HeuristicSuggester())
    assert (await composed.suggest("hello", issue_types=TYPES)).source == "heuristic"


async def test_azure_slow_answer_misses_the_deadline(
    azure: tuple[FakeAzure, str, aiohttp.ClientSession],
) -> None:
    """An answer later than the deadline is not waited for: the heuristic answers."""
    fake, url, session = azure
    fake.delay_until = asyncio.Event()
    composed = FallbackSuggester(_suggester(url, session, deadline=0.2), HeuristicSuggester())
    loop = asyncio.get_running_loop()
    started = loop.time()
    suggestion = await composed.suggest("Please add CSV export", issue_types=TYPES)
    assert loop.time() - started < 2.0
    assert suggestion.source == "heuristic"
    assert len(fake.requests) == 1


async def test_azure_unreachable_falls_back() -> None:
    """A connection error is one more reason for the heuristic."""
    async with aiohttp.ClientSession() as session:
        composed = FallbackSuggester(
            _suggester("http://127.0.0.1:9", session, deadline=1.0), HeuristicSuggester()
        )
        assert (await composed.suggest("x", issue_types=TYPES)).source == "heuristic"


async def test_azure_never_logs_the_key_or_the_text(
    azure: tuple[FakeAzure, str, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url, session = azure
    fake.status = 500
    caplog.set_level(logging.DEBUG)
    secret_text = "my private message body 7f3a"
    with pytest.raises(SuggestionUnavailable):
        await _suggester(url, session).suggest(secret_text)
    assert API_KEY not in caplog.text
    assert secret_text not in caplog.text
    assert API_KEY not in repr(_suggester(url, session))


def test_parse_answer_clips_a_long_summary() -> None:
    answer = _completion(json.dumps({**GOOD, "summary": "x" * 400, "description": ""}))
    suggestion = parse_answer(answer, text="original text", issue_types=TYPES)
    assert len(suggestion.summary) == 255
    assert suggestion.description == "original text"


async def test_a_suggester_needs_its_settings() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="endpoint"):
            AzureOpenAISuggester(session=session, endpoint="", deployment="d", api_key="k")


async def test_the_message_command_uses_the_configured_suggester(
    harness: Harness, azure: tuple[FakeAzure, str, aiohttp.ClientSession]
) -> None:
    """With Azure configured, the draft holds the model's fields (site types offered to it)."""
    fake, url, session = azure
    harness.with_suggester(FallbackSuggester(_suggester(url, session), HeuristicSuggester()))
    await harness.send(harness.message_command("When I upload a file the app crashes"))
    (reply,) = await harness.replies()
    embed = reply.data["message"]["embeds"][0]
    assert embed["title"] == "Uploads crash the app"
    (sent,) = fake.requests
    assert '"Task", "Bug", "Story"' in sent["body"]["messages"][0]["content"]
