"""Where secrets come from, and how per-tenant secrets are sealed before they are stored.

**Stores.** One protocol, two backends, chosen by :func:`open_secret_store`:

- :class:`EnvSecretStore` (one machine): secret ``discord-bot-token`` is the variable
  ``DFJ_DISCORD_BOT_TOKEN``, from the injected environment or a local ``.env`` file.
- :class:`KeyVaultSecretStore` (Azure): Key Vault's own guidance is to cache in memory, re-read
  only when the cached copy stops working, and back off exponentially on HTTP 429. So: a TTL
  cache, single-flight loading (concurrent gets of one name make one call), ``invalidate(name)``
  for the caller who saw a secret fail, and bounded exponential back-off on throttling.

A missing secret raises :class:`SecretNotFound` (a :class:`~dfj_common.errors.ConfigError`)
naming it (and, for the environment, the variable to set).

**Envelope encryption** (:class:`EnvelopeCipher`). Each record gets a fresh 256-bit data key
(DEK); the record is encrypted with AES-256-GCM under it (random 96-bit nonce), with additional
authenticated data that binds the ciphertext to where it belongs (tenant | record | purpose —
see :func:`make_aad`), so a sealed value copied to another row does not open. The DEK is
wrapped with the key-encryption key (KEK, 32 bytes, base64 in secret ``kek``) by AES key wrap
(RFC 3394). Format version 1, all lengths fixed except the ciphertext::

    offset  size  field
    0       3     magic  b"DFJ"
    3       1     format version (1: AES-256-GCM data, AES-KW-256 wrapped DEK)
    4       8     KEK id: first 8 bytes of SHA-256("dfj-kek-id" || KEK)
    12      40    wrapped DEK
    52      12    nonce
    64      n+16  ciphertext || GCM tag

The header (bytes 0-52) is part of the GCM associated data, so no byte of a sealed value can
change unnoticed. The KEK id makes rotation work: put the new key in ``kek`` and the old one(s)
in ``kek-previous`` (comma-separated); :meth:`EnvelopeCipher.open` picks the key by id and
:meth:`EnvelopeCipher.seal` always uses the current one. Unknown ids trigger one re-read of the
KEK secrets (the vault may have rotated under our cache) before failing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import os
import re
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)
from dotenv import dotenv_values

from dfj_common.clock import Clock, SystemClock
from dfj_common.config import PREFIX, Secret, Settings
from dfj_common.errors import ConfigError, PermanentError, RateLimited, TransientError
from dfj_common.retry import ExponentialBackOff

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = [
    "KEK_SECRET",
    "PREVIOUS_KEK_SECRET",
    "EnvSecretStore",
    "EnvelopeCipher",
    "KeyVaultSecretStore",
    "RefreshableSecretStore",
    "SecretClientLike",
    "SecretError",
    "SecretNotFound",
    "SecretStore",
    "generate_kek",
    "make_aad",
    "open_secret_store",
    "sealed_kek_id",
]

KEK_SECRET: Final = "kek"  # noqa: S105 - the secret's name, not its value
PREVIOUS_KEK_SECRET: Final = "kek-previous"  # noqa: S105 - likewise

_NAME: Final = re.compile(r"^[0-9A-Za-z-]{1,127}$")


class SecretNotFound(ConfigError):
    """The store has no secret of that name; the message names it (and where to set it)."""


class SecretError(PermanentError):
    """A sealed value cannot be opened (tampered, wrong AAD, unknown or wrong KEK, bad format).

    A permanent error: trying again with the same bytes cannot help. ``reason`` says which.
    """

    def __init__(self, message: str, *, reason: str = "SecretError") -> None:
        super().__init__(message, reason=reason)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"secret names are 1-127 letters, digits and dashes (Key Vault's rule); got {name!r}"
        )
    return name


# --------------------------------------------------------------------------- stores


class SecretStore(Protocol):
    """A source of named secrets."""

    async def get(self, name: str) -> Secret:
        """The secret called ``name``; :class:`ConfigError` naming it when there is none."""
        ...

    async def close(self) -> None:
        """Release clients and credentials."""
        ...


@runtime_checkable
class RefreshableSecretStore(Protocol):
    """A store that can be told a cached secret stopped working, so the next get re-reads it."""

    async def get(self, name: str) -> Secret: ...

    async def close(self) -> None: ...

    def invalidate(self, name: str) -> None: ...


class EnvSecretStore:
    """Secrets from the environment, then a ``.env`` file.

    Secret ``discord-bot-token`` is variable ``DFJ_DISCORD_BOT_TOKEN``. Both are read once, when
    the store is made; only ``DFJ_`` variables are kept.
    """

    def __init__(self, environ: Mapping[str, str], env_file: str | Path | None = ".env") -> None:
        merged: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(environ)
        self._values = {k: v for k, v in merged.items() if k.startswith(PREFIX)}

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable holding secret ``name``."""
        return PREFIX + _check_name(name).upper().replace("-", "_")

    async def get(self, name: str) -> Secret:
        variable = self.variable(name)
        value = self._values.get(variable)
        if not value:
            raise SecretNotFound(
                f"secret {name!r} is not set: set {variable} (environment or .env)"
            )
        return Secret(value)

    def invalidate(self, name: str) -> None:
        """Nothing to re-read: the environment was read once at start-up."""
        _check_name(name)

    async def close(self) -> None:
        return None


class _VaultSecret(Protocol):
    @property
    def value(self) -> str | None: ...


class SecretClientLike(Protocol):
    """What the store uses of ``azure.keyvault.secrets.aio.SecretClient`` (fakes implement it)."""

    # Not ``async def``: the SDK declares ``Awaitable`` (a decorated coroutine function).
    def get_secret(self, name: str) -> Awaitable[_VaultSecret]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Cached:
    secret: Secret | None  # None: the vault said the secret does not exist
    expires_at: float
    missing: str = ""


class KeyVaultSecretStore:
    """Secrets from Azure Key Vault, cached for ``ttl`` seconds, loaded once per name at a time.

    Without ``client``, a ``SecretClient`` is made for ``vault_url`` with ``credential`` (a
    ``DefaultAzureCredential`` when none is given; in Container Apps set ``AZURE_CLIENT_ID``
    and ``AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential``). The store closes what it
    made; a client or credential passed in stays the caller's.

    Throttling (HTTP 429, after the SDK's own retries) is retried up to ``max_attempts`` times,
    waiting ``Retry-After`` when the vault sends it and ``backoff.delay(attempt)`` otherwise;
    then :class:`RateLimited` is raised. Other failures raise :class:`TransientError`, except a
    missing secret (:class:`SecretNotFound`, remembered for ``missing_ttl`` seconds, so optional
    secrets do not cost a call each time) or a forbidden vault, which are :class:`ConfigError`.
    """

    def __init__(
        self,
        vault_url: str,
        credential: AsyncTokenCredential | None = None,
        *,
        ttl: float = 600.0,
        missing_ttl: float = 60.0,
        clock: Clock | None = None,
        client: SecretClientLike | None = None,
        backoff: ExponentialBackOff | None = None,
        max_attempts: int = 5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if ttl < 0 or missing_ttl < 0:
            raise ValueError("ttl and missing_ttl must not be negative")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._vault_url = vault_url
        self._ttl = ttl
        self._missing_ttl = missing_ttl
        self._clock = clock or SystemClock()
        self._backoff = backoff or ExponentialBackOff(base=0.5, factor=2.0, maximum=30.0)
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._owned_credential: AsyncTokenCredential | None = None
        self._owns_client = client is None
        if client is None:
            from azure.keyvault.secrets.aio import SecretClient

            if credential is None:
                from azure.identity.aio import DefaultAzureCredential

                credential = self._owned_credential = DefaultAzureCredential()
            client = SecretClient(vault_url=vault_url, credential=credential)
        self._client = client
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Task[Secret]] = {}
        self._generation: dict[str, int] = {}
        self._closed = False

    @property
    def vault_url(self) -> str:
        return self._vault_url

    async def get(self, name: str) -> Secret:
        _check_name(name)
        if self._closed:
            raise RuntimeError("the secret store is closed")
        cached = self._cache.get(name)
        if cached is not None and self._clock.monotonic() < cached.expires_at:
            if cached.secret is None:
                raise SecretNotFound(cached.missing)
            return cached.secret
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.create_task(
                self._load(name, self._generation.get(name, 0)), name=f"keyvault-get:{name}"
            )
            self._inflight[name] = task
            task.add_done_callback(functools.partial(self._forget, name))
        # Shielded: one caller giving up must not cancel the load the others wait for.
        return await asyncio.shield(task)

    def invalidate(self, name: str) -> None:
        """Drop the cached copy of ``name``; the next :meth:`get` reads the vault again."""
        _check_name(name)
        self._cache.pop(name, None)
        self._inflight.pop(name, None)
        # A load already under way must not put its (possibly stale) value back.
        self._generation[name] = self._generation.get(name, 0) + 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending = list(self._inflight.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._inflight.clear()
        self._cache.clear()
        if self._owns_client:
            await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()

    async def __aenter__(self) -> KeyVaultSecretStore:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _load(self, name: str, generation: int) -> Secret:
        try:
            secret = await self._fetch(name)
        except SecretNotFound as exc:
            if self._current(name, generation) and self._missing_ttl > 0:
                expires = self._clock.monotonic() + self._missing_ttl
                self._cache[name] = _Cached(None, expires, missing=str(exc))
            raise
        if self._current(name, generation):
            self._cache[name] = _Cached(secret, self._clock.monotonic() + self._ttl)
        return secret

    def _current(self, name: str, generation: int) -> bool:
        return self._generation.get(name, 0) == generation and not self._closed

    def _forget(self, name: str, task: asyncio.Task[Secret]) -> None:
        if self._inflight.get(name) is task:
            del self._inflight[name]
        if not task.cancelled():
            task.exception()  # retrieved here, so an abandoned failure is not reported as lost

    async def _fetch(self, name: str) -> Secret:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
        from azure.identity import CredentialUnavailableError

        attempt = 0
        while True:
            attempt += 1
            try:
                found = await self._client.get_secret(name)
            except ResourceNotFoundError as exc:
                raise SecretNotFound(
                    f"secret {name!r} not found in Key Vault {self._vault_url}"
                ) from exc
            except CredentialUnavailableError as exc:
                raise ConfigError(
                    f"no Azure credential available to read secret {name!r} from {self._vault_url}"
                ) from exc
            except HttpResponseError as exc:
                status = exc.status_code
                if status == 403:
                    raise ConfigError(
                        f"forbidden to read secret {name!r} from {self._vault_url}: the identity "
                        "needs the 'Key Vault Secrets User' role"
                    ) from exc
                if status != 429:
                    raise TransientError(
                        f"Key Vault failed reading secret {name!r}: HTTP {status}"
                    ) from exc
                delay = self._throttle_delay(exc, attempt)
                if attempt >= self._max_attempts:
                    raise RateLimited(
                        f"Key Vault throttled reading secret {name!r} {attempt} times",
                        retry_after=delay,
                    ) from exc
                await self._sleep(delay)
                continue
            except AzureError as exc:
                raise TransientError(
                    f"Key Vault unreachable reading secret {name!r}: {type(exc).__name__}"
                ) from exc
            if not found.value:
                raise ConfigError(f"secret {name!r} in Key Vault {self._vault_url} is empty")
            return Secret(found.value)

    def _throttle_delay(self, exc: Exception, attempt: int) -> float:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        try:
            retry_after = float(headers.get("Retry-After", headers.get("retry-after", "")))
        except (TypeError, ValueError):
            return self._backoff.delay(attempt)
        return max(0.0, min(retry_after, self._backoff.maximum))


def open_secret_store(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    env_file: str | Path | None = ".env",
    clock: Clock | None = None,
) -> SecretStore:
    """Key Vault when ``DFJ_KEYVAULT_URL`` is set, else the environment (and ``.env``)."""
    if settings.keyvault_url:
        return KeyVaultSecretStore(settings.keyvault_url, clock=clock)
    return EnvSecretStore(environ, env_file=env_file)


# --------------------------------------------------------------------------- envelope cipher

_MAGIC: Final = b"DFJ"
_VERSION: Final = 1
_KEK_ID_LEN: Final = 8
_WRAPPED_LEN: Final = 40  # RFC 3394 output for a 32-byte key
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_HEADER: Final = struct.Struct(f">3sB{_KEK_ID_LEN}s{_WRAPPED_LEN}s")
_MIN_LEN: Final = _HEADER.size + _NONCE_LEN + _TAG_LEN


def generate_kek() -> str:
    """A fresh KEK, base64, ready for ``DFJ_KEK`` or the Key Vault secret ``kek``."""
    return base64.b64encode(os.urandom(32)).decode()


def make_aad(*parts: str) -> bytes:
    """Unambiguous associated data from its parts (``make_aad(tenant, record_id, purpose)``).

    Each part is length-prefixed, so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    if not parts:
        raise ValueError("make_aad needs at least one part")
    out = bytearray()
    for part in parts:
        raw = part.encode()
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def sealed_kek_id(sealed: bytes) -> str:
    """The hex id of the KEK a sealed value was wrapped with (to find values to re-seal)."""
    return _parse(sealed).kek_id.hex()


@dataclass(frozen=True, slots=True, repr=False)
class _Kek:
    id: bytes
    key: bytes

    @classmethod
    def from_key(cls, key: bytes) -> _Kek:
        return cls(id=hashlib.sha256(b"dfj-kek-id" + key).digest()[:_KEK_ID_LEN], key=key)

    def __repr__(self) -> str:
        return f"_Kek(id={self.id.hex()})"


@dataclass(frozen=True, slots=True)
class _Sealed:
    header: bytes
    kek_id: bytes
    wrapped: bytes
    nonce: bytes
    ciphertext: bytes


def _parse(sealed: bytes) -> _Sealed:
    if not isinstance(sealed, bytes | bytearray | memoryview):
        raise SecretError("a sealed value must be bytes", reason="SealedFormat")
    data = bytes(sealed)
    if len(data) < _MIN_LEN:
        raise SecretError(
            f"sealed value is {len(data)} bytes, shorter than the {_MIN_LEN} of an empty one",
            reason="SealedFormat",
        )
    magic, version, kek_id, wrapped = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise SecretError("not a sealed value (bad magic)", reason="SealedFormat")
    if version != _VERSION:
        raise SecretError(f"unsupported sealed format version {version}", reason="SealedVersion")
    nonce_end = _HEADER.size + _NONCE_LEN
    return _Sealed(
        header=data[: _HEADER.size],
        kek_id=kek_id,
        wrapped=wrapped,
        nonce=data[_HEADER.size : nonce_end],
        ciphertext=data[nonce_end:],
    )


def _decode_kek(name: str, text: str) -> _Kek:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(
            f"secret {name!r} must be the base64 encoding of 32 random bytes "
            "(make one with dfj_common.secrets.generate_kek())"
        )
    return _Kek.from_key(key)


class EnvelopeCipher:
    """Seal and open per-record secrets with a fresh DEK each, wrapped by the KEK of ``store``.

    ``kek_name`` holds the current KEK; each of ``previous_kek_names`` (optional secrets) holds
    one or more retired KEKs, comma-separated, still accepted for opening. An unknown KEK id
    makes the cipher re-read the KEK secrets, at most once per ``refresh_interval`` seconds (so
    a batch of bad values cannot turn into a burst of Key Vault calls).
    """

    def __init__(
        self,
        store: SecretStore,
        *,
        kek_name: str = KEK_SECRET,
        previous_kek_names: Sequence[str] = (PREVIOUS_KEK_SECRET,),
        refresh_interval: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._kek_name = _check_name(kek_name)
        self._previous = tuple(_check_name(n) for n in previous_kek_names)
        self._refresh_interval = refresh_interval
        self._clock = clock or SystemClock()
        self._last_refresh: float | None = None

    async def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad`` under a fresh DEK wrapped with the current KEK."""
        kek = await self._current()
        dek = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE_LEN)
        header = _HEADER.pack(_MAGIC, _VERSION, kek.id, aes_key_wrap(kek.key, dek))
        ciphertext = AESGCM(dek).encrypt(nonce, bytes(plaintext), header + bytes(aad))
        return header + nonce + ciphertext

    async def open(self, sealed: bytes, *, aad: bytes) -> bytes:
        """The plaintext of ``sealed``; :class:`SecretError` if anything about it is off."""
        parsed = _parse(sealed)
        kek = await self._find(parsed.kek_id)
        store = self._store
        if kek is None and isinstance(store, RefreshableSecretStore) and self._refresh_due():
            # The vault may hold a newer KEK than our cache: re-read once before giving up.
            for name in (self._kek_name, *self._previous):
                store.invalidate(name)
            kek = await self._find(parsed.kek_id)
        if kek is None:
            raise SecretError(
                f"sealed with KEK {parsed.kek_id.hex()}, which is neither secret "
                f"{self._kek_name!r} nor in {', '.join(map(repr, self._previous)) or 'none'}",
                reason="UnknownKek",
            )
        try:
            dek = aes_key_unwrap(kek.key, parsed.wrapped)
        except InvalidUnwrap as exc:
            raise SecretError(
                "the wrapped data key does not unwrap: sealed value tampered or KEK wrong",
                reason="KeyUnwrapFailed",
            ) from exc
        try:
            return AESGCM(dek).decrypt(parsed.nonce, parsed.ciphertext, parsed.header + aad)
        except InvalidTag as exc:
            raise SecretError(
                "authentication failed: the sealed value was changed or belongs to other "
                "associated data (tenant, record or purpose)",
                reason="AuthenticationFailed",
            ) from exc

    async def reseal(self, sealed: bytes, *, aad: bytes) -> bytes:
        """Open with whichever KEK it needs and seal again with the current one (rotation)."""
        return await self.seal(await self.open(sealed, aad=aad), aad=aad)

    async def current_kek_id(self) -> str:
        """The hex id new values are sealed with."""
        return (await self._current()).id.hex()

    def _refresh_due(self) -> bool:
        now = self._clock.monotonic()
        if self._last_refresh is not None and now - self._last_refresh < self._refresh_interval:
            return False
        self._last_refresh = now
        return True

    async def _current(self) -> _Kek:
        return _decode_kek(self._kek_name, (await self._store.get(self._kek_name)).reveal())

    async def _find(self, kek_id: bytes) -> _Kek | None:
        current = await self._current()
        if current.id == kek_id:
            return current
        for name in self._previous:
            try:
                secret = await self._store.get(name)
            except SecretNotFound:
                continue  # optional: no retired keys
            for part in secret.reveal().split(","):
                if part.strip():
                    kek = _decode_kek(name, part)
                    if kek.id == kek_id:
                        return kek
        return None
