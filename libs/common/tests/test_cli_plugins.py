"""``dfj``'s plugin hook: services add subcommands through ``dfj.cli`` entry points."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import pytest

from dfj_common import cli
from dfj_common.cli import PLUGIN_GROUP, Register, Subcommands, load_plugins, run
from dfj_common.config import Settings
from dfj_common.errors import ConfigError


async def _hello(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.fail:
        raise ConfigError("DFJ_SOMETHING is missing")
    out.write(f"hello {args.name} from {settings.app_key}\n")
    return 3 if args.name == "three" else 0


def _register(subcommands: Subcommands) -> None:
    hello = subcommands.add_parser("hello", help="say hello")
    hello.add_argument("name")
    hello.add_argument("--fail", action="store_true")
    hello.set_defaults(handler=_hello)


@dataclass(frozen=True)
class _Point:
    """Just enough of an ``importlib.metadata.EntryPoint``."""

    name: str
    load: Callable[[], Register]


def _broken() -> Register:
    raise ModuleNotFoundError("No module named 'dfj_gone'")


def cli_run(*argv: str, plugins: list[Register] | None) -> tuple[int, str]:
    out = io.StringIO()
    code = run(list(argv), environ={"DFJ_APP_KEY": "k"}, out=out, plugins=plugins, env_file=None)
    return code, out.getvalue()


def test_a_plugin_command_runs_with_settings_and_its_exit_status() -> None:
    """The handler gets the parsed args, the settings and ``out``; its result is the status."""
    assert cli_run("hello", "ann", plugins=[_register]) == (0, "hello ann from k\n")
    assert cli_run("hello", "three", plugins=[_register])[0] == 3


def test_a_plugin_error_is_printed_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A ``DfjError`` from a handler is one ``dfj: …`` line on stderr, exit 2."""
    assert cli_run("hello", "x", "--fail", plugins=[_register]) == (2, "")
    assert capsys.readouterr().err == "dfj: DFJ_SOMETHING is missing\n"


def test_plugin_commands_are_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_run("--help", plugins=[_register])
    assert exited.value.code == 0
    assert "hello" in capsys.readouterr().out


def test_entry_points_are_loaded_by_name_and_a_broken_one_is_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The group is ``dfj.cli``; a plugin that cannot be imported does not stop the others."""
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[_Point]:
        asked.append(group)
        return [_Point("zeta", lambda: _register), _Point("alpha", _broken)]

    monkeypatch.setattr(cli, "entry_points", fake_entry_points)
    assert load_plugins() == [("zeta", _register)]
    assert asked == [PLUGIN_GROUP] == ["dfj.cli"]
    assert "skipping the 'alpha' commands: No module named 'dfj_gone'" in capsys.readouterr().err
    assert cli_run("hello", "bo", plugins=None) == (0, "hello bo from k\n")


def test_built_in_commands_still_work_beside_plugins() -> None:
    code, text = cli_run("migrate", "--sql", "sqlite", plugins=[_register])
    assert code == 0 and "CREATE TABLE" in text
