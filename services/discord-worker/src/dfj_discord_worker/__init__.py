"""discord-worker: the only caller of Discord REST."""
