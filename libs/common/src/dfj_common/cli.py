"""``dfj``: the operator's command line — migrations and the bus's dead-letter tools.

    dfj migrate [--sql DIALECT]        upgrade the database (or print the T-SQL/SQL script)
    dfj dlq list QUEUE [--limit N]     dead-lettered messages, oldest first
    dfj dlq show QUEUE MESSAGE_ID      one dead-lettered message, its body redacted
    dfj dlq replay QUEUE (--all | --id ID ...)
    dfj bus stats                      active / scheduled / locked / dead-lettered per queue

Settings come from the environment (and ``.env``) as for the services.

Services add their own commands without ``dfj_common`` importing them: a distribution declares
an entry point in the ``dfj.cli`` group (``[project.entry-points."dfj.cli"]`` in its
``pyproject.toml``) naming a :data:`Register` callable, ``register(subcommands) -> None``. It
adds its parser to ``subcommands`` and sets ``handler`` with ``set_defaults(handler=...)``;
a :data:`Handler` is an ``async def handler(args, settings, out) -> int`` returning the exit
status, and ``run`` drives it with ``asyncio.run``. A handler reports failure by raising a
``DfjError`` (printed as ``dfj: <message>``, exit 2) or by returning non-zero. A plugin that
cannot be loaded is reported on stderr and skipped, so the other commands keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final, TextIO, TypeAlias

from dfj_common.bus import Bus, open_bus
from dfj_common.config import Settings
from dfj_common.errors import DfjError
from dfj_common.logging import redact_value

__all__ = ["PLUGIN_GROUP", "Handler", "Register", "Subcommands", "load_plugins", "main", "run"]

PLUGIN_GROUP: Final = "dfj.cli"
"""The entry-point group through which services contribute ``dfj`` subcommands."""

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers()`` returns: a plugin calls ``add_parser`` on it."""

Handler: TypeAlias = Callable[[argparse.Namespace, Settings, TextIO], Coroutine[Any, Any, int]]
"""A plugin command: ``async def handler(args, settings, out) -> int`` (the exit status)."""

Register: TypeAlias = Callable[[Subcommands], None]
"""A plugin: ``register(subcommands) -> None`` adds a parser with ``set_defaults(handler=…)``."""


def load_plugins() -> list[tuple[str, Register]]:
    """Every installed ``dfj.cli`` entry point, loaded, by name; a broken one is skipped."""
    found: list[tuple[str, Register]] = []
    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        try:
            register = point.load()
        except (ImportError, AttributeError) as exc:
            # One broken plugin must not take `dfj migrate` and the bus tools down with it.
            sys.stderr.write(f"dfj: skipping the {point.name!r} commands: {exc}\n")
            continue
        found.append((point.name, register))
    return found


def _parser(plugins: Iterable[Register]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfj", description="Discord for Jira operator tools")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="upgrade the database schema to the latest")
    migrate.add_argument("--sql", metavar="DIALECT", help="print the script for DIALECT instead")
    dlq = sub.add_parser("dlq", help="dead-letter queue tools")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="list dead-lettered messages")
    dlq_list.add_argument("queue")
    dlq_list.add_argument("--limit", type=int, default=50)
    dlq_show = dlq_sub.add_parser("show", help="show one dead-lettered message")
    dlq_show.add_argument("queue")
    dlq_show.add_argument("message_id")
    dlq_replay = dlq_sub.add_parser("replay", help="move dead-lettered messages back")
    dlq_replay.add_argument("queue")
    which = dlq_replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every dead-lettered message")
    which.add_argument("--id", action="append", dest="ids", metavar="MESSAGE_ID")
    bus = sub.add_parser("bus", help="bus tools")
    bus_sub = bus.add_subparsers(dest="bus_command", required=True)
    bus_sub.add_parser("stats", help="message counts per queue")
    for register in plugins:
        register(sub)
    return parser


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


async def _with_bus(settings: Settings, action: Callable[[Bus], Awaitable[int]]) -> int:
    bus = await open_bus(settings)
    try:
        return await action(bus)
    finally:
        await bus.close()


async def _dlq_list(bus: Bus, queue: str, limit: int, out: TextIO) -> int:
    letters = await bus.dead_letters(queue, limit=limit)
    for d in letters:
        out.write(
            f"{d.message_id}\t{d.reason}\tdeliveries={d.delivery_count}\t"
            f"dead-lettered={_when(d.dead_lettered_at)}\t{d.description[:120]}\n"
        )
    out.write(f"{len(letters)} dead-lettered message(s) in {queue}\n")
    return 0


async def _dlq_show(bus: Bus, queue: str, message_id: str, out: TextIO) -> int:
    for d in await bus.dead_letters(queue, limit=10_000):
        if d.message_id == message_id:
            body: object
            try:
                body = json.loads(d.body)
            except ValueError:
                body = d.body.decode("utf-8", "replace")
            # Bodies carry interaction tokens and, for a few commands, message text: an operator
            # sees the shape and ids, never those (replay still uses the stored original).
            body = redact_value(body)
            shown = {
                "queue": d.queue,
                "message_id": d.message_id,
                "session_id": d.session_id,
                "reason": d.reason,
                "description": d.description,
                "delivery_count": d.delivery_count,
                "enqueued_at": _when(d.enqueued_at),
                "dead_lettered_at": _when(d.dead_lettered_at),
                "properties": dict(d.properties),
                "body": body,
            }
            out.write(json.dumps(shown, indent=2, ensure_ascii=False) + "\n")
            return 0
    out.write(f"no dead-lettered message {message_id} in {queue}\n")
    return 1


async def _dlq_replay(bus: Bus, queue: str, ids: Sequence[str] | None, out: TextIO) -> int:
    moved = await bus.replay(queue, message_ids=ids)
    out.write(f"replayed {moved} message(s) to {queue}\n")
    return 0


async def _stats(bus: Bus, out: TextIO) -> int:
    out.write(f"{'queue':<16}{'active':>8}{'scheduled':>11}{'locked':>8}{'dead':>7}  oldest\n")
    for s in await bus.stats():
        out.write(
            f"{s.queue:<16}{s.active:>8}{s.scheduled:>11}{s.locked:>8}{s.dead_lettered:>7}"
            f"  {_when(s.oldest_enqueued_at)}\n"
        )
    return 0


def _migrate(settings: Settings, dialect: str | None, out: TextIO) -> int:
    from dfj_common.storage.migrate import render_sql, upgrade

    if dialect:
        out.write(render_sql(dialect))
        return 0
    upgrade(settings.database_url.reveal())
    out.write("database is at the latest schema\n")
    return 0


def _dispatch(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    handler: Handler | None = getattr(args, "handler", None)
    if handler is not None:
        return asyncio.run(handler(args, settings, out))
    if args.command == "migrate":
        return _migrate(settings, args.sql, out)
    if args.command == "bus":
        return asyncio.run(_with_bus(settings, lambda b: _stats(b, out)))
    if args.dlq_command == "list":
        return asyncio.run(_with_bus(settings, lambda b: _dlq_list(b, args.queue, args.limit, out)))
    if args.dlq_command == "show":
        return asyncio.run(
            _with_bus(settings, lambda b: _dlq_show(b, args.queue, args.message_id, out))
        )
    ids = None if args.all else list(args.ids)
    return asyncio.run(_with_bus(settings, lambda b: _dlq_replay(b, args.queue, ids, out)))


def run(
    argv: Sequence[str],
    *,
    environ: dict[str, str],
    out: TextIO,
    plugins: Iterable[Register] | None = None,
    env_file: str | Path | None = ".env",
) -> int:
    """Parse ``argv`` and run the command; returns the exit status.

    ``plugins`` defaults to the installed ``dfj.cli`` entry points; ``env_file`` is read as
    by :meth:`Settings.from_env` (``None``: the environment only).
    """
    registers = [r for _, r in load_plugins()] if plugins is None else list(plugins)
    args = _parser(registers).parse_args(argv)
    try:
        return _dispatch(args, Settings.from_env(environ, env_file=env_file), out)
    except (DfjError, ValueError) as exc:
        sys.stderr.write(f"dfj: {exc}\n")
        return 2


def main() -> None:
    """Console entry point."""
    sys.exit(run(sys.argv[1:], environ=dict(os.environ), out=sys.stdout))


if __name__ == "__main__":
    main()
