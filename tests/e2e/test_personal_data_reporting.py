"""Personal-data reporting across the linker, the bus, the jira-worker and the Jira simulator.

The linker's start-up sweep finds the site due for a report and asks the jira-worker, which
reports the linked accountIds to the simulated site's ``/app/report-accounts/`` as the app;
the site says one account was closed; the linker erases that account's link and leaves the
other.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import pytest

from dfj_common.bus.local import LocalBus
from dfj_common.config import Settings
from dfj_common.secrets import EnvelopeCipher, EnvSecretStore, make_aad
from dfj_common.service import serve
from dfj_common.storage import Database, Installations, UserLinks
from dfj_common.storage.migrate import upgrade
from dfj_jira_worker.bootstrap import bootstrap as jira_worker
from dfj_linker.bootstrap import bootstrap as linker
from dfj_sandbox.jira_sim import JiraSimulator

CLOSED = "5be24ba3f91c106033269289"  # Atlassian's test id of a closed account
ACTIVE = "5be24ad8b1653240376955d2"


@pytest.mark.slow
async def test_a_closed_account_is_erased_after_the_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    await asyncio.to_thread(upgrade, url)
    async with JiraSimulator() as sim:
        site = sim.add_site("acme")
        site.reporting.closed.add(CLOSED)
        environ = {
            "DFJ_KEK": base64.b64encode(os.urandom(32)).decode(),
            "DFJ_STATE_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        settings = Settings.from_env(
            {
                "DFJ_JIRA_WORKER_PORT": "0",
                "DFJ_LINKER_PORT": "0",
                "DFJ_DRAIN_GRACE_SECONDS": "2",
                "DFJ_ATLASSIAN_OAUTH_URL": sim.oauth_url,
            },
            env_file=None,
        )
        secrets = EnvSecretStore(environ, env_file=None)
        bus = await LocalBus.open(tmp_path / "bus.sqlite", poll_interval=0.05)
        database = Database.open(url)
        sealed = await EnvelopeCipher(secrets).seal(
            site.shared_secret.encode(), aad=make_aad(site.client_key, "connect-shared-secret")
        )
        await Installations(database).save_connect(
            site.client_key,
            base_url=site.base_url,
            shared_secret_ciphertext=sealed,
            app_key=site.app_key,
        )
        links = UserLinks(database)
        await links.link(site.client_key, account_id=CLOSED, discord_user_id="1300000000000000001")
        await links.link(site.client_key, account_id=ACTIVE, discord_user_id="1300000000000000002")
        stop = asyncio.Event()
        services = [
            await jira_worker(settings, bus=bus, database=database, environ=environ),
            await linker(settings, bus=bus, database=database, secrets=secrets, environ=environ),
        ]
        running = [asyncio.ensure_future(serve(s, stop)) for s in services]
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                left = [link.account_id for link in await links.list_for_site(site.client_key)]
                if left == [ACTIVE]:
                    break
                await asyncio.sleep(0.1)
            assert left == [ACTIVE]
            assert sorted(site.reporting.reported) == sorted([CLOSED, ACTIVE])
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*running), 20)
            await bus.close()
            await database.close()
