"""Installing a Connect app on a simulated site, the way Jira Cloud does it (reference §3, §5).

:func:`install_app` is what an administrator's "Upload app" click sets off:

1. **Descriptor.** ``GET`` the descriptor URL; it must be a JSON object whose ``key`` is the
   site's app key, with ``authentication.type`` ``jwt``, ``apiMigrations["signed-install"]``
   true (Jira no longer installs apps without it), a ``baseUrl`` and ``lifecycle.installed``.
   Anything else is an :class:`InstallRefused` naming the reason, before the app is called.
2. **installed.** ``POST baseUrl + lifecycle.installed`` with the install payload (the
   shared secret, the clientKey, the site's ``baseUrl``, the ``oauthClientId``) and
   ``Authorization: JWT`` an RS256 *signed-install* token: header ``kid`` (the public key is
   served at ``JiraSimulator.install_keys_url/{kid}``), ``iss`` = clientKey, ``aud`` = the
   descriptor's ``baseUrl``, ``qsh`` of the callback path *relative to* the ``baseUrl`` (an app
   mounted under ``https://host/prefix`` hashes ``/installed``, not ``/prefix/installed``),
   ``sub`` = the signed-in user, if any. Jira needs a 2xx here; anything else fails the install.
3. **enabled.** ``POST lifecycle.enabled``, HS256 with the shared secret just handed over. An
   app may store the installation asynchronously — ours publishes ``installed`` to the bus
   and the jira-worker stores it — so an ``enabled`` that overtakes it meets "unknown
   clientKey" (401). Jira retries lifecycle callbacks; the simulator retries this one with
   back-off (:class:`LifecyclePolicy`) until the app accepts it or the deadline passes.

Re-installing (``install_app`` again) sends ``installed`` again; with ``new_secret=True`` it
carries a fresh shared secret first (as Atlassian does on a later install), and a refused
re-install puts the old secret back, since the app never took the new one.

:func:`uninstall_app` posts ``uninstalled`` (RS256 signed-install again) and forgets the
installation; the simulator stops the site's webhooks first, so none arrives after it.

:meth:`AppInstallation.page_url` frames app pages as Jira does: the module URL (its
``{ac.*}`` variables substituted) plus the Connect iframe parameters (``xdm_e``, ``cp``,
``lic``, ``cv``) and a ``jwt`` whose ``qsh`` covers that path and query and whose ``sub`` is
the viewing user.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp

from dfj_sandbox.jira_signing import (
    InstallKeyPair,
    auth_header,
    installed_payload,
    sign_install,
    sign_request,
)
from dfj_sandbox.jira_sim.delivery import DeliveryAttempt, LifecycleDelivery, post_once
from dfj_sandbox.jira_sim.site import Site

__all__ = [
    "CONNECT_VERSION",
    "PAGE_MODULE_KINDS",
    "AppInstallation",
    "InstallRefused",
    "LifecyclePolicy",
    "PageModule",
    "WebhookModule",
    "install_app",
    "read_descriptor",
    "uninstall_app",
]

CONNECT_VERSION: Final = "1001.0.0"
"""The ``cv`` iframe parameter (Connect version) the simulator reports."""

PAGE_MODULE_KINDS: Final = ("generalPages", "adminPages", "configurePage", "postInstallPage")
"""Descriptor modules that are pages the site can frame (arrays or a single object)."""

_JSON: Final = "application/json"
_PAGE_VARIABLE: Final = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
_WEBHOOK_VARIABLE: Final = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


class InstallRefused(Exception):
    """Jira would not install (or enable) the app; ``reason`` says why, ``status`` the answer."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, kw_only=True)
class LifecyclePolicy:
    """How lifecycle callbacks are retried: back-off from ``first_delay`` doubling (``factor``)
    up to ``max_delay``, until ``deadline`` seconds after the first attempt; ``timeout`` per
    HTTP request (the descriptor fetch too). Defaults are short, for a sandbox."""

    first_delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 1.0
    deadline: float = 10.0
    timeout: float = 10.0

    def delay(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1 for the first retry)."""
        return float(min(self.first_delay * self.factor ** (retry - 1), self.max_delay))


@dataclass(frozen=True, kw_only=True)
class WebhookModule:
    """One ``modules.webhooks`` entry: the event and the URL relative to the ``baseUrl``."""

    event: str
    url: str
    exclude_body: bool = False

    def resolve(self, body: Mapping[str, Any]) -> str:
        """The URL with its ``${…}`` variables filled from the webhook body (unknown: empty).

        Jira documents ``${issue.key}``, ``${issue.id}``, ``${project.id}``,
        ``${project.key}`` and ``${modifiedUser.accountId}``; values are percent-encoded.
        """
        issue = _mapping(body.get("issue"))
        project = _mapping(_mapping(issue.get("fields")).get("project"))
        user = _mapping(body.get("user")) or _mapping(_mapping(body.get("comment")).get("author"))
        values = {
            "issue.key": issue.get("key"),
            "issue.id": issue.get("id"),
            "project.key": project.get("key"),
            "project.id": project.get("id"),
            "modifiedUser.accountId": user.get("accountId"),
        }

        def fill(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return quote(str(value), safe="") if value is not None else ""

        return _WEBHOOK_VARIABLE.sub(fill, self.url)


@dataclass(frozen=True, kw_only=True)
class PageModule:
    """A page module (``generalPages``, ``configurePage`` …): key, URL template, its kind."""

    key: str
    url: str
    kind: str
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class AppInstallation:
    """The app as installed on one site: what its descriptor said, and whether it is enabled.

    ``webhook_modules`` and ``page_modules`` are the descriptor's modules; :attr:`webhooks`
    and :attr:`pages` are the same as ``event → url`` and ``key → url`` mappings.
    """

    site: Site = field(repr=False, compare=False)
    key: str
    base_url: str
    descriptor_url: str
    descriptor: Mapping[str, Any] = field(repr=False)
    lifecycle: Mapping[str, str]
    webhook_modules: tuple[WebhookModule, ...] = ()
    page_modules: tuple[PageModule, ...] = ()
    installed_at: float = 0.0
    enabled: bool = False

    @property
    def webhooks(self) -> Mapping[str, str]:
        """Registered webhook events → URL (the first module, if one event has several)."""
        found: dict[str, str] = {}
        for module in self.webhook_modules:
            found.setdefault(module.event, module.url)
        return found

    @property
    def pages(self) -> Mapping[str, str]:
        """Page module key → URL template (relative to the ``baseUrl``)."""
        return {page.key: page.url for page in self.page_modules}

    def modules_for(self, event: str) -> tuple[WebhookModule, ...]:
        """The webhook modules registered for ``event`` (Jira posts to each)."""
        return tuple(module for module in self.webhook_modules if module.event == event)

    def app_url(self, relative: str) -> str:
        """An absolute URL of the app from one relative to its ``baseUrl``."""
        return self.base_url.rstrip("/") + relative

    def page_url(
        self,
        module_key: str,
        *,
        account_id: str | None,
        query: Iterable[tuple[str, str]] = (),
        context: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> str:
        """The URL Jira puts in the iframe of page ``module_key`` for ``account_id``.

        ``context`` fills the URL template's variables (``{"ac.request": "…"}`` for
        ``?request={ac.request}``; a variable without a value becomes empty, as in Jira);
        ``query`` adds parameters. The ``jwt`` (HS256, shared secret, ``sub`` =
        ``account_id``) hashes the final path and query, iframe parameters included.
        LookupError for a key the descriptor has no page for.
        """
        template = self.pages.get(module_key)
        if template is None:
            raise LookupError(f"the app has no page module {module_key!r}")
        values = dict(context or {})

        def fill(match: re.Match[str]) -> str:
            return quote(values.get(match.group(1), ""), safe="")

        path, template_query = split_relative(_PAGE_VARIABLE.sub(fill, template))
        site = self.site
        params = [
            *template_query,
            ("xdm_e", site.base_url),
            ("cp", ""),
            ("lic", "none"),
            ("cv", CONNECT_VERSION),
            *query,
        ]
        token = sign_request(
            site.shared_secret,
            client_key=site.client_key,
            method="GET",
            path=path,
            query=params,
            now=site.now() if now is None else now,
            account_id=account_id,
        )
        return self.app_url(path) + "?" + urlencode([*params, ("jwt", token)], quote_via=quote)


def split_relative(url: str) -> tuple[str, list[tuple[str, str]]]:
    """``/path?a=1`` → ``("/path", [("a", "1")])`` (the path as written, the query decoded)."""
    parts = urlsplit(url)
    return parts.path or "/", parse_qsl(parts.query, keep_blank_values=True)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _relative(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        raise InstallRefused(f"{what} must be a URL relative to the baseUrl, starting with /")
    return value


# --- the descriptor -----------------------------------------------------------------------


def read_descriptor(
    site: Site, descriptor: object, *, descriptor_url: str, now: float
) -> AppInstallation:
    """Check a descriptor as Jira does and read what the simulator needs from it.

    InstallRefused names the first problem; nothing is called on the app before this passes.
    """
    if not isinstance(descriptor, Mapping):
        raise InstallRefused("the descriptor is not a JSON object")
    key = descriptor.get("key")
    if key != site.app_key:
        raise InstallRefused(f"descriptor key {key!r} is not this site's app key {site.app_key!r}")
    authentication = _mapping(descriptor.get("authentication"))
    kind = authentication.get("type")
    if not isinstance(kind, str) or kind.lower() != "jwt":
        raise InstallRefused('authentication.type must be "jwt"')
    if _mapping(descriptor.get("apiMigrations")).get("signed-install") is not True:
        raise InstallRefused('apiMigrations["signed-install"] must be true')
    base_url = descriptor.get("baseUrl")
    if not isinstance(base_url, str) or urlsplit(base_url).scheme not in {"http", "https"}:
        raise InstallRefused("baseUrl is missing or not an absolute http(s) URL")
    raw_lifecycle = descriptor.get("lifecycle")
    if not isinstance(raw_lifecycle, Mapping) or "installed" not in raw_lifecycle:
        raise InstallRefused("lifecycle.installed is missing")
    lifecycle = {
        str(name): _relative(url, f"lifecycle.{name}") for name, url in raw_lifecycle.items()
    }
    modules = descriptor.get("modules", {})
    if not isinstance(modules, Mapping):
        raise InstallRefused("modules must be an object")
    return AppInstallation(
        site=site,
        key=key,
        base_url=base_url,
        descriptor_url=descriptor_url,
        descriptor=descriptor,
        lifecycle=lifecycle,
        webhook_modules=_webhook_modules(modules.get("webhooks", [])),
        page_modules=_page_modules(modules),
        installed_at=now,
    )


def _webhook_modules(raw: object) -> tuple[WebhookModule, ...]:
    if not isinstance(raw, list):
        raise InstallRefused("modules.webhooks must be an array")
    found = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("event"), str):
            raise InstallRefused(f"modules.webhooks[{index}] needs an event")
        found.append(
            WebhookModule(
                event=entry["event"],
                url=_relative(entry.get("url"), f"modules.webhooks[{index}].url"),
                exclude_body=entry.get("excludeBody") is True,
            )
        )
    return tuple(found)


def _page_modules(modules: Mapping[str, Any]) -> tuple[PageModule, ...]:
    found = []
    for kind in PAGE_MODULE_KINDS:
        raw = modules.get(kind)
        if raw is None:
            continue
        entries = raw if isinstance(raw, list) else [raw]
        for index, entry in enumerate(entries):
            where = f"modules.{kind}[{index}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
                raise InstallRefused(f"{where} needs a key")
            name = _mapping(entry.get("name")).get("value")
            found.append(
                PageModule(
                    key=entry["key"],
                    url=_relative(entry.get("url"), f"{where}.url"),
                    kind=kind,
                    name=name if isinstance(name, str) else None,
                )
            )
    return tuple(found)


async def _fetch_descriptor(http: aiohttp.ClientSession, url: str, timeout: float) -> object:
    try:
        async with http.get(
            url, headers={"Accept": _JSON}, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                raise InstallRefused(
                    f"the descriptor URL answered {response.status}", status=response.status
                )
            text = await response.text()
    except TimeoutError as exc:
        raise InstallRefused("the descriptor URL timed out") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise InstallRefused(f"the descriptor could not be fetched: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InstallRefused("the descriptor is not JSON") from exc


# --- lifecycle callbacks ------------------------------------------------------------------


def _lifecycle_body(site: Site, app_key: str, event: str) -> bytes:
    body = installed_payload(
        client_key=site.client_key,
        base_url=site.base_url,
        app_key=app_key,
        # The shared secret travels only on `installed`.
        shared_secret=site.shared_secret if event == "installed" else None,
        event_type=event,
        oauth_client_id=site.oauth_client_id,
    )
    return json.dumps(body).encode("utf-8")


def _lifecycle_token(
    site: Site, app: AppInstallation, event: str, key: InstallKeyPair | None
) -> str:
    """RS256 signed-install for ``installed``/``uninstalled`` (``key``), else HS256."""
    path, query = split_relative(app.lifecycle[event])
    if key is not None:
        return sign_install(
            key,
            client_key=site.client_key,
            audience=app.base_url,
            path=path,
            query=query,
            now=site.now(),
            account_id=site.signed_in,
        )
    return sign_request(
        site.shared_secret,
        client_key=site.client_key,
        method="POST",
        path=path,
        query=query,
        now=site.now(),
        account_id=site.signed_in,
    )


async def _post_lifecycle(
    http: aiohttp.ClientSession,
    site: Site,
    app: AppInstallation,
    event: str,
    *,
    key: InstallKeyPair | None,
    policy: LifecyclePolicy,
    records: list[LifecycleDelivery],
    retry: bool,
    retry_unauthorized: bool = False,
) -> LifecycleDelivery:
    """Post one lifecycle callback, signed afresh on each attempt; retried if ``retry``.

    Retries follow Jira's webhook rule (no answer, 408/409/425/429/5xx); with
    ``retry_unauthorized`` a 401 is retried too — the app not knowing the clientKey *yet*.
    """
    record = LifecycleDelivery(site=site.name, event=event, url=app.app_url(app.lifecycle[event]))
    records.append(record)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + policy.deadline
    attempt_number = 0
    while True:
        headers = {
            **auth_header(_lifecycle_token(site, app, event, key)),
            "Content-Type": _JSON,
        }
        attempt = await post_once(
            http,
            record.url,
            body=_lifecycle_body(site, app.key, event),
            headers=headers,
            timeout=policy.timeout,
            retry=attempt_number,
        )
        record.attempts.append(attempt)
        if attempt.ok:
            record.outcome = "delivered"
            return record
        if not retry or not _lifecycle_retryable(attempt, retry_unauthorized):
            record.outcome = "refused" if attempt.status is not None else "failed"
            return record
        attempt_number += 1
        pause = policy.delay(attempt_number)
        if loop.time() + pause > give_up_at:
            record.outcome = "failed"
            return record
        await asyncio.sleep(pause)


def _lifecycle_retryable(attempt: DeliveryAttempt, retry_unauthorized: bool) -> bool:
    return attempt.worth_retrying or (retry_unauthorized and attempt.status == 401)


def _why(record: LifecycleDelivery) -> str:
    last = record.attempts[-1]
    answer = f"answered {last.status}" if last.status is not None else f"failed ({last.error})"
    tries = len(record.attempts)
    return f"{record.event} {answer}" + (f" after {tries} attempts" if tries > 1 else "")


async def install_app(
    site: Site,
    descriptor_url: str,
    *,
    http: aiohttp.ClientSession,
    key: InstallKeyPair,
    policy: LifecyclePolicy,
    records: list[LifecycleDelivery],
    new_secret: bool = False,
) -> AppInstallation:
    """Install (or re-install) the app from ``descriptor_url``; see the module docstring.

    On success ``site.app`` is the enabled installation. InstallRefused when the descriptor
    is refused or ``installed`` is not answered 2xx (``site.app`` unchanged), or when
    ``enabled`` is never accepted — then the app *is* installed (``site.app`` set, not
    ``enabled``), as on Jira, where ``enabled`` is only a notification; the error says so.
    """
    descriptor = await _fetch_descriptor(http, descriptor_url, policy.timeout)
    app = read_descriptor(site, descriptor, descriptor_url=descriptor_url, now=site.now())
    old_secret = site.shared_secret
    if new_secret:
        site.shared_secret = secrets.token_urlsafe(32)
    installed = await _post_lifecycle(
        http, site, app, "installed", key=key, policy=policy, records=records, retry=False
    )
    if installed.outcome != "delivered":
        site.shared_secret = old_secret
        raise InstallRefused(_why(installed), status=installed.attempts[-1].status)
    site.app = app
    if "enabled" not in app.lifecycle:
        site.app = replace(app, enabled=True)
        return site.app
    enabled = await _post_lifecycle(
        http,
        site,
        app,
        "enabled",
        key=None,
        policy=policy,
        records=records,
        retry=True,
        retry_unauthorized=True,
    )
    if enabled.outcome != "delivered":
        raise InstallRefused(f"installed, but {_why(enabled)}", status=enabled.attempts[-1].status)
    site.app = replace(app, enabled=True)
    return site.app


async def uninstall_app(
    site: Site,
    *,
    http: aiohttp.ClientSession,
    key: InstallKeyPair,
    policy: LifecyclePolicy,
    records: list[LifecycleDelivery],
) -> LifecycleDelivery | None:
    """Post ``uninstalled`` (RS256 signed-install; retried on transient failures) and forget
    the installation whatever the answer, as Jira does. None if the app has no such callback.
    LookupError if the app is not installed."""
    app = site.app
    if app is None:
        raise LookupError(f"the app is not installed on {site.name}")
    try:
        if "uninstalled" not in app.lifecycle:
            return None
        return await _post_lifecycle(
            http, site, app, "uninstalled", key=key, policy=policy, records=records, retry=True
        )
    finally:
        site.app = None
