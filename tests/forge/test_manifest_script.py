"""``scripts/forge_manifest.py``: writes the app id and public URL, keeps every comment.

Run both ways: as a subprocess (what a self-hoster types, exit codes and messages) and
in-process (``main`` and ``rewrite``), always on a copy of ``forge/manifest.yml``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest
import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
SCRIPT: Final = ROOT / "scripts" / "forge_manifest.py"
MANIFEST: Final = ROOT / "forge" / "manifest.yml"
APP_ID: Final = "ari:cloud:ecosystem::app/3f2b9a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
URL: Final = "https://jira-bridge.acme.example"


def _load() -> ModuleType:
    name = "dfj_test_forge_manifest_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fm: Final = _load()


@pytest.fixture(name="manifest")
def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.yml"
    path.write_text(MANIFEST.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def parsed(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def backend_url(doc: Any) -> str:
    (remote,) = (r for r in doc["remotes"] if r["key"] == "backend")
    url: str = remote["baseUrl"]
    return url


def test_the_script_writes_app_id_and_base_url_and_keeps_the_rest(manifest: Path) -> None:
    """Exactly two lines change; every comment and every other value stays."""
    before = manifest.read_text(encoding="utf-8")
    done = run("--app-id", APP_ID, "--public-url", URL + "/", "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    assert f"wrote {manifest}" in done.stdout
    after = manifest.read_text(encoding="utf-8")
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [
        ("  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-000000000000", f"  id: {APP_ID}"),
        ("    baseUrl: https://jira-bridge.example.org", f"    baseUrl: {URL}"),
    ]
    assert comments(after) == comments(before)
    doc, old = parsed(manifest), yaml.safe_load(before)
    assert doc["app"]["id"] == APP_ID
    assert backend_url(doc) == URL
    assert "connect" not in doc["app"]
    old["app"]["id"], old["remotes"][0]["baseUrl"] = APP_ID, URL
    assert doc == old


def test_check_exits_1_when_the_file_differs_and_0_when_it_matches(manifest: Path) -> None:
    args = ("--app-id", APP_ID, "--public-url", URL, "--manifest", str(manifest))
    before = manifest.read_text(encoding="utf-8")
    stale = run(*args, "--check")
    assert stale.returncode == 1
    assert "differs" in stale.stderr
    assert manifest.read_text(encoding="utf-8") == before  # --check writes nothing
    assert run(*args).returncode == 0
    fresh = run(*args, "--check")
    assert fresh.returncode == 0, fresh.stderr
    assert "up to date" in fresh.stdout


def test_the_checked_in_manifest_holds_the_placeholders() -> None:
    """The repository's file is the template: placeholder app id, example URL, no connect key."""
    done = run(
        "--app-id",
        "ari:cloud:ecosystem::app/00000000-0000-0000-0000-000000000000",
        "--public-url",
        "https://jira-bridge.example.org",
        "--check",
    )
    assert done.returncode == 0, done.stderr


def test_connect_key_uncomments_app_connect(manifest: Path) -> None:
    """--connect-key turns the commented example into app.connect {key, remote: backend}."""
    args = ["--app-id", APP_ID, "--public-url", URL, "--manifest", str(manifest)]
    done = run(*args, "--connect-key", "acme-dfj")
    assert done.returncode == 0, done.stderr
    doc = parsed(manifest)
    assert doc["app"]["connect"] == {"key": "acme-dfj", "remote": "backend"}
    text = manifest.read_text(encoding="utf-8")
    assert "  connect:\n    key: acme-dfj\n    remote: backend\n" in text
    assert "# connect:" not in text
    # Again with another key: the uncommented block is edited in place, nothing is duplicated.
    assert run(*args, "--connect-key", "other.key_1").returncode == 0
    again = manifest.read_text(encoding="utf-8")
    assert parsed(manifest)["app"]["connect"] == {"key": "other.key_1", "remote": "backend"}
    assert again.count("connect:") == 1
    # Without --connect-key an existing app.connect is left alone.
    assert run(*args).returncode == 0
    assert manifest.read_text(encoding="utf-8") == again
    assert run(*args, "--connect-key", "other.key_1", "--check").returncode == 0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--app-id", "ari:cloud:ecosystem::app/not-a-uuid", "is not a Forge app id"),
        ("--app-id", APP_ID.upper(), "is not a Forge app id"),
        ("--app-id", APP_ID + "0", "is not a Forge app id"),
        ("--app-id", "3f2b9a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b", "is not a Forge app id"),
        ("--public-url", "http://jira-bridge.acme.example", "must be https://"),
        ("--public-url", "https://", "has no host"),
        ("--public-url", "https:///path", "has no host"),
        ("--public-url", "jira-bridge.acme.example", "must be https://"),
        ("--public-url", "https://h.example/?a=1", "must not have a query or a fragment"),
        ("--public-url", "https://h.example/#x", "must not have a query or a fragment"),
        ("--public-url", "https://h.example?", "must not have a query or a fragment"),
        ("--public-url", "https://user:pw@h.example", "must not carry credentials"),
        ("--public-url", "https://h.example:99999", "is not a URL"),
        ("--public-url", "https://h.example/a b", "white space"),
        ("--connect-key", "has space", "is not a Connect app key"),
        ("--connect-key", "k" * 65, "is not a Connect app key"),
        ("--connect-key", "key: injected", "is not a Connect app key"),
    ],
)
def test_bad_input_exits_2_with_the_reason_and_writes_nothing(
    manifest: Path, flag: str, value: str, message: str
) -> None:
    before = manifest.read_text(encoding="utf-8")
    args = {"--app-id": APP_ID, "--public-url": URL, flag: value}
    argv = [item for pair in args.items() for item in pair]
    done = run(*argv, "--manifest", str(manifest))
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.startswith("error: ")
    assert "pw@" not in done.stderr  # a password in the URL is not echoed
    assert manifest.read_text(encoding="utf-8") == before
    # The same in-process.
    assert fm.main([*argv, "--manifest", str(manifest)]) == 2


def test_a_missing_manifest_or_argument_exits_2(tmp_path: Path) -> None:
    missing = run("--app-id", APP_ID, "--public-url", URL, "--manifest", str(tmp_path / "no.yml"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    assert run("--public-url", URL).returncode == 2  # argparse: --app-id is required


def test_in_process_main_writes_and_checks(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--app-id", APP_ID, "--public-url", "https://h.example:8443/dfj//", "--manifest"]
    assert fm.main([*args, str(manifest), "--check"]) == 1
    assert fm.main([*args, str(manifest)]) == 0
    assert backend_url(parsed(manifest)) == "https://h.example:8443/dfj"
    assert fm.main([*args, str(manifest), "--check"]) == 0
    assert fm.main([*args, str(manifest)]) == 0
    assert "already up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://h.example", "https://h.example"),
        ("https://h.example/", "https://h.example"),
        ("https://h.example/base/path/", "https://h.example/base/path"),
        ("https://H.example:443", "https://H.example:443"),
    ],
)
def test_public_url_is_normalised(value: str, expected: str) -> None:
    assert fm.validate_public_url(value) == expected


TEMPLATE: Final = """\
# top comment
app:
  id: ari:cloud:ecosystem::app/00000000-0000-0000-0000-000000000000  # mine
  runtime:
    name: nodejs22.x
modules: {}
remotes:
  - key: other
    baseUrl: https://other.example  # not ours
  -   baseUrl: "https://old.example"
      key: backend
      operations: [compute]
"""


def test_rewrite_handles_field_order_quotes_and_trailing_comments() -> None:
    """The backend remote is found by key wherever its fields stand; other remotes untouched."""
    values = fm.Values(app_id=APP_ID, base_url=URL, connect_key="k")
    text = fm.rewrite(TEMPLATE, values)
    assert f"  id: {APP_ID}  # mine\n" in text
    assert "    baseUrl: https://other.example  # not ours\n" in text
    assert f"  -   baseUrl: {URL}\n" in text
    doc = yaml.safe_load(text)
    assert doc["app"]["connect"] == {"key": "k", "remote": "backend"}
    assert doc["app"]["runtime"] == {"name": "nodejs22.x"}
    assert fm.rewrite(text, values) == text  # idempotent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app:\n  runtime: {}\nremotes:\n  - key: backend\n    baseUrl: x\n", "has no 'id:'"),
        ("app:\n  id: a\nremotes:\n  - key: other\n    baseUrl: x\n", "no remote with key"),
        (
            "app:\n  id: a\nremotes:\n  - key: backend\n    baseUrl:\n      default: x\n",
            "not one URL",
        ),
        ("app:\n  id: a\n", "one top-level 'remotes:' block"),
        ("remotes: []\n", "one top-level 'app:' block"),
    ],
    ids=["no-id", "no-backend", "region-map", "no-remotes", "no-app"],
)
def test_rewrite_refuses_what_it_cannot_edit_safely(text: str, message: str) -> None:
    with pytest.raises(fm.ManifestError, match=message):
        fm.rewrite(text, fm.Values(app_id=APP_ID, base_url=URL))
