"""The whole system on one machine: simulators in-process, the four services as processes.

Used three ways: ``make run`` without credentials (:mod:`dfj_sandbox.stack.demo`, the sandbox
page), the end-to-end suite (``tests/e2e``) and the end-to-end benchmark (``bench/e2e.py``).
"""

from dfj_sandbox.stack.cast import Cast, build_cast, first_run
from dfj_sandbox.stack.processes import (
    SERVICES,
    ServiceProcesses,
    ServiceSpec,
    file_sink,
    free_ports,
    terminal_sink,
)
from dfj_sandbox.stack.sandbox import CommandAnswer, Member, Sandbox, SandboxError

__all__ = [
    "SERVICES",
    "Cast",
    "CommandAnswer",
    "Member",
    "Sandbox",
    "SandboxError",
    "ServiceProcesses",
    "ServiceSpec",
    "build_cast",
    "file_sink",
    "first_run",
    "free_ports",
    "terminal_sink",
]
