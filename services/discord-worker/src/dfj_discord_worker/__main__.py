"""``python -m dfj_discord_worker``: run discord-worker until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os

from dfj_common.config import Settings
from dfj_common.service import run_main, run_worker
from dfj_discord_worker.bootstrap import SERVICE, bootstrap

if __name__ == "__main__":
    run_main(run_worker(SERVICE, Settings.from_env(os.environ), bootstrap))
