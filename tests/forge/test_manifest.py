"""``forge/manifest.yml`` holds together: every reference resolves, the scopes and events are
the ones the gateway and workers rely on, and the pages it deploys (the admin page and the
link page) are the ones built from ``forge/static/<page>`` (``forge/package.json``'s
``build``). ``forge lint`` is the real judge; it needs an Atlassian login, so this is what can
be checked here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from dfj_gateway.forge.routes import (
    ADMIN_PAGE_KEY,
    ADMIN_PAGE_TYPE,
    LINK_PAGE_KEY,
    LINK_PAGE_TYPE,
)

ROOT: Final = Path(__file__).resolve().parents[2]
FORGE: Final = ROOT / "forge"
#: The Custom UI pages: module type → the folder under forge/static/ built into its resource.
PAGE_TYPES: Final = ("jira:adminPage", "jira:globalPage")
PAGES: Final = ("admin", "link")


@pytest.fixture(name="manifest", scope="module")
def _manifest() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((FORGE / "manifest.yml").read_text(encoding="utf-8"))
    return doc


def endpoints(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {e["key"]: e for e in manifest["modules"]["endpoint"]}
    assert len(found) == len(manifest["modules"]["endpoint"]), "endpoint keys repeat"
    return found


def referenced(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(module type, endpoint key) for every module that sends to an endpoint."""
    modules = manifest["modules"]
    refs = [
        (kind, m["endpoint"])
        for kind in ("trigger", "scheduledTrigger", "preUninstall")
        for m in modules.get(kind, [])
    ]
    refs += [
        (kind, m["resolver"]["endpoint"]) for kind in PAGE_TYPES for m in modules.get(kind, [])
    ]
    return refs


def test_every_module_names_a_declared_endpoint(manifest: dict[str, Any]) -> None:
    declared = endpoints(manifest)
    refs = referenced(manifest)
    assert {kind for kind, _ in refs} == {
        "trigger",
        "scheduledTrigger",
        "preUninstall",
        "jira:adminPage",
        "jira:globalPage",
    }
    for kind, key in refs:
        assert key in declared, f"{kind} names endpoint {key!r}, which is not declared"
    # And no endpoint is left over.
    assert {key for _, key in refs} == set(declared)


def test_every_endpoint_names_a_declared_remote_and_a_forge_route(manifest: dict[str, Any]) -> None:
    remotes = {r["key"] for r in manifest["remotes"]}
    resolvers = {
        m["resolver"]["endpoint"] for kind in PAGE_TYPES for m in manifest["modules"][kind]
    }
    for key, endpoint in endpoints(manifest).items():
        assert endpoint["remote"] in remotes, f"endpoint {key!r}: unknown remote"
        assert endpoint["auth"]["appSystemToken"]["enabled"] is True, key
        if key in resolvers:
            # A UI resolver's path comes from the invokeRemote call, not the manifest.
            assert "route" not in endpoint, key
            continue
        path = endpoint["route"]["path"]
        assert path.startswith("/forge/"), f"endpoint {key!r}: {path!r} is not under /forge/"
        assert re.fullmatch(r"/forge/[a-z0-9/-]+", path), path


def test_every_remote_key_fits_and_backend_is_the_gateway(manifest: dict[str, Any]) -> None:
    for remote in manifest["remotes"]:
        assert len(remote["key"]) <= 23, remote["key"]
    (backend,) = (r for r in manifest["remotes"] if r["key"] == "backend")
    assert "compute" in backend["operations"]  # invokeRemote and triggers need it
    assert backend["baseUrl"].startswith("https://")
    if "storage" in backend["operations"]:
        assert isinstance(backend["storage"]["inScopeEUD"], bool)
    assert manifest["permissions"]["external"]["fetch"]["backend"] == [{"remote": "backend"}]


def test_the_app_id_is_an_app_ari(manifest: dict[str, Any]) -> None:
    assert re.fullmatch(r"ari:cloud:ecosystem::app/[0-9a-f-]{36}", manifest["app"]["id"])
    connect = manifest["app"].get("connect")
    if connect is not None:
        assert connect["remote"] in {r["key"] for r in manifest["remotes"]}


def test_scopes_carry_the_system_token_and_impersonation(manifest: dict[str, Any]) -> None:
    scopes = manifest["permissions"]["scopes"]
    assert "read:app-system-token" in scopes
    for scope in ("read:jira-work", "write:jira-work"):
        assert scopes[scope]["allowImpersonation"] is True, scope
    # Tokens are only minted with a product scope besides the token scopes (forge.md §1.1).
    assert set(scopes) - {"read:app-system-token", "read:app-user-token"}


def test_the_events_are_exactly_what_the_jira_worker_handles(manifest: dict[str, Any]) -> None:
    triggers = {t["key"]: t for t in manifest["modules"]["trigger"]}
    product = [t for t in triggers.values() if any(e.startswith("avi:jira:") for e in t["events"])]
    assert len(product) == 1
    assert sorted(product[0]["events"]) == sorted(
        [
            "avi:jira:created:issue",
            "avi:jira:updated:issue",
            "avi:jira:deleted:issue",
            "avi:jira:commented:issue",
            "avi:jira:deleted:comment",
        ]
    )
    # Changes made from Discord are news to the channel, as on Connect: nothing is filtered.
    assert "filter" not in product[0]
    lifecycle = [
        t for t in triggers.values() if any(e.startswith("avi:forge:") for e in t["events"])
    ]
    assert len(lifecycle) == 1
    assert sorted(lifecycle[0]["events"]) == ["avi:forge:installed:app", "avi:forge:upgraded:app"]
    assert len(triggers) == 2


def test_the_token_refresh_runs_hourly_and_uninstall_is_announced(manifest: dict[str, Any]) -> None:
    (scheduled,) = manifest["modules"]["scheduledTrigger"]
    assert scheduled["interval"] == "hour"
    (uninstall,) = manifest["modules"]["preUninstall"]
    assert endpoints(manifest)[uninstall["endpoint"]]["route"]["path"] == "/forge/uninstall"


def test_the_admin_page_is_a_custom_ui_config_page(manifest: dict[str, Any]) -> None:
    (page,) = manifest["modules"]["jira:adminPage"]
    assert page["useAsConfig"] is True
    assert page["key"] == ADMIN_PAGE_KEY == "config"
    assert ADMIN_PAGE_TYPE == "jira:adminPage"
    resources = {r["key"]: r["path"] for r in manifest["resources"]}
    assert resources[page["resource"]] == "static/admin/build"
    assert "render" not in page  # Custom UI, not UI Kit


def test_the_link_page_is_the_one_custom_ui_global_page(manifest: dict[str, Any]) -> None:
    """Jira allows one jira:globalPage per app; the gateway's POST /forge/ui/link only serves
    an invocation from the module with the key it knows (LINK_PAGE_KEY)."""
    (page,) = manifest["modules"]["jira:globalPage"]
    assert page["key"] == LINK_PAGE_KEY == "link"
    assert LINK_PAGE_TYPE == "jira:globalPage"
    assert page["title"] == "Link Discord"
    assert page["resolver"] == {"endpoint": "ui"}
    (admin,) = manifest["modules"]["jira:adminPage"]
    assert page["resolver"] == admin["resolver"]  # one UI endpoint; the FIT names the module
    resources = {r["key"]: r["path"] for r in manifest["resources"]}
    assert resources[page["resource"]] == "static/link/build"
    assert page["resource"] == "link"
    assert "render" not in page  # Custom UI, not UI Kit
    # Subpages would move the page below /jira/apps/<appId>/<envId>, where the linker's
    # button does not point.
    assert "pages" not in page and "sections" not in page


def test_resources_exist_or_are_what_the_build_writes(manifest: dict[str, Any]) -> None:
    """A resource is a folder with an index.html, or a page's bundle `npm run build` writes.

    The bundles are not checked in (forge/.gitignore): their sources must be there, build.mjs
    must write into those folders, and the folders must be ignored by git.
    """
    build = (FORGE / "build.mjs").read_text(encoding="utf-8")
    ignored = (FORGE / ".gitignore").read_text(encoding="utf-8").split()
    (built,) = re.findall(r"^const PAGES = \[([^\]]*)\];$", build, re.M)
    assert sorted(re.findall(r"'([a-z]+)'", built)) == sorted(PAGES)
    assert "join(here, 'static', page)" in build and "join(source, 'build')" in build
    paths = {r["path"] for r in manifest["resources"]}
    assert {f"static/{page}/build" for page in PAGES} <= paths
    assert len(paths) == len(manifest["resources"]), "resource paths repeat"
    for resource in manifest["resources"]:
        folder = FORGE / resource["path"]
        page = resource["path"].removeprefix("static/").removesuffix("/build")
        if page in PAGES:
            assert f"{resource['path']}/" in ignored
            for name in ("index.html", "main.js", "style.css"):
                assert (folder.parent / name).is_file(), f"{page}: {name}"
                if name != "main.js":
                    assert f"'{name}'" in build, f"build.mjs does not copy {name}"
            # What the pages share goes into every build folder (Forge deploys each alone).
            assert (FORGE / "static" / "shared" / "shared.css").is_file()
            assert "join(SHARED, 'shared.css'), join(out, 'shared.css')" in build
        else:
            assert (folder / "index.html").is_file(), resource


def test_package_json_pins_exact_versions_and_builds() -> None:
    package = json.loads((FORGE / "package.json").read_text(encoding="utf-8"))
    assert package["private"] is True
    assert package["scripts"]["build"] == "node build.mjs"
    deps = package["devDependencies"]
    assert set(deps) == {"@forge/bridge", "esbuild"}
    for name, version in deps.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
    lock = json.loads((FORGE / "package-lock.json").read_text(encoding="utf-8"))
    for name, version in deps.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name


@pytest.mark.parametrize("page", PAGES)
def test_the_page_imports_the_bridge_by_its_bare_name(page: str) -> None:
    """The tests' import map substitutes '@forge/bridge'; the bundle inlines it (and
    ../shared/ui.js, which the page imports by that relative path)."""
    source = (FORGE / "static" / page / "main.js").read_text(encoding="utf-8")
    assert re.search(r"^import \{[^}]*\} from '@forge/bridge';$", source, re.M)
    assert re.search(r"^\} from '\.\./shared/ui\.js';$", source, re.M)
    shared = (FORGE / "static" / "shared" / "ui.js").read_text(encoding="utf-8")
    for text in (source, shared):
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text
        assert "outerHTML" not in text and "document.write" not in text
    html = (FORGE / "static" / page / "index.html").read_text(encoding="utf-8")
    assert '<script type="module" src="./main.js"></script>' in html
    assert html.index('href="./shared.css"') < html.index('href="./style.css"')
    assert "<script>" not in html  # Forge's CSP allows no inline script
