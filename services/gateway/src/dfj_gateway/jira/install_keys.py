"""Atlassian's signed-install public keys, fetched by ``kid`` and cached by ``kid``.

``installed`` and ``uninstalled`` callbacks are RS256 tokens whose header names a ``kid``; the
public key is ``GET {DFJ_ATLASSIAN_INSTALL_KEYS_URL}/{kid}``, a PEM document (reference §3.3).

- **Only the configured base URL is ever asked.** Nothing in the token (no ``jku``, ``x5u``, no
  URL from the body) chooses where a key comes from, and redirects are not followed.
- **The kid's shape is checked before a URL is built from it**: letters, digits, ``.``, ``_``
  and ``-``, at most 128 characters, starting with a letter or digit — no ``/``, ``?``, ``%``
  or ``..`` segments can steer the request elsewhere on the host. (Atlassian's kids are UUIDs
  in every sample we know of; that they never contain ``/`` is an assumption.)
- **Cached by kid, for the life of the process** (bounded): Atlassian gives a rotated key a
  new kid, so a cached kid never goes stale. Concurrent requests for one kid share one fetch.
- A kid the key server does not know (404, or a body that is not an RSA public key) is
  remembered for :attr:`InstallKeyOptions.negative_ttl` seconds, so a stream of forged tokens
  cannot turn into a stream of fetches. Time-outs and network errors are not remembered.
- Every failure is a :class:`~dfj_gateway.jira.connect_jwt.JiraAuthError` (a 401 for the
  caller, never a 500): without the key the request cannot be authenticated.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import aiohttp
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from dfj_common.clock import Clock
from dfj_gateway.jira.connect_jwt import JiraAuthError
from dfj_gateway.reads import TooLarge, read_capped

__all__ = ["KID_PATTERN", "InstallKeyOptions", "InstallKeys"]

KID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_PEM_BYTES: Final = 16 * 1024
MIN_RSA_BITS: Final = 2048


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallKeyOptions:
    """How keys are fetched and how many are kept."""

    timeout: float = 3.0
    max_keys: int = 256
    negative_ttl: float = 60.0


class InstallKeys:
    """Public keys by kid from one key server (``base_url``), over the app's HTTP session."""

    def __init__(
        self,
        base_url: str,
        *,
        clock: Clock,
        options: InstallKeyOptions | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._options = options or InstallKeyOptions()
        self._keys: OrderedDict[str, RSAPublicKey] = OrderedDict()
        self._unknown: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[RSAPublicKey]] = {}
        self.fetches = 0  # how many HTTP requests were made (for metrics and tests)

    async def get(self, kid: str | None, http: aiohttp.ClientSession) -> RSAPublicKey:
        """The public key for ``kid``; :class:`JiraAuthError` when it cannot be had."""
        if kid is None or not KID_PATTERN.match(kid):
            raise JiraAuthError("missing or malformed kid")
        key = self._keys.get(kid)
        if key is not None:
            self._keys.move_to_end(kid)
            return key
        until = self._unknown.get(kid)
        if until is not None:
            if self._clock.monotonic() < until:
                raise JiraAuthError("unknown kid")
            del self._unknown[kid]
        task = self._inflight.get(kid)
        if task is None:
            task = asyncio.create_task(self._load(kid, http), name=f"install-key:{kid}")
            self._inflight[kid] = task
            task.add_done_callback(functools.partial(self._forget, kid))
        # Shielded: one caller going away must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel fetches still under way."""
        pending = list(self._inflight.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._inflight.clear()

    def _forget(self, kid: str, task: asyncio.Task[RSAPublicKey]) -> None:
        if self._inflight.get(kid) is task:
            del self._inflight[kid]
        if not task.cancelled():
            task.exception()  # retrieved, so an abandoned failure is not reported as lost

    async def _load(self, kid: str, http: aiohttp.ClientSession) -> RSAPublicKey:
        self.fetches += 1
        pem = await self._fetch(kid, http)
        try:
            key = load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            self._remember_unknown(kid)
            raise JiraAuthError("install key unusable") from exc
        if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
            self._remember_unknown(kid)
            raise JiraAuthError("install key unusable")
        self._keys[kid] = key
        while len(self._keys) > self._options.max_keys:
            self._keys.popitem(last=False)
        return key

    async def _fetch(self, kid: str, http: aiohttp.ClientSession) -> bytes:
        url = f"{self._base_url}/{kid}"
        timeout = self._options.timeout
        try:
            async with asyncio.timeout(timeout):
                async with http.get(
                    url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as response:
                    if response.status == 404:
                        self._remember_unknown(kid)
                        raise JiraAuthError("unknown kid")
                    if response.status != 200:
                        raise JiraAuthError("install key unavailable")
                    body = await read_capped(response.content, MAX_PEM_BYTES)
        except TimeoutError as exc:
            raise JiraAuthError("install key unavailable") from exc
        except aiohttp.ClientError as exc:
            raise JiraAuthError("install key unavailable") from exc
        except TooLarge as exc:
            raise JiraAuthError("install key unusable") from exc
        return body

    def _remember_unknown(self, kid: str) -> None:
        with contextlib.suppress(KeyError):
            del self._unknown[kid]
        self._unknown[kid] = self._clock.monotonic() + self._options.negative_ttl
        while len(self._unknown) > self._options.max_keys:
            self._unknown.pop(next(iter(self._unknown)))
