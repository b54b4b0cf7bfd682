"""``make run`` from nothing, then the sandbox page in a real browser (headless Chromium).

The launcher is started exactly as ``make run`` starts it, with no credentials configured: it
must bring up both simulators and the four services, do the first run (install, connect the
server, link Alice, subscribe #general) and serve the page. Then Chromium, driven by
Playwright, creates an issue in the simulated Jira and waits for the notification to appear
in the simulated Discord channel — the whole way round: the site's signed webhook, the
gateway, the bus, the jira-worker reading the issue back as the app, the discord-worker
posting to Discord's REST API, and the page drawing what Discord received.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfj_sandbox.stack import free_ports

pytestmark = [pytest.mark.crossprocess, pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_READY = re.compile(r"ready: open (http://127\.0\.0\.1:\d+/)")


@pytest.fixture(name="page_url")
def _launched(tmp_path: Path) -> Iterator[str]:
    page_port, gateway_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFJ_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "run.py"),
            "--port",
            str(page_port),
            "--gateway-port",
            str(gateway_port),
            "--workdir",
            str(tmp_path / "sandbox"),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = _READY.search(line)
            url = found.group(1) if found else None
        assert url is not None, "the sandbox did not come up:\n" + "".join(lines[-60:])
        assert "no Discord credentials configured" in "".join(lines)
        yield url
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; CI has it)")
async def test_an_issue_created_in_jira_shows_up_in_the_discord_channel(page_url: str) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            channel = page.locator(".channel", has_text="#general")
            await expect(channel).to_be_visible()
            # The first run's answers are there: Alice's /jira subscribe was answered in public.
            await expect(channel).to_contain_text("now gets updates from DEMO")
            await page.get_by_label("Summary").fill("Printer on fire")
            await page.get_by_role("button", name="Create").click()
            issue = page.locator(".issue", has_text="Printer on fire")
            await expect(issue).to_be_visible()
            key = (await issue.locator(".key").inner_text()).strip()
            assert re.fullmatch(r"DEMO-\d+", key)
            embed = channel.locator(".embed", has_text=f"{key}: Printer on fire")
            await expect(embed).to_be_visible(timeout=20_000)
            await expect(embed.locator("a.title")).to_have_attribute(
                "href", re.compile(rf"/browse/{key}$")
            )
            await expect(channel.locator("button", has_text="Assign to me")).to_have_count(1)
        finally:
            await browser.close()
