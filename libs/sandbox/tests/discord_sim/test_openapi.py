"""The spec validator: corrections, Discord's error tree, finding and trusting the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfj_sandbox.discord_sim import CORRECTIONS, SPEC_ENV, DiscordSpec, FieldError, locate_spec
from dfj_sandbox.discord_sim.errors import error_tree, form_error

MESSAGES = "/channels/{channel_id}/messages"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"


def test_corrections_tighten_only_what_the_docs_say(spec: DiscordSpec) -> None:
    """Each correction changes the verdict; valid bodies pass both ways."""
    body = {"content": "x" * 2001}
    assert spec.check_body("POST", MESSAGES, body, corrected=False) == []
    assert spec.check_body("POST", MESSAGES, body)[0].path == ("content",)
    good = {
        "content": "DEMO-1",
        "embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}]}],
        "nonce": "abc",
        "enforce_nonce": True,
        "allowed_mentions": {"parse": []},
    }
    assert spec.check_body("POST", MESSAGES, good) == []
    assert spec.check_body("POST", MESSAGES, good, corrected=False) == []
    assert spec.check_body("POST", CALLBACK, {"type": 5, "data": {"flags": 64}}) == []
    assert {c.pointer.split("/")[3] for c in CORRECTIONS} >= {
        "MessageCreateRequest",
        "MessageEditRequestPartial",
        "ModalInteractionCallbackRequestData",
        "ApplicationCommandUpdateRequest",
    }


def test_a_changed_spec_is_noticed() -> None:
    """If the spec no longer says what a correction expects, loading fails."""
    document = json.loads(locate_spec().read_text(encoding="utf-8"))
    schema = document["components"]["schemas"]["MessageCreateRequest"]
    schema["properties"]["content"]["maxLength"] = 2000
    with pytest.raises(ValueError, match="review CORRECTIONS"):
        DiscordSpec(document)


def test_error_tree_nests_like_discord() -> None:
    """Paths become nested keys; a whole-field error hides the errors inside it."""
    errors = [
        FieldError(path=("embeds", 0, "title"), code="BASE_TYPE_MAX_LENGTH", message="m"),
        FieldError(path=("components",), code="BASE_TYPE_MAX_LENGTH", message="too many"),
        FieldError(path=("components", 3, "type"), code="BASE_TYPE_CHOICES", message="c"),
    ]
    assert error_tree(errors) == {
        "components": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "too many"}]},
        "embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "m"}]}}},
    }
    reply = form_error(errors[:1])
    assert (reply.status, reply.body["code"], reply.body["message"]) == (
        400,
        50035,
        "Invalid Form Body",
    )


def test_type_errors_use_discords_codes(spec: DiscordSpec) -> None:
    """A non-object body and a wrongly typed field."""
    assert spec.check_body("POST", MESSAGES, [1])[0].code == "MODEL_TYPE_CONVERT"
    assert spec.check_body("POST", MESSAGES, {"tts": "yes"})[0].code == "BASE_TYPE_BOOLEAN"
    callback = spec.check_body("POST", CALLBACK, {"type": 9, "data": {"title": "t" * 46}})
    assert {e.path for e in callback} >= {("data", "title")}


def test_locating_the_spec(tmp_path: Path) -> None:
    """Explicit path, the environment variable, and a clear error when it is missing."""
    found = locate_spec()
    assert found.name == "discord-openapi.json"
    assert locate_spec(environ={SPEC_ENV: str(found)}) == found
    with pytest.raises(FileNotFoundError, match=SPEC_ENV):
        locate_spec(tmp_path / "missing.json")
    other = tmp_path / "jira.json"
    other.write_text('{"openapi": "3.0.1"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"OpenAPI 3\.1"):
        DiscordSpec.load(other)


async def test_the_simulator_fails_loudly_without_a_spec(tmp_path: Path) -> None:
    """No spec, no simulator: never a silent skip of validation."""
    from dfj_sandbox.discord_sim import DiscordSimulator

    sim = DiscordSimulator(spec=tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError):
        await sim.start()
    with pytest.raises(RuntimeError):
        _ = sim.url
