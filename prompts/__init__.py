"""Data only: reasoning prompts, attacks, suites and keyword lists as TOML files."""
