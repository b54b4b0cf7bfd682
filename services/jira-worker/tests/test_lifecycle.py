"""Lifecycle handlers keep installations, and refuse events they cannot apply with a reason."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfj_common.bus import LINKER
from dfj_common.bus.local import LocalBus
from dfj_common.envelope import Envelope
from dfj_common.errors import MalformedMessage, PermanentError
from dfj_common.runtime import HandlerContext
from dfj_common.storage import Database, Installations, InstallationState
from dfj_common.storage.migrate import upgrade
from dfj_jira_worker.lifecycle import SITE_UNINSTALLED, Lifecycle

CTX = HandlerContext(
    queue="jira-events", message_id="m", delivery_count=1, max_deliveries=10, enqueued_at=0.0
)


@pytest.fixture(name="parts")
async def _parts(tmp_path: Path) -> AsyncIterator[tuple[Lifecycle, Installations, LocalBus]]:
    url = f"sqlite:///{tmp_path / 'dfj.sqlite'}"
    await asyncio.to_thread(upgrade, url)
    database = Database.open(url)
    bus = await LocalBus.open(tmp_path / "bus.sqlite")
    installations = Installations(database)
    yield Lifecycle(installations=installations, bus=bus), installations, bus
    await bus.close()
    await database.close()


def event(kind: str, **data: object) -> Envelope:
    return Envelope(
        id=f"evt-{kind}",
        source="tests",
        type=f"jira.lifecycle.{kind}",
        data={"clientKey": "c1", **data},
    )


SEALED = base64.b64encode(b"DFJ\x01 not a real seal but bytes").decode()


async def test_installed_stores_the_sealed_secret_as_it_came(
    parts: tuple[Lifecycle, Installations, LocalBus],
) -> None:
    """The row keeps the site's ids and the sealed blob byte for byte."""
    lifecycle, installations, _ = parts
    await lifecycle.installed(
        event("installed", baseUrl="https://x.atlassian.net", sharedSecretSealed=SEALED, key="k"),
        CTX,
    )
    row = await installations.get("c1")
    assert row is not None
    assert row.state is InstallationState.INSTALLED
    assert row.shared_secret_ciphertext == base64.b64decode(SEALED)
    assert row.app_key == "k"


@pytest.mark.parametrize(
    "data",
    [
        {"baseUrl": "https://x.atlassian.net"},
        {"baseUrl": "https://x.atlassian.net", "sharedSecretSealed": "***not base64***"},
        {"sharedSecretSealed": SEALED},
    ],
)
async def test_installed_without_what_it_needs_is_malformed(
    parts: tuple[Lifecycle, Installations, LocalBus], data: dict[str, str]
) -> None:
    """A missing field or an undecodable secret is a MalformedMessage (dead-lettered)."""
    lifecycle, installations, _ = parts
    with pytest.raises(MalformedMessage):
        await lifecycle.installed(event("installed", **data), CTX)
    assert await installations.get("c1") is None


async def test_enable_and_disable_move_the_state(
    parts: tuple[Lifecycle, Installations, LocalBus],
) -> None:
    """enabled and disabled set the state of a known site."""
    lifecycle, installations, _ = parts
    await lifecycle.installed(
        event("installed", baseUrl="https://x.atlassian.net", sharedSecretSealed=SEALED), CTX
    )
    await lifecycle.enabled(event("enabled"), CTX)
    assert (await installations.get("c1")).state is InstallationState.ENABLED  # type: ignore[union-attr]
    await lifecycle.disabled(event("disabled"), CTX)
    assert (await installations.get("c1")).state is InstallationState.DISABLED  # type: ignore[union-attr]


async def test_enabling_an_unknown_site_is_permanent(
    parts: tuple[Lifecycle, Installations, LocalBus],
) -> None:
    """Without its installed event there is nothing to enable: dead-letter with a reason."""
    lifecycle, _, _ = parts
    with pytest.raises(PermanentError) as info:
        await lifecycle.enabled(event("enabled"), CTX)
    assert info.value.reason == "UnknownInstallation"


async def test_uninstall_marks_the_site_and_asks_the_linker_to_purge(
    parts: tuple[Lifecycle, Installations, LocalBus],
) -> None:
    """The row is marked uninstalled and one purge request goes to the linker, even if unknown."""
    lifecycle, installations, bus = parts
    await lifecycle.installed(
        event("installed", baseUrl="https://x.atlassian.net", sharedSecretSealed=SEALED), CTX
    )
    await lifecycle.uninstalled(event("uninstalled"), CTX)
    assert (await installations.get("c1")).state is InstallationState.UNINSTALLED  # type: ignore[union-attr]
    await lifecycle.uninstalled(event("uninstalled"), CTX)  # redelivery: same purge id, deduped
    got = await bus.receiver(LINKER).receive(10, timeout=1)
    assert [Envelope.decode(d.body).type for d in got] == [SITE_UNINSTALLED]
    assert Envelope.decode(got[0].body).data == {"clientKey": "c1", "known": True}
