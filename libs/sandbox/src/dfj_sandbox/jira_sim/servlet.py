"""Jira's page servlet: ``{baseUrl}/plugins/servlet/ac/{appKey}/{moduleKey}``.

That is where Jira shows an app page: a Jira page around an iframe whose ``src`` is the app's
page URL for the signed-in user (``AppInstallation.page_url``: the Connect iframe parameters
and a JWT with ``sub`` = that user). Query parameters named ``ac.<name>`` become the
``{ac.<name>}`` variables of the module's URL template — how a link into Jira hands a value
to an app page (our ``/jira link`` button carries ``ac.request=…``).

The simulator has one "browser" per site: the user chosen with ``site.sign_in``. Without one,
the answer is a 401 page asking to log in to Jira. With ``frame=0`` the servlet answers a 302
to the page URL instead of framing it, so an HTTP client without JavaScript or iframes (a
test, the demo's scripted browser) can follow it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from dfj_sandbox.jira_sim.site import Site

__all__ = ["BROWSE_TEMPLATE", "SERVLET_TEMPLATE", "serve_issue", "serve_page"]

SERVLET_TEMPLATE: Final = "/plugins/servlet/ac/{appKey}/{moduleKey}"
"""The servlet's path template, relative to the site's base URL (as recorded in calls)."""

BROWSE_TEMPLATE: Final = "/browse/{issueKey}"
"""Where Jira shows an issue (the link of every notification's title and "Open in Jira")."""

_CONTEXT_PREFIX: Final = "ac."


def _page(status: int, title: str, body: str) -> web.Response:
    document = (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"</head><body>{body}</body></html>\n"
    )
    return web.Response(
        status=status,
        text=document,
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def serve_page(site: Site, app_key: str, module_key: str, query: Mapping[str, str]) -> web.Response:
    """The servlet's answer for ``app_key``/``module_key`` with ``query`` (see module)."""
    app = site.app
    if app is None or app.key != app_key:
        return _page(404, "App not found", f"<p>No app {html.escape(app_key)} is installed.</p>")
    module = next((page for page in app.page_modules if page.key == module_key), None)
    if module is None:
        return _page(404, "Page not found", "<p>The app has no such page.</p>")
    if site.signed_in is None:
        return _page(401, "Log in", "<p>You must log in to Jira to see this page.</p>")
    context = {name: value for name, value in query.items() if name.startswith(_CONTEXT_PREFIX)}
    url = app.page_url(module_key, account_id=site.signed_in, context=context)
    if query.get("frame") == "0":
        return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    title = module.name or module.key
    frame = (
        f"<h1>{html.escape(title)}</h1>"
        f'<iframe id="ac-frame" title="{html.escape(title)}" src="{html.escape(url)}"'
        ' width="100%" height="600"></iframe>'
    )
    return _page(200, title, frame)


def serve_issue(site: Site, key: str) -> web.Response:
    """A plain page of the issue ``key``, so links into the simulated Jira lead somewhere.

    Shown to whoever asks (the simulator's browser is not a Jira session), like a public
    project would; a missing issue is Jira's 404.
    """
    issue = site.issue(key)
    if issue is None:
        return _page(404, "Issue not found", "<p>The issue does not exist.</p>")
    assignee = site.user(issue.assignee) if issue.assignee else None
    rows = [
        ("Type", site.issue_type_of(issue).name),
        ("Status", site.status_of(issue).name),
        ("Assignee", assignee.display_name if assignee is not None else "Unassigned"),
        ("Comments", str(len(issue.comments))),
    ]
    cells = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in rows
    )
    body = f"<h1>{html.escape(issue.key)}: {html.escape(issue.summary)}</h1><table>{cells}</table>"
    return _page(200, f"{issue.key}: {issue.summary}", body)
