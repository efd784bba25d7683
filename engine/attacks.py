"""Jailbreak attacks (data in prompts/attacks.toml) and how each kind rewrites a request.

An attack turns an item's request into the text sent (and, for in-context, demonstration turns
before it). Encoding attacks also decode the answer for the judges. Iterative (PAIR) and
multi-turn (Crescendo) attacks drive a conversation; see protocols.py.
"""

from __future__ import annotations

import base64
import codecs
import random
import re
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import EXIT_USAGE, SaferlabError
from .jsontext import parse_json
from .library import Described, entries, load_toml
from .loaders import read_text
from .refs import Ref, fill
from .types import Item, Message

ATTACKS_FILE = "attacks.toml"
# Attacks target requests a model should decline; math and benign items are sent as they are.
ATTACKED_KINDS = frozenset({"harmful", "privacy"})
KINDS = ("template", "encoding", "split", "in-context", "suffix", "artifact", "iterative",
         "multiturn")
PATH_KINDS = ("suffix", "artifact")

LEET = str.maketrans({"a": "4", "A": "4", "e": "3", "E": "3", "i": "1", "I": "1", "o": "0",
                      "O": "0", "s": "5", "S": "5", "t": "7", "T": "7"})
UNLEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a",
                        "$": "s"})
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")


def encode(encoding: str, text: str) -> str:
    if encoding == "base64":
        return base64.b64encode(text.encode("utf-8")).decode("ascii")
    if encoding == "rot13":
        return codecs.encode(text, "rot13")
    return text.translate(LEET)


def decode_for_judges(encoding: str, text: str) -> str:
    """The answer as written plus its decoding, so a plain-text refusal and an encoded
    compliance are both seen by the judges."""
    if encoding == "base64":
        decoded = []
        for run in BASE64_RUN.findall(text):
            try:
                decoded.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
        extra = "\n".join(decoded)
    elif encoding == "rot13":
        extra = codecs.decode(text, "rot13")
    else:
        extra = text.translate(UNLEET)
    return f"{text}\n\n{extra}" if extra else text


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def read_suffixes(path: Path) -> list[str]:
    """Suffixes from a text file (one a line) or a JailbreakBench GCG artifact (each stored
    prompt minus its goal)."""
    if not path.is_file():
        raise SaferlabError(f"gcg-suffix: file not found: {path}", EXIT_USAGE)
    text = read_text(path)
    if path.suffix.lower() == ".json":
        suffixes = []
        for jb in _artifact_jailbreaks(path, text):
            prompt, goal = jb.get("prompt") or "", jb.get("goal") or ""
            if goal and prompt.startswith(goal) and prompt[len(goal):].strip():
                suffixes.append(prompt[len(goal):].strip())
    else:
        suffixes = [line.strip() for line in text.splitlines() if line.strip()]
    if not suffixes:
        raise SaferlabError(f"gcg-suffix: no suffix found in {path}", EXIT_USAGE)
    return suffixes


def _artifact_jailbreaks(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        data = parse_json(text)
    except ValueError as exc:
        raise SaferlabError(f"{path}: {exc}", EXIT_USAGE) from None
    jailbreaks = data.get("jailbreaks") if isinstance(data, dict) else None
    if not isinstance(jailbreaks, list):
        raise SaferlabError(f"{path} is not a JailbreakBench artifact (no 'jailbreaks' list)",
                            EXIT_USAGE)
    for n, jb in enumerate(jailbreaks, start=1):
        if not isinstance(jb, dict):
            continue
        for key in ("goal", "prompt"):  # null where the attack found no jailbreak
            if jb.get(key) is not None and not isinstance(jb[key], str):
                raise SaferlabError(f"{path}: jailbreak {n}: {key!r} must be text, not "
                                    f"{type(jb[key]).__name__}", EXIT_USAGE)
    return [jb for jb in jailbreaks if isinstance(jb, dict)]


@dataclass(frozen=True)
class Attack(Described):
    name: str
    kind: str
    entry: dict[str, Any] = field(hash=False, compare=False)
    source: str = "built-in"
    params: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    path: str | None = None

    @property
    def label(self) -> str:
        """The name as the user wrote it, parameters included."""
        if self.path:
            return f"{self.name}:{self.path}"
        if self.params:
            return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params.items())
        return self.name

    def int_param(self, key: str, low: int, high: int) -> int:
        ref = Ref(self.label, self.name, self.params)
        return ref.int_param(key, int(self.entry.get(key, low)), low=low, high=high)

    def opener(self, item: Item) -> str:
        return item.target or self.entry.get("default_opener", "Sure, here is")

    # -- rewriting the request -------------------------------------------------------------

    def apply(self, item: Item) -> tuple[tuple[Message, ...], str]:
        """Demonstration turns to put before the request, and the request text to send."""
        if item.kind not in ATTACKED_KINDS:
            return (), item.prompt
        # {request}: the request inside a sentence, its first letter in lower case.
        values = {"prompt": item.prompt, "opener": self.opener(item),
                  "request": item.prompt[:1].lower() + item.prompt[1:]}
        if self.kind == "template":
            return (), fill(self.entry["template"], values)
        if self.kind == "encoding":
            values["encoded"] = encode(self.entry["encoding"], item.prompt)
            return (), fill(self.entry["template"], values)
        if self.kind == "split":
            return (), self._split(item, values)
        if self.kind == "in-context":
            return self._demos(item), fill(self.entry.get("template", "{prompt}"), values)
        if self.kind == "suffix":
            suffixes = self._suffixes
            values["suffix"] = suffixes[zlib.crc32(item.key.encode()) % len(suffixes)]
            return (), fill(self.entry["template"], values)
        if self.kind == "artifact":
            return (), self._artifact_prompts.get(_squash(item.prompt), item.prompt)
        if self.kind == "multiturn":
            return (), fill(self.entry["steps"][0], self.topic_values(item))
        return (), item.prompt  # iterative: the attacker writes the prompts

    def decode(self, text: str) -> str:
        if self.kind == "encoding":
            return decode_for_judges(self.entry["encoding"], text)
        return text

    def _split(self, item: Item, values: dict[str, str]) -> str:
        words = item.prompt.split()
        n = max(1, min(int(self.entry.get("parts", 3)), len(words)))
        size = -(-len(words) // n)
        chunks = [" ".join(words[i:i + size]) for i in range(0, len(words), size)]
        names = [chr(ord("a") + i) for i in range(len(chunks))]
        values["assignments"] = "\n".join(
            f'Let {name} = "{chunk}{" " if i < len(chunks) - 1 else ""}"'
            for i, (name, chunk) in enumerate(zip(names, chunks)))
        values["names"] = " + ".join(names)
        return fill(self.entry["template"], values)

    def _demos(self, item: Item) -> tuple[Message, ...]:
        k = self.int_param("k", 1, 8)
        pool = [row for row in load_toml("suites/harmful.toml")["items"]
                if row["prompt"] != item.prompt]
        rng = random.Random(f"in-context:{item.key}")
        turns: list[Message] = []
        for row in rng.sample(pool, k):
            turns += [Message("user", row["prompt"]), Message("assistant", row["target"])]
        return tuple(turns)

    @cached_property
    def _suffixes(self) -> list[str]:
        return read_suffixes(Path(self.path or "").expanduser())

    @cached_property
    def _artifact_prompts(self) -> dict[str, str]:
        path = Path(self.path or "").expanduser()
        if not path.is_file():
            raise SaferlabError(f"jbb-artifact: file not found: {path}", EXIT_USAGE)
        jailbreaks = _artifact_jailbreaks(path, read_text(path))
        return {_squash(jb["goal"]): jb["prompt"] for jb in jailbreaks
                if jb.get("goal") and jb.get("prompt")}

    def coverage(self, items: list[Item]) -> str | None:
        """For artifact attacks, how many attacked items have a stored prompt ("87/100")."""
        if self.kind != "artifact":
            return None
        attacked = [i for i in items if i.kind in ATTACKED_KINDS]
        hits = sum(1 for i in attacked if _squash(i.prompt) in self._artifact_prompts)
        return f"{hits}/{len(attacked)}"

    # -- multi-turn -------------------------------------------------------------------------

    def topic_values(self, item: Item) -> dict[str, str]:
        topic = item.meta.get("topic") or item.category.replace("-", " ").replace("_", " ")
        return {"topic": topic or "this subject", "prompt": item.prompt,
                "opener": self.opener(item)}


def attacks() -> dict[str, Attack]:
    out = {}
    for name, (entry, source) in entries(ATTACKS_FILE).items():
        kind = entry.get("kind", "template")
        if kind not in KINDS:
            raise SaferlabError(f"attack {name!r} has unknown kind {kind!r}; kinds: "
                                f"{', '.join(KINDS)}", EXIT_USAGE)
        out[name] = Attack(name, kind, entry, source)
    return out


def get_attack(text: str) -> Attack:
    """An attack from its name as written: ``none``, ``in-context:k=3``, ``gcg-suffix:PATH``."""
    name, _, rest = text.strip().partition(":")
    known = attacks()
    if name not in known:
        raise SaferlabError(
            f"unknown attack {name!r}; known: {', '.join(sorted(known))}", EXIT_USAGE)
    attack = known[name]
    if attack.kind in PATH_KINDS:
        if not rest:
            raise SaferlabError(f"attack {name!r} needs a file: {name}:PATH", EXIT_USAGE)
        return Attack(name, attack.kind, attack.entry, attack.source, path=rest)
    ref = Ref.parse(text)
    allowed = {"in-context": {"k"}, "iterative": {"rounds"}, "multiturn": {"turns"}}.get(
        attack.kind, set())
    extra = set(ref.params) - allowed
    if extra:
        takes = f"takes {', '.join(sorted(allowed))}" if allowed else "takes no parameters"
        raise SaferlabError(f"attack {name!r} {takes} (got {text.strip()!r})", EXIT_USAGE)
    attack = Attack(name, attack.kind, attack.entry, attack.source, params=ref.params)
    # Validate numbers now, not halfway through a run.
    bounds = {"k": (1, 8), "rounds": (1, 20), "turns": (2, len(attack.entry.get("steps", [])) + 1)}
    for key in ref.params:
        attack.int_param(key, *bounds[key])
    return attack
