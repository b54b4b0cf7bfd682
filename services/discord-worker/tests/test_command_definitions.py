"""The registered commands agree with Discord's spec, its documented limits, and our routing."""

from __future__ import annotations

import re

from dfj_discord_worker.command_definitions import definitions
from dfj_gateway.discord.interactions import COMMAND_ROUTES, MESSAGE_COMMAND_ROUTES
from dfj_sandbox.discord_sim.openapi import DiscordSpec, locate_spec

_NAME = re.compile(r"^[-_\w]{1,32}$")


def test_the_bulk_overwrite_body_matches_the_spec() -> None:
    spec = DiscordSpec.load(locate_spec())
    errors = spec.check_body("PUT", "/applications/{application_id}/commands", definitions())
    assert errors == []


def test_names_descriptions_and_option_order_follow_the_docs() -> None:
    slash = definitions()[0]
    subs = slash["options"]
    assert len(subs) <= 25
    for sub in subs:
        assert _NAME.match(sub["name"]) and sub["name"] == sub["name"].lower()
        assert 1 <= len(sub["description"]) <= 100
        flags = [o["required"] for o in sub["options"]]
        assert flags == sorted(flags, reverse=True), sub["name"]  # required first
        for option in sub["options"]:
            assert _NAME.match(option["name"]) and len(option["description"]) <= 100


def test_every_routed_subcommand_is_registered_and_vice_versa() -> None:
    registered = {sub["name"] for sub in definitions()[0]["options"]}
    assert set(COMMAND_ROUTES) <= registered
    assert registered - set(COMMAND_ROUTES) == {"help"}  # answered by the gateway itself
    menus = {d["name"] for d in definitions() if d["type"] == 3}
    assert set(MESSAGE_COMMAND_ROUTES) <= menus and "Add to Jira issue" in menus
