"""The Dockerfile, read with BuildKit's own parser: stages, entry points, probes, drain, user."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what a container must listen on
_HEALTH_PORT = re.compile(r"os\.environ\.get\('(DFJ_\w+_PORT)', '(\d+)'\)")


def _stages(commands: tuple[Any, ...]) -> dict[str, list[Any]]:
    """Instructions by stage name (``FROM … AS name``); ``""`` holds what precedes any FROM."""
    stages: dict[str, list[Any]] = {"": []}
    current = ""
    for command in commands:
        if command.cmd == "FROM":
            value = command.value
            current = value[2] if len(value) == 3 and value[1].upper() == "AS" else value[0]
            stages[current] = [command]
        else:
            stages[current].append(command)
    return stages


def _one(stage: list[Any], cmd: str) -> Any:
    found = [c for c in stage if c.cmd == cmd]
    assert len(found) == 1, f"expected one {cmd}, found {len(found)}"
    return found[0]


def _lineage(stages: dict[str, list[Any]], name: str) -> list[str]:
    """A stage and the stages it is built FROM, nearest first."""
    chain = [name]
    while (parent := stages[chain[-1]][0].value[0]) in stages:
        chain.append(parent)
    return chain


def _env(stages: dict[str, list[Any]], name: str) -> dict[str, str]:
    """The ENV a stage has, inherited ones included."""
    values: dict[str, str] = {}
    for stage in reversed(_lineage(stages, name)):
        for command in stages[stage]:
            if command.cmd == "ENV":
                pairs = command.value
                values.update(zip(pairs[::2], pairs[1::2], strict=True))
    return values


@pytest.fixture(name="stages")
def _stages_fixture(docker_commands: tuple[Any, ...]) -> dict[str, list[Any]]:
    return _stages(docker_commands)


def test_each_service_stage_runs_its_own_module(
    stages: dict[str, list[Any]], services: dict[str, Any]
) -> None:
    """ENTRYPOINT is exec-form ``python -m dfj_<service>`` and that module exists."""
    for service in services.values():
        entry = _one(stages[f"svc-{service.name}"], "ENTRYPOINT")
        assert entry.json, f"{service.name}: exec form, so SIGTERM reaches Python"
        assert list(entry.value) == ["python", "-m", service.module]
        assert importlib.util.find_spec(service.module) is not None, service.module
        assert importlib.util.find_spec(service.module + ".__main__") is not None
    sandbox = _one(stages["svc-sandbox"], "ENTRYPOINT")
    assert list(sandbox.value[:2]) == ["python", "-m"]
    assert importlib.util.find_spec(sandbox.value[2]) is not None


def test_healthcheck_probes_healthz_on_the_port_setting(
    stages: dict[str, list[Any]], services: dict[str, Any]
) -> None:
    """The probe reads the service's port setting, defaulting to the settings' own default."""
    for service in services.values():
        stage = f"svc-{service.name}"
        check = _one(stages[stage], "HEALTHCHECK")
        assert check.json and check.value[0] == "CMD", stage
        script = " ".join(check.value[1:])
        assert "/healthz" in script, stage
        found = _HEALTH_PORT.search(script)
        assert found, f"{stage}: the probe must read the port setting"
        assert found.groups() == (service.port_env, str(service.port)), stage
        assert _env(stages, stage)[service.port_env] == str(service.port), stage
        assert list(_one(stages[stage], "EXPOSE").value) == [str(service.port)], stage


def test_images_drain_on_sigterm_for_the_settings_grace(
    stages: dict[str, list[Any]], services: dict[str, Any], drain_grace: float
) -> None:
    """Every service image stops with SIGTERM and carries the drain period of the settings."""
    for service in services.values():
        stage = f"svc-{service.name}"
        signals = [
            c.value[0] for s in _lineage(stages, stage) for c in stages[s] if c.cmd == "STOPSIGNAL"
        ]
        assert signals[:1] == ["SIGTERM"], stage
        env = _env(stages, stage)
        assert float(env["DFJ_DRAIN_GRACE_SECONDS"]) == drain_grace, stage
        assert env["DFJ_BIND_HOST"] == ALL_INTERFACES, (
            f"{stage}: a container must listen beyond loopback"
        )


def test_runtime_is_debian_slim_python_311_with_odbc_driver_18(
    stages: dict[str, list[Any]], docker_commands: tuple[Any, ...]
) -> None:
    """Base image, msodbcsql18 + unixODBC + libgssapi-krb5-2 with the EULA accepted."""
    args = {c.value[0].split("=", 1)[0]: c.value[0] for c in stages[""] if c.cmd == "ARG"}
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    assert "SERVICE" in args, "ARG SERVICE before the first FROM selects the final stage"
    runs = " ".join(" ".join(c.value) for c in stages["runtime"] if c.cmd == "RUN")
    for package in ("msodbcsql18", "unixodbc", "libgssapi-krb5-2"):
        assert re.search(rf"apt-get install [^;]*\b{re.escape(package)}\b", runs), package
    assert "ACCEPT_EULA=Y" in runs
    final = docker_commands[-1]
    assert final.cmd == "FROM" and final.value[0] == "svc-${SERVICE}"


def test_uv_installs_dependencies_first_then_the_packages_non_editable(
    stages: dict[str, list[Any]],
) -> None:
    """Two ``uv sync --frozen --no-editable`` runs for ``dfj-${SERVICE}``: deps, then project."""
    syncs = [
        " ".join(c.value) for c in stages["builder"] if c.cmd == "RUN" and "uv sync" in c.value[0]
    ]
    assert len(syncs) == 2
    for sync in syncs:
        for flag in ("--frozen", "--no-editable", "--no-dev", "--package dfj-${SERVICE}"):
            assert flag in sync, flag
    assert "--no-install-workspace" in syncs[0]
    assert "--no-install-workspace" not in syncs[1]
    copies = [c for c in stages["builder"] if c.cmd in {"COPY", "RUN"}]
    first_sync = next(i for i, c in enumerate(copies) if "uv sync" in " ".join(c.value))
    sources_before = [c.value[0] for c in copies[:first_sync] if c.cmd == "COPY"]
    assert all(s.endswith(("pyproject.toml", "uv.lock")) for s in sources_before), sources_before


def test_service_images_copy_only_the_venv_and_run_as_a_user(
    stages: dict[str, list[Any]], services: dict[str, Any]
) -> None:
    """The final stages take /app/.venv from the builder, nothing else, and are not root."""
    for service in services.values():
        lineage = _lineage(stages, f"svc-{service.name}")
        assert "builder" not in lineage, "the builder's tools must not be in the image"
        copies = [c for s in lineage for c in stages[s] if c.cmd == "COPY"]
        assert copies, service.name
        for copy in copies:
            assert "--from=builder" in copy.flags, copy.original
            assert list(copy.value) == ["/app/.venv", "/app/.venv"], copy.original
        users = [c.value[0] for s in lineage for c in stages[s] if c.cmd == "USER"]
        assert users and users[0] not in {"root", "0"}, service.name


def test_dockerignore_lets_every_copied_path_through(stages: dict[str, list[Any]]) -> None:
    """Each COPY source of the builder is re-included by a ``!`` pattern of .dockerignore."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line[1:] for line in lines if line.startswith("!")]
    assert "**" in lines, "exclude everything, then allow what the build needs"
    for copy in (c for c in stages["builder"] if c.cmd == "COPY"):
        source = copy.value[0].rstrip("/")
        path = ROOT / source
        assert path.exists(), source
        if path.is_file():
            probes = [source]
        else:
            probes = [str(p.relative_to(ROOT)) for p in sorted(path.glob("*/src/*/*.py"))]
        assert probes, source
        for probe in probes:
            assert any(fnmatch.fnmatch(probe, pattern) for pattern in allowed), probe


def test_dockerfile_env_names_are_settings(
    docker_commands: tuple[Any, ...], known_names: frozenset[str]
) -> None:
    """Every ``DFJ_*`` name the Dockerfile sets or reads is one the code reads."""
    text = (ROOT / "Dockerfile").read_text()
    used = set(re.findall(r"\bDFJ_[A-Z0-9_]+\b", text))
    assert used, "the images set DFJ_BIND_HOST at least"
    assert used <= known_names, sorted(used - known_names)
