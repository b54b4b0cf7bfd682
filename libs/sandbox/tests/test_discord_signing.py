"""The sandbox's Discord signer and interaction builders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey

from dfj_sandbox.discord_signing import (
    DISCORD_EPOCH_MS,
    DiscordSigner,
    InteractionFactory,
    encode,
    snowflake,
)

VECTORS = Path(__file__).resolve().parents[3].parent / "shared/vectors/discord-interactions.json"


@pytest.fixture(name="vectors")
def _vectors() -> dict[str, Any]:
    if not VECTORS.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{VECTORS} is missing (shared/ is expected beside the repository)")
        pytest.skip(f"{VECTORS} is missing (shared/ is expected beside the repository)")
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def test_signer_reproduces_the_shared_vectors(vectors: dict[str, Any]) -> None:
    """Seeded with RFC 8032 key A, the signer produces every valid vector's signature."""
    signer = DiscordSigner.from_seed(vectors["keys"]["A"]["seed_hex"])
    assert signer.public_key_hex == vectors["keys"]["A"]["public_key"]
    for vector in vectors["vectors"]:
        if vector["expected_valid"] and vector["public_key"] == signer.public_key_hex:
            body = bytes.fromhex(vector["body_hex"])
            assert signer.sign(body, vector["timestamp"]) == vector["signature"].lower()


def test_headers_verify_with_the_public_key() -> None:
    """The headers carry a hex signature over timestamp + body and the timestamp itself."""
    signer = DiscordSigner.generate()
    raw, headers = signer.signed({"type": 1}, timestamp=1_700_000_000)
    assert raw == b'{"type":1}'
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Signature-Timestamp"] == "1700000000"
    signature = bytes.fromhex(headers["X-Signature-Ed25519"])
    VerifyKey(bytes.fromhex(signer.public_key_hex)).verify(b"1700000000" + raw, signature)


def test_snowflakes() -> None:
    """Snowflakes encode the time since the Discord epoch, distinct per sequence."""
    flake = int(snowflake(DISCORD_EPOCH_MS + 1000, 7))
    assert flake >> 22 == 1000 and flake & 0xFFF == 7
    factory = InteractionFactory(clock=lambda: 1_750_000_000.0)
    assert len({factory.next_id() for _ in range(100)}) == 100


def test_slash_command_shape() -> None:
    """A slash command nests group → subcommand → typed options; guild fields are present."""
    factory = InteractionFactory()
    body = factory.slash(
        group="privacy", subcommand="export", options={"format": "json", "all": True, "n": 3}
    )
    assert body["type"] == 2 and body["version"] == 1
    assert body["guild_id"] == factory.guild_id and body["member"]["user"]["id"] == factory.user_id
    [group] = body["data"]["options"]
    assert (group["type"], group["name"]) == (2, "privacy")
    [sub] = group["options"]
    assert (sub["type"], sub["name"]) == (1, "export")
    assert [(o["name"], o["type"]) for o in sub["options"]] == [("format", 3), ("all", 5), ("n", 4)]
    assert body["token"] and body["token"] != factory.slash()["token"]


def test_dm_interactions_carry_user_not_member() -> None:
    """Without a guild the invoking user is ``user``, as Discord sends DMs."""
    body = InteractionFactory(guild_id=None).slash(subcommand="link")
    assert "member" not in body and "guild_id" not in body
    assert body["user"]["id"] == "1300000000000000004"


def test_message_command_resolves_the_message() -> None:
    """A message command targets a message that is present in ``resolved.messages``."""
    body = InteractionFactory().message_command(content="hello", message_id="42")
    data = body["data"]
    assert data["type"] == 3 and data["target_id"] == "42"
    assert data["resolved"]["messages"]["42"]["content"] == "hello"


def test_component_and_autocomplete() -> None:
    """Clicks carry custom id, type and values; autocomplete marks the focused option."""
    factory = InteractionFactory()
    click = factory.component("x:y", component_type=3, values=["a"])
    assert click["type"] == 3 and click["data"] == {
        "custom_id": "x:y",
        "component_type": 3,
        "values": ["a"],
    }
    assert click["message"]["id"]
    typing = factory.autocomplete(options={"project": "AB", "type": "b"}, focused="type")
    [sub] = typing["data"]["options"]
    assert [o.get("focused", False) for o in sub["options"]] == [False, True]


def test_modal_submit_shapes() -> None:
    """Label submits wrap one component each; legacy submits use Action Rows."""
    factory = InteractionFactory()
    label = factory.modal_submit("m", {"a": "1", "b": ["x"]})["data"]["components"]
    assert [(c["type"], c["component"]["type"]) for c in label] == [(18, 4), (18, 3)]
    assert label[1]["component"]["values"] == ["x"]
    legacy = factory.modal_submit("m", {"a": "1"}, shape="action_row")["data"]["components"]
    assert legacy[0]["type"] == 1 and legacy[0]["components"][0]["value"] == "1"


def test_encode_is_compact_utf8() -> None:
    """Bodies are compact JSON in UTF-8, like Discord's."""
    assert encode({"a": "é", "b": [1]}) == '{"a":"é","b":[1]}'.encode()
