"""Secret stores (environment, Key Vault behind a fake client) and envelope encryption."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from dfj_common.clock import ManualClock
from dfj_common.config import Secret, Settings
from dfj_common.errors import ConfigError, DfjError, PermanentError, RateLimited, TransientError
from dfj_common.retry import ExponentialBackOff
from dfj_common.secrets import (
    EnvelopeCipher,
    EnvSecretStore,
    KeyVaultSecretStore,
    RefreshableSecretStore,
    SecretError,
    SecretNotFound,
    SecretStore,
    generate_kek,
    make_aad,
    open_secret_store,
    sealed_kek_id,
)

# --------------------------------------------------------------------------- fakes


@dataclass
class _Response:
    """Just enough of an azure-core HTTP response for HttpResponseError."""

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = "fake"
    request: object = "GET https://dfj-test.vault.azure.net/secrets/x"

    def text(self) -> str:
        return ""


@dataclass
class _VaultSecret:
    value: str | None


class FakeVault:
    """An in-memory Key Vault at the SDK edge: the two SecretClient methods the store calls.

    ``throttle`` answers that many calls with 429, ``status`` answers every call with an HTTP
    error, ``gate`` holds calls until it is set (to make concurrent gets overlap).
    """

    def __init__(self, secrets: Mapping[str, str | None] | None = None) -> None:
        self.secrets: dict[str, str | None] = dict(secrets or {})
        self.calls: list[str] = []
        self.throttle = 0
        self.retry_after: str | None = None
        self.status: int | None = None
        self.unreachable = False
        self.gate: asyncio.Event | None = None
        self.closed = False

    async def get_secret(self, name: str) -> _VaultSecret:
        self.calls.append(name)
        if self.gate is not None:
            await self.gate.wait()
        if self.unreachable:
            raise ServiceRequestError("connection refused")
        if self.throttle > 0:
            self.throttle -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            raise HttpResponseError(message="Throttled", response=_Response(429, headers))
        if self.status is not None:
            raise HttpResponseError(message="failed", response=_Response(self.status))
        if name not in self.secrets:
            raise ResourceNotFoundError(message="SecretNotFound", response=_Response(404))
        return _VaultSecret(self.secrets[name])

    async def close(self) -> None:
        self.closed = True


class _Sleeps:
    """An injected sleep that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _store(
    vault: FakeVault, *, clock: ManualClock | None = None, sleeps: _Sleeps | None = None
) -> KeyVaultSecretStore:
    return KeyVaultSecretStore(
        "https://dfj-test.vault.azure.net",
        client=vault,
        ttl=600,
        clock=clock or ManualClock(),
        backoff=ExponentialBackOff(base=1.0, factor=2.0, maximum=30.0, jitter=0),
        max_attempts=4,
        sleep=sleeps or _Sleeps(),
    )


KEK_A = base64.b64encode(b"A" * 32).decode()
KEK_B = base64.b64encode(b"B" * 32).decode()
KEK_C = base64.b64encode(b"C" * 32).decode()
AAD = make_aad("ck-tenant", "installation:42", "shared-secret")


def _env(**values: str) -> EnvSecretStore:
    return EnvSecretStore(values, env_file=None)


# --------------------------------------------------------------------------- env store


class TestEnvSecretStore:
    async def test_name_maps_to_variable(self) -> None:
        """Secret ``discord-bot-token`` is read from ``DFJ_DISCORD_BOT_TOKEN``."""
        store = _env(DFJ_DISCORD_BOT_TOKEN="bot-token-value")
        assert EnvSecretStore.variable("discord-bot-token") == "DFJ_DISCORD_BOT_TOKEN"
        assert (await store.get("discord-bot-token")).reveal() == "bot-token-value"

    async def test_missing_names_the_variable(self) -> None:
        """A missing or empty secret fails with its name and the variable to set."""
        store = _env(DFJ_KEK="")
        with pytest.raises(
            ConfigError, match=r"'discord-client-secret'.*DFJ_DISCORD_CLIENT_SECRET"
        ):
            await store.get("discord-client-secret")
        with pytest.raises(ConfigError, match="DFJ_KEK"):
            await store.get("kek")

    async def test_env_file_below_environment(self, tmp_path: Path) -> None:
        """The ``.env`` file fills in; the environment wins where both have a value."""
        env_file = tmp_path / ".env"
        env_file.write_text("DFJ_KEK=from-file\nDFJ_DISCORD_BOT_TOKEN=file-token\nOTHER=x\n")
        store = EnvSecretStore({"DFJ_DISCORD_BOT_TOKEN": "env-token"}, env_file=env_file)
        assert (await store.get("kek")).reveal() == "from-file"
        assert (await store.get("discord-bot-token")).reveal() == "env-token"

    async def test_rejects_bad_names(self) -> None:
        """Names Key Vault would refuse are refused here too."""
        with pytest.raises(ValueError, match="secret names"):
            await _env().get("discord_bot_token")

    async def test_is_a_refreshable_store(self) -> None:
        """Both stores satisfy the protocols callers program against."""
        store: SecretStore = _env()
        assert isinstance(store, RefreshableSecretStore)
        store_kv: SecretStore = _store(FakeVault())
        assert isinstance(store_kv, RefreshableSecretStore)
        await store.close()
        await store_kv.close()


class TestOpenSecretStore:
    async def test_environment_without_vault(self) -> None:
        """Without ``DFJ_KEYVAULT_URL`` secrets come from the environment."""
        store = open_secret_store(Settings(), {"DFJ_KEK": KEK_A}, env_file=None)
        assert isinstance(store, EnvSecretStore)
        assert (await store.get("kek")).reveal() == KEK_A

    async def test_key_vault_when_configured(self) -> None:
        """With ``DFJ_KEYVAULT_URL`` it is Key Vault (made and closed without network)."""
        settings = Settings(keyvault_url="https://dfj-test.vault.azure.net")
        store = open_secret_store(settings, {}, env_file=None)
        assert isinstance(store, KeyVaultSecretStore)
        assert store.vault_url == "https://dfj-test.vault.azure.net"
        await store.close()
        await store.close()  # idempotent


# --------------------------------------------------------------------------- key vault store


class TestKeyVaultSecretStore:
    async def test_cache_hit(self) -> None:
        """A second get within the TTL is answered from memory."""
        vault = FakeVault({"discord-bot-token": "t1"})
        store = _store(vault)
        first = await store.get("discord-bot-token")
        second = await store.get("discord-bot-token")
        assert first == second == Secret("t1")
        assert vault.calls == ["discord-bot-token"]
        await store.close()
        assert vault.closed is False  # an injected client stays the caller's

    async def test_ttl_expiry(self) -> None:
        """After the TTL passes, the vault is read again and a new value is seen."""
        clock = ManualClock()
        vault = FakeVault({"kek": KEK_A})
        store = _store(vault, clock=clock)
        assert (await store.get("kek")).reveal() == KEK_A
        clock.advance(599)
        vault.secrets["kek"] = KEK_B
        assert (await store.get("kek")).reveal() == KEK_A
        clock.advance(1)
        assert (await store.get("kek")).reveal() == KEK_B
        assert vault.calls == ["kek", "kek"]

    async def test_single_flight(self) -> None:
        """Concurrent gets of one name make one vault call and all get its answer."""
        vault = FakeVault({"kek": KEK_A, "other": "o"})
        vault.gate = asyncio.Event()
        store = _store(vault)
        tasks = [asyncio.create_task(store.get("kek")) for _ in range(20)]
        other = asyncio.create_task(store.get("other"))
        await asyncio.sleep(0)
        vault.gate.set()
        results = await asyncio.gather(*tasks)
        assert {r.reveal() for r in results} == {KEK_A}
        assert (await other).reveal() == "o"
        assert sorted(vault.calls) == ["kek", "other"]

    async def test_cancelled_waiter_does_not_cancel_the_load(self) -> None:
        """One caller giving up leaves the shared load running for the others."""
        vault = FakeVault({"kek": KEK_A})
        vault.gate = asyncio.Event()
        store = _store(vault)
        quitter = asyncio.create_task(store.get("kek"))
        stayer = asyncio.create_task(store.get("kek"))
        await asyncio.sleep(0)
        quitter.cancel()
        await asyncio.sleep(0)
        vault.gate.set()
        assert (await stayer).reveal() == KEK_A
        assert quitter.cancelled()
        assert vault.calls == ["kek"]

    async def test_invalidate_rereads(self) -> None:
        """After invalidate (the secret stopped working) the next get reads the vault again."""
        vault = FakeVault({"discord-bot-token": "old"})
        store = _store(vault)
        assert (await store.get("discord-bot-token")).reveal() == "old"
        vault.secrets["discord-bot-token"] = "rotated"
        store.invalidate("discord-bot-token")
        assert (await store.get("discord-bot-token")).reveal() == "rotated"
        assert vault.calls == ["discord-bot-token"] * 2

    async def test_invalidate_during_load_discards_it(self) -> None:
        """A load that began before invalidate does not put its value in the cache."""
        vault = FakeVault({"kek": KEK_A})
        vault.gate = asyncio.Event()
        store = _store(vault)
        early = asyncio.create_task(store.get("kek"))
        await asyncio.sleep(0)
        store.invalidate("kek")
        vault.secrets["kek"] = KEK_B
        vault.gate.set()
        await early
        assert (await store.get("kek")).reveal() == KEK_B
        assert vault.calls == ["kek", "kek"]

    async def test_throttling_backs_off(self) -> None:
        """HTTP 429 is retried after exponentially growing waits, then succeeds."""
        vault = FakeVault({"kek": KEK_A})
        vault.throttle = 3
        sleeps = _Sleeps()
        store = _store(vault, sleeps=sleeps)
        assert (await store.get("kek")).reveal() == KEK_A
        assert sleeps.delays == [1.0, 2.0, 4.0]
        assert len(vault.calls) == 4

    async def test_throttling_honours_retry_after(self) -> None:
        """A Retry-After header sets the wait (capped by the back-off maximum)."""
        vault = FakeVault({"kek": KEK_A})
        vault.throttle, vault.retry_after = 1, "7"
        sleeps = _Sleeps()
        assert (await _store(vault, sleeps=sleeps).get("kek")).reveal() == KEK_A
        assert sleeps.delays == [7.0]

    async def test_throttling_gives_up(self) -> None:
        """Past max_attempts, RateLimited is raised with a retry_after, and nothing is cached."""
        vault = FakeVault({"kek": KEK_A})
        vault.throttle = 10
        sleeps = _Sleeps()
        store = _store(vault, sleeps=sleeps)
        with pytest.raises(RateLimited) as caught:
            await store.get("kek")
        assert caught.value.retry_after == 8.0
        assert len(vault.calls) == 4 and len(sleeps.delays) == 3
        vault.throttle = 0
        assert (await store.get("kek")).reveal() == KEK_A

    async def test_missing_secret_names_it(self) -> None:
        """A secret the vault does not have fails with its name and the vault."""
        store = _store(FakeVault())
        with pytest.raises(SecretNotFound, match=r"'kek' not found in Key Vault https://dfj-test"):
            await store.get("kek")
        assert issubclass(SecretNotFound, ConfigError)

    async def test_missing_is_remembered_briefly(self) -> None:
        """A missing secret is not asked for again until missing_ttl passes or invalidate."""
        clock = ManualClock()
        vault = FakeVault()
        store = KeyVaultSecretStore("https://v", client=vault, clock=clock, missing_ttl=60)
        for _ in range(3):
            with pytest.raises(SecretNotFound, match="'kek-previous'"):
                await store.get("kek-previous")
        assert vault.calls == ["kek-previous"]
        vault.secrets["kek-previous"] = KEK_A
        clock.advance(60)
        assert (await store.get("kek-previous")).reveal() == KEK_A
        vault.secrets.pop("kek-previous")
        store.invalidate("kek-previous")
        with pytest.raises(SecretNotFound):
            await store.get("kek-previous")
        assert len(vault.calls) == 3

    async def test_empty_secret_is_a_config_error(self) -> None:
        """A secret with no value is as good as missing."""
        with pytest.raises(ConfigError, match="empty"):
            await _store(FakeVault({"kek": None})).get("kek")

    @pytest.mark.parametrize(
        ("status", "error", "text"),
        [(403, ConfigError, "Key Vault Secrets User"), (500, TransientError, "HTTP 500")],
    )
    async def test_http_errors(self, status: int, error: type[DfjError], text: str) -> None:
        """Forbidden is a configuration problem; a server error is worth retrying later."""
        vault = FakeVault({"kek": KEK_A})
        vault.status = status
        with pytest.raises(error, match=text):
            await _store(vault).get("kek")

    async def test_unreachable_is_transient_and_not_cached(self) -> None:
        """A network failure is transient, and the next get tries the vault again."""
        vault = FakeVault({"kek": KEK_A})
        vault.unreachable = True
        store = _store(vault)
        with pytest.raises(TransientError):
            await store.get("kek")
        vault.unreachable = False
        assert (await store.get("kek")).reveal() == KEK_A

    async def test_closed_store_refuses(self) -> None:
        """After close, gets fail instead of using a closed client."""
        store = _store(FakeVault({"kek": KEK_A}))
        await store.close()
        with pytest.raises(RuntimeError, match="closed"):
            await store.get("kek")


@pytest.mark.azure
@pytest.mark.skipif(
    not os.environ.get("DFJ_TEST_KEYVAULT_URL"),
    reason="set DFJ_TEST_KEYVAULT_URL to run against a real Key Vault",
)
async def test_real_key_vault() -> None:
    """Against a real vault: a missing secret names itself; DFJ_TEST_KEYVAULT_SECRET is read."""
    async with KeyVaultSecretStore(os.environ["DFJ_TEST_KEYVAULT_URL"]) as store:
        missing = f"dfj-missing-{uuid.uuid4().hex[:12]}"
        with pytest.raises(ConfigError, match=missing):
            await store.get(missing)
        name = os.environ.get("DFJ_TEST_KEYVAULT_SECRET")
        if name:
            first = await store.get(name)
            assert first.reveal()
            assert await store.get(name) is first  # cached


# --------------------------------------------------------------------------- envelope cipher


class TestEnvelopeCipher:
    async def test_round_trip(self) -> None:
        """What is sealed opens to the same bytes, empty and large values included."""
        cipher = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        for plaintext in (b"", b"shared-secret-value", os.urandom(100_000)):
            assert await cipher.open(await cipher.seal(plaintext, aad=AAD), aad=AAD) == plaintext

    async def test_format(self) -> None:
        """The sealed bytes are self-describing: magic, version, KEK id, fixed-size fields."""
        cipher = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        sealed = await cipher.seal(b"abc", aad=AAD)
        assert sealed[:4] == b"DFJ\x01"
        assert len(sealed) == 64 + 3 + 16
        assert sealed_kek_id(sealed) == await cipher.current_kek_id() == sealed[4:12].hex()

    async def test_fresh_key_and_nonce_each_time(self) -> None:
        """Sealing one value twice gives different bytes (fresh DEK and nonce per record)."""
        cipher = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        one, two = [await cipher.seal(b"same", aad=AAD) for _ in range(2)]
        assert one[12:52] != two[12:52] and one[52:64] != two[52:64] and one != two

    @pytest.mark.parametrize(
        ("offset", "reason"),
        [
            (0, "SealedFormat"),  # magic
            (3, "SealedVersion"),  # version
            (4, "UnknownKek"),  # KEK id
            (12, "KeyUnwrapFailed"),  # wrapped DEK, first byte
            (51, "KeyUnwrapFailed"),  # wrapped DEK, last byte
            (52, "AuthenticationFailed"),  # nonce
            (64, "AuthenticationFailed"),  # ciphertext
            (-1, "AuthenticationFailed"),  # GCM tag
        ],
    )
    async def test_tampering_each_field(self, offset: int, reason: str) -> None:
        """Flipping one bit anywhere makes open fail with a SecretError saying which check."""
        cipher = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        sealed = bytearray(await cipher.seal(b"shared-secret-value", aad=AAD))
        sealed[offset] ^= 0x01
        with pytest.raises(SecretError) as caught:
            await cipher.open(bytes(sealed), aad=AAD)
        assert caught.value.reason == reason

    @pytest.mark.parametrize("change", ["truncate", "extend", "empty"])
    async def test_length_changes(self, change: str) -> None:
        """Cut, extended or empty values are refused."""
        cipher = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        sealed = await cipher.seal(b"value", aad=AAD)
        broken = {"truncate": sealed[:-1], "extend": sealed + b"\x00", "empty": b""}[change]
        with pytest.raises(SecretError):
            await cipher.open(broken, aad=AAD)

    async def test_wrong_aad(self) -> None:
        """A value opened for another tenant, record or purpose fails authentication."""
        cipher = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        sealed = await cipher.seal(b"value", aad=AAD)
        for other in (
            make_aad("ck-other", "installation:42", "shared-secret"),
            make_aad("ck-tenant", "installation:43", "shared-secret"),
            make_aad("ck-tenant", "installation:42", "system-token"),
            b"",
        ):
            with pytest.raises(SecretError, match="associated data") as caught:
                await cipher.open(sealed, aad=other)
            assert caught.value.reason == "AuthenticationFailed"

    async def test_wrong_kek(self) -> None:
        """Another deployment's KEK cannot open the value: the KEK id is unknown."""
        sealed = await EnvelopeCipher(_env(DFJ_KEK=KEK_A)).seal(b"value", aad=AAD)
        with pytest.raises(SecretError, match="neither secret 'kek'") as caught:
            await EnvelopeCipher(_env(DFJ_KEK=KEK_B)).open(sealed, aad=AAD)
        assert caught.value.reason == "UnknownKek"

    async def test_rotation(self) -> None:
        """After rotation old values open with the previous KEK; new ones use the current."""
        old = EnvelopeCipher(_env(DFJ_KEK=KEK_A))
        sealed_old = await old.seal(b"before", aad=AAD)
        rotated = EnvelopeCipher(_env(DFJ_KEK=KEK_B, DFJ_KEK_PREVIOUS=f"{KEK_C}, {KEK_A}"))
        assert await rotated.open(sealed_old, aad=AAD) == b"before"
        sealed_new = await rotated.seal(b"after", aad=AAD)
        assert sealed_kek_id(sealed_new) == await rotated.current_kek_id()
        assert sealed_kek_id(sealed_new) != sealed_kek_id(sealed_old)
        resealed = await rotated.reseal(sealed_old, aad=AAD)
        assert sealed_kek_id(resealed) == await rotated.current_kek_id()
        retired = EnvelopeCipher(_env(DFJ_KEK=KEK_B))
        assert await retired.open(resealed, aad=AAD) == b"before"
        with pytest.raises(SecretError, match="neither secret"):
            await retired.open(sealed_old, aad=AAD)

    async def test_missing_kek_names_the_variable(self) -> None:
        """Without a KEK, sealing fails naming DFJ_KEK."""
        with pytest.raises(ConfigError, match="DFJ_KEK"):
            await EnvelopeCipher(_env()).seal(b"value", aad=AAD)

    @pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
    async def test_malformed_kek(self, bad: str) -> None:
        """A KEK that is not base64 of 32 bytes fails naming the secret, without its value."""
        with pytest.raises(ConfigError, match="'kek' must be the base64") as caught:
            await EnvelopeCipher(_env(DFJ_KEK=bad)).seal(b"value", aad=AAD)
        assert bad not in str(caught.value)

    async def test_rotation_in_the_vault_is_picked_up(self) -> None:
        """A value sealed with a KEK newer than our cached one triggers one re-read, then opens."""
        vault = FakeVault({"kek": KEK_A})
        reader = EnvelopeCipher(_store(vault))
        await reader.seal(b"warm the cache", aad=AAD)
        vault.secrets["kek"] = KEK_B  # rotated; another replica already seals with B
        sealed = await EnvelopeCipher(_env(DFJ_KEK=KEK_B)).seal(b"new", aad=AAD)
        assert await reader.open(sealed, aad=AAD) == b"new"
        assert vault.calls.count("kek") == 2

    async def test_refreshes_are_rate_limited(self) -> None:
        """Unknown KEK ids re-read the vault at most once per refresh interval."""
        clock = ManualClock()
        vault = FakeVault({"kek": KEK_A})
        cipher = EnvelopeCipher(_store(vault, clock=clock), refresh_interval=30, clock=clock)
        foreign = await EnvelopeCipher(_env(DFJ_KEK=KEK_B)).seal(b"x", aad=AAD)
        for _ in range(5):
            with pytest.raises(SecretError, match="neither secret"):
                await cipher.open(foreign, aad=AAD)
        # first read + one refresh, of the KEK and of the (missing) previous KEK alike
        assert vault.calls == ["kek", "kek-previous"] * 2
        clock.advance(30)
        with pytest.raises(SecretError):
            await cipher.open(foreign, aad=AAD)
        assert vault.calls == ["kek", "kek-previous"] * 3

    def test_error_tree(self) -> None:
        """SecretError is a permanent error of our tree (dead-letter, do not retry)."""
        assert issubclass(SecretError, PermanentError)
        assert issubclass(SecretError, DfjError)

    def test_make_aad_is_unambiguous(self) -> None:
        """Parts are length-prefixed, so shifting a boundary changes the AAD."""
        assert make_aad("ab", "c") != make_aad("a", "bc")
        with pytest.raises(ValueError, match="at least one part"):
            make_aad()

    def test_generate_kek(self) -> None:
        """generate_kek gives base64 of 32 random bytes, different each time."""
        one, two = generate_kek(), generate_kek()
        assert len(base64.b64decode(one)) == 32 and one != two
