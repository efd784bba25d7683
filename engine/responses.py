"""Responses produced elsewhere, for `saferlab judge`: one JSON object a line with `prompt` and
`response`, optionally `goal` (the behaviour judged against), `id` and `reasoning`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_USAGE, SaferlabError
from .jsontext import parse_json
from .split import Parts
from .types import Item


@dataclass(frozen=True)
class Response:
    id: str
    item: Item
    text: str
    parts: Parts | None


def read_responses(path: Path) -> list[Response]:
    """Every line of a JSONL file as a Response; one clear error for the first bad line."""
    if not path.is_file():
        raise SaferlabError(f"{path}: no such file", EXIT_USAGE)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise SaferlabError(f"{path} is not UTF-8 text", EXIT_USAGE) from None
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = parse_json(line)
        except ValueError as exc:
            raise SaferlabError(f"{path}, line {n}: {exc}", EXIT_USAGE) from None
        if not isinstance(row, dict):
            raise SaferlabError(f"{path}, line {n}: expected a JSON object", EXIT_USAGE)
        missing = [k for k in ("prompt", "response") if not isinstance(row.get(k), str)]
        if missing:
            raise SaferlabError(f"{path}, line {n}: no {' or '.join(missing)} (a string)", EXIT_USAGE)
        rid = str(row.get("id", n))
        item = Item(key=f"file/{rid}", suite=path.stem, kind="harmful",
                    prompt=row.get("goal") or row["prompt"])
        reasoning = row.get("reasoning")
        if isinstance(reasoning, str) and reasoning.strip():
            # As in a run, the full output is the reasoning followed by the answer.
            text = f"{reasoning}\n\n{row['response']}"
            out.append(Response(rid, item, text, Parts(reasoning, row["response"], "given")))
        else:
            out.append(Response(rid, item, row["response"], None))
    if not out:
        raise SaferlabError(f"{path} holds no responses", EXIT_USAGE)
    return out
