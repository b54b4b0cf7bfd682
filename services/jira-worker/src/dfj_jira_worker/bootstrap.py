"""Composition root of jira-worker: everything built from settings.

Tests call it with a bus, a database and an environment of their own (and then close the bus
and database themselves); what it opens itself — the secret store, the one Jira HTTP session,
the suggester's session — it closes on shutdown.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import aiohttp

from dfj_common.bus import Bus
from dfj_common.clock import Clock, SystemClock
from dfj_common.config import Settings
from dfj_common.secrets import EnvelopeCipher, SecretStore, open_secret_store
from dfj_common.service import WorkerService, build_worker_service
from dfj_common.storage import Database
from dfj_common.telemetry import Telemetry
from dfj_jira_worker.commands import (
    AzureOpenAISuggester,
    FallbackSuggester,
    HeuristicSuggester,
    Suggester,
)
from dfj_jira_worker.handlers import build_tables
from dfj_jira_worker.jira import JiraClient
from dfj_jira_worker.settings import AZURE_OPENAI_KEY_SECRET, JiraWorkerSettings

SERVICE = "jira-worker"


async def _suggester(
    own: JiraWorkerSettings,
    store: SecretStore,
    closers: list[Callable[[], Awaitable[None]]],
) -> Suggester:
    if not own.suggester_configured:
        return HeuristicSuggester()
    assert own.azure_openai_endpoint is not None and own.azure_openai_deployment is not None
    key = await store.get(AZURE_OPENAI_KEY_SECRET)
    session = aiohttp.ClientSession()
    closers.append(session.close)
    azure = AzureOpenAISuggester(
        session=session,
        endpoint=own.azure_openai_endpoint,
        deployment=own.azure_openai_deployment,
        api_key=key.reveal(),
        api_version=own.azure_openai_api_version,
        deadline=own.suggest_deadline_seconds,
    )
    return FallbackSuggester(azure, HeuristicSuggester())


async def bootstrap(
    settings: Settings,
    *,
    bus: Bus | None = None,
    database: Database | None = None,
    telemetry: Telemetry | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> WorkerService:
    """The jira-worker process: its queue consumers, wired to its bus, database and Jira."""
    environ = os.environ if environ is None else environ
    clock = clock or SystemClock()
    own = JiraWorkerSettings.from_env(environ)
    store = open_secret_store(settings, environ, clock=clock)
    closers: list[Callable[[], Awaitable[None]]] = [store.close]
    jira = JiraClient(
        app_key=settings.app_key,
        oauth_url=settings.atlassian_oauth_url,
        cipher=EnvelopeCipher(store, clock=clock),
        clock=clock,
        timeout=own.jira_timeout_seconds,
    )
    closers.append(jira.close)
    suggester = await _suggester(own, store, closers)
    return await build_worker_service(
        name=SERVICE,
        settings=settings,
        port=settings.jira_worker_port,
        tables=partial(
            build_tables, jira=jira, clock=clock, suggester=suggester, app_key=settings.app_key
        ),
        bus=bus,
        database=database,
        closers=closers,
        telemetry=telemetry,
    )
