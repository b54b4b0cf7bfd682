"""Write your Forge app id and your gateway's public URL into ``forge/manifest.yml``.

    python scripts/forge_manifest.py --app-id ari:cloud:ecosystem::app/<uuid> \\
        --public-url https://jira-bridge.example.org [--connect-key KEY] [--manifest PATH] [--check]

``forge register`` gives a self-hoster an app id; the gateway's public URL (``DFJ_PUBLIC_URL``)
is where Forge sends every call. The script sets ``app.id`` and the ``baseUrl`` of the
``backend`` remote and, with ``--connect-key``, ``app.connect`` (``key``, ``remote: backend``)
so that a site running the Connect app keeps its data when it moves to Forge. Without
``--connect-key`` an ``app.connect`` already in the file is left as it is.

The file is edited line by line, so its comments and layout stay; the result is parsed again
and must hold exactly the values asked for, or nothing is written. ``--check`` writes nothing
and exits 1 when the file differs from what the script would write. Bad input, or a manifest
the script cannot edit safely, exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

__all__ = [
    "MANIFEST_PATH",
    "REMOTE_KEY",
    "ManifestError",
    "Values",
    "main",
    "rewrite",
    "validate_app_id",
    "validate_connect_key",
    "validate_public_url",
]

ROOT: Final = Path(__file__).resolve().parents[1]
MANIFEST_PATH: Final = ROOT / "forge" / "manifest.yml"
#: The remote whose baseUrl is our gateway; app.connect.remote names it too.
REMOTE_KEY: Final = "backend"

_APP_ID: Final = re.compile(r"ari:cloud:ecosystem::app/[0-9a-f-]{36}")
#: Connect descriptor keys: letters, digits, '-', '.', '_'; at most 64 characters.
_CONNECT_KEY: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOP_LEVEL: Final = re.compile(r"[^\s#]")
_SCALAR: Final = re.compile(
    r"^(?P<head>\s*(?:-\s+)?(?P<name>[\w.-]+):[ \t]*)(?P<value>[^#\s][^#]*?)?(?P<tail>\s+#.*)?$"
)


class ManifestError(ValueError):
    """Bad input, or a manifest this script cannot edit safely; the message says which."""


@dataclass(frozen=True, kw_only=True)
class Values:
    """What goes into the manifest, already validated."""

    app_id: str
    base_url: str
    connect_key: str | None = None


def validate_app_id(value: str) -> str:
    """A Forge app ARI, ``ari:cloud:ecosystem::app/`` and a lower-case UUID."""
    if not _APP_ID.fullmatch(value):
        raise ManifestError(
            f"--app-id {value!r} is not a Forge app id: expected "
            "ari:cloud:ecosystem::app/<uuid> (lower case, as `forge register` prints it)"
        )
    return value


def validate_public_url(value: str) -> str:
    """An https URL with a host, no credentials, query or fragment; returned without a final '/'."""
    if value != value.strip() or any(c.isspace() for c in value):
        raise ManifestError(f"--public-url {value!r} contains white space")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ManifestError(f"--public-url {value!r} is not a URL: {exc}") from None
    if parts.scheme != "https":
        raise ManifestError(f"--public-url {value!r} must be https:// (Forge calls only https)")
    if not parts.hostname:
        raise ManifestError(f"--public-url {value!r} has no host")
    if parts.username is not None or parts.password is not None:
        # Not echoed: it holds a password.
        raise ManifestError("--public-url must not carry credentials (user:password@)")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ManifestError(f"--public-url {value!r} must not have a query or a fragment")
    if port == 0:
        raise ManifestError(f"--public-url {value!r} has port 0")
    path = parts.path.rstrip("/")
    return f"https://{parts.netloc}{path}"


def validate_connect_key(value: str) -> str:
    """A Connect app key (``DFJ_APP_KEY``)."""
    if not _CONNECT_KEY.fullmatch(value):
        raise ManifestError(
            f"--connect-key {value!r} is not a Connect app key: 1 to 64 letters, digits, "
            "'-', '.' or '_'"
        )
    return value


# -- line-based editing ------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return stripped == "" or stripped.startswith("#")


def _block(lines: list[str], name: str) -> tuple[int, int]:
    """The top-level ``name:`` line and the end (exclusive) of its block."""
    starts = [i for i, line in enumerate(lines) if re.fullmatch(rf"{name}:\s*(#.*)?", line)]
    if len(starts) != 1:
        raise ManifestError(f"the manifest must have one top-level '{name}:' block")
    start = starts[0]
    end = start + 1
    while end < len(lines) and not _TOP_LEVEL.match(lines[end]):
        end += 1
    return start, end


def _set_scalar(line: str, value: str) -> str:
    """``line`` (``[- ]name: old  # comment``) with ``value``, its comment kept."""
    found = _SCALAR.match(line)
    if found is None:
        raise ManifestError(f"cannot edit the line {line.strip()!r}")
    old = found.group("value")
    if old is not None and old.strip().startswith(("{", "[", "|", ">", "&", "*", "!")):
        raise ManifestError(f"cannot edit the line {line.strip()!r}: not a plain value")
    return found.group("head") + value + (found.group("tail") or "")


def _key_column(line: str) -> int:
    """Where a line's key starts: after the indent, and after "- " on a list item's first line."""
    column = _indent(line)
    rest = line[column:]
    if rest.startswith("- "):
        column += 1 + _indent(rest[1:])
    return column


def _field(lines: list[str], start: int, end: int, indent: int, name: str) -> int | None:
    """The line in ``lines[start:end]`` that holds key ``name`` at column ``indent``."""
    pattern = re.compile(rf"\s*(?:-\s+)?{re.escape(name)}:(\s|$)")
    for i in range(start, end):
        line = lines[i]
        if not _is_blank_or_comment(line) and _key_column(line) == indent and pattern.match(line):
            return i
    return None


def _set_app_id(lines: list[str], app_id: str) -> None:
    start, end = _block(lines, "app")
    at = _field(lines, start + 1, end, 2, "id")
    if at is None:
        raise ManifestError("the manifest's 'app:' block has no 'id:'")
    lines[at] = _set_scalar(lines[at], app_id)


def _remote_item(lines: list[str]) -> tuple[int, int, int]:
    """The ``remotes`` item whose key is ``backend``: first line, end, and its fields' indent."""
    start, end = _block(lines, "remotes")
    dashes = [i for i in range(start + 1, end) if lines[i].lstrip(" ").startswith("- ")]
    if not dashes:
        raise ManifestError("the manifest's 'remotes:' list is empty")
    dash_indent = _indent(lines[dashes[0]])
    items = [i for i in dashes if _indent(lines[i]) == dash_indent] + [end]
    for first, after in itertools.pairwise(items):
        fields = _key_column(lines[first])
        key = _field(lines, first, after, fields, "key")
        found = None if key is None else _SCALAR.match(lines[key])
        if found is not None and (found.group("value") or "").strip("'\"") == REMOTE_KEY:
            return first, after, fields
    raise ManifestError(f"the manifest has no remote with key {REMOTE_KEY!r}")


def _set_base_url(lines: list[str], base_url: str) -> None:
    first, after, fields = _remote_item(lines)
    at = _field(lines, first, after, fields, "baseUrl")
    if at is None:
        raise ManifestError(f"the {REMOTE_KEY!r} remote has no 'baseUrl:'")
    found = _SCALAR.match(lines[at])
    if found is None or found.group("value") is None:
        raise ManifestError(
            f"the {REMOTE_KEY!r} remote's baseUrl is not one URL (a region map?): edit it by hand"
        )
    lines[at] = _set_scalar(lines[at], base_url)


_COMMENTED_CONNECT: Final = re.compile(r"  #\s?connect:\s*")
_COMMENTED_CHILD: Final = re.compile(r"  #\s+(key|remote):.*")


def _set_connect(lines: list[str], key: str) -> None:
    start, end = _block(lines, "app")
    wanted = ["  connect:", f"    key: {key}", f"    remote: {REMOTE_KEY}"]
    at = _field(lines, start + 1, end, 2, "connect")
    if at is not None:
        # Already uncommented: set its key and remote where they stand.
        found = _SCALAR.match(lines[at])
        if found is not None and found.group("value") is not None:
            raise ManifestError(
                "app.connect is written inline: write it as a block, or edit it by hand"
            )
        child_end = at + 1
        while child_end < end and (
            _is_blank_or_comment(lines[child_end]) or _indent(lines[child_end]) > 2
        ):
            child_end += 1
        for name, value in (("key", key), ("remote", REMOTE_KEY)):
            child = _field(lines, at + 1, child_end, 4, name)
            if child is None:
                lines.insert(child_end, f"    {name}: {value}")
                child_end += 1
            else:
                lines[child] = _set_scalar(lines[child], value)
        return
    for i in range(start + 1, end):
        if _COMMENTED_CONNECT.fullmatch(lines[i]):
            j = i + 1
            while j < end and _COMMENTED_CHILD.fullmatch(lines[j]):
                j += 1
            lines[i:j] = wanted
            return
    id_line = _field(lines, start + 1, end, 2, "id")
    assert id_line is not None  # _set_app_id ran first
    lines[id_line + 1 : id_line + 1] = wanted


def _parsed_check(text: str, values: Values) -> None:
    """The edited text must parse and hold exactly what was asked for."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"the edited manifest would not parse: {exc}") from None
    app = doc.get("app") if isinstance(doc, dict) else None
    remotes = doc.get("remotes") if isinstance(doc, dict) else None
    if not isinstance(app, dict) or app.get("id") != values.app_id:
        raise ManifestError("editing app.id went wrong: edit the manifest by hand")
    backend = [r for r in remotes or [] if isinstance(r, dict) and r.get("key") == REMOTE_KEY]
    if len(backend) != 1 or backend[0].get("baseUrl") != values.base_url:
        raise ManifestError(f"editing the {REMOTE_KEY!r} remote went wrong: edit it by hand")
    if values.connect_key is not None and app.get("connect") != {
        "key": values.connect_key,
        "remote": REMOTE_KEY,
    }:
        raise ManifestError("editing app.connect went wrong: edit the manifest by hand")


def rewrite(text: str, values: Values) -> str:
    """The manifest ``text`` with ``values`` written in; comments and layout kept."""
    newline = text.endswith("\n")
    lines = text.splitlines()
    _set_app_id(lines, values.app_id)
    _set_base_url(lines, values.base_url)
    if values.connect_key is not None:
        _set_connect(lines, values.connect_key)
    result = "\n".join(lines) + ("\n" if newline else "")
    _parsed_check(result, values)
    return result


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--app-id", required=True, help="ari:cloud:ecosystem::app/<uuid>")
    parser.add_argument(
        "--public-url", required=True, help="the gateway's https URL (DFJ_PUBLIC_URL)"
    )
    parser.add_argument("--connect-key", help="the Connect app key (DFJ_APP_KEY) to adopt")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH, help="the manifest.yml")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file would change")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or, with ``--check``, compare) the manifest; returns the exit status."""
    args = _parse_args(argv)
    path: Path = args.manifest
    try:
        values = Values(
            app_id=validate_app_id(args.app_id),
            base_url=validate_public_url(args.public_url),
            connect_key=None
            if args.connect_key is None
            else validate_connect_key(args.connect_key),
        )
        try:
            current = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
        text = rewrite(current, values)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if text != current:
            print(f"{path} differs: run scripts/forge_manifest.py without --check", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if text == current:
        print(f"{path} already up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
