"""Reads the data in saferlab.prompts (TOML files shipped with the package)."""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import SaferlabError

PACKAGE = "saferlab.prompts"


@lru_cache(maxsize=None)
def read_bytes(name: str) -> bytes:
    try:
        return resources.files(PACKAGE).joinpath(name).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise SaferlabError(f"prompt data file {name!r} is missing from the installation") from exc


@lru_cache(maxsize=None)
def load_toml(name: str) -> dict[str, Any]:
    """Parse a TOML file of saferlab.prompts, e.g. ``load_toml("attacks.toml")``."""
    try:
        return tomllib.loads(read_bytes(name).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SaferlabError(f"prompt data file {name!r} is not valid TOML: {exc}") from exc


def file_sha256(name: str) -> str:
    """Digest of a prompt data file, recorded with each run so a result can be reproduced."""
    return hashlib.sha256(read_bytes(name)).hexdigest()
