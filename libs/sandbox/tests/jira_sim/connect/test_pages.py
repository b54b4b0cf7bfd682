"""App pages as Jira frames them: the page URL, and the ``/plugins/servlet/ac/…`` servlet."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from dfj_sandbox.jira_sim import SERVLET_TEMPLATE, JiraSimulator, Site

if TYPE_CHECKING:
    from libs.sandbox.tests.jira_sim.connect.conftest import FakeApp

_IFRAME = re.compile(r'<iframe[^>]* src="([^"]+)"')


def _servlet(site: Site, module_key: str) -> str:
    return f"{site.base_url}/plugins/servlet/ac/{site.app_key}/{module_key}"


async def test_page_url_carries_the_iframe_parameters_and_a_bound_jwt(
    installed: Site, app: FakeApp
) -> None:
    """xdm_e, cp, lic, cv and extra parameters, all under the qsh; sub is the viewer."""
    assert installed.app is not None
    url = installed.app.page_url("dfj-configure", account_id="dora", query=[("tab", "a b")])
    assert url.startswith(app.base_url + "/pages/config?")
    params = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert params["xdm_e"] == [installed.base_url]
    assert params["cp"] == [""]
    assert params["lic"] == ["none"]
    assert params["cv"] == ["1001.0.0"]
    assert params["tab"] == ["a b"]
    async with aiohttp.ClientSession() as http, http.get(url) as page:
        assert page.status == 200
        assert "page config for dora" in await page.text()
    (seen,) = app.calls("/pages/")
    assert seen.claims["sub"] == "dora"
    assert seen.claims["iss"] == installed.client_key


async def test_page_url_fills_the_template_and_refuses_unknown_modules(installed: Site) -> None:
    """``{ac.request}`` from the context (empty when not given); LookupError for no module."""
    assert installed.app is not None
    filled = installed.app.page_url("dfj-link", account_id="alice", context={"ac.request": "tok/1"})
    assert parse_qs(urlsplit(filled).query)["request"] == ["tok/1"]
    empty = installed.app.page_url("dfj-link", account_id="alice")
    assert parse_qs(urlsplit(empty).query, keep_blank_values=True)["request"] == [""]
    with pytest.raises(LookupError):
        installed.app.page_url("no-such-page", account_id="alice")


async def test_the_servlet_frames_the_page_for_the_signed_in_user(
    fast: JiraSimulator, installed: Site, app: FakeApp
) -> None:
    """ac.* parameters fill the template; the iframe's URL works for the signed-in user."""
    installed.sign_in("alice")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            _servlet(installed, "dfj-link"), params={"ac.request": "abc", "other": "x"}
        ) as framing:
            assert framing.status == 200
            assert framing.content_type == "text/html"
            document = await framing.text()
        found = _IFRAME.search(document)
        assert found is not None
        src = html.unescape(found.group(1))
        assert src.startswith(app.base_url + "/pages/link?")
        assert "other" not in parse_qs(urlsplit(src).query)
        async with http.get(src) as page:
            assert page.status == 200
    (seen,) = app.calls("/pages/")
    assert seen.query["request"] == "abc"
    assert seen.claims["sub"] == "alice"
    (call,) = [c for c in fast.calls if c.template == SERVLET_TEMPLATE]
    assert (call.site, call.account_id, call.status) == ("acme", "alice", 200)


async def test_the_servlet_redirects_when_asked_not_to_frame(installed: Site, app: FakeApp) -> None:
    """``frame=0``: a 302 to the page URL, which a client without JavaScript follows."""
    installed.sign_in("bob")
    url = _servlet(installed, "dfj-link")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            url, params={"ac.request": "xyz", "frame": "0"}, allow_redirects=False
        ) as redirect:
            assert redirect.status == 302
            assert redirect.headers["Location"].startswith(app.base_url + "/pages/link?")
        async with http.get(url, params={"ac.request": "xyz", "frame": "0"}) as followed:
            assert followed.status == 200
            assert "page link for bob" in await followed.text()
    assert [c.query["request"] for c in app.calls("/pages/")] == ["xyz"]


async def test_the_servlet_asks_to_log_in_without_a_user(installed: Site) -> None:
    """Nobody signed in (or signed out): a 401 page, no app call."""
    installed.sign_in("alice")
    installed.sign_out()
    async with aiohttp.ClientSession() as http, http.get(_servlet(installed, "dfj-link")) as page:
        assert page.status == 401
        assert "log in to Jira" in await page.text()


async def test_the_servlet_knows_only_installed_apps_and_their_pages(
    fast: JiraSimulator, site: Site, app: FakeApp
) -> None:
    """404 before the install, for another app key, and for a module the app lacks."""
    site.sign_in("alice")
    async with aiohttp.ClientSession() as http:
        async with http.get(_servlet(site, "dfj-link")) as before:
            assert before.status == 404
        await fast.install_app(site, app.descriptor_url)
        other = f"{site.base_url}/plugins/servlet/ac/another-app/dfj-link"
        async with http.get(other) as wrong_app:
            assert wrong_app.status == 404
        async with http.get(_servlet(site, "nope")) as wrong_module:
            assert wrong_module.status == 404
        async with http.get(_servlet(site, "dfj-configure")) as right:
            assert right.status == 200


def test_sign_in_needs_a_known_user(site: Site) -> None:
    """An account the site does not have cannot sign in."""
    with pytest.raises(LookupError):
        site.sign_in("nobody")
    assert site.signed_in is None


async def test_an_issue_link_opens_the_issue(site: Site) -> None:
    """Every notification links ``{site}/browse/KEY``; the simulator answers it like Jira."""
    issue = site.create_issue(summary="Printer <on> fire")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{site.base_url}/browse/{issue.key}") as page:
            assert page.status == 200
            text = await page.text()
        async with http.get(f"{site.base_url}/browse/NOPE-9") as missing:
            assert missing.status == 404
    assert f"{issue.key}: Printer &lt;on&gt; fire" in text
    assert "To Do" in text and "Unassigned" in text
