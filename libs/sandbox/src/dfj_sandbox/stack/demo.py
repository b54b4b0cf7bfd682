"""``make run`` without credentials: the whole product on simulators, with a page to try it.

Starts both simulators and the four services (:class:`~dfj_sandbox.stack.Sandbox`), takes the
cast through the first run — install, connect the server, link Alice, subscribe #general —
and serves the sandbox page (:mod:`dfj_sandbox.stack.page`) until Ctrl-C or SIGTERM, or until
a service dies (then the exit status says which).

    python -m dfj_sandbox.stack.demo [--port 8090] [--workdir var/sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
from pathlib import Path

from aiohttp import web

from dfj_common.logging import configure_logging
from dfj_sandbox.stack.cast import build_cast, first_run
from dfj_sandbox.stack.page import SandboxPage, page_app
from dfj_sandbox.stack.processes import terminal_sink
from dfj_sandbox.stack.sandbox import Sandbox, SandboxError

__all__ = ["fresh", "main", "run"]


MARK = ".dfj-sandbox"


def fresh(workdir: Path) -> None:
    """Empty ``workdir`` for a new run — only if a sandbox made it.

    The simulators keep their state in memory, so yesterday's database would name sites and
    users that no longer exist. A folder without the sandbox's mark (``--workdir .``, a typo)
    is never deleted: SandboxError instead.
    """
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARK).is_file():
            raise SandboxError(f"{workdir} is not empty and not a sandbox's folder; pick another")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARK).write_text("made by dfj_sandbox.stack.demo; emptied on each run\n")


async def run(port: int, workdir: Path, gateway_port: int | None, *, install: str = "forge") -> int:
    """Run the sandbox until a signal (0) or a service's exit (1).

    The site installs the app through Forge, as every new site must since Jira stopped
    installing private Connect apps; ``install="connect"`` shows a site that still runs the
    Connect app.
    """
    say = terminal_sink()
    configure_logging(service="sandbox")
    try:
        fresh(workdir)
    except SandboxError as exc:
        say("sandbox", f"{exc}\n")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Sandbox(workdir=workdir, sink=say, gateway_port=gateway_port) as sandbox:
        cast = build_cast(sandbox)
        try:
            await first_run(sandbox, cast, forge=install == "forge")
        except SandboxError as exc:
            say("sandbox", f"first run failed: {exc}\n")
            return 1
        runner = web.AppRunner(
            page_app(SandboxPage(sandbox, site=cast.site, guild=cast.guild, members=cast.members)),
            access_log=None,
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        say(
            "sandbox",
            f"ready: open http://127.0.0.1:{port}/ — the app is installed ({install}) on"
            f" {cast.site.base_url},"
            f" server {cast.guild.name} is connected, Alice is linked, #general follows DEMO.\n",
        )
        stopping = asyncio.ensure_future(stop.wait())
        crashed = asyncio.ensure_future(sandbox.services.wait_any_exit())
        await asyncio.wait({stopping, crashed}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        crashed.cancel()
        await runner.cleanup()
        dead = sandbox.services.exited()
        if dead and not stop.is_set():
            say("sandbox", f"stopping because {', '.join(dead)} exited\n")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8090, help="the sandbox page's port")
    parser.add_argument("--gateway-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--workdir", type=Path, default=Path("var/sandbox"))
    parser.add_argument(
        "--install",
        choices=("forge", "connect"),
        default="forge",
        help="how the simulated site installs the app (default: forge, as new sites must)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args.port, args.workdir, args.gateway_port, install=args.install))


if __name__ == "__main__":
    sys.exit(main())
