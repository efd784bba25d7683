"""Reasoning prompts and safety modifiers (data in saferlab.prompts), and the recipe that
combines them with an attack into the messages sent for an item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .attacks import ATTACKS_FILE, Attack, get_attack
from .errors import EXIT_USAGE, SaferlabError
from .library import Described, entries, load_toml
from .refs import Ref, fill
from .types import Item, Message

REASONING_FILE = "reasoning.toml"
MODIFIERS_FILE = "modifiers.toml"
DEMOS_FILE = "demos.toml"


@dataclass(frozen=True)
class ReasoningPrompt(Described):
    name: str
    entry: dict[str, Any] = field(hash=False, compare=False)
    source: str = "built-in"
    k: int | None = None  # demonstrations, for prompts that have them

    @property
    def label(self) -> str:
        return f"{self.name}:k={self.k}" if self.k is not None else self.name

    @property
    def reflect(self) -> str | None:
        return self.entry.get("reflect")


@dataclass(frozen=True)
class Modifier(Described):
    name: str
    entry: dict[str, Any] = field(hash=False, compare=False)
    source: str = "built-in"


def reasoning_prompts() -> dict[str, ReasoningPrompt]:
    return {name: ReasoningPrompt(name, e, src) for name, (e, src) in entries(REASONING_FILE).items()}


def modifiers() -> dict[str, Modifier]:
    return {name: Modifier(name, e, src) for name, (e, src) in entries(MODIFIERS_FILE).items()}


def get_reasoning_prompt(text: str) -> ReasoningPrompt:
    """A reasoning prompt from its name as written: ``direct``, ``few-shot-cot:k=4``."""
    ref = Ref.parse(text)
    known = reasoning_prompts()
    if ref.name not in known:
        raise SaferlabError(
            f"unknown reasoning prompt {ref.name!r}; known: {', '.join(sorted(known))}", EXIT_USAGE)
    prompt = known[ref.name]
    if not prompt.entry.get("demos"):
        if ref.params:
            raise SaferlabError(f"reasoning prompt {ref.name!r} takes no parameters", EXIT_USAGE)
        return prompt
    if set(ref.params) - {"k"}:
        raise SaferlabError(f"reasoning prompt {ref.name!r} takes only k", EXIT_USAGE)
    choices = prompt.entry.get("k_choices")
    k = ref.int_param("k", int(prompt.entry.get("k", 4)), low=None if choices else 1)
    if choices and k not in choices:  # k=0 and k=-1 are named the same way as k=3
        raise SaferlabError(
            f"{ref.name}: k must be one of {', '.join(map(str, choices))}, not {k}", EXIT_USAGE)
    return ReasoningPrompt(prompt.name, prompt.entry, prompt.source, k)


def get_modifiers(names: tuple[str, ...], reasoning: ReasoningPrompt,
                  attack: Attack) -> tuple[Modifier, ...]:
    """Modifiers by name, refusing combinations that make no sense, with the reason."""
    known = modifiers()
    chosen = []
    for name in dict.fromkeys(n.strip() for n in names):
        if name not in known:
            raise SaferlabError(
                f"unknown modifier {name!r}; known: {', '.join(sorted(known))}", EXIT_USAGE)
        modifier = known[name]
        if modifier.entry.get("requires") == "demos" and not reasoning.entry.get("demos"):
            raise SaferlabError(
                f"{name} mixes refusal demonstrations into the reasoning prompt's "
                f"demonstrations, and {reasoning.name} has none; use it with few-shot-cot:k=N",
                EXIT_USAGE)
        chosen.append(modifier)
    if reasoning.reflect and attack.kind in ("iterative", "multiturn"):
        raise SaferlabError(
            f"{reasoning.name} adds its own second turn, and {attack.name} drives the "
            "conversation itself; run them separately", EXIT_USAGE)
    return tuple(chosen)


@dataclass(frozen=True)
class Recipe:
    """How one run turns an item into messages: reasoning prompt, modifiers and attack."""

    reasoning: ReasoningPrompt
    modifiers: tuple[Modifier, ...]
    attack: Attack

    @classmethod
    def from_names(cls, reasoning: str, modifiers: tuple[str, ...], attack: str) -> "Recipe":
        r, a = get_reasoning_prompt(reasoning), get_attack(attack)
        return cls(r, get_modifiers(modifiers, r, a), a)

    @property
    def protocol(self) -> str:
        """single, self-reflect, iterative (PAIR) or multiturn (Crescendo)."""
        if self.attack.kind in ("iterative", "multiturn"):
            return self.attack.kind
        return "self-reflect" if self.reasoning.reflect else "single"

    def system(self, item: Item) -> str:
        lines = [item.system, self.reasoning.entry.get("system", "")]
        lines += [m.entry.get("system", "") for m in self.modifiers]
        return "\n\n".join(line for line in lines if line)

    def wrap(self, request: str) -> str:
        """The user turn: the reasoning template, then each modifier's, around the request."""
        text = fill(self.reasoning.entry.get("template", "{prompt}"), {"prompt": request})
        for m in self.modifiers:
            text = fill(m.entry.get("template", "{prompt}"), {"prompt": text})
        return text

    def demo_turns(self) -> tuple[Message, ...]:
        if not self.reasoning.entry.get("demos") or not self.reasoning.k:
            return ()
        demos = load_toml(DEMOS_FILE)
        pairs = [(d["question"], d["solution"]) for d in demos["math"][: self.reasoning.k]]
        if any(m.entry.get("demos") == "refusal" for m in self.modifiers):
            refusals = [(d["question"], d["response"]) for d in demos["refusal"]]
            # One refusal after every second worked example, at least one in all.
            mixed = []
            for i, pair in enumerate(pairs, start=1):
                mixed.append(pair)
                if i % 2 == 0 and refusals:
                    mixed.append(refusals.pop(0))
            if len(mixed) == len(pairs):
                mixed.append(refusals[0])
            pairs = mixed
        return tuple(m for q, a in pairs for m in (Message("user", q), Message("assistant", a)))

    def messages(self, item: Item, request: str | None = None) -> tuple[Message, ...]:
        """The first turn sent to the target. ``request`` replaces the attacked request (PAIR
        supplies the attacker's prompt)."""
        if request is None:
            attack_turns, request = self.attack.apply(item)
        else:
            attack_turns = ()
        system = self.system(item)
        out = [Message("system", system)] if system else []
        out += [*self.demo_turns(), *item.context, *attack_turns,
                Message("user", self.wrap(request))]
        return tuple(out)

    def files(self) -> list[str]:
        files = [REASONING_FILE, ATTACKS_FILE]
        if self.modifiers:
            files.append(MODIFIERS_FILE)
        if self.reasoning.entry.get("demos") or self.attack.kind == "in-context":
            files.append(DEMOS_FILE)
        return files
