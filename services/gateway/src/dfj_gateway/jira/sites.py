"""Which Jira sites may install the app: the ``baseUrl`` host against ``DFJ_JIRA_SITE_ALLOWLIST``.

The install body is not covered by the signature (a Connect JWT hashes method, path and query,
never the body), so the site's ``baseUrl`` is checked against an allow-list of host patterns
before an installation is accepted — the first line of defence ACE also draws (its default,
and ours, is ``*.atlassian.net``); the RS256 signature remains the real check.

Rules, decided here:

- Patterns are ``fnmatch``-style (``*``, ``?``, ``[...]``), compared case-insensitively with the
  whole host name (never a substring): ``*.atlassian.net`` admits ``acme.atlassian.net`` but
  neither ``atlassian.net.evil.com`` nor ``evilatlassian.net``.
- The URL must be absolute, without user-info, query or fragment, with an ASCII host name.
- **https only**, with one exception for local sandboxes and tests: ``http`` is allowed when the
  host is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost`` **and** an allow-list
  entry names that host exactly (no wildcard). So ``127.0.0.1`` in the allow-list lets a Jira
  simulator on ``http://127.0.0.1:<port>`` install; the default list never admits plain http.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

__all__ = ["site_allowed"]

_HOST: Final = re.compile(r"^[a-z0-9.-]{1,253}$|^\[[0-9a-f:.]+\]$")
_WILDCARDS: Final = frozenset("*?[")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(base_url: str) -> tuple[str, str] | None:
    """(scheme, lower-case host) of a well-formed absolute URL, else None."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    host = (parts.hostname or "").lower()
    if not host or not _HOST.match(f"[{host}]" if ":" in host else host):
        return None
    return parts.scheme, host


def site_allowed(base_url: str, patterns: Sequence[str]) -> bool:
    """Whether a site's ``baseUrl`` may install the app under the allow-list ``patterns``."""
    parsed = _host(base_url)
    if parsed is None:
        return False
    scheme, host = parsed
    matching = [
        p
        for p in (p.strip().lower().strip("[]") for p in patterns)
        if p and fnmatch.fnmatchcase(host, p)
    ]
    if not matching:
        return False
    if scheme == "https":
        return True
    # Plain http only for a loopback host that an entry names exactly (sandboxes, tests).
    return (
        scheme == "http" and _is_loopback(host) and any(not (_WILDCARDS & set(p)) for p in matching)
    )
