"""The four services as separate operating-system processes, as they run in production.

``make run``, the end-to-end suite and the end-to-end benchmark all start the services the
same way: ``python -m dfj_<service>`` with one environment, each in its own session (so a
Ctrl-C at the terminal reaches only the supervisor, which forwards SIGTERM itself), each
answering ``/readyz`` on its own port. What a service prints goes to a sink: prefixed lines on
the terminal for ``make run``, one log file per service for tests (read back when a test
fails, never captured by pytest, so the suite's leak guard judges only what tests print).

Stopping is SIGTERM first — workers drain their in-flight messages — then SIGKILL after the
grace period. :meth:`ServiceProcesses.kill` sends any signal to one service (the chaos test's
``kill -9``) and :meth:`ServiceProcesses.restart` starts it again with the same environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import signal
import socket
import sys
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

__all__ = [
    "SERVICES",
    "ServiceProcesses",
    "ServiceSpec",
    "file_sink",
    "free_ports",
    "terminal_sink",
]


_PR_SET_PDEATHSIG: Final = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that has Linux send the child SIGTERM when its parent dies.

    Each service runs in its own session (Ctrl-C reaches only the launcher, which stops them
    in order), so a launcher killed outright (``kill -9``, an out-of-memory kill) would leave
    them running, holding their ports and the bus. With the parent-death signal they drain and
    exit as on any SIGTERM. Not on other systems (the sandbox is Linux-first). libc is loaded
    here, in the parent: the hook itself only makes the one call, as is safe after ``fork``.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: its name, its module (``python -m``) and the setting naming its port."""

    name: str
    module: str
    port_setting: str
    default_port: int


SERVICES: Final = (
    ServiceSpec("gateway", "dfj_gateway", "DFJ_GATEWAY_PORT", 8080),
    ServiceSpec("jira-worker", "dfj_jira_worker", "DFJ_JIRA_WORKER_PORT", 8081),
    ServiceSpec("discord-worker", "dfj_discord_worker", "DFJ_DISCORD_WORKER_PORT", 8082),
    ServiceSpec("linker", "dfj_linker", "DFJ_LINKER_PORT", 8083),
)

Sink = Callable[[str, str], None]
"""Receives (service name, one line of its output, newline included)."""

_COLOURS: Final = ("\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m")
_RESET: Final = "\033[0m"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports, all held open until every one is picked.

    Picked one at a time (bind, read, close), the kernel may hand the same port out twice.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]


def terminal_sink(stream: TextIO | None = None) -> Sink:
    """Each line behind its service's name, coloured on a terminal."""
    out = stream or sys.stdout
    tty = out.isatty()
    colours: dict[str, str] = {}

    def write(name: str, line: str) -> None:
        label = f"{name:<14}|"
        if tty:
            colour = colours.setdefault(name, _COLOURS[len(colours) % len(_COLOURS)])
            label = f"{colour}{label}{_RESET}"
        out.write(f"{label} {line}")
        out.flush()

    return write


def file_sink(directory: Path) -> Sink:
    """Each service's lines appended to ``directory/<name>.log``."""
    directory.mkdir(parents=True, exist_ok=True)

    def write(name: str, line: str) -> None:
        with (directory / f"{name}.log").open("a", encoding="utf-8") as out:
            out.write(line)

    return write


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return bool(json.load(resp).get("status") == "ready")
    except (OSError, ValueError):
        return False


class ServiceProcesses:
    """Start, watch, signal and stop the services of one environment."""

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        sink: Sink,
        cwd: Path | None = None,
        services: Iterable[ServiceSpec] = SERVICES,
        python: str = sys.executable,
        grace: float = 30.0,
    ) -> None:
        self._environ = dict(environ)
        self._sink = sink
        self._cwd = cwd
        self._services = {spec.name: spec for spec in services}
        self._python = python
        self._grace = grace
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = dict.fromkeys(self._services, 0)

    @property
    def names(self) -> list[str]:
        """The services, in start order."""
        return list(self._services)

    def port(self, name: str) -> int:
        """The port ``name`` listens on (from the environment, else its default)."""
        spec = self._services[name]
        return int(self._environ.get(spec.port_setting, spec.default_port))

    def pid(self, name: str) -> int | None:
        """The running process id of ``name``, None when it is not running."""
        proc = self._procs.get(name)
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self, names: Iterable[str] | None = None) -> None:
        """Start ``names`` (default: every service) that are not running."""
        for name in list(names) if names is not None else self.names:
            if self.pid(name) is None:
                await self._spawn(name)

    async def _spawn(self, name: str) -> None:
        spec = self._services[name]
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            spec.module,
            env=self._environ,
            cwd=self._cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        assert proc.stdout is not None
        self._procs[name] = proc
        self._pumps[name] = asyncio.ensure_future(self._pump(name, proc.stdout))

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._sink(name, line.decode("utf-8", "replace"))

    async def wait_ready(self, names: Iterable[str] | None = None, timeout: float = 60.0) -> None:
        """Wait until each service answers ``/readyz`` with ready; RuntimeError otherwise."""
        wanted = list(names) if names is not None else self.names
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            dead = self.exited(wanted)
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited before becoming ready")
            states = await asyncio.gather(
                *(asyncio.to_thread(_ready, self.port(n)) for n in wanted)
            )
            if all(states):
                return
            if loop.time() > deadline:
                late = [n for n, ok in zip(wanted, states, strict=True) if not ok]
                raise RuntimeError(f"{', '.join(late)} not ready within {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def exited(self, names: Iterable[str] | None = None) -> list[str]:
        """The services among ``names`` that were started and have exited since."""
        wanted = list(names) if names is not None else self.names
        return [n for n in wanted if n in self._procs and self._procs[n].returncode is not None]

    async def wait_any_exit(self) -> list[str]:
        """Wait until some service exits; the names of those that have."""
        waits = [asyncio.ensure_future(p.wait()) for p in self._procs.values()]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self.exited()

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to ``name`` and wait for it to exit."""
        proc = self._procs.get(name)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        await proc.wait()
        await asyncio.gather(self._pumps.pop(name), return_exceptions=True)

    async def restart(self, name: str) -> None:
        """Start ``name`` again (after :meth:`kill` or a crash) and wait until it is ready."""
        await self.kill(name)
        await self._spawn(name)
        self.restarts[name] += 1
        await self.wait_ready([name])

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM every running service, SIGKILL what is left after the grace period.

        Returns each service's exit status.
        """
        running = {n: p for n, p in self._procs.items() if p.returncode is None}
        for proc in running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        waits = {n: asyncio.ensure_future(p.wait()) for n, p in running.items()}
        if waits:
            await asyncio.wait(waits.values(), timeout=self._grace)
        for name, wait in waits.items():
            if not wait.done():
                self._sink(name, f"did not stop within {self._grace:.0f} s; killing it\n")
                with contextlib.suppress(ProcessLookupError):
                    running[name].kill()
        await asyncio.gather(*waits.values())
        await asyncio.gather(*self._pumps.values(), return_exceptions=True)
        self._pumps.clear()
        return {name: proc.returncode for name, proc in self._procs.items()}
