"""Sign Discord interaction requests for real, and build realistic interaction bodies.

What Discord does when it calls an interactions endpoint: Ed25519-sign ``ASCII(timestamp) ||
raw body`` with the application's key and send the signature (hex) and the timestamp (decimal
Unix seconds) in ``X-Signature-Ed25519`` / ``X-Signature-Timestamp``. :class:`DiscordSigner`
does exactly that with a PyNaCl ``SigningKey`` — a fresh one, or one from a seed (the RFC 8032
test seeds reproduce ``shared/vectors/discord-interactions.json``) — so tests, the demo and the
benchmarks exercise the gateway's real verification path, never a bypass.

:class:`InteractionFactory` builds bodies shaped like Discord's (``interactions/receiving-and-
responding``, ``application-commands``, ``components/reference``): ping, slash command with
subcommand (and group) and options, message context-menu command with its resolved message,
component click, autocomplete with the focused option, and modal submits in both the current
Label shape and the legacy Action Row shape. Guild interactions carry a ``member`` with a
username, nickname and avatar, as Discord's do, so tests can prove those never travel on.
Snowflakes are real-format ids (milliseconds since the Discord epoch << 22 | sequence) from the
factory's own counter and clock reading; the factory holds no global state.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from nacl.signing import SigningKey

__all__ = [
    "DISCORD_EPOCH_MS",
    "DiscordSigner",
    "InteractionFactory",
    "encode",
    "snowflake",
]

DISCORD_EPOCH_MS: Final = 1_420_070_400_000

PING: Final = 1
APPLICATION_COMMAND: Final = 2
MESSAGE_COMPONENT: Final = 3
AUTOCOMPLETE: Final = 4
MODAL_SUBMIT: Final = 5

_OPTION_TYPES: Final[Mapping[type, int]] = {str: 3, int: 4, bool: 5, float: 10}


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes, as Discord sends them (UTF-8, no spaces)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def snowflake(ms: int, sequence: int = 0) -> str:
    """A Discord snowflake for Unix time ``ms`` (milliseconds) and a 12-bit sequence."""
    return str(((ms - DISCORD_EPOCH_MS) << 22) | (sequence & 0xFFF))


@dataclass(frozen=True)
class DiscordSigner:
    """Signs interaction requests with one Ed25519 key."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> DiscordSigner:
        """A signer with a fresh random key."""
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed_hex: str) -> DiscordSigner:
        """A signer from a 32-byte seed in hex (e.g. an RFC 8032 test seed)."""
        return cls(SigningKey(bytes.fromhex(seed_hex)))

    @property
    def public_key_hex(self) -> str:
        """The hex public key, as the Developer Portal shows it (``DFJ_DISCORD_PUBLIC_KEY``)."""
        return bytes(self.signing_key.verify_key).hex()

    def sign(self, body: bytes, timestamp: str) -> str:
        """The hex signature of ``timestamp + body``."""
        signed = self.signing_key.sign(timestamp.encode("ascii") + body)
        return signed.signature.hex()

    def headers(
        self,
        body: bytes,
        *,
        timestamp: int | str | None = None,
        content_type: str = "application/json",
    ) -> dict[str, str]:
        """The request headers Discord would send with ``body`` (now, unless ``timestamp``)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": content_type,
            "X-Signature-Ed25519": self.sign(body, ts),
            "X-Signature-Timestamp": ts,
        }

    def signed(
        self, body: Mapping[str, Any] | bytes, *, timestamp: int | str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """``(raw body, headers)`` ready to POST."""
        raw = body if isinstance(body, bytes) else encode(body)
        return raw, self.headers(raw, timestamp=timestamp)


def _option(name: str, value: Any, *, focused: bool = False) -> dict[str, Any]:
    option: dict[str, Any] = {
        "name": name,
        "type": _OPTION_TYPES.get(type(value), 3),
        "value": value,
    }
    if focused:
        option["focused"] = True
    return option


def _options(options: Mapping[str, Any], focused: str | None = None) -> list[dict[str, Any]]:
    return [_option(k, v, focused=k == focused) for k, v in options.items()]


def _nest(
    leaf: list[dict[str, Any]], subcommand: str | None, group: str | None
) -> list[dict[str, Any]]:
    if subcommand is None:
        return leaf
    nested: list[dict[str, Any]] = [{"name": subcommand, "type": 1, "options": leaf}]
    if group is not None:
        nested = [{"name": group, "type": 2, "options": nested}]
    return nested


@dataclass
class InteractionFactory:
    """Builds interaction bodies for one application, guild, channel and user."""

    application_id: str = "1300000000000000001"
    guild_id: str | None = "1300000000000000002"
    channel_id: str = "1300000000000000003"
    user_id: str = "1300000000000000004"
    username: str = "alice_jira_fan"
    roles: Sequence[str] = ("1300000000000000005",)
    permissions: str = "2248473465835073"
    locale: str = "en-US"
    guild_locale: str = "en-GB"
    clock: Callable[[], float] = time.time
    _sequence: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def next_id(self) -> str:
        """A fresh snowflake from the factory's clock and counter."""
        return snowflake(int(self.clock() * 1000), next(self._sequence))

    def token_for(self, interaction_id: str) -> str:
        """A token shaped like Discord's (``base64("interaction:<id>:…")``), unique per id."""
        raw = f"interaction:{interaction_id}:sandbox{interaction_id[-6:]}" + "x" * 60
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _user(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "username": self.username,
            "global_name": "Alice",
            "avatar": "a_1269e74af4df7417b13759eae50c83dc",
            "discriminator": "0",
            "public_flags": 0,
        }

    def _base(self, kind: int, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        interaction_id = self.next_id()
        body: dict[str, Any] = {
            "id": interaction_id,
            "application_id": self.application_id,
            "type": kind,
            "token": self.token_for(interaction_id),
            "version": 1,
            "locale": self.locale,
            "channel_id": self.channel_id,
            "channel": {"id": self.channel_id, "type": 0, "name": "general"},
            "app_permissions": "2248473465835073",
            "entitlements": [],
            "attachment_size_limit": 10485760,
        }
        if data is not None:
            body["data"] = dict(data)
        if self.guild_id is not None:
            body.update(
                guild_id=self.guild_id,
                guild={"id": self.guild_id, "locale": self.guild_locale, "features": []},
                guild_locale=self.guild_locale,
                member={
                    "user": self._user(),
                    "nick": "Alice from QA",
                    "avatar": None,
                    "roles": list(self.roles),
                    "permissions": self.permissions,
                    "joined_at": "2024-01-01T00:00:00.000000+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                },
                authorizing_integration_owners={"0": self.guild_id},
                context=0,
            )
        else:
            body.update(user=self._user(), authorizing_integration_owners={"1": self.user_id})
            body["context"] = 1
        return body

    def ping(self) -> dict[str, Any]:
        """A PING, as sent when the endpoint URL is saved and on probes."""
        interaction_id = self.next_id()
        return {
            "id": interaction_id,
            "application_id": self.application_id,
            "type": PING,
            "token": self.token_for(interaction_id),
            "version": 1,
        }

    def slash(
        self,
        name: str = "jira",
        *,
        subcommand: str | None = None,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A CHAT_INPUT command, optionally with a (grouped) subcommand and options."""
        data = {
            "id": "1300000000000000100",
            "name": name,
            "type": 1,
            "options": _nest(_options(options or {}), subcommand, group),
            "guild_id": self.guild_id,
        }
        if data["guild_id"] is None:
            del data["guild_id"]
        return self._base(APPLICATION_COMMAND, data)

    def message_command(
        self,
        name: str = "Create issue from message",
        *,
        content: str = "The export button crashes on Safari 17",
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A MESSAGE context-menu command on a message (resolved, as Discord sends it)."""
        target = message_id or self.next_id()
        author = {"id": "1300000000000000009", "username": "bob_reporter", "global_name": "Bob"}
        message = {
            "id": target,
            "channel_id": self.channel_id,
            "content": content,
            "author": author,
            "embeds": [],
            "attachments": [],
            "components": [],
            "mentions": [],
            "timestamp": "2026-01-01T00:00:00.000000+00:00",
            "type": 0,
        }
        data = {
            "id": "1300000000000000101",
            "name": name,
            "type": 3,
            "target_id": target,
            "resolved": {"messages": {target: message}},
        }
        return self._base(APPLICATION_COMMAND, data)

    def component(
        self,
        custom_id: str,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A component interaction: a button click, or a select with ``values``."""
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        body = self._base(MESSAGE_COMPONENT, data)
        body["message"] = {
            "id": message_id or self.next_id(),
            "channel_id": self.channel_id,
            "content": "Suggested fields for your new issue",
            "author": {"id": self.application_id, "username": "Discord for Jira", "bot": True},
            "flags": 64,
            "components": [],
            "type": 0,
        }
        return body

    def autocomplete(
        self,
        *,
        subcommand: str | None = "create",
        options: Mapping[str, Any],
        focused: str,
        name: str = "jira",
    ) -> dict[str, Any]:
        """An autocomplete interaction while the user types the option ``focused``."""
        data = {
            "id": "1300000000000000100",
            "name": name,
            "type": 1,
            "version": "1300000000000000102",
            "options": _nest(_options(options, focused), subcommand, None),
        }
        return self._base(AUTOCOMPLETE, data)

    def modal_submit(
        self,
        custom_id: str,
        fields: Mapping[str, str | Sequence[str]],
        *,
        shape: Literal["label", "action_row"] = "label",
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A modal submit; text fields are strings, select fields sequences of values.

        ``label``: top-level Label components (type 18) each wrapping one input, the current
        shape. ``action_row``: Action Rows (type 1) of Text Inputs, the legacy shape.
        """
        components: list[dict[str, Any]] = []
        for index, (field_id, value) in enumerate(fields.items()):
            child: dict[str, Any]
            if isinstance(value, str):
                child = {"type": 4, "id": 2 * index + 2, "custom_id": field_id, "value": value}
            else:
                child = {
                    "type": 3,
                    "id": 2 * index + 2,
                    "custom_id": field_id,
                    "values": list(value),
                }
            if shape == "label":
                components.append({"type": 18, "id": 2 * index + 1, "component": child})
            else:
                components.append({"type": 1, "id": 2 * index + 1, "components": [child]})
        body = self._base(MODAL_SUBMIT, {"custom_id": custom_id, "components": components})
        if message_id is not None:
            body["message"] = {"id": message_id, "channel_id": self.channel_id, "type": 0}
        return body
