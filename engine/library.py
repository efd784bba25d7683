"""Reads the data in saferlab.prompts (TOML files shipped with the package) and the user's own
files of the same formats under $SAFERLAB_HOME/prompts."""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import EXIT_USAGE, SaferlabError
from .paths import user_prompts_dir

PACKAGE = "saferlab.prompts"
BUILTIN = "built-in"
USER = "user"


@lru_cache(maxsize=None)
def read_bytes(name: str) -> bytes:
    try:
        return resources.files(PACKAGE).joinpath(name).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise SaferlabError(f"prompt data file {name!r} is missing from the installation") from exc


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SaferlabError(f"{where} is not UTF-8 text", EXIT_USAGE) from None
    except tomllib.TOMLDecodeError as exc:
        raise SaferlabError(f"{where} is not valid TOML: {exc}", EXIT_USAGE) from None


@lru_cache(maxsize=None)
def load_toml(name: str) -> dict[str, Any]:
    """Parse a TOML file of saferlab.prompts, e.g. ``load_toml("attacks.toml")``."""
    return _parse(read_bytes(name), f"prompt data file {name!r}")


class Described:
    """For data-backed entries (reasoning prompts, modifiers, attacks): the one-line
    description and the citation come from the entry's TOML table."""

    entry: dict[str, Any]

    @property
    def description(self) -> str:
        return self.entry.get("description", "")

    @property
    def citation(self) -> str:
        return self.entry.get("citation", "")


def user_path(name: str) -> Path:
    return user_prompts_dir() / name


def load_user_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SaferlabError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    return _parse(data, str(path))


def entries(name: str) -> dict[str, tuple[dict[str, Any], str]]:
    """The table entries of a data file, built-in first, then the user's file of the same
    name, each with its source. A user entry may not shadow a built-in one."""
    out = {k: (v, BUILTIN) for k, v in load_toml(name).items() if isinstance(v, dict)}
    path = user_path(name)
    if path.is_file():
        for key, value in load_user_toml(path).items():
            if not isinstance(value, dict):
                continue
            if key in out:
                raise SaferlabError(
                    f"{path} defines {key!r}, which is built in; give yours another name",
                    EXIT_USAGE)
            out[key] = (value, USER)
    return out


def prompt_file_sha256(name: str) -> str:
    """Digest of a prompt data file (and the user's file of that name, if any), recorded with
    each run so a result can be reproduced."""
    digest = hashlib.sha256(read_bytes(name))
    path = user_path(name)
    if path.is_file():
        digest.update(path.read_bytes())
    return digest.hexdigest()
