"""Each service runs as ``python -m dfj_<name>``, reports ready, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.crossprocess, pytest.mark.slow]

SERVICES = [
    ("dfj_gateway", "DFJ_GATEWAY_PORT"),
    ("dfj_jira_worker", "DFJ_JIRA_WORKER_PORT"),
    ("dfj_discord_worker", "DFJ_DISCORD_WORKER_PORT"),
    ("dfj_linker", "DFJ_LINKER_PORT"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def wait_ready(port: int, proc: subprocess.Popen[bytes], limit: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"service exited with {proc.returncode}")
        try:
            status, body = get(port, "/readyz")
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("service did not become ready")


@pytest.mark.parametrize(("module", "port_var"), SERVICES)
def test_service_starts_reports_ready_and_stops(module: str, port_var: str, tmp_path: Path) -> None:
    """The service answers /healthz and /readyz (bus reachable) and exits 0 on SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        port_var: str(port),
        "DFJ_BUS_PATH": str(tmp_path / "bus.sqlite"),
        "DFJ_DATABASE_URL": f"sqlite:///{tmp_path / 'dfj.sqlite'}",
        "DFJ_DRAIN_GRACE_SECONDS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = wait_ready(port, proc)
        assert body["status"] == "ready"
        assert get(port, "/healthz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
