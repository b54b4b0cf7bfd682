"""The demo empties its folder on each run, and never a folder it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfj_sandbox.stack import SandboxError
from dfj_sandbox.stack.demo import MARK, fresh


def test_a_sandbox_folder_is_emptied_for_the_next_run(tmp_path: Path) -> None:
    workdir = tmp_path / "sandbox"
    fresh(workdir)
    (workdir / "dfj.sqlite").write_text("yesterday")
    fresh(workdir)
    assert sorted(p.name for p in workdir.iterdir()) == [MARK]


def test_a_folder_the_sandbox_did_not_make_is_left_alone(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    with pytest.raises(SandboxError, match="not a sandbox's folder"):
        fresh(tmp_path)
    assert precious.read_text() == "keep me"


def test_an_empty_or_missing_folder_becomes_a_sandbox_folder(tmp_path: Path) -> None:
    fresh(tmp_path)
    assert (tmp_path / MARK).is_file()
