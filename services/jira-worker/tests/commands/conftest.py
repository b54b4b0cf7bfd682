"""Fixtures of the command tests (the harness itself is in ``harness.py``)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commands.harness import ACC_ALICE, ACC_BOB, NOW, FakeJira, Harness, seed
from dfj_common.bus.local import LocalBus
from dfj_common.clock import ManualClock
from dfj_common.storage import Database, Repositories, create_engine, migrate
from dfj_jira_worker.commands import Commands
from dfj_jira_worker.commands.suggest import HeuristicSuggester


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, to copy per test."""
    path = tmp_path_factory.mktemp("template") / "dfj.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Harness]:
    """A seeded site, the commands over it, and an empty outbox."""
    path = tmp_path / "dfj.sqlite"
    await asyncio.to_thread(shutil.copyfile, sqlite_template, path)
    clock = ManualClock(NOW)
    db = Database(create_engine(f"sqlite:///{path}"), clock=clock, owns_engine=True)
    bus = await LocalBus.open(tmp_path / "bus.sqlite")
    repos = Repositories(db)
    await seed(repos)
    jira = FakeJira()
    jira.site.add_issue("ABC-1", "The login page is slow")
    jira.site.browsable[ACC_ALICE] = {"ABC"}
    jira.site.browsable[ACC_BOB] = {"ABC"}
    commands = Commands.build(db, bus=bus, jira=jira, suggester=HeuristicSuggester())
    yield Harness(clock=clock, db=db, bus=bus, repos=repos, jira=jira, commands=commands)
    await bus.close()
    await db.close()
