"""The few HTML pages the browser sees after Discord's OAuth redirect (pure rendering).

Pages are small and self-contained: no external resources, inline style and script allowed only
by a per-response CSP nonce, ``Referrer-Policy: no-referrer`` (the callback URL holds the
authorization code), ``Cache-Control: no-store``, and no framing. The callback page removes
``code`` and ``state`` from the address bar at once, then polls the link status with the
back-off the server asks for (``retry_after``) until it is linked or the ticket expires.
Every interpolated value is escaped for its context (HTML text, or JSON inside the script).
"""

from __future__ import annotations

import html
import json
import secrets
from typing import Final

from aiohttp import web

__all__ = ["html_page", "html_response", "link_pending_page", "message_page"]

_STYLE: Final = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
    "color:#1d2125}h1{font-size:1.4rem}.muted{color:#626f86}"
)

_SCRIPT: Final = """
(() => {
  const url = %(url)s;
  const minimum = %(poll_ms)d;
  const out = document.getElementById("status");
  const say = (text) => { out.textContent = text; };
  history.replaceState(null, "", location.pathname);
  let delay = minimum;
  async function poll() {
    try {
      const response = await fetch(url, {cache: "no-store", credentials: "omit"});
      const body = await response.json();
      if (body.status === "linked") {
        say(%(linked)s);
        return;
      }
      if (body.status === "refused") {
        say(typeof body.message === "string" ? body.message : %(expired)s);
        return;
      }
      if (body.status !== "pending") {
        say(%(expired)s);
        return;
      }
      delay = Math.max(minimum, (body.retry_after || 0) * 1000);
    } catch (error) {
      delay = Math.min(delay * 2, 30000);
    }
    setTimeout(poll, delay);
  }
  setTimeout(poll, minimum);
})();
"""

LINKED: Final = "Your Discord account is linked. You can close this tab and go back to Discord."
EXPIRED: Final = "This took too long. Run /jira link in Discord to try again."


def _document(title: str, body: str, nonce: str, script: str = "") -> str:
    script_tag = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)} · Discord for Jira</title>"
        f'<style nonce="{nonce}">{_STYLE}</style></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}{script_tag}</body></html>\n"
    )


def html_response(
    document: str, *, csp: str, status: int = 200, framed: bool = False
) -> web.Response:
    """HTML with the headers every page of ours carries: the CSP given, no referrer (URLs
    carry codes and JWTs), no caching, no sniffing, and no framing unless ``framed``."""
    headers = {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if not framed:
        headers["X-Frame-Options"] = "DENY"
    return web.Response(
        text=document, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


def html_page(document: str, *, nonce: str, status: int = 200) -> web.Response:
    """A page of ours outside Jira: scripts and styles by nonce only, never framed."""
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html_response(document, csp=csp, status=status)


def message_page(title: str, message: str, *, status: int) -> web.Response:
    """A page that only says something (errors, cancellations)."""
    nonce = secrets.token_urlsafe(16)
    body = f'<p id="status">{html.escape(message)}</p>'
    return html_page(_document(title, body, nonce), nonce=nonce, status=status)


def link_pending_page(status_url: str, *, poll_seconds: float) -> web.Response:
    """The callback's answer: "linking…", updated by polling ``status_url``."""
    nonce = secrets.token_urlsafe(16)
    script = _SCRIPT % {
        "url": _js(status_url),
        "poll_ms": max(500, int(poll_seconds * 1000)),
        "linked": _js(LINKED),
        "expired": _js(EXPIRED),
    }
    body = (
        '<p id="status">Finishing the link with your Jira account…</p>'
        '<p class="muted">This page updates by itself; it takes a few seconds.</p>'
    )
    return html_page(_document("Linking your Discord account", body, nonce, script), nonce=nonce)


def _js(value: str) -> str:
    # JSON is valid JavaScript; escaping "<", ">" and "&" keeps "</script>" out of the script.
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
