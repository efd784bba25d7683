"""Where saferlab keeps its files: $SAFERLAB_HOME, else the platform's user data directory."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    env = os.environ.get("SAFERLAB_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only when no home is set: tests never read the real home

    return Path(platformdirs.user_data_dir("saferlab", appauthor=False))


def user_prompts_dir() -> Path:
    """Users' own reasoning prompts, modifiers, attacks and suites, in the built-in formats."""
    return home_dir() / "prompts"
