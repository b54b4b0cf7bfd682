"""The OAuth2 endpoints over HTTP: the authorize page, token and revoke.

``GET /oauth2/authorize`` validates the request as Discord does before showing anything (a
wrong client or an unregistered ``redirect_uri`` is an error page, never a redirect) and
shows a small consent page: pick a simulated user, click Authorize (or Cancel). When a user
is signed in (``sim.sign_in``) and has consented before, ``prompt=none`` skips the page.
``POST /api/v10/oauth2/token`` and ``…/token/revoke`` take only form bodies.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import web

from dfj_sandbox.discord_sim.oauth import AuthorizeError, OAuthServer
from dfj_sandbox.discord_sim.world import World

__all__ = ["OAuthEndpoints"]

_FORM: Final = "application/x-www-form-urlencoded"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Recorder = Callable[[str, str, int, str | None], None]


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status)


class OAuthEndpoints:
    """aiohttp handlers over an :class:`OAuthServer`."""

    def __init__(self, server: OAuthServer, world: World, record: Recorder) -> None:
        self._server = server
        self._world = world
        self._record = record
        self.signed_in: str | None = None

    async def authorize_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /oauth2/authorize``."""
        query = request.rel_url.query
        try:
            scopes = self._server.check_authorize(
                client_id=query.get("client_id", ""),
                redirect_uri=query.get("redirect_uri", ""),
                scope=query.get("scope", ""),
                response_type=query.get("response_type", ""),
            )
        except AuthorizeError as error:
            self._record("GET", "/oauth2/authorize", 400, request.headers.get("User-Agent"))
            return _page("Discord", f"<p class='error'>{html.escape(str(error))}</p>", 400)
        method = query.get("code_challenge_method")
        if query.get("code_challenge") and method not in (None, "S256"):
            self._record("GET", "/oauth2/authorize", 400, request.headers.get("User-Agent"))
            return _page("Discord", "<p class='error'>Invalid code_challenge_method</p>", 400)
        user = self.signed_in
        if query.get("prompt") == "none" and user is not None and user in self._server.consented:
            self._record("GET", "/oauth2/authorize", 302, request.headers.get("User-Agent"))
            raise web.HTTPFound(self._grant(user, query))
        self._record("GET", "/oauth2/authorize", 200, request.headers.get("User-Agent"))
        return _page("Authorize access", self._consent(query, scopes))

    def _consent(self, query: Mapping[str, str], scopes: tuple[str, ...]) -> str:
        hidden = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
            for k, v in query.items()
        )
        options = "".join(
            f"<option value='{u.id}'{' selected' if u.id == self.signed_in else ''}>"
            f"{html.escape(u.global_name or u.username)} ({html.escape(u.username)})</option>"
            for u in self._world.users.values()
            if not u.bot
        )
        app = html.escape(self._world.application.name)
        return (
            f"<h1>{app} wants to access your account</h1>"
            f"<p>Scopes: {html.escape(' '.join(scopes))}</p>"
            "<form method='post' action='/oauth2/authorize'>"
            f"{hidden}<label>Signed in as <select name='user_id'>{options}</select></label>"
            "<button name='decision' value='authorize' id='authorize'>Authorize</button>"
            "<button name='decision' value='cancel' id='cancel'>Cancel</button></form>"
        )

    def _grant(self, user_id: str, fields: Mapping[str, str]) -> str:
        return self._server.authorize(
            user_id,
            state=fields.get("state"),
            redirect_uri=fields.get("redirect_uri", ""),
            scope=fields.get("scope", ""),
            code_challenge=fields.get("code_challenge") or None,
            code_challenge_method=fields.get("code_challenge_method") or "S256",
            client_id=fields.get("client_id"),
        )

    async def authorize_decision(self, request: web.Request) -> web.StreamResponse:
        """``POST /oauth2/authorize``: the consent page's buttons."""
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        user_agent = request.headers.get("User-Agent")
        try:
            if form.get("decision") == "cancel":
                self._server.check_authorize(
                    client_id=form.get("client_id", ""),
                    redirect_uri=form.get("redirect_uri", ""),
                    scope=form.get("scope", ""),
                    response_type=form.get("response_type", ""),
                )
                location = self._server.deny(
                    state=form.get("state"), redirect_uri=form["redirect_uri"]
                )
            else:
                user_id = form.get("user_id", "")
                if user_id not in self._world.users:
                    raise AuthorizeError("Unknown user")
                location = self._grant(user_id, form)
        except AuthorizeError as error:
            self._record("POST", "/oauth2/authorize", 400, user_agent)
            return _page("Discord", f"<p class='error'>{html.escape(str(error))}</p>", 400)
        self._record("POST", "/oauth2/authorize", 302, user_agent)
        raise web.HTTPFound(location)

    async def _form(self, request: web.Request) -> dict[str, str] | None:
        if request.content_type != _FORM:
            return None
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}

    async def token(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v10/oauth2/token``."""
        form = await self._form(request)
        if form is None:
            status, body = 400, {"error": "invalid_request", "error_description": f"Use {_FORM}."}
        else:
            answer = self._server.token(form, request.headers.get("Authorization"))
            status, body = answer.status, dict(answer.body)
        self._record("POST", "/oauth2/token", status, request.headers.get("User-Agent"))
        return web.json_response(body, status=status, headers=_NO_STORE)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v10/oauth2/token/revoke``."""
        form = await self._form(request)
        if form is None:
            status, body = 400, {"error": "invalid_request", "error_description": f"Use {_FORM}."}
        else:
            answer = self._server.revoke(form, request.headers.get("Authorization"))
            status, body = answer.status, dict(answer.body)
        self._record("POST", "/oauth2/token/revoke", status, request.headers.get("User-Agent"))
        return web.json_response(body, status=status, headers=_NO_STORE)
