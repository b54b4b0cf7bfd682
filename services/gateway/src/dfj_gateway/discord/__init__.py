"""Discord HTTP interactions: verify (``verify``), refuse replays (``replay``), decide
(``interactions``), shape answers (``responses``) and serve them (``routes``).

Only ``routes`` knows aiohttp; everything it calls is pure and takes the clock as a parameter.
"""

from __future__ import annotations

from dfj_gateway.discord.routes import DISCORD, INTERACTIONS_PATH, setup_discord_routes

__all__ = ["DISCORD", "INTERACTIONS_PATH", "setup_discord_routes"]
