"""An installation that cannot be called with is refused up front, permanently, saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dfj_common.errors import PermanentError
from dfj_common.storage import InstallationKind, InstallationState
from dfj_jira_worker.jira import JiraClient, JiraInstallationIncomplete

if TYPE_CHECKING:
    from conftest import FakeJira, MakeSite

ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"base_url": None}, "has no base URL"),
        ({"base_url": ""}, "has no base URL"),
        ({"shared_secret_ciphertext": None}, "has no shared secret"),
        ({"kind": InstallationKind.FORGE}, "has no Forge API base URL"),
        ({"state": InstallationState.UNINSTALLED}, "is uninstalled"),
        ({"base_url": "ftp://acme.example/"}, "unusable base URL"),
        ({"base_url": "https://user:pw@acme.atlassian.net"}, "unusable base URL"),
        ({"base_url": "https://acme.atlassian.net/?x=1"}, "unusable base URL"),
    ],
)
async def test_incomplete_installations_are_refused_for_app_and_user_calls(
    client: JiraClient,
    make_site: MakeSite,
    fake: FakeJira,
    changes: dict[str, Any],
    why: str,
) -> None:
    """No request leaves; the error is permanent with reason ``JiraInstallationIncomplete``."""
    site = await make_site(**changes)
    for api in (client.as_app(site), client.as_user(site, ACCOUNT_ID)):
        with pytest.raises(JiraInstallationIncomplete, match=why) as caught:
            await api.get_myself()
        assert isinstance(caught.value, PermanentError)
        assert caught.value.reason == "JiraInstallationIncomplete"
        assert "reinstall" in caught.value.user_message
    assert fake.seen == []
    assert fake.token_requests == []


async def test_user_calls_need_the_oauth_client_id_but_app_calls_do_not(
    client: JiraClient, make_site: MakeSite, fake: FakeJira
) -> None:
    """Without ``oauthClientId`` users cannot be impersonated; the app can still call."""
    site = await make_site(oauth_client_id=None)
    with pytest.raises(JiraInstallationIncomplete, match="OAuth client id"):
        await client.as_user(site, ACCOUNT_ID).get_myself()
    assert fake.token_requests == []
    assert (await client.as_app(site).get_myself())["actor"] == "app"


async def test_a_secret_sealed_for_another_site_does_not_open(
    client: JiraClient, make_site: MakeSite, fake: FakeJira
) -> None:
    """The AAD binds the sealed secret to its clientKey: a copied blob is refused."""
    site = await make_site(sealed_for="some-other-client-key")
    with pytest.raises(JiraInstallationIncomplete, match="does not open"):
        await client.as_app(site).get_myself()
    assert fake.seen == []


async def test_an_empty_account_id_is_a_programming_error(
    client: JiraClient, make_site: MakeSite
) -> None:
    """Acting as nobody is refused at once, not sent to the token endpoint."""
    with pytest.raises(ValueError, match="account_id"):
        client.as_user(await make_site(), "")
