"""docker-compose's ``sandbox`` profile: ``make run``'s sandbox in a container, page reachable.

``python -m dfj_sandbox.stack.demo`` runs both simulators and starts the four services itself
(local bus, SQLite, inside this container) and serves its page on 127.0.0.1 only, which a
published port cannot reach. This starts the demo with its page on ``PAGE_PORT`` and forwards
``0.0.0.0:LISTEN_PORT`` to it, so ``http://localhost:8090`` works from the host (compose
publishes the port on the host's loopback only). SIGTERM and SIGINT go to the demo, which
drains its services; this exits with the demo's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Final

LISTEN_PORT: Final = int(os.environ.get("SANDBOX_LISTEN_PORT", "8090"))
PAGE_PORT: Final = int(os.environ.get("SANDBOX_PAGE_PORT", "8091"))
_CHUNK: Final = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _forward(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
    try:
        page_reader, page = await asyncio.open_connection("127.0.0.1", PAGE_PORT)
    except OSError:
        client.close()  # the page is not up yet: the browser retries
        return
    await asyncio.gather(_pipe(client_reader, page), _pipe(page_reader, client))


async def main() -> int:
    """Run the demo and the forwarder until the demo exits."""
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dfj_sandbox.stack.demo", "--port", str(PAGE_PORT)
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, demo.send_signal, sig)
    server = await asyncio.start_server(_forward, "0.0.0.0", LISTEN_PORT)  # noqa: S104
    async with server:
        return await demo.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
