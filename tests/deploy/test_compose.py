"""docker-compose.yml: it parses, builds from what exists, and configures what the code reads."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from dfj_common.bus._servicebus_codec import is_emulator_connection
from dfj_common.config import Settings
from dfj_common.storage.mssql import DRIVER_NAME

ROOT = Path(__file__).resolve().parents[2]
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what a container must listen on
EMULATOR_CONFIG_TARGET = "/ServiceBus_Emulator/ConfigFiles/Config.json"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _resolve(value: object) -> str:
    """Compose's ``${NAME:-default}`` with an empty environment: the default (or "")."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so anchors can merge"
    return {str(k): _resolve(v) for k, v in env.items()}


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_compose_has_the_stack(compose: dict[str, Any], services: dict[str, Any]) -> None:
    """The four services, the emulator with its SQL Server, SQL Server, migrate, the profiles."""
    defined = compose["services"]
    for name in [*services, "servicebus-emulator", "servicebus-sql", "sqlserver", "migrate"]:
        assert name in defined, name
        assert "profiles" not in defined[name], f"{name} must start with a plain `up`"
    assert defined["sandbox"]["profiles"] == ["sandbox"]
    assert defined["smoke"]["profiles"] == ["smoke"]


def test_images_are_the_ones_the_emulator_documentation_names(compose: dict[str, Any]) -> None:
    """A pinned emulator tag (not :latest) with SQL Server 2022 beside it, not Azure SQL Edge."""
    defined = compose["services"]
    emulator = defined["servicebus-emulator"]
    repository, _, tag = emulator["image"].partition(":")
    assert repository == "mcr.microsoft.com/azure-messaging/servicebus-emulator"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), "pin an emulator version"
    environment = _environment(emulator)
    sql_host = environment["SQL_SERVER"]
    assert defined[sql_host]["image"] == "mcr.microsoft.com/mssql/server:2022-latest"
    assert environment["ACCEPT_EULA"] == "Y"
    assert environment["MSSQL_SA_PASSWORD"] == _environment(defined[sql_host])["MSSQL_SA_PASSWORD"]
    assert defined["sqlserver"]["image"] == "mcr.microsoft.com/mssql/server:2022-latest"


def test_emulator_mounts_the_generated_config(compose: dict[str, Any]) -> None:
    """The checked-in, generated Config.json is what the emulator reads."""
    volumes = compose["services"]["servicebus-emulator"]["volumes"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in volumes}
    source = mounts[EMULATOR_CONFIG_TARGET]
    assert (ROOT / source).resolve() == ROOT / "deploy" / "servicebus-emulator" / "Config.json"


def test_build_contexts_dockerfiles_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    """Every build names an existing context, Dockerfile and stage; every ./ mount exists."""
    dockerfile_text = (ROOT / "Dockerfile").read_text()
    built = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is not None:
            context = ROOT / build["context"]
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
            stage = f"AS svc-{build['args']['SERVICE']}"
            assert stage in dockerfile_text, f"{name}: no stage {stage}"
            built += 1
        for volume in service.get("volumes", []):
            source = _resolve(volume.split(":")[0])
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
    assert built >= 5


def test_every_dfj_name_in_compose_is_a_setting(
    compose: dict[str, Any], known_names: frozenset[str]
) -> None:
    """Keys and interpolated names alike: a typo here would silently fall back to a default."""
    used = {m for s in _strings(compose) for m in re.findall(r"\bDFJ_[A-Z0-9_]+\b", s)}
    assert len(used) > 10
    assert used <= known_names, sorted(used - known_names)


def test_services_run_on_the_emulator_and_sql_server(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """The settings read from each service's environment: Service Bus by the emulator's
    connection string, SQL Server through pyodbc and ODBC Driver 18, listening beyond loopback,
    on the port the settings default to."""
    defined = compose["services"]
    for name, facts in services.items():
        environment = _environment(defined[name])
        settings = Settings.from_env(environment, env_file=None)
        assert settings.bus == "servicebus", name
        assert settings.servicebus_connection is not None, name
        connection = settings.servicebus_connection.reveal()
        assert is_emulator_connection(connection), name
        host = re.search(r"Endpoint=sb://([^;/:]+)", connection)
        assert host and host.group(1) == "servicebus-emulator", name
        url = make_url(settings.database_url.reveal())
        assert (url.get_backend_name(), url.get_driver_name()) == ("mssql", "pyodbc"), name
        assert url.query["driver"] == DRIVER_NAME, name
        assert url.host in defined and url.host != "servicebus-sql", name
        assert settings.bind_host == ALL_INTERFACES, name
        assert environment[facts.port_env] == str(facts.port), name
        assert getattr(settings, facts.port_env[4:].lower()) == facts.port, name


def test_service_specific_settings_read_the_compose_environment(compose: dict[str, Any]) -> None:
    """Each service's own settings accept what compose gives it (they fail fast by name)."""
    from dfj_discord_worker.settings import DiscordWorkerSettings
    from dfj_gateway.settings import GatewaySettings
    from dfj_jira_worker.settings import JiraWorkerSettings
    from dfj_linker.settings import LinkerSettings

    defined = compose["services"]
    GatewaySettings.from_env(_environment(defined["gateway"]))
    JiraWorkerSettings.from_env(_environment(defined["jira-worker"]))
    LinkerSettings.from_env(_environment(defined["linker"]))
    discord = DiscordWorkerSettings.from_env(_environment(defined["discord-worker"]))
    assert discord.global_requests_per_second <= 50, "one process: Discord's global limit"


def test_migrations_run_once_before_the_services(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """Each service waits for `migrate` to finish successfully; migrate does not restart."""
    defined = compose["services"]
    migrate = defined["migrate"]
    assert migrate.get("restart") == "no"
    assert "dfj_common.cli" in (ROOT / "deploy" / "compose" / "migrate.py").read_text()
    for name in services:
        condition = defined[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert (
        Settings.from_env(_environment(migrate), env_file=None).database_url
        == Settings.from_env(_environment(defined["linker"]), env_file=None).database_url
    )


def _seconds(duration: str) -> float:
    found = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert found and duration, duration
    return int(found.group(1) or 0) * 60 + int(found.group(2) or 0)


@pytest.mark.parametrize("name", ["gateway", "jira-worker", "discord-worker", "linker"])
def test_stop_grace_covers_the_drain(compose: dict[str, Any], name: str) -> None:
    """SIGTERM, then at least the drain period plus a margin before compose kills."""
    service = compose["services"][name]
    grace = Settings.from_env(_environment(service), env_file=None).drain_grace_seconds
    assert service["stop_signal"] == "SIGTERM"
    assert _seconds(service["stop_grace_period"]) >= grace + 5


def test_gateway_is_published_on_its_port(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """``localhost:8080`` reaches the gateway; the workers publish nothing."""
    defined = compose["services"]
    port = services["gateway"].port
    assert f"{port}:{port}" in [
        str(p).removeprefix("127.0.0.1:") for p in defined["gateway"]["ports"]
    ]
    for name in ("jira-worker", "discord-worker", "linker"):
        assert "ports" not in defined[name], name
