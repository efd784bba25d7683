"""JSON read from a user's file: every way it can fail is a ValueError whose message says
what is wrong in words (the caller names the file and line), never a RecursionError from deep
nesting or a lone surrogate that breaks later, when the text is hashed or stored."""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str) -> Any:
    """The value ``text`` holds. Raises ValueError for invalid JSON, nesting too deep to read,
    and strings holding a lone surrogate escape (\\ud800: not a character, so not text)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
                         ) from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise ValueError(f"holds the escape \\u{ord(bad[0]):04x}, half of a surrogate pair, "
                         "which is not text") from None
    return value
