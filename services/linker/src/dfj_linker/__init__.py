"""linker: account linking and privacy."""
