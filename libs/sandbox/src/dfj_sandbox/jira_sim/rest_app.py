"""The instance's description and the app's own properties (what a Forge remote asks first).

``GET /rest/api/3/serverInfo`` is how a Forge remote learns the site's ``baseUrl``: the
lifecycle event carries only the ``cloudId`` (forge.md §3).

``GET /rest/atlassian-connect/1/addons/{addonKey}/properties/{propertyKey}`` is served for
one property only, the reserved read-only ``connect_client_key_…`` a Forge installation that
adopted a Connect one reads its Connect ``clientKey`` from (forge.md §4). Jira keeps app
properties to the app itself: another caller is 401, and a property of another app, or one
the site does not have, is 404 — Jira's ``OperationMessage`` bodies.
"""

from __future__ import annotations

from typing import Final

from dfj_sandbox.jira_sim.forge import CONNECT_CLIENT_KEY_PROPERTY
from dfj_sandbox.jira_sim.render import jira_time
from dfj_sandbox.jira_sim.rest_common import Reply, RestRequest

__all__ = ["get_app_property", "server_info"]

_VERSION: Final = "1001.0.0-SNAPSHOT"
_BUILD_TIME: Final = 1_700_000_000.0


def server_info(req: RestRequest) -> Reply:
    """``GET /serverInfo``: the site's ``baseUrl``, Cloud, the simulator's clock."""
    site = req.site
    return Reply(
        status=200,
        body={
            "baseUrl": site.base_url,
            "displayUrl": site.base_url,
            "version": _VERSION,
            "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud",
            "buildNumber": 100000,
            "buildDate": jira_time(_BUILD_TIME),
            "serverTime": jira_time(site.now()),
            "scmInfo": "0" * 40,
            "serverTitle": "Jira",
            "serverTimeZone": "Etc/UTC",
        },
    )


def _message(status: int, message: str) -> Reply:
    return Reply(status=status, body={"message": message, "statusCode": status})


def get_app_property(req: RestRequest) -> Reply:
    """``GET /addons/{addonKey}/properties/{propertyKey}`` (the reserved property only)."""
    if req.caller.kind != "app":
        return _message(401, "Access to this resource must be authenticated as an app.")
    installation = req.site.forge
    addon_key = req.path_params["addonKey"]
    if (
        installation is None
        or installation.connect_client_key is None
        or installation.manifest.connect_key != addon_key
        or req.path_params["propertyKey"] != CONNECT_CLIENT_KEY_PROPERTY
    ):
        return _message(404, "Property with key not found.")
    return Reply(
        status=200,
        body={"key": CONNECT_CLIENT_KEY_PROPERTY, "value": installation.connect_client_key},
    )
