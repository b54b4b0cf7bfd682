"""jira-worker: the only caller of Jira REST."""
