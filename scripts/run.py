"""``make run``: the sandbox without credentials, the four real services with them.

With no Discord application configured (``DFJ_DISCORD_APPLICATION_ID``, ``_PUBLIC_KEY``,
``_BOT_TOKEN`` in the environment or ``.env``), it runs :mod:`dfj_sandbox.stack.demo`: both
simulators, the four services, the first run done for you, and the sandbox page. With them, it
migrates the embedded database, runs the four services as separate processes and prints the
two URLs to give Jira and Discord.

Each process's output is prefixed with its name. Ctrl-C (or SIGTERM) stops them all: SIGTERM
first, so workers drain, then SIGKILL after the grace period. If one service dies, the rest are
stopped too and the exit status says so.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from pathlib import Path
from typing import Final

from dotenv import dotenv_values

from dfj_common.config import Settings
from dfj_sandbox.stack import demo as sandbox_demo
from dfj_sandbox.stack.processes import ServiceProcesses, terminal_sink

GRACE: Final = 30.0


def ensure_local_keys(env_file: Path) -> None:
    """Give a one-machine install the keys it needs: a KEK and the OAuth state-signing key.

    Generated once into ``.env`` (never overwritten, readable only by this user); operators
    with Key Vault or their own environment set the same names and this does nothing.
    """
    have = env_file.read_text() if env_file.exists() else ""
    missing = [
        name
        for name in ("DFJ_KEK", "DFJ_STATE_SIGNING_KEY")
        if name not in os.environ and f"{name}=" not in have
    ]
    if not missing:
        return
    lines = [f"{name}={base64.b64encode(os.urandom(32)).decode()}" for name in missing]
    prefix = "" if not have or have.endswith("\n") else "\n"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(prefix + "\n".join(lines) + "\n")
    print(f"wrote new {', '.join(missing)} to {env_file} (keep this file private)")


CREDENTIALS: Final = (
    "DFJ_DISCORD_APPLICATION_ID",
    "DFJ_DISCORD_PUBLIC_KEY",
    "DFJ_DISCORD_BOT_TOKEN",
)


def configured(env_file: Path) -> list[str]:
    """Which of the Discord application's credentials are set (environment or ``.env``)."""
    have = dotenv_values(env_file) if env_file.is_file() else {}
    return [name for name in CREDENTIALS if os.environ.get(name) or have.get(name)]


async def run_for_real() -> int:
    """Migrate, then run the four services until Ctrl-C/SIGTERM or until one of them exits."""
    ensure_local_keys(Path(".env"))
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dfj_common.cli", "migrate"
    )
    if await migrate.wait() != 0:
        print("migration failed", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    services = ServiceProcesses(os.environ, sink=terminal_sink(), grace=GRACE)
    await services.start()

    async def announce_ready() -> None:
        try:
            await services.wait_ready(timeout=60)
        except RuntimeError as exc:
            print(f"services not ready: {exc}", file=sys.stderr)
            return
        public = Settings.from_env(os.environ).public_url.rstrip("/")
        print(
            f"all {len(services.names)} services ready: gateway on "
            f"http://127.0.0.1:{services.port('gateway')}\n"
            f"  install in Jira through Forge (forge/README.md), remote base URL: {public}\n"
            f"  Connect descriptor (sites that already run the Connect app): "
            f"{public}/atlassian-connect.json\n"
            f"  Discord interactions endpoint URL: {public}/discord/interactions",
            flush=True,
        )

    readiness = asyncio.ensure_future(announce_ready())
    stopping = asyncio.ensure_future(stop.wait())
    crashed = asyncio.ensure_future(services.wait_any_exit())
    await asyncio.wait({stopping, crashed}, return_when=asyncio.FIRST_COMPLETED)
    for task in (readiness, stopping, crashed):
        task.cancel()
    dead = services.exited()
    await services.stop()
    if dead and not stop.is_set():
        print(f"stopped because {', '.join(dead)} exited", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    """Real services when Discord credentials are configured, the sandbox otherwise."""
    have = configured(Path(".env"))
    if not have:
        print("no Discord credentials configured: starting the sandbox (simulated Jira, Discord)")
        return sandbox_demo.main(sys.argv[1:])
    missing = [name for name in CREDENTIALS if name not in have]
    if missing:
        print(f"set {', '.join(missing)} too (or none of them, for the sandbox)", file=sys.stderr)
        return 2
    return asyncio.run(run_for_real())


if __name__ == "__main__":
    sys.exit(main())
