"""Smoke test of the compose stack: ``docker compose run --rm smoke`` after ``docker compose up``.

Runs in the gateway image on the compose network and checks, through the services' own HTTP
endpoints only:

1. the gateway is ready (``/readyz``: it reaches the Service Bus emulator and SQL Server, with
   the schema the ``migrate`` service applied);
2. each worker is alive (``/healthz``);
3. the Connect descriptor names ``DFJ_PUBLIC_URL`` and ``DFJ_APP_KEY``;
4. an unsigned Discord interaction is refused (401) and a signed PING gets its PONG, signed
   with the development key whose public half compose gives the gateway
   (``SMOKE_DISCORD_SIGNING_SEED``; skipped when unset, e.g. with a real application's key).

Workers are asked for ``/healthz`` rather than ``/readyz`` on purpose: a readiness check opens
one more AMQP connection per process, and the emulator allows ten per namespace in all.
Prints one line per check and a closing ``N passed, N failed`` line; exits 1 on any failure.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Final

GATEWAY: Final = os.environ.get("SMOKE_GATEWAY_URL", "http://gateway:8080")
WORKERS: Final = {
    "jira-worker": os.environ.get("SMOKE_JIRA_WORKER_URL", "http://jira-worker:8081"),
    "discord-worker": os.environ.get("SMOKE_DISCORD_WORKER_URL", "http://discord-worker:8082"),
    "linker": os.environ.get("SMOKE_LINKER_URL", "http://linker:8083"),
}
WAIT_SECONDS: Final = float(os.environ.get("SMOKE_WAIT_SECONDS", "180"))


class CheckFailed(Exception):
    """One check did not come out as expected."""


def _request(
    url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _until_ok(url: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = _request(url)
        except OSError as exc:
            last = type(exc).__name__
        else:
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        time.sleep(2)
    raise CheckFailed(f"{url} not 200 after {WAIT_SECONDS:.0f} s: {last}")


def gateway_ready() -> str:
    _until_ok(GATEWAY + "/readyz")
    return "gateway /readyz: bus and database answer"


def workers_alive() -> str:
    for base in WORKERS.values():
        _until_ok(base + "/healthz")
    return "workers /healthz: " + ", ".join(WORKERS)


def descriptor() -> str:
    status, body = _request(GATEWAY + "/atlassian-connect.json")
    if status != 200:
        raise CheckFailed(f"descriptor answered {status}")
    doc = json.loads(body)
    public_url = os.environ.get("DFJ_PUBLIC_URL", "http://localhost:8080").rstrip("/")
    app_key = os.environ.get("DFJ_APP_KEY", "discord-for-jira")
    if doc.get("baseUrl", "").rstrip("/") != public_url or doc.get("key") != app_key:
        raise CheckFailed(f"descriptor has baseUrl={doc.get('baseUrl')!r} key={doc.get('key')!r}")
    return f"descriptor: key {app_key}, baseUrl {public_url}"


def _ping_body() -> bytes:
    interaction = {
        "id": str(10**17 + secrets.randbelow(10**17)),
        "application_id": os.environ.get("DFJ_DISCORD_APPLICATION_ID") or "1",
        "type": 1,
        "token": "smoke-" + secrets.token_hex(8),
        "version": 1,
    }
    return json.dumps(interaction).encode()


def interactions() -> str:
    url = GATEWAY + "/discord/interactions"
    json_type = {"Content-Type": "application/json"}
    status, _ = _request(url, body=_ping_body(), headers=json_type)
    if status != 401:
        raise CheckFailed(f"an unsigned interaction answered {status}, not 401")
    seed = os.environ.get("SMOKE_DISCORD_SIGNING_SEED", "")
    if not seed:
        return "interactions: unsigned refused (signed PING skipped: no signing seed)"
    from nacl.signing import SigningKey

    body = _ping_body()
    timestamp = str(int(time.time()))
    signature = SigningKey(bytes.fromhex(seed)).sign(timestamp.encode() + body).signature
    headers = {
        **json_type,
        "X-Signature-Ed25519": signature.hex(),
        "X-Signature-Timestamp": timestamp,
    }
    status, answer = _request(url, body=body, headers=headers)
    if status != 200 or json.loads(answer).get("type") != 1:
        raise CheckFailed(f"a signed PING answered {status} {answer[:200]!r}, not PONG")
    return "interactions: unsigned refused, signed PING answered PONG"


CHECKS: Final[tuple[Callable[[], str], ...]] = (
    gateway_ready,
    workers_alive,
    descriptor,
    interactions,
)


def main() -> int:
    """Run every check; the exit status is 0 only when all passed."""
    passed = failed = 0
    for check in CHECKS:
        try:
            print(f"ok      {check()}", flush=True)
            passed += 1
        except (CheckFailed, OSError, ValueError) as exc:
            print(f"FAILED  {check.__name__}: {exc}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
