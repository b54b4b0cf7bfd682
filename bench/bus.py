"""Local bus benchmark: throughput and publish→handle latency, against a bare SQLite baseline.

Everything runs in this one invocation, on this machine, so the ratios compare like with like:

- **baseline**: a bare SQLite queue — one producer process inserting, one consumer process
  claiming and deleting, one transaction per step, WAL with the same ``synchronous`` setting.
- **bus, 1 and 2 consumers**: a producer process publishing through ``LocalBus`` (concurrent
  publishes, as a busy gateway makes them) and consumer processes running the real worker
  runtime (``dfj_common.runtime.Worker``): decode the CloudEvent, dispatch by type, complete.
  Throughput counts from the first publish to the last completion.
- **latency**: the producer paces 1,000 messages/s; each message carries its publish time and
  the handler records publish → handle.

Targets (from the foundation issue): throughput ≥ 0.6x the baseline with one consumer process,
and p99 < 10 ms at 1,000 messages/s. They are reported, not asserted.

    python bench/bus.py [--messages N] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from dfj_common.bus import JIRA_COMMANDS, TOPOLOGY, OutgoingMessage
from dfj_common.bus.local import LocalBus
from dfj_common.envelope import Envelope
from dfj_common.runtime import HandlerContext, Worker

QUEUE = JIRA_COMMANDS
EVENT_TYPE = "bench.ping"
PAYLOAD = "x" * 256


# -- baseline ---------------------------------------------------------------------------------


def _baseline_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def baseline_producer(path: str, count: int) -> None:
    conn = _baseline_connect(path)
    body = PAYLOAD.encode()
    for _ in range(count):
        conn.execute("INSERT INTO q (body, claimed) VALUES (?, 0)", (body,))  # one tx each


def baseline_consumer(path: str, count: int) -> None:
    conn = _baseline_connect(path)
    done = 0
    while done < count:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "UPDATE q SET claimed = 1 WHERE id = (SELECT id FROM q WHERE claimed = 0"
            " ORDER BY id LIMIT 1) RETURNING id, body"
        ).fetchone()
        conn.execute("COMMIT")
        if row is None:
            time.sleep(0.0005)
            continue
        conn.execute("DELETE FROM q WHERE id = ?", (row[0],))
        done += 1
    print(json.dumps({"done": done, "end": time.time()}), flush=True)


def run_baseline(workdir: Path, count: int) -> float:
    path = str(workdir / "baseline.sqlite")
    conn = _baseline_connect(path)
    conn.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, body BLOB, claimed INTEGER)")
    conn.execute("CREATE INDEX q_claimed ON q (claimed, id)")
    conn.close()
    consumer = _spawn("baseline-consumer", path, str(count))
    start = time.time()
    producer = _spawn("baseline-producer", path, str(count))
    producer.wait()
    out, _ = consumer.communicate(timeout=300)
    end = float(json.loads(out.strip().splitlines()[-1])["end"])
    return count / (end - start)


# -- the bus ----------------------------------------------------------------------------------


async def _producer(path: str, count: int, rate: float, concurrency: int) -> None:
    bus = await LocalBus.open(path)
    interval = 1.0 / rate if rate > 0 else 0.0
    sem = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(i: int) -> None:
        try:
            envelope = Envelope(
                id=f"bench-{i}",
                source="bench",
                type=EVENT_TYPE,
                data={"t": time.time(), "pad": PAYLOAD},
            )
            await bus.publish(QUEUE, OutgoingMessage.from_envelope(envelope))
        finally:
            sem.release()

    tasks = []
    for i in range(count):
        if interval:
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await sem.acquire()
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    await bus.close()


async def _consumer(path: str, results: str) -> None:
    # Warnings only, as a production worker logs at info: a debug line per message is noise.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    bus = await LocalBus.open(path)
    latencies: list[float] = []

    async def handle(envelope: Envelope, _ctx: HandlerContext) -> None:
        latencies.append(time.time() - float(envelope.data["t"]))

    worker = Worker(bus, TOPOLOGY[QUEUE], {EVENT_TYPE: handle}, concurrency=64)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    sys.stdout.close()  # nobody reads further; a full pipe must never block the worker
    await worker.run(stop)
    await bus.close()
    payload = json.dumps({"completed": worker.stats.completed, "lat": latencies})
    await asyncio.to_thread(Path(results).write_text, payload)


def _spawn(role: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role, *args],
        stdout=subprocess.PIPE,
        text=True,
    )


def run_bus(workdir: Path, name: str, count: int, consumers: int, rate: float) -> dict[str, Any]:
    path = str(workdir / f"{name}.sqlite")
    asyncio.run(_init(path))
    procs = []
    for c in range(consumers):
        proc = _spawn("consumer", path, str(workdir / f"{name}-{c}.json"))
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready"
        procs.append(proc)
    start = time.time()
    producer = _spawn("producer", path, str(count), str(rate))
    producer.wait()
    end = _wait_empty(path)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=60)
    merged: dict[str, Any] = {"completed": 0, "lat": []}
    for c in range(consumers):
        part = json.loads((workdir / f"{name}-{c}.json").read_text())
        merged["completed"] += part["completed"]
        merged["lat"].extend(part["lat"])
    lat = sorted(merged["lat"])
    return {
        "completed": merged["completed"],
        "throughput": merged["completed"] / (end - start),
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1],
    }


async def _init(path: str) -> None:
    bus = await LocalBus.open(path)
    await bus.close()


def _wait_empty(path: str) -> float:
    """The moment the last message was completed (completed messages are deleted)."""
    conn = sqlite3.connect(path)
    try:
        while conn.execute(
            "SELECT COUNT(*) FROM messages WHERE queue = ? AND state = 0", (QUEUE,)
        ).fetchone()[0]:
            time.sleep(0.002)
        return time.time()
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", default="main")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    if args.role == "baseline-producer":
        baseline_producer(args.rest[0], int(args.rest[1]))
        return
    if args.role == "baseline-consumer":
        baseline_consumer(args.rest[0], int(args.rest[1]))
        return
    if args.role == "producer":
        asyncio.run(_producer(args.rest[0], int(args.rest[1]), float(args.rest[2]), 64))
        return
    if args.role == "consumer":
        asyncio.run(_consumer(args.rest[0], args.rest[1]))
        return

    with tempfile.TemporaryDirectory(prefix="dfj-bench-") as tmp:
        workdir = Path(tmp)
        n = args.messages
        print(f"local bus benchmark — {n} messages, {os.cpu_count()} cores")
        base = run_baseline(workdir, n)
        one = run_bus(workdir, "one", n, 1, 0)
        two = run_bus(workdir, "two", n, 2, 0)
        paced = run_bus(workdir, "paced", int(args.rate * args.seconds), 1, args.rate)
        paced2 = run_bus(workdir, "paced2", int(args.rate * args.seconds), 2, args.rate)
    rows = [
        ("baseline: bare SQLite queue, 1 tx/step", base, None, None),
        ("bus, 1 consumer process (saturated)", one["throughput"], one["p50_ms"], one["p99_ms"]),
        ("bus, 2 consumer processes (saturated)", two["throughput"], two["p50_ms"], two["p99_ms"]),
        (
            f"bus, 1 consumer at {args.rate:.0f}/s",
            paced["throughput"],
            paced["p50_ms"],
            paced["p99_ms"],
        ),
        (
            f"bus, 2 consumers at {args.rate:.0f}/s",
            paced2["throughput"],
            paced2["p50_ms"],
            paced2["p99_ms"],
        ),
    ]
    print(f"{'case':<42}{'msg/s':>10}{'x base':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for label, rate, p50, p99 in rows:
        p50s = "-" if p50 is None else f"{p50:.2f}"
        p99s = "-" if p99 is None else f"{p99:.2f}"
        print(f"{label:<42}{rate:>10.0f}{rate / base:>8.2f}{p50s:>9}{p99s:>9}")
    ratio = one["throughput"] / base
    print(
        f"target throughput >= 0.6x baseline with 1 consumer: {ratio:.2f}x "
        f"{'PASS' if ratio >= 0.6 else 'FAIL'}"
    )
    print(
        f"target p99 < 10 ms at {args.rate:.0f} msg/s: {paced['p99_ms']:.2f} ms "
        f"{'PASS' if paced['p99_ms'] < 10 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
