"""Ed25519 checks on a thread of their own, so the event loop keeps serving while they run.

Verifying one signature is ~50 µs of libsodium, the largest single piece of an interaction's
budget. PyNaCl calls it through cffi, which releases the GIL, so on this thread the check runs
on another core while the loop parses, publishes and answers other requests. The hand-over
costs the loop a future and a queue put; requests that arrive together are checked as one
batch and answered with one wake-up of the loop, so that cost does not grow with the load.

Before :meth:`SignatureChecker.start` and after :meth:`SignatureChecker.close` the check runs
inline, so a checker that was never started (a unit test, a shutdown in progress) still
answers correctly, only on the loop. A process allowed onto one CPU only (a one-vCPU
container, a pinned benchmark) never starts the thread: there the check cannot run beside the
loop, and the hand-over would be pure cost — every verification would wait for the loop to
hand the GIL back (measured: 13 ms a check at saturation, against 0.1 ms inline).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from queue import Empty, SimpleQueue
from typing import Final

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

__all__ = ["SignatureChecker"]

# Small enough that the first requests of a burst resume while later ones are still checked.
_MAX_BATCH: Final = 32

_Item = tuple[bytes, bytes, "asyncio.Future[bool]"]


def _valid(key: VerifyKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class SignatureChecker:
    """Verifies ``signature`` over ``message`` with one public key, off the event loop."""

    def __init__(self, key: VerifyKey, *, cpus: int | None = None) -> None:
        self._key = key
        self._cpus = cpus if cpus is not None else len(os.sched_getaffinity(0))
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def key(self) -> VerifyKey:
        return self._key

    def start(self) -> None:
        """Start the checking thread, bound to the running loop (idempotent; not on one CPU)."""
        if self._thread is not None or self._cpus < 2:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name="dfj-ed25519", daemon=True
        )  # daemon: a crashed app must not hang the process on exit
        self._thread.start()

    async def close(self) -> None:
        """Finish what is queued, then stop the thread; later checks run inline."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(thread.join)

    async def valid(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` (64 raw bytes) signs ``message`` with the key."""
        if self._thread is None:
            return _valid(self._key, message, signature)
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put((message, signature, future))
        return await future

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        while (item := self._queue.get()) is not None:
            batch = [item]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            results = [_valid(self._key, message, signature) for message, signature, _ in batch]
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_deliver, batch, results)
            if stop:
                return


def _deliver(batch: list[_Item], results: list[bool]) -> None:
    for (_, _, future), ok in zip(batch, results, strict=True):
        if not future.done():  # a request that was cancelled meanwhile
            future.set_result(ok)
