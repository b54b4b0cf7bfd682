"""What the simulator records for tests and benchmarks to assert on.

Nothing secret is recorded: a call names its route template and major parameter, never the
URL (interaction tokens travel in webhook URLs), and the webhook major parameter is recorded
as ``<application id>:<interaction id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dfj_sandbox.discord_sim.openapi import FieldError

__all__ = ["AuthKind", "Call", "EndpointCheck", "InteractionResult", "ProbeResult", "SpecViolation"]

AuthKind = Literal["bot", "bearer", "none", "invalid"]


@dataclass(frozen=True, kw_only=True)
class Call:
    """One request the simulator answered."""

    method: str
    template: str | None
    major: str | None
    status: int
    auth: AuthKind
    at: float
    rate_limited: bool = False
    scope: str | None = None
    """On a 429: ``user``, ``global``, ``shared``, or ``cloudflare`` for the ban."""
    bucket: str | None = None
    injected: bool = False
    """Whether ``sim.fail_next`` produced the answer."""
    user_agent: str | None = None

    @property
    def key(self) -> str:
        """``METHOD template``."""
        return f"{self.method} {self.template}"


@dataclass(frozen=True, kw_only=True)
class SpecViolation:
    """A body the spec (with the documented corrections) or a documented rule refuses."""

    method: str
    template: str
    operation_id: str | None
    errors: tuple[FieldError, ...]

    @property
    def message(self) -> str:
        """The errors as one line."""
        return "; ".join(
            f"{'.'.join(map(str, e.path)) or '<body>'}: {e.code}: {e.message}" for e in self.errors
        )


@dataclass(frozen=True, kw_only=True)
class InteractionResult:
    """How the app answered an interaction the simulator sent."""

    status: int
    body: Any
    headers: Mapping[str, str]
    elapsed: float
    interaction_id: str
    token: str = field(repr=False)
    acknowledged: bool
    """Whether Discord would take the answer as the initial response."""


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """One routine invalid-signature probe: what came back, and whether that passes."""

    status: int
    passed: bool


@dataclass(frozen=True, kw_only=True)
class EndpointCheck:
    """What saving the interactions endpoint URL in the portal does: a PING and a probe."""

    ping_status: int
    pong: bool
    probe: ProbeResult

    @property
    def passed(self) -> bool:
        """Whether Discord would accept the endpoint."""
        return self.ping_status == 200 and self.pong and self.probe.passed
