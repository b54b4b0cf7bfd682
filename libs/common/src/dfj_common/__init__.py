"""Shared plumbing of the Discord for Jira services (no domain rules)."""
