"""One error tree for every service, split by what the caller can do.

- ``DfjError`` — the root; never raised itself.
  - ``ConfigError`` — a setting is missing or malformed: fail fast at start-up, naming the key.
  - ``VerificationError`` — an inbound request failed authentication: answer 401, publish nothing.
  - ``TransientError`` — worth trying again later (network blips, 5xx, lock contention).
    - ``RateLimited`` — the peer said when: back off for ``retry_after`` seconds.
  - ``PermanentError`` — trying again cannot help: dead-letter the message with ``reason``.
    - ``MalformedMessage`` — a message on the bus that cannot be decoded or has no handler.
  - ``BusError`` — the bus itself misbehaved.
    - ``LockLost`` — the message (or its session) is no longer ours to settle.
"""

from __future__ import annotations

__all__ = [
    "BusError",
    "ConfigError",
    "DfjError",
    "LockLost",
    "MalformedMessage",
    "PermanentError",
    "RateLimited",
    "TransientError",
    "VerificationError",
]


class DfjError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(DfjError):
    """A setting is missing or cannot be parsed; the message names the key."""


class VerificationError(DfjError):
    """An inbound request could not be authenticated."""


class TransientError(DfjError):
    """The operation may succeed if tried again later."""


class RateLimited(TransientError):
    """The peer asked us to wait ``retry_after`` seconds before trying again."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DfjError):
    """Trying again cannot help; ``reason`` is a short machine-readable code."""

    def __init__(self, message: str, *, reason: str = "PermanentError") -> None:
        super().__init__(message)
        self.reason = reason


class MalformedMessage(PermanentError):
    """A bus message that cannot be decoded, fails its schema, or has no handler."""

    def __init__(self, message: str, *, reason: str = "MalformedMessage") -> None:
        super().__init__(message, reason=reason)


class BusError(DfjError):
    """The message bus failed in a way the caller did not cause."""


class LockLost(BusError):
    """The lock on a message or session expired or was taken by another consumer."""
