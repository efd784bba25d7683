"""Names with parameters (``few-shot-cot:k=4``, ``math:steps=4,n=200``) and template filling."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import EXIT_USAGE, SaferlabError

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Replace ``{name}`` placeholders by values; other braces pass through untouched.

    str.format would choke on the braces that requests, code and JSON often contain.
    """
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        return str(values[key]) if key in values else match.group(0)

    return PLACEHOLDER.sub(sub, template)


@dataclass(frozen=True)
class Ref:
    text: str
    name: str
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> "Ref":
        text = text.strip()
        name, _, rest = text.partition(":")
        params: dict[str, str] = {}
        if rest:
            for part in rest.split(","):
                key, eq, value = part.partition("=")
                if not eq or not key.strip():
                    raise SaferlabError(
                        f"cannot read {text!r}: parameters are written name:key=value,key=value",
                        EXIT_USAGE)
                params[key.strip()] = value.strip()
        return cls(text=text, name=name.strip(), params=params)

    def int_param(self, key: str, default: int, low: int | None = None,
                  high: int | None = None) -> int:
        raw = self.params.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SaferlabError(f"{self.text!r}: {key} must be an integer, not {raw!r}",
                                EXIT_USAGE) from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            raise SaferlabError(f"{self.text!r}: {key}={value} is outside {bounds}", EXIT_USAGE)
        return value
