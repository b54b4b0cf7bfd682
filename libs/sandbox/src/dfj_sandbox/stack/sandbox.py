"""The whole system on one machine: both simulators, the four services, and the first steps.

:class:`Sandbox` runs the Jira and Discord simulators in this process (on loopback ports) and
the four services as separate processes on the embedded default (local SQLite bus, SQLite),
configured as if the simulators were Jira Cloud and Discord. The first-run steps go through
the real protocols, in the order a team does them, so they prove the system as they set it
up:

1. :meth:`Sandbox.install`: the simulated site fetches our descriptor and installs the app
   (RS256 signed install, then ``enabled``), as an administrator's click does;
2. :meth:`Sandbox.connect_server`: the administrator opens our configuration page inside
   Jira (a page JWT), reads the connect code, and runs ``/jira connect code:…`` in Discord;
3. :meth:`Sandbox.link`: a member runs ``/jira link``, opens the button in Jira (signed in
   there), continues to Discord's authorize page, authorizes, lands on our callback page and
   waits for the linker;
4. :meth:`Sandbox.run_command`: any slash command as any member (``/jira subscribe`` to
   start notifications), waiting for the answer the discord-worker writes back.

A site can instead install the app through **Forge** (:meth:`Sandbox.install_forge`, from
``forge/manifest.yml``, as every new site must since Jira stopped installing private Connect
apps), or move from Connect to Forge (:meth:`Sandbox.migrate_to_forge`). Steps 2 and 3 then
go through our Forge pages: the admin page and the link page call the gateway with
``invokeRemote`` as their Custom UI does.

Nothing here reaches into a service's process or database: what a step needs to know it
reads from what the simulators received, as a user would read their screen.
"""

from __future__ import annotations

import asyncio
import base64
import html
import inspect
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, overload
from urllib.parse import parse_qs, urlsplit

import aiohttp

from dfj_common.bus import DeadLetter
from dfj_common.bus.local import LocalBus
from dfj_common.bus.topology import TOPOLOGY
from dfj_sandbox.discord_sim import (
    DiscordSimulator,
    Guild,
    InteractionRecord,
    Message,
    RateLimits,
)
from dfj_sandbox.jira_sim import JiraSimulator
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation
from dfj_sandbox.jira_sim.site import Site
from dfj_sandbox.stack.processes import SERVICES, ServiceProcesses, Sink, free_ports

__all__ = ["CommandAnswer", "Member", "Sandbox", "SandboxError"]

CONFIG_PAGE_KEY: Final = "dfj-configure"
#: The sandbox's own Forge app id (a self-hoster registers theirs with ``forge register``).
FORGE_APP_ID: Final = "ari:cloud:ecosystem::app/5d2c8a1e-7b3f-4c6d-9e0a-1b2c3d4e5f60"
#: forge/manifest.yml of this checkout (libs/sandbox/src/dfj_sandbox/stack → the root).
FORGE_MANIFEST: Final = Path(__file__).resolve().parents[5] / "forge" / "manifest.yml"
_CONNECT_CODE: Final = re.compile(r"/jira connect code:([A-Z0-9-]+)<")
_CONTINUE: Final = re.compile(r'id="continue" href="([^"]+)"')
_STATUS_URL: Final = re.compile(r'const url = "([^"]+)"')
_HIDDEN: Final = re.compile(r"<input type='hidden' name='([^']+)' value='([^']*)'>")


T = TypeVar("T")


class SandboxError(RuntimeError):
    """A first-run step did not come out as a user would see it succeed."""


@dataclass(frozen=True, slots=True)
class Member:
    """A person in the sandbox: a Discord user and, usually, a Jira account."""

    name: str
    discord_user_id: str
    account_id: str | None


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    """What a member saw after a command: the answer message (None if none came)."""

    interaction_id: str
    status: int
    initial: Any
    message: Message | None

    @property
    def content(self) -> str:
        """The answer's text, '' when there was none."""
        return "" if self.message is None else self.message.content


@dataclass(kw_only=True)
class Sandbox:
    """Simulators in-process, services as processes; ``async with Sandbox(workdir=…)``."""

    workdir: Path
    sink: Sink
    gateway_port: int | None = None
    sandbox_environ: Mapping[str, str] = field(default_factory=dict)
    discord_limits: RateLimits | None = None
    check_discord_requests: bool = True
    """The Discord simulator's schema check of every request (off in benchmarks: it costs
    more CPU than the worker under test, on the same two cores)."""
    jira: JiraSimulator = field(init=False)
    discord: DiscordSimulator = field(init=False)
    services: ServiceProcesses = field(init=False)
    environ: dict[str, str] = field(init=False)
    public_url: str = field(init=False)
    linked: set[str] = field(default_factory=set, init=False)
    """Discord user ids that :meth:`link` linked."""
    forge: dict[str, ForgeInstallation] = field(default_factory=dict, init=False)
    """Forge installations by site name."""
    _http: aiohttp.ClientSession | None = field(default=None, init=False)

    async def __aenter__(self) -> Sandbox:
        try:
            await self.start()
        except BaseException:
            await self.close()  # what did start must not outlive a failed start
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def interactions_url(self) -> str:
        """Our interactions endpoint, where the Discord simulator posts."""
        return self.public_url + "/discord/interactions"

    @property
    def descriptor_url(self) -> str:
        """Our Connect descriptor, which the Jira simulator reads to install the app."""
        return self.public_url + "/atlassian-connect.json"

    async def start(self) -> None:
        """Start both simulators, migrate the database, start the four services."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(len(SERVICES))
        if self.gateway_port is not None:
            ports[0] = self.gateway_port
        self.public_url = f"http://127.0.0.1:{ports[0]}"
        self.jira = JiraSimulator()
        await self.jira.start()
        self.discord = DiscordSimulator(
            redirect_uris=[self.public_url + "/oauth/discord/callback"],
            limits=self.discord_limits,
            validate_requests=self.check_discord_requests,
        )
        await self.discord.start()
        self.environ = self._environment(ports)
        await self._migrate()
        self.services = ServiceProcesses(self.environ, sink=self.sink, cwd=self.workdir, grace=10)
        await self.services.start()
        await self.services.wait_ready()
        self._http = aiohttp.ClientSession()
        check = await self.discord.verify_endpoint(self.interactions_url)
        if not check.passed:
            raise SandboxError(f"Discord would not accept the interactions endpoint: {check}")

    def _environment(self, ports: list[int]) -> dict[str, str]:
        keys = {
            name: base64.b64encode(os.urandom(32)).decode()
            for name in ("DFJ_KEK", "DFJ_STATE_SIGNING_KEY")
        }
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DFJ_")}
        environ.update(
            {
                **keys,
                **self.discord.environ(),
                "DFJ_PUBLIC_URL": self.public_url,
                **{s.port_setting: str(p) for s, p in zip(SERVICES, ports, strict=True)},
                "DFJ_BUS_PATH": str(self.workdir / "bus.sqlite"),
                "DFJ_DATABASE_URL": f"sqlite:///{self.workdir / 'dfj.sqlite'}",
                "DFJ_ATLASSIAN_INSTALL_KEYS_URL": self.jira.install_keys_url,
                "DFJ_ATLASSIAN_OAUTH_URL": self.jira.oauth_url,
                "DFJ_FORGE_APP_ID": FORGE_APP_ID,
                "DFJ_FORGE_JWKS_URL": self.jira.forge_jwks_url,
                # The simulated sites live on loopback over plain http; only an exact loopback
                # entry lets them install (see dfj_gateway.jira.sites).
                "DFJ_JIRA_SITE_ALLOWLIST": "127.0.0.1",
                "DFJ_DRAIN_GRACE_SECONDS": "5",
                "DFJ_LOG_FORMAT": "console" if sys.stdout.isatty() else "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        environ.update(self.sandbox_environ)
        return environ

    async def _migrate(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dfj_common.cli",
            "migrate",
            env=self.environ,
            cwd=self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        for line in out.decode("utf-8", "replace").splitlines(keepends=True):
            self.sink("migrate", line)
        if proc.returncode != 0:
            raise SandboxError("database migration failed")

    async def close(self) -> None:
        """Stop the services (draining), then the simulators."""
        if self._http is not None:
            await self._http.close()
        if hasattr(self, "services"):
            await self.services.stop()
        if hasattr(self, "discord"):
            await self.discord.close()
        if hasattr(self, "jira"):
            await self.jira.close()

    @overload
    async def until(
        self, probe: Callable[[], Awaitable[T | None]], what: str, *, timeout: float = ...
    ) -> T: ...

    @overload
    async def until(
        self, probe: Callable[[], T | None], what: str, *, timeout: float = ...
    ) -> T: ...

    async def until(self, probe: Callable[[], Any], what: str, *, timeout: float = 20.0) -> Any:
        """The first truthy answer of ``probe`` (sync or async), polled until ``timeout``;
        SandboxError naming ``what`` and where the services' logs are otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = probe()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
            if loop.time() > deadline:
                raise SandboxError(
                    f"timed out waiting for {what}; the sandbox (and its logs) is in {self.workdir}"
                )
            await asyncio.sleep(0.05)

    def notifications(self, channel_id: str, key: str) -> list[Message]:
        """Public messages of the channel whose embed is about issue ``key``, in channel order."""
        return [
            m
            for m in self.discord.messages(channel_id, ephemeral=False)
            if m.embeds and str(m.embeds[0].get("title", "")).startswith(f"{key}: ")
        ]

    async def dead_letters(self) -> dict[str, list[DeadLetter]]:
        """What every queue of the topology has dead-lettered, read from the bus file."""
        bus = await LocalBus.open(Path(self.environ["DFJ_BUS_PATH"]))
        try:
            return {queue: await bus.dead_letters(queue, limit=1000) for queue in TOPOLOGY}
        finally:
            await bus.close()

    async def _find(self, url: str, pattern: re.Pattern[str], page: str, thing: str) -> str:
        """The first group of ``pattern`` on the page at ``url`` (which must answer 200)."""
        async with self.http.get(url) as answer:
            text = await answer.text()
            if answer.status != 200:
                raise SandboxError(f"{page} answered {answer.status}")
        found = pattern.search(text)
        if found is None:
            raise SandboxError(f"{page} shows no {thing}")
        return found.group(1)

    @property
    def http(self) -> aiohttp.ClientSession:
        """The "browser" the steps use (no cookies are shared with anything else)."""
        if self._http is None:
            raise RuntimeError("the sandbox is not started")
        return self._http

    # --- the first-run steps ----------------------------------------------------------------

    async def install(self, site: Site) -> None:
        """The site installs the app from our descriptor (and enables it)."""
        await self.jira.install_app(site, self.descriptor_url)

    async def install_forge(
        self, site: Site, admin: Member, *, manifest: Path = FORGE_MANIFEST
    ) -> ForgeInstallation:
        """``admin`` installs the app on the site through Forge.

        Done once our admin page shows the site's URL: the jira-worker has stored the
        installation and asked Jira where the site is.
        """
        installation = await self.jira.install_forge_app(
            site,
            manifest,
            remote_base_url=self.public_url,
            app_id=FORGE_APP_ID,
            installer=admin.account_id,
        )
        return await self._forge_ready(site, installation, admin)

    async def migrate_to_forge(
        self, site: Site, admin: Member, *, manifest: Path
    ) -> ForgeInstallation:
        """The site's Connect app moves to Forge (``manifest`` names the Connect key)."""
        installation = await self.jira.migrate_to_forge(
            site,
            manifest,
            remote_base_url=self.public_url,
            app_id=FORGE_APP_ID,
            installer=admin.account_id,
        )
        return await self._forge_ready(site, installation, admin)

    async def _forge_ready(
        self, site: Site, installation: ForgeInstallation, admin: Member
    ) -> ForgeInstallation:
        self.forge[site.name] = installation

        async def shown() -> bool:
            page = await self.admin_page(site, admin)
            return bool(page.get("site", {}).get("url"))

        await self.until(shown, f"our admin page on {site.name} to show the site")
        return installation

    async def admin_page(self, site: Site, admin: Member) -> dict[str, Any]:
        """What our Forge admin page shows ``admin`` (its ``invokeRemote`` to the gateway)."""
        if admin.account_id is None:
            raise SandboxError("the admin needs a Jira account to open the admin page")
        answer = await self.jira.invoke_remote(
            self.forge[site.name], admin.account_id, "/forge/ui/config"
        )
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise SandboxError(f"the admin page's call answered {answer.status}: {answer.body}")
        return answer.body

    async def connect_server(self, site: Site, guild: Guild, admin: Member) -> CommandAnswer:
        """The admin reads the connect code in Jira and runs ``/jira connect`` in ``guild``."""
        if admin.account_id is None:
            raise SandboxError("the admin needs a Jira account to open the configuration page")
        if site.name in self.forge:
            shown = (await self.admin_page(site, admin)).get("connectCode")
            if not isinstance(shown, dict) or not isinstance(shown.get("code"), str):
                raise SandboxError("the admin page shows no connect code")
            code = shown["code"]
        else:
            app = site.app
            if app is None:
                raise SandboxError(f"the app is not installed on {site.name}")
            url = app.page_url(CONFIG_PAGE_KEY, account_id=admin.account_id)
            code = await self._find(url, _CONNECT_CODE, "the configuration page", "a connect code")
        answer = await self.run_command(guild.channel_ids[0], admin, "connect", {"code": code})
        if "Connected" not in answer.content:
            raise SandboxError(f"/jira connect answered: {answer.content!r}")
        return answer

    async def link(self, site: Site, channel_id: str, member: Member) -> dict[str, Any]:
        """``member`` links their Discord and Jira accounts, the way a browser would."""
        if member.account_id is None:
            raise SandboxError(f"{member.name} has no Jira account to link")
        answer = await self.run_command(channel_id, member, "link")
        button = _first_link_button(answer.message)
        if button is None:
            raise SandboxError(f"/jira link answered no link button: {answer.content!r}")
        site.sign_in(member.account_id)
        if site.name in self.forge:
            authorize = await self._forge_link_page(site, button, member.account_id)
        else:
            page = _with_query(button, "frame=0")
            authorize = html.unescape(
                await self._find(page, _CONTINUE, "the link page", "a Continue button")
            )
        async with self.http.get(authorize) as consent:
            form = await consent.text()
        fields = {k: html.unescape(v) for k, v in _HIDDEN.findall(form)}
        base = urlsplit(authorize)
        async with self.http.post(
            f"{base.scheme}://{base.netloc}/oauth2/authorize",
            data={**fields, "user_id": member.discord_user_id, "decision": "authorize"},
        ) as landed:
            callback_page = await landed.text()
        status = _STATUS_URL.search(callback_page)
        if status is None:
            raise SandboxError("the callback page shows no link status")
        status_url = self.public_url + status.group(1).replace("\\u0026", "&")

        async def settled() -> dict[str, Any] | None:
            async with self.http.get(status_url) as polled:
                body: dict[str, Any] = await polled.json()
            return None if body.get("status") == "pending" else body

        outcome: dict[str, Any] = await self.until(
            settled, f"the link status of {member.name}", timeout=10
        )
        if outcome.get("status") != "linked":
            raise SandboxError(f"linking {member.name} ended {outcome}")
        self.linked.add(member.discord_user_id)
        return outcome

    async def _forge_link_page(self, site: Site, button: str, account_id: str) -> str:
        """Our Forge link page, opened from the button: the authorize URL it offers."""
        installation = self.forge[site.name]
        prefix = f"{site.base_url.rstrip('/')}/jira/apps/"
        if not button.startswith(prefix):
            raise SandboxError(f"the link button does not open our Forge page: {button}")
        request = parse_qs(urlsplit(button).query).get("request", [None])[0]
        answer = await self.jira.invoke_remote(
            installation,
            account_id,
            "/forge/ui/link",
            method="POST",
            body={"request": request} if request else {},
            module_key="link",
        )
        url = answer.body.get("authorizeUrl") if isinstance(answer.body, dict) else None
        if answer.status != 200 or not isinstance(url, str):
            raise SandboxError(
                f"the Forge link page's call answered {answer.status}: {answer.body}"
            )
        return url

    async def run_command(
        self,
        channel_id: str,
        member: Member,
        subcommand: str,
        options: Mapping[str, Any] | None = None,
        *,
        timeout: float = 15.0,
    ) -> CommandAnswer:
        """``/jira <subcommand>`` as ``member``; waits for the answer to be written."""
        body = self.discord.interactions.slash(
            channel_id, member.discord_user_id, subcommand=subcommand, options=options
        )
        return await self.send(body, timeout=timeout)

    async def send(self, body: Mapping[str, Any], *, timeout: float = 15.0) -> CommandAnswer:
        """Post an interaction body as Discord does and wait for its answer."""
        result = await self.discord.send_interaction(self.interactions_url, body)
        interaction_id = str(body["id"])
        message = await self.wait_answer(interaction_id, timeout=timeout)
        return CommandAnswer(
            interaction_id=interaction_id,
            status=result.status,
            initial=result.body,
            message=message,
        )

    async def wait_answer(self, interaction_id: str, *, timeout: float = 15.0) -> Message | None:
        """The interaction's answer once it is no longer "thinking…" (None on time-out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            record = self.discord.interaction(interaction_id)
            if record is not None:
                found = self._answer_of(record)
                if found is not None:
                    return found
                if record.response_type in (1, 4, 7, 8, 9):  # answered inline: nothing to wait for
                    return None
            await asyncio.sleep(0.02)
        return None

    def _answer_of(self, record: InteractionRecord) -> Message | None:
        for message_id in record.followup_ids:
            followup = self.discord.message(message_id)
            if followup is not None:
                return followup
        original = (
            self.discord.message(record.original_message_id) if record.original_message_id else None
        )
        if original is None or original.loading:
            return None
        if record.response_type == 6:
            # A deferred update: the original is the message clicked on; it is the answer
            # only once edited after the click (else a follow-up is still to come).
            edited = original.edited_timestamp
            return original if edited is not None and edited >= record.issued_at else None
        return original


def _first_link_button(message: Message | None) -> str | None:
    if message is None:
        return None
    for row in message.components:
        for component in row.get("components", ()):
            if component.get("style") == 5 and isinstance(component.get("url"), str):
                return str(component["url"])
    return None


def _with_query(url: str, extra: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{extra}"
