"""Atlassian Connect for the gateway: descriptor, lifecycle, webhooks and pages inside Jira.

Layout (framework-free protocol code first, the aiohttp adapter last):

- :mod:`.qsh` — the canonical request and its hash (the protocol theory lives there);
- :mod:`.connect_jwt` — HS256/RS256 verification with pinned algorithms and an injected clock;
- :mod:`.install_keys` — signed-install public keys by ``kid``, cached;
- :mod:`.tenants` — sealing/opening the per-site shared secret, and its short-lived cache;
- :mod:`.sites` — the site allow-list for install;
- :mod:`.payloads` — what is kept of Jira's bodies (ids only) — the event data shapes;
- :mod:`.paths`, :mod:`.descriptor` — where Jira calls us, and the descriptor telling it so;
- :mod:`.routes` — the route table (each route's auth kind declared once) and the handlers.

The Connect-specific code stays behind :func:`setup_jira_routes`, so a Forge front end can
replace it when Connect reaches end of support.
"""

from __future__ import annotations

from dfj_gateway.jira.routes import setup_jira_routes

__all__ = ["setup_jira_routes"]
