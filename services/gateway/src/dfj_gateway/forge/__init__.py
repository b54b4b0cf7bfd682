"""Forge Remote for the gateway: the second door Jira uses, beside Connect.

Layout (framework-free protocol code first, the aiohttp adapter last):

- :mod:`.fit` — Forge Invocation Token verification (RS256 pinned, ``iss``/``aud``/time);
- :mod:`.jwks` — Forge's signing keys, cached by ``kid``, refetched on rotation;
- :mod:`.system_token` — sealing the app system token Forge hands over, reading its expiry;
- :mod:`.payloads` — Forge event bodies mapped to the Connect webhook event data;
- :mod:`.routes` — the ``/forge/...`` routes and their handlers.
"""

from __future__ import annotations

from dfj_gateway.forge.routes import setup_forge_routes

__all__ = ["setup_forge_routes"]
