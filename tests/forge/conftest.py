"""One headless Chromium per test module for the Forge page tests (a launch costs a second).

Each test still gets a fresh browser context (no cookies, storage or scripts carried over);
only the browser process is shared. Without Chromium the page tests skip with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
import pytest_asyncio

CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest_asyncio.fixture(name="browser", scope="module", loop_scope="module")
async def _browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip("needs Chromium (apt-get install chromium; CI has it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()
