"""Process-level helpers: the event loop a service runs on, and the heap it settles at start."""

from __future__ import annotations

import asyncio
import gc

import uvloop

from dfj_common.service import run_main, settle_heap


def test_run_main_runs_on_uvloop() -> None:
    async def which() -> type:
        return type(asyncio.get_running_loop())

    assert issubclass(run_main(which()), uvloop.Loop)


def test_settle_heap_freezes_what_is_alive_and_collects_less_often() -> None:
    kept = [object() for _ in range(100)]
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold()[0] >= 10 * 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
