"""``make run``'s launcher with credentials: migrate, start four ready processes, stop on Ctrl-C.

(Without credentials it starts the sandbox instead; ``tests/e2e/test_sandbox_page.py`` runs that.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.crossprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are picked (picked one
    by one, the kernel may hand the same port out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def children_of(pid: int) -> list[int]:
    """Child process ids of ``pid``, from /proc (no procps needed on the machine)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _launcher_env(tmp_path: Path) -> dict[str, str]:
    """The real services (an application of our own, not the sandbox) on free ports."""
    ports = free_ports(4)
    names = ("GATEWAY", "JIRA_WORKER", "DISCORD_WORKER", "LINKER")
    return {
        **{k: v for k, v in os.environ.items() if k not in ("DFJ_KEK", "DFJ_STATE_SIGNING_KEY")},
        **{f"DFJ_{name}_PORT": str(port) for name, port in zip(names, ports, strict=True)},
        "DFJ_BUS_PATH": str(tmp_path / "bus.sqlite"),
        "DFJ_DATABASE_URL": f"sqlite:///{tmp_path / 'dfj.sqlite'}",
        "DFJ_DRAIN_GRACE_SECONDS": "2",
        "DFJ_DISCORD_APPLICATION_ID": "1300000000000000001",
        "DFJ_DISCORD_PUBLIC_KEY": "ab" * 32,
        "DFJ_DISCORD_BOT_TOKEN": "test-bot-token-of-the-launcher-test",
        "DFJ_PUBLIC_URL": "https://dfj.example.org",
    }


def _launch(tmp_path: Path) -> subprocess.Popen[str]:
    """``scripts/run.py`` as ``make run`` starts it, with real (not sandbox) settings."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py")],
        env=_launcher_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _until_ready(proc: subprocess.Popen[str], timeout: float = 60) -> list[str]:
    """The launcher's lines up to and including "all 4 services ready" (or its exit)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "all 4 services ready" in line:
            break
    return lines


def test_launcher_brings_up_four_ready_services_and_stops_them(tmp_path: Path) -> None:
    """All four services report ready; SIGINT stops every one of them and the launcher exits 0."""
    proc = _launch(tmp_path)
    try:
        assert proc.stdout is not None
        lines = _until_ready(proc)
        assert any("all 4 services ready" in x for x in lines), "".join(lines)
        for _ in range(3):  # the URLs to give Jira (Forge, Connect) and Discord follow it
            lines.append(proc.stdout.readline())
        said = "".join(lines)
        assert "https://dfj.example.org/atlassian-connect.json" in said
        assert "https://dfj.example.org/discord/interactions" in said
        assert "through Forge" in said and "remote base URL: https://dfj.example.org" in said
        prefixes = {x.split("|", 1)[0].strip() for x in lines if "|" in x}
        assert {"gateway", "jira-worker", "discord-worker", "linker"} <= prefixes
        assert (tmp_path / "dfj.sqlite").exists()  # migrated before the services started
        env_file = tmp_path / ".env"
        written = env_file.read_text()
        assert "DFJ_KEK=" in written
        assert "DFJ_STATE_SIGNING_KEY=" in written
        assert env_file.stat().st_mode & 0o777 == 0o600
        children = children_of(proc.pid)
        assert len(children) == 4
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, rest
        for pid in children:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_services_do_not_outlive_a_launcher_killed_outright(tmp_path: Path) -> None:
    """``kill -9`` of the launcher: the services get SIGTERM from the kernel and exit."""
    proc = _launch(tmp_path)
    children: list[int] = []
    try:
        _until_ready(proc)
        children = children_of(proc.pid)
        assert len(children) == 4
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        alive = children
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in children if _running(pid)]
            time.sleep(0.1)
        assert alive == [], f"still running after the launcher died: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status and "(dead)" not in status


def test_half_configured_credentials_are_named_not_guessed(tmp_path: Path) -> None:
    """Some Discord credentials but not all: exit 2 naming what is missing, start nothing."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DFJ_")},
        "DFJ_DISCORD_APPLICATION_ID": "1300000000000000001",
    }
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "DFJ_DISCORD_PUBLIC_KEY" in out.stderr and "DFJ_DISCORD_BOT_TOKEN" in out.stderr
    assert not (tmp_path / "var").exists()
