"""The off-loop Ed25519 checker: same answers as inline, before, during and after its thread."""

from __future__ import annotations

import asyncio
import threading

from nacl.signing import SigningKey

from dfj_gateway.discord.offload import SignatureChecker


def _signed(key: SigningKey, n: int) -> tuple[bytes, bytes]:
    message = f'1700000000{{"id": "{n}"}}'.encode()
    return message, key.sign(message).signature


async def test_answers_match_inline_for_a_concurrent_burst() -> None:
    key = SigningKey.generate()
    checker = SignatureChecker(key.verify_key)
    checker.start()
    try:
        cases = []
        for n in range(200):
            message, signature = _signed(key, n)
            if n % 3 == 1:
                message += b" "  # the body changed after signing
            if n % 3 == 2:
                signature = bytes(64)  # not a signature at all
            cases.append((message, signature, n % 3 == 0))
        results = await asyncio.gather(*(checker.valid(m, s) for m, s, _ in cases))
        assert list(results) == [ok for _, _, ok in cases]
        assert any(t.name == "dfj-ed25519" for t in threading.enumerate())
    finally:
        await checker.close()
    assert not any(t.name == "dfj-ed25519" for t in threading.enumerate())


async def test_unstarted_and_closed_checkers_answer_inline() -> None:
    key = SigningKey.generate()
    other = SigningKey.generate()
    checker = SignatureChecker(key.verify_key)
    message, signature = _signed(key, 1)
    assert await checker.valid(message, signature) is True
    assert await checker.valid(message, other.sign(message).signature) is False
    checker.start()
    await checker.close()
    await checker.close()  # idempotent
    assert await checker.valid(message, signature) is True
    assert await checker.valid(message, b"short") is False


async def test_close_finishes_what_was_queued() -> None:
    key = SigningKey.generate()
    checker = SignatureChecker(key.verify_key)
    checker.start()
    pending = [asyncio.ensure_future(checker.valid(*_signed(key, n))) for n in range(50)]
    await asyncio.sleep(0)  # every check is queued before the stop
    await checker.close()
    assert all(await asyncio.gather(*pending))


async def test_on_one_cpu_no_thread_is_started_and_checks_run_inline() -> None:
    key = SigningKey.generate()
    checker = SignatureChecker(key.verify_key, cpus=1)
    checker.start()
    try:
        message, signature = _signed(key, 1)
        assert await checker.valid(message, signature)
        assert not await checker.valid(message + b" ", signature)
        assert not any(t.name == "dfj-ed25519" for t in threading.enumerate())
    finally:
        await checker.close()
