"""``/users/@me`` and ``/oauth2/@me``: who a token belongs to.

With the bot token, ``/users/@me`` is the bot user. With a Bearer token from the OAuth2 code
grant it is the user who authorized, if the grant holds ``identify`` — their ``id``,
``username``, ``global_name``, ``avatar`` and the other ``identify`` fields, no email.
``/oauth2/@me`` describes the authorization itself (application, scopes, expiry, user).
"""

from __future__ import annotations

from dfj_sandbox.discord_sim.errors import Refusal, Reply, http_error
from dfj_sandbox.discord_sim.ids import iso_timestamp
from dfj_sandbox.discord_sim.rest import RestRequest

__all__ = ["get_authorization", "get_me"]


def get_me(req: RestRequest) -> Reply:
    """Get Current User."""
    world = req.world
    grant = req.caller.grant
    if req.caller.kind == "bot":
        return Reply(status=200, body=world.bot.as_private_json())
    if grant is None or "identify" not in grant.scopes:
        raise Refusal(http_error(401))
    return Reply(status=200, body=world.users[grant.user_id].as_private_json())


def get_authorization(req: RestRequest) -> Reply:
    """Get Current Authorization Information (Bearer only)."""
    world = req.world
    grant = req.caller.grant
    if grant is None:
        raise Refusal(http_error(401))
    app = world.application
    body: dict[str, object] = {
        "application": {
            "id": app.id,
            "name": app.name,
            "icon": None,
            "description": "",
            "type": None,
            "verify_key": app.public_key,
            "flags": 0,
            "flags_new": "0",
            "bot_public": True,
            "bot_require_code_grant": False,
        },
        "scopes": list(grant.scopes),
        "expires": iso_timestamp(grant.expires_at),
    }
    if "identify" in grant.scopes:
        body["user"] = world.users[grant.user_id].as_json()
    return Reply(status=200, body=body)
