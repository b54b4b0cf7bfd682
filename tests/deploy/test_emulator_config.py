"""The Service Bus emulator's Config.json is generated from the topology and checked in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dfj_common.bus.topology import TOPOLOGY

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "emulator_config.py"
CONFIG = ROOT / "deploy" / "servicebus-emulator" / "Config.json"


@pytest.fixture(name="generator")
def _generator(load_script: Callable[[Path], ModuleType]) -> ModuleType:
    return load_script(SCRIPT)


def _seconds(iso: str) -> int:
    """``PT1M30S`` → 90 (the emulator's durations have hours, minutes and seconds only)."""
    assert iso.startswith("PT"), iso
    total, number = 0, ""
    for char in iso[2:]:
        if char.isdigit():
            number += char
            continue
        total += int(number) * {"H": 3600, "M": 60, "S": 1}[char]
        number = ""
    return total


def test_checked_in_config_is_what_the_generator_writes(generator: ModuleType) -> None:
    """Changing the topology without re-running scripts/emulator_config.py fails here."""
    assert CONFIG.read_text(encoding="utf-8") == generator.render(), (
        "deploy/servicebus-emulator/Config.json is stale: run python scripts/emulator_config.py"
    )


def test_generator_check_mode_tells_a_stale_file(
    generator: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--check`` passes on a fresh file and fails on a changed or missing one."""
    target = tmp_path / "Config.json"
    assert generator.main(["--path", str(target)]) == 0
    assert generator.main(["--check", "--path", str(target)]) == 0
    document = json.loads(target.read_text(encoding="utf-8"))
    document["UserConfig"]["Namespaces"][0]["Queues"].pop()
    target.write_text(json.dumps(document), encoding="utf-8")
    assert generator.main(["--check", "--path", str(target)]) == 1
    assert generator.main(["--check", "--path", str(tmp_path / "missing.json")]) == 1
    assert "is stale" in capsys.readouterr().err


def test_config_queues_are_the_topology_within_the_emulator_limits() -> None:
    """Every queue, with its sessions, deliveries, lock and dedupe, read straight from the file."""
    config: dict[str, Any] = json.loads(CONFIG.read_text(encoding="utf-8"))
    (namespace,) = config["UserConfig"]["Namespaces"]
    assert namespace["Name"] == "sbemulatorns"  # fixed by the emulator's schema
    assert config["UserConfig"]["Logging"]["Type"] in {"File", "Console"}
    queues = {q["Name"]: q["Properties"] for q in namespace["Queues"]}
    assert list(queues) == list(TOPOLOGY)
    for name, spec in TOPOLOGY.items():
        props = queues[name]
        assert props["RequiresSession"] is spec.sessions, name
        assert props["MaxDeliveryCount"] == min(spec.max_deliveries, 10), name
        assert _seconds(props["LockDuration"]) == min(max(round(spec.lock_duration), 5), 300)
        assert props["RequiresDuplicateDetection"] is (spec.duplicate_window > 0), name
        window = _seconds(props["DuplicateDetectionHistoryTimeWindow"])
        assert 5 <= window <= 300, name  # the emulator's range
        assert window == min(max(round(spec.duplicate_window), 5), 300), name
        assert props["DeadLetteringOnMessageExpiration"] is True, name
        assert 300 <= _seconds(props["DefaultMessageTimeToLive"]) <= 3600, name
