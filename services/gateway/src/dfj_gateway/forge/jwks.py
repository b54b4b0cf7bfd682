"""Forge's signing keys: the JWKS document at ``DFJ_FORGE_JWKS_URL``, cached by ``kid``.

- **Only the configured URL is asked** (no ``jku``/``x5u`` from a token, no redirects).
- **A set, replaced whole.** Each fetch replaces the cached keys, so a key Atlassian withdraws
  from the document stops verifying at the next fetch. Only RSA signing keys of at least
  2048 bits are kept.
- **Refetched when it may be stale**: after ``max_age`` seconds, or when a token names a
  ``kid`` the cached set lacks (a rotation) — but an unknown ``kid`` triggers at most one
  fetch per ``cooldown`` seconds, so forged tokens with made-up kids cannot turn into a
  stream of fetches. Concurrent callers share one fetch.
- **Stale beats nothing**: if a refresh fails, the keys already held keep verifying (the
  failure is logged); with no keys at all the call is refused (401, and Forge retries).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK, PyJWTError

from dfj_common.clock import Clock
from dfj_gateway.forge.fit import ForgeAuthError
from dfj_gateway.reads import TooLarge, read_capped

__all__ = ["ForgeKeyOptions", "ForgeKeys"]

_log: Final = structlog.get_logger("dfj.gateway.forge.jwks")
MAX_JWKS_BYTES: Final = 256 * 1024
MIN_RSA_BITS: Final = 2048


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgeKeyOptions:
    """How the key set is fetched and kept."""

    timeout: float = 3.0
    max_age: float = 3600.0
    cooldown: float = 30.0
    max_keys: int = 64


class ForgeKeys:
    """The current Forge signing keys by ``kid``, from one JWKS URL."""

    def __init__(self, url: str, *, clock: Clock, options: ForgeKeyOptions | None = None) -> None:
        self._url = url
        self._clock = clock
        self._options = options or ForgeKeyOptions()
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None  # monotonic time of the last successful fetch
        self._tried_at: float | None = None  # of the last attempt, successful or not
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0  # HTTP requests made (for metrics and tests)

    async def get(self, kid: str, http: aiohttp.ClientSession) -> RSAPublicKey:
        """The key for ``kid``; :class:`ForgeAuthError` when there is none to be had."""
        now = self._clock.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at >= self._options.max_age
        if stale and self._may_try(now, self._options.cooldown):
            await self._refresh(http, missing=None)
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._may_try(self._clock.monotonic(), self._options.cooldown):
            await self._refresh(http, missing=kid)
            key = self._keys.get(kid)
            if key is not None:
                return key
        if not self._keys:
            raise ForgeAuthError("signing keys unavailable")
        raise ForgeAuthError("unknown kid")

    async def close(self) -> None:
        """Cancel a fetch still under way."""
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _may_try(self, now: float, cooldown: float) -> bool:
        if self._inflight is not None or self._tried_at is None:
            return True
        return now - self._tried_at >= cooldown

    async def _refresh(self, http: aiohttp.ClientSession, *, missing: str | None) -> None:
        task = self._inflight
        if task is None:
            task = asyncio.create_task(self._load(http), name="forge-jwks")
            self._inflight = task
            task.add_done_callback(self._done)
        # Shielded: one caller going away must not cancel the fetch the others wait for.
        try:
            await asyncio.shield(task)
        except ForgeAuthError as exc:
            _log.warning("forge keys not refreshed", why=exc.reason, kid=missing)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited is not "never retrieved"

    async def _load(self, http: aiohttp.ClientSession) -> None:
        self._tried_at = self._clock.monotonic()
        self.fetches += 1
        body = await self._fetch(http)
        keys = _keys_of(body, self._options.max_keys)
        if not keys:
            raise ForgeAuthError("signing keys unusable")
        self._keys = keys
        self._fetched_at = self._clock.monotonic()

    async def _fetch(self, http: aiohttp.ClientSession) -> bytes:
        timeout = self._options.timeout
        try:
            async with asyncio.timeout(timeout):
                async with http.get(
                    self._url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as response:
                    if response.status != 200:
                        raise ForgeAuthError("signing keys unavailable")
                    return await read_capped(response.content, MAX_JWKS_BYTES)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ForgeAuthError("signing keys unavailable") from exc
        except TooLarge as exc:
            raise ForgeAuthError("signing keys unusable") from exc


def _keys_of(body: bytes, limit: int) -> dict[str, RSAPublicKey]:
    """The usable RSA signing keys of a JWKS document, by kid (others are skipped)."""
    try:
        document: Any = orjson.loads(body)
    except (ValueError, RecursionError):
        return {}
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or len(keys) >= limit:
            continue
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or entry.get("kty") != "RSA"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", "RS256") != "RS256"
        ):
            continue
        try:
            key = PyJWK.from_dict(entry, algorithm="RS256").key
        except (PyJWTError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
            keys[kid] = key
    return keys
