"""``python -m dfj_gateway``: serve the gateway until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import os

import structlog
from aiohttp import web

from dfj_common.config import Settings
from dfj_common.service import install_stop_signals, run_main, settle_heap, setup_process
from dfj_gateway.app import MAX_FIELD_SIZE, SERVICE, create_app

_log = structlog.get_logger("dfj.gateway")


async def main(settings: Settings) -> None:
    telemetry = setup_process(SERVICE, settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    runner = web.AppRunner(
        create_app(settings, environ=os.environ), access_log=None, max_field_size=MAX_FIELD_SIZE
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.bind_host, settings.gateway_port)
    await site.start()
    settle_heap()
    _log.info("started", service="gateway", port=settings.gateway_port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        _log.info("stopped", service="gateway")
        telemetry.shutdown()


if __name__ == "__main__":
    run_main(main(Settings.from_env(os.environ)))
