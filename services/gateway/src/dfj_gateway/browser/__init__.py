"""What a person's browser talks to: the Discord OAuth callback of the account-link flow and its
status poll (``routes``, rendered by ``pages``), and the signed states, PKCE and authorize URL
the Jira page flow mints them with (``state``, pure).
"""

from __future__ import annotations

from dfj_gateway.browser.routes import BROWSER, STATUS_PATH, setup_browser_routes

__all__ = ["BROWSER", "STATUS_PATH", "setup_browser_routes"]
