"""Notification tests (a package, so type checkers name its conftest ``notify.conftest``)."""
