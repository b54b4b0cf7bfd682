"""``python -m dfj_jira_worker``: run jira-worker until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import os

from dfj_common.config import Settings
from dfj_common.service import install_stop_signals, serve, setup_process
from dfj_jira_worker.bootstrap import SERVICE, bootstrap


async def main(settings: Settings) -> None:
    telemetry = setup_process(SERVICE, settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        await serve(await bootstrap(settings, telemetry=telemetry), stop)
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    asyncio.run(main(Settings.from_env(os.environ)))
