"""A local-bus client that test_crossprocess.py runs as its own process.

    python consumer_proc.py MODE --bus PATH --spec JSON --events FILE [options]

Modes:

- ``hold``: receive ``--count`` messages, report each as ``holding``, then keep them locked and
  sleep until killed (exits 3 after ``--lifetime`` if nobody kills it).
- ``take``: receive ``--count`` messages one at a time, reporting (``took``) and completing each.
- ``consume``: a competing consumer. Receive up to ``--batch`` messages, handle them concurrently
  (a tiny random sleep), record ``handled`` with session, seq, pid and the monotonic times at
  which it was received and at which its handling ended, then complete it. Stops once the
  ``--stop`` file exists.
- ``publish``: publish ``--count`` messages (ids ``PREFIX-i``) concurrently, in ``--waves``.

Events are JSON lines appended (and flushed) to ``--events``; the first is ``ready``, written once
the receiver is registered on the bus (or the publisher has its connection). Every mode ends
after ``--lifetime`` seconds at the latest, so a test that forgets a process cannot hang on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from dfj_common.bus import Delivery, OutgoingMessage, QueueSpec
from dfj_common.bus.local import LocalBus
from dfj_common.errors import LockLost

EXIT_LIFETIME = 2
EXIT_NOT_KILLED = 3


class Events:
    """One JSON object per line, flushed at once so the test sees it while we run."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "pid": os.getpid(), "t": time.monotonic(), **fields}
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()


def describe(d: Delivery) -> dict[str, Any]:
    return {
        "message_id": d.message_id,
        "session_id": d.session_id,
        "delivery_count": d.delivery_count,
        "body": d.body.decode(errors="replace"),
    }


async def hold(bus: LocalBus, spec: QueueSpec, args: argparse.Namespace, events: Events) -> int:
    receiver = bus.receiver(spec.name)
    events.emit("ready")
    held: list[Delivery] = []
    while len(held) < args.count:
        held.extend(await receiver.receive(args.count - len(held), timeout=args.lifetime))
    for d in held:
        events.emit("holding", **describe(d))
    events.emit("held_all", count=len(held))
    await asyncio.sleep(args.lifetime)  # keep the locks; the test kills us meanwhile
    return EXIT_NOT_KILLED


async def take(bus: LocalBus, spec: QueueSpec, args: argparse.Namespace, events: Events) -> int:
    receiver = bus.receiver(spec.name)
    events.emit("ready")
    for _ in range(args.count):
        got: list[Delivery] = []
        while not got:
            got = await receiver.receive(1, timeout=args.lifetime)
        events.emit("took", **describe(got[0]))
        await got[0].complete()
        events.emit("completed", message_id=got[0].message_id)
    await receiver.close()
    return 0


async def consume(bus: LocalBus, spec: QueueSpec, args: argparse.Namespace, events: Events) -> int:
    receiver = bus.receiver(spec.name)
    rng = random.Random(os.getpid())
    stop = Path(args.stop)
    got = await receiver.receive(args.batch, timeout=0.0)  # registers us as a listener
    events.emit("ready")

    async def handle(d: Delivery, start: float) -> None:
        payload = json.loads(d.body)
        await asyncio.sleep(rng.uniform(0.0, args.max_sleep))
        end = time.monotonic()  # the handling is over; settling only follows it
        try:
            await d.complete()
        except LockLost:
            events.emit("lost", session=payload["session"], seq=payload["seq"])
            return
        events.emit(
            "handled",
            session=payload["session"],
            seq=payload["seq"],
            start=start,
            end=end,
            delivery_count=d.delivery_count,
        )

    while True:
        if got:
            received = time.monotonic()  # each is in flight from here until it is settled
            await asyncio.gather(*(handle(d, received) for d in got))
        if await asyncio.to_thread(stop.exists):
            break
        got = await receiver.receive(args.batch, timeout=0.2)
    await receiver.close()
    events.emit("stopped")
    return 0


async def publish(bus: LocalBus, spec: QueueSpec, args: argparse.Namespace, events: Events) -> int:
    events.emit("ready")
    per_wave = -(-args.count // args.waves)
    for wave in range(args.waves):
        ids = range(wave * per_wave, min((wave + 1) * per_wave, args.count))
        await asyncio.gather(
            *(
                bus.publish(
                    spec.name,
                    OutgoingMessage(body=f"{i}".encode(), message_id=f"{args.prefix}-{i}"),
                )
                for i in ids
            )
        )
        events.emit("published", wave=wave, count=len(ids))
        await asyncio.sleep(0.02)
    events.emit("done")
    return 0


MODES = {"hold": hold, "take": take, "consume": consume, "publish": publish}


async def run(args: argparse.Namespace, events: Events) -> int:
    spec = QueueSpec(**json.loads(args.spec))
    bus = await LocalBus.open(
        args.bus, topology={spec.name: spec}, poll_interval=args.poll_interval
    )
    try:
        return await asyncio.wait_for(MODES[args.mode](bus, spec, args, events), args.lifetime)
    except TimeoutError:
        events.emit("lifetime_over")
        return EXIT_LIFETIME
    finally:
        await bus.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--bus", required=True, help="path of the shared bus file")
    parser.add_argument("--spec", required=True, help="the queue's QueueSpec fields as JSON")
    parser.add_argument("--events", required=True, help="JSON-lines file to append events to")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--waves", type=int, default=1)
    parser.add_argument("--prefix", default="msg")
    parser.add_argument("--stop", default="", help="consume: stop once this file exists")
    parser.add_argument("--max-sleep", type=float, default=0.002)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--lifetime", type=float, default=25.0)
    args = parser.parse_args(argv)
    with Path(args.events).open("a", encoding="utf-8") as out:
        return asyncio.run(run(args, Events(out)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
