"""Shared views of the deployment files for tests/deploy: parsed once per session, read-only.

Nothing here needs Docker, Azure or the network: the compose file is YAML (PyYAML), the Bicep
files go through ``pycep-parser`` (syntax only), the Dockerfile through ``dockerfile`` (the
BuildKit parser), and what the files must agree with comes from the code itself — the queue
topology, the settings classes, the services' modules.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import dockerfile
import pytest
import yaml
from pycep import BicepParser

from dfj_common.bus.topology import TOPOLOGY
from dfj_common.config import Settings, env_name

ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = ROOT / "deploy"
SERVICES: Final = ("gateway", "jira-worker", "discord-worker", "linker")

_EDGE: Final = re.compile(r"^\s*([\w-]+(?:\s*,\s*[\w-]+)*)\s*→\s*([\w-]+)\s*:")


def _load_script(path: Path) -> ModuleType:
    """Import a script that is not in a package (scripts/, deploy/compose/) by its path."""
    name = "dfj_deploy_test_" + re.sub(r"\W", "_", str(path.relative_to(ROOT)))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Service:
    """What the code says about one service: its module, its port setting, what it consumes."""

    name: str
    module: str
    """``python -m`` target (DESIGN.md: ``dfj_<service>``)."""
    port_env: str
    """The health (gateway: HTTP) port setting, e.g. ``DFJ_JIRA_WORKER_PORT``."""
    port: int
    """That setting's default."""
    consumes: tuple[str, ...]
    """Queues it consumes, in topology order."""


# -- the topology's producers and consumers --------------------------------------------------


@dataclass(frozen=True)
class Edges:
    """Who sends to and who consumes each queue, as the topology's descriptions state it."""

    producers: Mapping[str, frozenset[str]]
    consumer: Mapping[str, str]


def topology_edges() -> Edges:
    """Parse ``"gateway, jira-worker → linker: …; linker → …"`` of every queue's description."""
    producers: dict[str, frozenset[str]] = {}
    consumer: dict[str, str] = {}
    for name, spec in TOPOLOGY.items():
        senders: set[str] = set()
        for part in spec.description.split(";"):
            found = _EDGE.match(part)
            assert found, f"{name}: cannot read producer → consumer from {part!r}"
            senders |= {s.strip() for s in found.group(1).split(",")}
            assert consumer.setdefault(name, found.group(2)) == found.group(2), name
        producers[name] = frozenset(senders)
    return Edges(producers=producers, consumer=consumer)


def expected_queue_roles() -> set[tuple[str, str, str]]:
    """(service, queue, role): send where it publishes; receive what it consumes; and send to a
    consumed queue without sessions too, because a retry there is a scheduled copy."""
    edges = topology_edges()
    roles: set[tuple[str, str, str]] = set()
    for queue, spec in TOPOLOGY.items():
        roles |= {(p, queue, "serviceBusDataSender") for p in edges.producers[queue]}
        roles.add((edges.consumer[queue], queue, "serviceBusDataReceiver"))
        if not spec.sessions:
            roles.add((edges.consumer[queue], queue, "serviceBusDataSender"))
    return roles


# -- the settings' names ---------------------------------------------------------------------


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every name a ``from_env`` asks it for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def known_env_names() -> frozenset[str]:
    """Every ``DFJ_*`` name some code reads: the shared settings, each service's own settings,
    the environment secret store's names for the secrets the services use, the sandbox's spec
    paths."""
    from dfj_common.derived_keys import STATE_SIGNING_KEY_SECRET
    from dfj_common.secrets import KEK_SECRET, PREVIOUS_KEK_SECRET, EnvSecretStore
    from dfj_discord_worker.settings import DiscordWorkerSettings
    from dfj_gateway.settings import GatewaySettings
    from dfj_jira_worker.settings import AZURE_OPENAI_KEY_SECRET, JiraWorkerSettings
    from dfj_linker.settings import LinkerSettings
    from dfj_sandbox.discord_sim import openapi as discord_openapi
    from dfj_sandbox.jira_sim import openapi as jira_openapi

    names = {env_name(f.name) for f in fields(Settings)}
    for settings_class in (GatewaySettings, JiraWorkerSettings, LinkerSettings):
        names |= {env_name(f.name) for f in fields(settings_class)}
    for reader in (
        GatewaySettings.from_env,
        JiraWorkerSettings.from_env,
        LinkerSettings.from_env,
        DiscordWorkerSettings.from_env,
    ):
        recorder = _Recorder()
        reader(recorder)
        names |= recorder.asked
    secrets = (KEK_SECRET, PREVIOUS_KEK_SECRET, STATE_SIGNING_KEY_SECRET, AZURE_OPENAI_KEY_SECRET)
    names |= {EnvSecretStore.variable(s) for s in secrets}
    names |= {jira_openapi.SPEC_ENV, discord_openapi.SPEC_ENV}
    return frozenset(n for n in names if n.startswith("DFJ_"))


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="session")
def bicep_parser() -> BicepParser:
    return BicepParser()


@pytest.fixture(scope="session")
def main_bicep(bicep_parser: BicepParser) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(bicep_parser.parse(file_path=DEPLOY / "main.bicep"))
    return parsed


@pytest.fixture(scope="session")
def app_bicep(bicep_parser: BicepParser) -> dict[str, Any]:
    path = DEPLOY / "modules" / "containerapp.bicep"
    parsed: dict[str, Any] = dict(bicep_parser.parse(file_path=path))
    return parsed


@pytest.fixture(scope="session")
def docker_commands() -> tuple[Any, ...]:
    return tuple(dockerfile.parse_file(str(ROOT / "Dockerfile")))


@pytest.fixture(scope="session")
def known_names() -> frozenset[str]:
    return known_env_names()


@pytest.fixture(scope="session")
def edges() -> Edges:
    return topology_edges()


@pytest.fixture(scope="session")
def expected_roles() -> set[tuple[str, str, str]]:
    return expected_queue_roles()


@pytest.fixture(scope="session")
def services(edges: Edges) -> dict[str, Service]:
    """The four services, by name."""
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
    found: dict[str, Service] = {}
    for name in SERVICES:
        port_field = name.replace("-", "_") + "_port"
        found[name] = Service(
            name=name,
            module="dfj_" + name.replace("-", "_"),
            port_env=env_name(port_field),
            port=int(defaults[port_field]),
            consumes=tuple(q for q in TOPOLOGY if edges.consumer[q] == name),
        )
    return found


@pytest.fixture(scope="session")
def drain_grace() -> float:
    """``DFJ_DRAIN_GRACE_SECONDS``'s default."""
    (grace,) = (f.default for f in fields(Settings) if f.name == "drain_grace_seconds")
    assert isinstance(grace, float)
    return grace


@pytest.fixture(scope="session")
def load_script() -> Callable[[Path], ModuleType]:
    return _load_script
