"""The suite-wide leak guard fails a test whose captured output holds a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


@pytest.fixture(name="guarded")
def _guarded(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makeini(
        "[pytest]\n"
        "asyncio_default_fixture_loop_scope = function\n"
        "log_level = DEBUG\n"
        "markers =\n    leaks_allowed: exempt from the leak guard\n"
    )
    return pytester


@pytest.mark.leaks_allowed  # the inner run's report quotes the leak
def test_a_logged_jwt_fails_the_test(guarded: pytest.Pytester) -> None:
    """A test that logs a JWT through stdlib logging is reported as an error, naming the kind."""
    guarded.makepyfile(
        """
        import logging
        def test_leaky():
            logging.getLogger("x").warning("token eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
        """
    )
    result = guarded.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*secret-shaped text in captured output*jwt*"])


@pytest.mark.leaks_allowed
def test_printed_bot_token_fails_and_marker_exempts(guarded: pytest.Pytester) -> None:
    """Printed bot tokens are caught too; a test marked leaks_allowed is left alone."""
    guarded.makepyfile(
        """
        import pytest
        TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.abcdefghijklmnopqrstuvwxyz0123"
        def test_printed():
            print("Authorization: Bot " + TOKEN)
        @pytest.mark.leaks_allowed
        def test_exempt():
            print("Authorization: Bot " + TOKEN)
        def test_clean():
            print("Authorization: [REDACTED]")
        """
    )
    result = guarded.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
