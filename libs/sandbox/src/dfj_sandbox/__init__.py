"""Simulators of Jira Cloud and Discord that speak the real protocols."""
