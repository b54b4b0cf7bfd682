"""The slice of the azure-servicebus 7.x async API this backend uses, as structural types.

The backend talks to these protocols, not to the SDK classes, so the unit tests can stand small
fakes in for the client, senders and receivers (the I/O edge) while mypy checks that the real
``azure.servicebus.aio.ServiceBusClient`` satisfies them (see ``servicebus._connect``).
Message parameters are ``Any`` because the SDK types them as its own concrete message class.
Keyword names (``timeout`` among them) are the SDK's, so they stay as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusSessionFilter
from azure.servicebus import ServiceBusSubQueue as _SubQueue

__all__ = [
    "ClientLike",
    "NextAvailable",
    "ReceivedMessageLike",
    "ReceiverLike",
    "SenderLike",
    "SessionLike",
]

NextAvailable = Literal[ServiceBusSessionFilter.NEXT_AVAILABLE]


class ReceivedMessageLike(Protocol):
    """``azure.servicebus.ServiceBusReceivedMessage``: what we read of a received message."""

    @property
    def message_id(self) -> str | None: ...

    @property
    def session_id(self) -> str | None: ...

    @property
    def body(self) -> Any: ...

    @property
    def application_properties(self) -> Mapping[str | bytes, Any] | None: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def subject(self) -> str | None: ...

    @property
    def delivery_count(self) -> int | None: ...

    @property
    def enqueued_time_utc(self) -> datetime | None: ...

    @property
    def sequence_number(self) -> int | None: ...

    @property
    def dead_letter_reason(self) -> str | None: ...

    @property
    def dead_letter_error_description(self) -> str | None: ...

    @property
    def state(self) -> int: ...


class SessionLike(Protocol):
    """``azure.servicebus.aio.ServiceBusSession``."""

    @property
    def session_id(self) -> str: ...

    @property
    def locked_until_utc(self) -> datetime | None: ...

    async def renew_lock(self, *, timeout: float | None = None) -> datetime: ...


class ReceiverLike(Protocol):
    """``azure.servicebus.aio.ServiceBusReceiver`` (peek-lock)."""

    async def __aenter__(self) -> Any: ...

    async def close(self) -> None: ...

    @property
    def session(self) -> SessionLike: ...

    async def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> Sequence[Any]: ...

    async def peek_messages(
        self, max_message_count: int = 1, *, sequence_number: int = 0, timeout: float | None = None
    ) -> Sequence[Any]: ...

    async def complete_message(self, message: Any) -> None: ...

    async def abandon_message(self, message: Any) -> None: ...

    async def dead_letter_message(
        self, message: Any, reason: str | None = None, error_description: str | None = None
    ) -> None: ...

    async def renew_message_lock(
        self, message: Any, *, timeout: float | None = None
    ) -> datetime: ...


class SenderLike(Protocol):
    """``azure.servicebus.aio.ServiceBusSender``."""

    async def send_messages(
        self,
        message: ServiceBusMessage | list[ServiceBusMessage] | ServiceBusMessageBatch,
        *,
        timeout: float | None = None,
    ) -> None: ...

    async def create_message_batch(
        self, max_size_in_bytes: int | None = None
    ) -> ServiceBusMessageBatch: ...

    async def close(self) -> None: ...


class ClientLike(Protocol):
    """``azure.servicebus.aio.ServiceBusClient``."""

    def get_queue_sender(self, queue_name: str) -> SenderLike: ...

    def get_queue_receiver(
        self,
        queue_name: str,
        *,
        session_id: str | NextAvailable | None = None,
        sub_queue: _SubQueue | str | None = None,
        max_wait_time: float | None = None,
        prefetch_count: int = 0,
    ) -> ReceiverLike: ...

    def list_queue_sessions(
        self, queue_name: str, *, timeout: float | None = None
    ) -> AsyncIterable[str]: ...

    async def close(self) -> None: ...
