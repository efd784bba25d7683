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
    name, each with its source. A user entry may not shadow a built-in one, and is held to
    the shape of the built-in ones (check_user_entry)."""
    out = {k: (v, BUILTIN) for k, v in load_toml(name).items() if isinstance(v, dict)}
    builtin = [v for v, _ in out.values()]
    path = user_path(name)
    if path.is_file():
        for key, value in load_user_toml(path).items():
            if not isinstance(value, dict):
                raise SaferlabError(f"{path}: {key!r} must be a table ([{key}] and its keys), "
                                    f"not {_kind_of(value)}", EXIT_USAGE)
            if key in out:
                raise SaferlabError(
                    f"{path} defines {key!r}, which is built in; give yours another name",
                    EXIT_USAGE)
            check_user_entry(value, builtin, f"{path}: [{key}]")
            out[key] = (value, USER)
    return out


_OPTIONAL = ("description", "citation")  # every built-in entry has them; a user's need not
# Keys whose values the code acts on one by one: a user's entry takes one the built-in ones use.
_CLOSED = ("encoding", "demos", "requires")
# Where a template puts the request; the model never sees it through a template without one.
_REQUEST = ("{prompt}", "{request}", "{encoded}")


def _kind_of(value: Any) -> str:
    """A TOML value's type in TOML's words."""
    for kind, types in (("a boolean", bool), ("an integer", int), ("a number", float),
                        ("text", str), ("an array", list), ("a table", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def check_user_entry(entry: dict[str, Any], builtin: list[dict[str, Any]], where: str) -> None:
    """A user's entry holds each key the built-in entries have with the type they give it
    (an integer may stand for a number), and every key that all built-in entries of its kind
    have. Raises SaferlabError naming the entry and the key."""
    for key, value in entry.items():
        shown = next((b[key] for b in builtin if key in b), None)
        if shown is None:
            continue
        want, got = _kind_of(shown), _kind_of(value)
        if got != want and not (want == "a number" and got == "an integer"):
            raise SaferlabError(f"{where}: {key} must be {want}, not {got}", EXIT_USAGE)
    for key in _CLOSED:
        choices = sorted({b[key] for b in builtin if key in b})
        if key in entry and entry[key] not in choices:
            raise SaferlabError(f"{where}: {key} must be one of {', '.join(choices)}, not "
                                f"{entry[key]!r}", EXIT_USAGE)
    same_kind = [b for b in builtin if b.get("kind") == entry.get("kind")]
    templated = [b["template"] for b in same_kind if "template" in b]
    if "template" in entry and templated and all(any(p in t for p in _REQUEST) for t in templated) \
            and not any(p in entry["template"] for p in _REQUEST):
        raise SaferlabError(f"{where}: template must hold the request ({' or '.join(_REQUEST)}), "
                            "or the model never sees it", EXIT_USAGE)
    if same_kind:
        required = set.intersection(*(set(b) for b in same_kind)) - set(_OPTIONAL)
        missing = sorted(required - set(entry))
        if missing:
            kind = f" of kind {entry['kind']!r}" if "kind" in entry else ""
            raise SaferlabError(f"{where}: an entry{kind} needs {', '.join(missing)}", EXIT_USAGE)


def prompt_file_sha256(name: str) -> str:
    """Digest of a prompt data file (and the user's file of that name, if any), recorded with
    each run so a result can be reproduced."""
    digest = hashlib.sha256(read_bytes(name))
    path = user_path(name)
    if path.is_file():
        digest.update(path.read_bytes())
    return digest.hexdigest()
