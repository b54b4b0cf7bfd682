"""Suite-wide guard: no test may leave a secret, token, JWT or email in what it logged.

After each test phase, everything pytest captured for it (stdout, stderr and log records at
every level) is scanned with :func:`dfj_common.testing.find_leaks`. A test that must emit raw
secrets on purpose (to prove that redaction catches them) says so with
``@pytest.mark.leaks_allowed``.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from dfj_common.testing import find_leaks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # Captured sections accumulate over setup, call and teardown: teardown's report has them all.
    if report.when != "teardown" or report.outcome != "passed":
        return
    if item.get_closest_marker("leaks_allowed"):
        return
    captured = "\n".join(content for title, content in report.sections if "Captured" in title)
    leaks = find_leaks(captured)
    if leaks:
        report.outcome = "failed"
        report.longrepr = (
            f"secret-shaped text in captured output during {report.when}: " + "; ".join(leaks)
        )
