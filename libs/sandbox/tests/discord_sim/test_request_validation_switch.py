"""``validate_requests=False`` skips the spec's schema check (for benchmarks), nothing else."""

from __future__ import annotations

import aiohttp

from dfj_common.clock import ManualClock
from dfj_sandbox.discord_sim import DiscordSimulator, DiscordSpec

AGENT = "DiscordBot (https://github.com/example/discord-for-jira, 0.1.0)"


async def test_without_request_validation_the_schema_is_not_checked(
    spec: DiscordSpec, clock: ManualClock
) -> None:
    off_spec = {"embeds": [{"title": "t" * 300}]}  # the spec allows 256
    for validate, expected in ((True, 400), (False, 200)):
        async with DiscordSimulator(clock=clock, spec=spec, validate_requests=validate) as sim:
            channel = sim.add_guild("Acme").channels[0].id
            url = f"{sim.api_url}/channels/{channel}/messages"
            bot = {"User-Agent": AGENT, "Authorization": f"Bot {sim.application.bot_token}"}
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=off_spec, headers=bot) as answer:
                    assert answer.status == expected
                async with http.post(url, json=off_spec, headers={"User-Agent": AGENT}) as anon:
                    assert anon.status == 401, "authentication still applies"
            assert len(sim.spec_violations) == (1 if validate else 0)
