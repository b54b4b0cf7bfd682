"""Reading a Forge ``manifest.yml`` the way ``forge deploy`` would refuse a broken one.

Only what Forge Remote needs is read (forge.md §1.1): ``app.id``, ``app.connect.key``,
``modules.endpoint`` (key → remote + ``route.path`` + ``auth``), ``modules.trigger``,
``modules.scheduledTrigger``, ``modules.preUninstall``, ``modules["jira:adminPage"]`` (its
``resolver.endpoint``), ``remotes`` and ``permissions.scopes``. Cross references must hold: a
trigger, scheduled trigger, pre-uninstall or resolver naming an unknown endpoint, or an
endpoint naming an unknown remote, is a :class:`ManifestRefused` — before anything is sent.

The ``baseUrl`` of a remote in the file is not used: the installer is told the real one (a
test's loopback server), so the file in the repository is the one under test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from dfj_sandbox.jira_sim.connect import InstallRefused

__all__ = [
    "APP_ARI_PREFIX",
    "AdminPage",
    "Endpoint",
    "ForgeManifest",
    "ManifestRefused",
    "PreUninstall",
    "ScheduledTrigger",
    "Trigger",
    "load_manifest",
    "read_manifest",
]

APP_ARI_PREFIX: Final = "ari:cloud:ecosystem::app/"


class ManifestRefused(InstallRefused):
    """Forge would not deploy or install this manifest; ``reason`` says why."""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """A ``modules.endpoint`` entry: where on which remote, and which tokens come along."""

    key: str
    remote: str
    path: str | None
    system_token: bool
    user_token: bool


@dataclass(frozen=True, kw_only=True)
class Trigger:
    """A ``modules.trigger`` entry whose events go to an endpoint."""

    key: str
    endpoint: str
    events: tuple[str, ...]
    ignore_self: bool = False


@dataclass(frozen=True, kw_only=True)
class ScheduledTrigger:
    """A ``modules.scheduledTrigger`` entry (``interval``: fiveMinute, hour, day, week)."""

    key: str
    endpoint: str
    interval: str


@dataclass(frozen=True, kw_only=True)
class PreUninstall:
    """A ``modules.preUninstall`` entry (called when an admin starts the uninstall)."""

    key: str
    endpoint: str


@dataclass(frozen=True, kw_only=True)
class AdminPage:
    """A page module (``jira:adminPage`` or ``jira:globalPage``) and its resolver endpoint.

    The resolver is how the page's ``invokeRemote`` reaches the remote.
    """

    key: str
    endpoint: str | None
    module_type: str = "jira:adminPage"


#: The Custom UI page modules the simulator can open (each page's invocations name its type).
PAGE_MODULES: Final = ("jira:adminPage", "jira:globalPage")


@dataclass(frozen=True, kw_only=True)
class ForgeManifest:
    """What the simulator needs from a manifest, checked (see :func:`read_manifest`)."""

    app_id: str
    connect_key: str | None
    endpoints: Mapping[str, Endpoint]
    remotes: frozenset[str]
    triggers: tuple[Trigger, ...]
    scheduled: tuple[ScheduledTrigger, ...]
    pre_uninstall: tuple[PreUninstall, ...]
    admin_pages: tuple[AdminPage, ...]
    scopes: Mapping[str, bool] = field(default_factory=dict)
    """Scope name → ``allowImpersonation``."""

    def triggers_for(self, event: str) -> tuple[Trigger, ...]:
        """The triggers listing ``event``."""
        return tuple(t for t in self.triggers if event in t.events)

    @property
    def impersonation_scopes(self) -> frozenset[str]:
        """Scopes declared with ``allowImpersonation: true``."""
        return frozenset(name for name, allowed in self.scopes.items() if allowed)


def _map(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestRefused(f"{where} must be a mapping")
    return value


def _entries(value: object, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        raise ManifestRefused(f"{where} must be a list of mappings")
    return list(value)


def _text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise ManifestRefused(f"{where} needs a {name}")
    return value


def _enabled(auth: Mapping[str, Any], name: str, where: str) -> bool:
    return _map(_map(auth, where).get(name), f"{where}.{name}").get("enabled") is True


def _endpoints(modules: Mapping[str, Any], remotes: frozenset[str]) -> dict[str, Endpoint]:
    found: dict[str, Endpoint] = {}
    for index, entry in enumerate(_entries(modules.get("endpoint"), "modules.endpoint")):
        where = f"modules.endpoint[{index}]"
        key = _text(entry, "key", where)
        remote = _text(entry, "remote", where)
        if remote not in remotes:
            raise ManifestRefused(f"endpoint {key!r} names an unknown remote {remote!r}")
        if key in found:
            raise ManifestRefused(f"endpoint {key!r} is declared twice")
        path = _map(entry.get("route"), f"{where}.route").get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ManifestRefused(f"endpoint {key!r}: route.path must start with /")
        auth = _map(entry.get("auth"), f"{where}.auth")
        found[key] = Endpoint(
            key=key,
            remote=remote,
            path=path,
            system_token=_enabled(auth, "appSystemToken", f"{where}.auth"),
            user_token=_enabled(auth, "appUserToken", f"{where}.auth"),
        )
    return found


def _backend_endpoint(
    entry: Mapping[str, Any], where: str, endpoints: Mapping[str, Endpoint]
) -> tuple[str, str]:
    """(module key, endpoint key) of a backend module; its endpoint must have a route.path."""
    key = _text(entry, "key", where)
    endpoint = _text(entry, "endpoint", where)
    if endpoint not in endpoints:
        raise ManifestRefused(f"{key!r} names an unknown endpoint {endpoint!r}")
    if endpoints[endpoint].path is None:
        raise ManifestRefused(f"{key!r}: endpoint {endpoint!r} has no route.path")
    return key, endpoint


def read_manifest(document: object, *, app_id: str | None = None) -> ForgeManifest:
    """Check a parsed manifest and read it; ``app_id`` overrides ``app.id``."""
    root = _map(document, "the manifest")
    app = _map(root.get("app"), "app")
    chosen = app_id or app.get("id")
    if not isinstance(chosen, str) or not chosen.startswith(APP_ARI_PREFIX):
        raise ManifestRefused(f"app.id must be an ARI starting with {APP_ARI_PREFIX}")
    connect_key = _map(app.get("connect"), "app.connect").get("key")
    if connect_key is not None and not isinstance(connect_key, str):
        raise ManifestRefused("app.connect.key must be a string")
    remotes: set[str] = set()
    for index, entry in enumerate(_entries(root.get("remotes"), "remotes")):
        remotes.add(_text(entry, "key", f"remotes[{index}]"))
    modules = _map(root.get("modules"), "modules")
    endpoints = _endpoints(modules, frozenset(remotes))
    triggers = []
    for index, entry in enumerate(_entries(modules.get("trigger"), "modules.trigger")):
        key, endpoint = _backend_endpoint(entry, f"modules.trigger[{index}]", endpoints)
        events = entry.get("events")
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) for e in events)
        ):
            raise ManifestRefused(f"trigger {key!r} needs a list of events")
        ignore_self = _map(entry.get("filter"), f"trigger {key}.filter").get("ignoreSelf") is True
        triggers.append(
            Trigger(key=key, endpoint=endpoint, events=tuple(events), ignore_self=ignore_self)
        )
    scheduled = []
    for index, entry in enumerate(_entries(modules.get("scheduledTrigger"), "scheduledTrigger")):
        key, endpoint = _backend_endpoint(entry, f"modules.scheduledTrigger[{index}]", endpoints)
        interval = _text(entry, "interval", f"scheduledTrigger {key!r}")
        scheduled.append(ScheduledTrigger(key=key, endpoint=endpoint, interval=interval))
    pre_uninstall = [
        PreUninstall(key=key, endpoint=endpoint)
        for key, endpoint in (
            _backend_endpoint(entry, f"modules.preUninstall[{index}]", endpoints)
            for index, entry in enumerate(_entries(modules.get("preUninstall"), "preUninstall"))
        )
    ]
    pages = []
    for module_type in PAGE_MODULES:
        for index, entry in enumerate(_entries(modules.get(module_type), module_type)):
            where = f"modules.{module_type}[{index}]"
            key = _text(entry, "key", where)
            resolver = _map(entry.get("resolver"), f"{where}.resolver").get("endpoint")
            if resolver is not None and resolver not in endpoints:
                raise ManifestRefused(f"page {key!r} names an unknown endpoint {resolver!r}")
            pages.append(AdminPage(key=key, endpoint=resolver, module_type=module_type))
    scopes = {
        str(name): _map(options, f"permissions.scopes.{name}").get("allowImpersonation") is True
        for name, options in _map(
            _map(root.get("permissions"), "permissions").get("scopes"), "permissions.scopes"
        ).items()
    }
    return ForgeManifest(
        app_id=chosen,
        connect_key=connect_key,
        endpoints=endpoints,
        remotes=frozenset(remotes),
        triggers=tuple(triggers),
        scheduled=tuple(scheduled),
        pre_uninstall=tuple(pre_uninstall),
        admin_pages=tuple(pages),
        scopes=scopes,
    )


def load_manifest(path: str | Path, *, app_id: str | None = None) -> ForgeManifest:
    """Read and check the manifest file at ``path`` (ManifestRefused if it is not valid)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestRefused(f"the manifest is not YAML: {exc}") from exc
    return read_manifest(document, app_id=app_id)
