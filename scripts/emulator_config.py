"""Write the Service Bus emulator's ``Config.json`` from the queue topology in code.

    python scripts/emulator_config.py            # (re)write deploy/servicebus-emulator/Config.json
    python scripts/emulator_config.py --check    # exit 1 when the checked-in file is stale

The queues come from :data:`dfj_common.bus.topology.TOPOLOGY` through
:func:`dfj_common.bus.servicebus.emulator_config` (which clamps values into the emulator's
schema), so the emulator, the local bus and Azure (``deploy/main.bicep``) cannot disagree on a
queue's shape. ``tests/deploy`` runs the check in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

from dfj_common.bus.servicebus import emulator_config
from dfj_common.bus.topology import TOPOLOGY, Topology

__all__ = ["CONFIG_PATH", "main", "render"]

ROOT: Final = Path(__file__).resolve().parents[1]
CONFIG_PATH: Final = ROOT / "deploy" / "servicebus-emulator" / "Config.json"


def render(topology: Topology = TOPOLOGY) -> str:
    """The file's exact text: two-space JSON, keys in the emulator's order, a final newline."""
    return json.dumps(emulator_config(topology), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the file (or, with ``--check``, compare it); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--path", type=Path, default=CONFIG_PATH, help="the Config.json to use")
    args = parser.parse_args(argv)
    path: Path = args.path
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            print(f"{path} is stale: run python scripts/emulator_config.py", file=sys.stderr)
            return 1
        print(f"{path} matches the topology")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
