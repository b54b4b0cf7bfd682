"""The sandbox page: a simulated Jira site on the left, a simulated Discord server on the right.

Plain HTML and a little JavaScript (``sandbox.html``) over a small JSON API served by the
process that runs the simulators, so every action is a real one:

- creating, transitioning or commenting on an issue changes the simulated Jira site, which
  then sends its signed webhook to our gateway — exactly the path a real site takes;
- a slash command, a button click or a form submit is signed by the Discord simulator with the
  application's key and posted to our interactions endpoint, as Discord does;
- the channel shows what the discord-worker posted to the simulated Discord REST API, drawn
  the way Discord draws it (embeds with their colour bar and fields, buttons, "Only you can
  see this" for ephemeral answers).

Bad input gets a 400 with a reason; this page is for one person on loopback, never exposed.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import structlog
from aiohttp import web

from dfj_sandbox.discord_sim import Guild, Message
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.stack.sandbox import Member, Sandbox

__all__ = ["SandboxPage", "page_app"]

_log: Final = structlog.get_logger("dfj.sandbox.page")
_HTML: Final = importlib.resources.files("dfj_sandbox.stack").joinpath("sandbox.html")
_MAX_BODY: Final = 64 * 1024


class SandboxPage:
    """State and actions behind the page, for one site, one guild and its members."""

    def __init__(
        self, sandbox: Sandbox, *, site: Site, guild: Guild, members: Sequence[Member]
    ) -> None:
        self.sandbox = sandbox
        self.site = site
        self.guild = guild
        self.members = {m.discord_user_id: m for m in members}

    # --- what the page shows ----------------------------------------------------------------

    def state(self, viewer: str | None) -> dict[str, Any]:
        """Issues, channels and messages as ``viewer`` (a Discord user id) sees them."""
        discord = self.sandbox.discord
        channels = []
        for channel in self.guild.channels:
            if channel.type != 0:
                continue
            messages = [
                self._message(m)
                for m in discord.messages(channel.id)
                if not m.ephemeral or self._is_for(m, viewer)
            ]
            channels.append({"id": channel.id, "name": channel.name, "messages": messages})
        return {
            "site": self.site.base_url,
            "guild": self.guild.name,
            "members": [
                {
                    "id": m.discord_user_id,
                    "name": m.name,
                    "linked": m.discord_user_id in self.sandbox.linked,
                }
                for m in self.members.values()
            ],
            "issues": [self._issue(i) for i in reversed(list(self.site.issues.values()))],
            "channels": channels,
        }

    def _is_for(self, message: Message, viewer: str | None) -> bool:
        if viewer is None or message.interaction_id is None:
            return False
        record = self.sandbox.discord.interaction(message.interaction_id)
        return record is not None and record.user_id == viewer

    def _message(self, message: Message) -> dict[str, Any]:
        author = self.sandbox.discord.world.users.get(message.author_id)
        return {
            "id": message.id,
            "author": author.username if author is not None else "unknown",
            "bot": bool(author is not None and author.bot),
            "content": message.content,
            "embeds": [dict(e) for e in message.embeds],
            "components": [dict(c) for c in message.components],
            "ephemeral": message.ephemeral,
            "loading": message.loading,
            "edited": message.edited_timestamp is not None,
        }

    def _issue(self, issue: Any) -> dict[str, Any]:
        site = self.site
        status = site.status_of(issue)
        assignee = site.user(issue.assignee) if issue.assignee else None
        transitions = site.project_of(issue).workflow.available(issue.status_id)
        return {
            "key": issue.key,
            "summary": issue.summary,
            "type": site.issue_type_of(issue).name,
            "status": status.name,
            "assignee": assignee.display_name if assignee is not None else None,
            "comments": len(issue.comments),
            "transitions": [{"id": t.id, "name": t.name} for t in transitions],
        }

    # --- actions ----------------------------------------------------------------------------

    def _member(self, user_id: object) -> Member:
        member = self.members.get(str(user_id))
        if member is None:
            raise _BadRequest("pick one of the sandbox's members")
        return member

    def create_issue(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an issue in the simulated site, as a Jira user (webhooks follow)."""
        summary = _text(body, "summary", 255)
        member = self._member(body.get("as"))
        try:
            issue = self.site.create_issue(
                summary=summary,
                issue_type=_text(body, "type", 64, default="Task"),
                reporter=member.account_id,
            )
        except LookupError as exc:
            raise _BadRequest(str(exc)) from None
        return {"key": issue.key}

    def transition(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Take a workflow transition in the simulated site."""
        member = self._member(body.get("as"))
        try:
            changelog = self.site.transition_issue(
                key, _text(body, "transition", 32), by=member.account_id
            )
        except LookupError as exc:
            raise _BadRequest(str(exc)) from None
        return {"changed": bool(changelog.items)}

    def comment(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Comment on an issue in the simulated site."""
        member = self._member(body.get("as"))
        try:
            comment = self.site.add_comment(
                key, _text(body, "text", 4000), author=member.account_id
            )
        except LookupError as exc:
            raise _BadRequest(str(exc)) from None
        return {"id": comment.id}

    async def command(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A slash command as a member, in a channel of the guild."""
        member = self._member(body.get("as"))
        channel_id = self._channel(body.get("channel"))
        options = body.get("options") or {}
        if not isinstance(options, Mapping) or not all(
            isinstance(v, str | bool) for v in options.values()
        ):
            raise _BadRequest("options are names and text values")
        subcommand = _text(body, "subcommand", 32)
        try:
            interaction = self.sandbox.discord.interactions.slash(
                channel_id, member.discord_user_id, subcommand=subcommand, options=options
            )
        except (KeyError, ValueError) as exc:
            raise _BadRequest(str(exc)) from None
        return await self._send(interaction)

    async def click(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A click on a button (or a choice in a select) of a message."""
        member = self._member(body.get("as"))
        values = body.get("values")
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            raise _BadRequest("values are a list of text")
        try:
            interaction = self.sandbox.discord.interactions.click(
                _text(body, "message", 32),
                member.discord_user_id,
                _text(body, "custom_id", 100),
                values=values,
            )
        except KeyError as exc:
            raise _BadRequest(str(exc)) from None
        return await self._send(interaction)

    async def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A form (modal) submit, with the values the member typed."""
        member = self._member(body.get("as"))
        fields = body.get("fields")
        if not isinstance(fields, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise _BadRequest("fields are names and text values")
        message = body.get("message")
        try:
            interaction = self.sandbox.discord.interactions.modal_submit(
                self._channel(body.get("channel")),
                member.discord_user_id,
                _text(body, "custom_id", 100),
                fields,
                message=str(message) if message else None,
            )
        except KeyError as exc:
            raise _BadRequest(str(exc)) from None
        return await self._send(interaction)

    def _channel(self, channel_id: object) -> str:
        wanted = str(channel_id)
        if not any(c.id == wanted for c in self.guild.channels):
            raise _BadRequest("pick one of the server's channels")
        return wanted

    async def _send(self, interaction: dict[str, Any]) -> dict[str, Any]:
        result = await self.sandbox.discord.send_interaction(
            self.sandbox.interactions_url, interaction
        )
        answer = result.body if isinstance(result.body, Mapping) else None
        modal = answer.get("data") if answer is not None and answer.get("type") == 9 else None
        return {"status": result.status, "modal": modal, "interaction": interaction["id"]}


class _BadRequest(Exception):
    pass


def _text(body: Mapping[str, Any], name: str, limit: int, *, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise _BadRequest(f"{name} is required")
    if len(value) > limit:
        raise _BadRequest(f"{name} is longer than {limit} characters")
    return value.strip()


_PAGE: Final = web.AppKey("sandbox_page", SandboxPage)


async def _json_body(request: web.Request) -> Mapping[str, Any]:
    if request.content_type != "application/json":
        raise _BadRequest("expected application/json")
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise _BadRequest("body too large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest("malformed JSON") from None
    if not isinstance(body, Mapping):
        raise _BadRequest("expected a JSON object")
    return body


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except _BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except web.HTTPException:
        raise
    except Exception:
        # A bug of the sandbox, not bad input: said in the log, answered in the page's shape.
        _log.exception("sandbox page failed", path=request.path)
        return web.json_response({"error": "the sandbox failed; see its log"}, status=500)


async def _index(_request: web.Request) -> web.Response:
    return web.Response(text=_HTML.read_text(encoding="utf-8"), content_type="text/html")


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[_PAGE].state(request.query.get("as")))


async def _create(request: web.Request) -> web.Response:
    return web.json_response(request.app[_PAGE].create_issue(await _json_body(request)))


async def _transition(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    return web.json_response(page.transition(request.match_info["key"], await _json_body(request)))


async def _comment(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    return web.json_response(page.comment(request.match_info["key"], await _json_body(request)))


async def _command(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_PAGE].command(await _json_body(request)))


async def _click(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_PAGE].click(await _json_body(request)))


async def _submit(request: web.Request) -> web.Response:
    return web.json_response(await request.app[_PAGE].submit(await _json_body(request)))


def page_app(page: SandboxPage) -> web.Application:
    """The sandbox page and its JSON API."""
    app = web.Application(middlewares=[_errors], client_max_size=_MAX_BODY)
    app[_PAGE] = page
    app.router.add_get("/", _index)
    app.router.add_get("/api/state", _state)
    app.router.add_post("/api/jira/issues", _create)
    app.router.add_post("/api/jira/issues/{key}/transition", _transition)
    app.router.add_post("/api/jira/issues/{key}/comment", _comment)
    app.router.add_post("/api/discord/command", _command)
    app.router.add_post("/api/discord/click", _click)
    app.router.add_post("/api/discord/submit", _submit)
    return app
