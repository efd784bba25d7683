"""Reasoning prompts and attacks (data in saferlab.prompts) and the messages they build."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import EXIT_USAGE, SaferlabError
from .library import load_toml
from .refs import Ref, fill
from .types import Item, Message

REASONING_FILE = "reasoning.toml"
ATTACKS_FILE = "attacks.toml"

# Attacks target requests a model should decline; math items are always sent as they are.
ATTACKED_KINDS = frozenset({"harmful", "privacy"})


@dataclass(frozen=True)
class ReasoningPrompt:
    name: str
    description: str
    citation: str
    template: str
    system: str = ""


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    citation: str
    template: str
    default_opener: str = "Sure, here is"


def _entries(file: str) -> dict[str, dict]:
    return {k: v for k, v in load_toml(file).items() if isinstance(v, dict)}


def reasoning_prompts() -> dict[str, ReasoningPrompt]:
    return {
        name: ReasoningPrompt(name, e.get("description", ""), e.get("citation", ""),
                              e["template"], e.get("system", ""))
        for name, e in _entries(REASONING_FILE).items()
    }


def attacks() -> dict[str, Attack]:
    return {
        name: Attack(name, e.get("description", ""), e.get("citation", ""), e["template"],
                     e.get("default_opener", "Sure, here is"))
        for name, e in _entries(ATTACKS_FILE).items()
    }


def _lookup(what: str, text: str, known: dict):
    ref = Ref.parse(text)
    if ref.name not in known:
        raise SaferlabError(
            f"unknown {what} {ref.name!r}; known: {', '.join(sorted(known))}", EXIT_USAGE)
    if ref.params:
        raise SaferlabError(f"{what} {ref.name!r} takes no parameters", EXIT_USAGE)
    return known[ref.name]


def get_reasoning_prompt(text: str) -> ReasoningPrompt:
    return _lookup("reasoning prompt", text, reasoning_prompts())


def get_attack(text: str) -> Attack:
    return _lookup("attack", text, attacks())


def build_messages(item: Item, reasoning: ReasoningPrompt, attack: Attack) -> tuple[Message, ...]:
    """The conversation sent for one item: the attack wraps the request, then the reasoning
    prompt wraps the result; system lines of the item and the reasoning prompt are joined."""
    request = item.prompt
    if item.kind in ATTACKED_KINDS:
        request = fill(attack.template, {"prompt": request,
                                         "opener": item.target or attack.default_opener})
    user = fill(reasoning.template, {"prompt": request})
    system = "\n\n".join(s for s in (item.system, reasoning.system) if s)
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", user))
    return tuple(messages)
