"""``dfj``: bus statistics and the dead-letter tools, against a real local bus file."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from dfj_common.bus import JIRA_COMMANDS, OutgoingMessage
from dfj_common.bus.local import LocalBus
from dfj_common.cli import run


async def _prepare(path: Path) -> None:
    bus = await LocalBus.open(path)
    await bus.publish(
        JIRA_COMMANDS,
        OutgoingMessage(
            body=b'{"a": 1, "data": {"token": "aW50ZXJhY3Rpb246c2VjcmV0", "text": "hello there"}}',
            message_id="m-1",
        ),
    )
    await bus.publish(JIRA_COMMANDS, OutgoingMessage(body=b"plain", message_id="m-2"))
    await bus.publish(JIRA_COMMANDS, OutgoingMessage(body=b"{}", message_id="m-3"))
    got = await bus.receiver(JIRA_COMMANDS).receive(3, timeout=2)
    for d in got:
        if d.message_id != "m-3":
            await d.dead_letter("BadThing", f"could not handle {d.message_id}")
    await bus.close()


@pytest.fixture(name="env")
def _env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "bus.sqlite"
    asyncio.run(_prepare(path))
    return {"DFJ_BUS_PATH": str(path)}


def cli(env: dict[str, str], *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return run(list(argv), environ=env, out=out), out.getvalue()


def test_bus_stats(env: dict[str, str]) -> None:
    """stats shows each queue with its dead-lettered and locked counts."""
    code, text = cli(env, "bus", "stats")
    assert code == 0
    line = next(x for x in text.splitlines() if x.startswith(JIRA_COMMANDS))
    assert line.split()[1:5] == ["0", "0", "1", "2"]


def test_dlq_list_show_and_replay(env: dict[str, str]) -> None:
    """list names each dead letter with its reason; show prints one; replay moves it back."""
    code, text = cli(env, "dlq", "list", JIRA_COMMANDS)
    assert code == 0
    assert "m-1\tBadThing" in text
    assert "2 dead-lettered" in text
    code, text = cli(env, "dlq", "show", JIRA_COMMANDS, "m-1")
    assert code == 0
    shown = json.loads(text)
    assert shown["body"] == {"a": 1, "data": {"token": "[REDACTED]", "text": "[CONTENT]"}}
    assert "aW50ZXJhY3Rpb246c2VjcmV0" not in text
    assert "hello there" not in text
    assert shown["description"] == "could not handle m-1"
    assert cli(env, "dlq", "show", JIRA_COMMANDS, "nope")[0] == 1
    code, text = cli(env, "dlq", "replay", JIRA_COMMANDS, "--id", "m-2")
    assert (code, text.strip()) == (0, f"replayed 1 message(s) to {JIRA_COMMANDS}")
    assert "1 dead-lettered" in cli(env, "dlq", "list", JIRA_COMMANDS)[1]
    assert "replayed 1" in cli(env, "dlq", "replay", JIRA_COMMANDS, "--all")[1]


def test_unknown_queue_is_a_clear_error(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown queue exits 2 with a message naming the known ones."""
    code, _ = cli(env, "dlq", "list", "nope")
    assert code == 2
    assert "known: jira-events" in capsys.readouterr().err
