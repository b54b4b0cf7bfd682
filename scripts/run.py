"""``make run``: migrate the embedded database, then run the four services as separate processes.

Each process's output is prefixed with its name. Ctrl-C (or SIGTERM) stops them all: SIGTERM
first, so workers drain, then SIGKILL after the grace period. If one service dies, the rest are
stopped too and the exit status says so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Final

SERVICES: Final = (
    ("gateway", "dfj_gateway", "DFJ_GATEWAY_PORT", 8080),
    ("jira-worker", "dfj_jira_worker", "DFJ_JIRA_WORKER_PORT", 8081),
    ("discord-worker", "dfj_discord_worker", "DFJ_DISCORD_WORKER_PORT", 8082),
    ("linker", "dfj_linker", "DFJ_LINKER_PORT", 8083),
)
COLOURS: Final = ("\033[36m", "\033[33m", "\033[35m", "\033[32m")
RESET: Final = "\033[0m"
GRACE: Final = 30.0


def _prefix(name: str, index: int) -> str:
    tty = sys.stdout.isatty()
    label = f"{name:<14}|"
    return f"{COLOURS[index % len(COLOURS)]}{label}{RESET} " if tty else f"{label} "


async def _pump(stream: asyncio.StreamReader, prefix: str) -> None:
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode("utf-8", "replace"))
        sys.stdout.flush()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return bool(json.load(resp).get("status") == "ready")
    except (OSError, ValueError):
        return False


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


async def main() -> int:
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
    procs: list[tuple[str, asyncio.subprocess.Process]] = []
    pumps = []
    for index, (name, module, _, _) in enumerate(SERVICES):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we forward SIGTERM ourselves
        )
        assert proc.stdout is not None
        procs.append((name, proc))
        pumps.append(asyncio.ensure_future(_pump(proc.stdout, _prefix(name, index))))

    async def announce_ready() -> None:
        ports = [int(os.environ.get(var, default)) for _, _, var, default in SERVICES]
        for _ in range(120):
            states = await asyncio.gather(*(asyncio.to_thread(_ready, p) for p in ports))
            if all(states):
                print(f"all {len(SERVICES)} services ready: gateway on http://127.0.0.1:{ports[0]}")
                return
            await asyncio.sleep(0.5)
        print("services did not all report ready within 60 s", file=sys.stderr)

    readiness = asyncio.ensure_future(announce_ready())
    exited = [asyncio.ensure_future(p.wait()) for _, p in procs]
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({stopping, *exited}, return_when=asyncio.FIRST_COMPLETED)
    crashed = [name for (name, p) in procs if p.returncode is not None]
    readiness.cancel()
    for _, p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    await asyncio.wait(exited, timeout=GRACE)
    for name, p in procs:
        if p.returncode is None:
            print(f"{name} did not stop within {GRACE:.0f}s; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
    await asyncio.gather(*exited, *pumps, return_exceptions=True)
    if crashed and not stop.is_set():
        print(f"stopped because {', '.join(crashed)} exited", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
