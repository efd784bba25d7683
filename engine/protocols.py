"""Conversations of more than one turn per item: self-reflect (answer, then check and revise),
PAIR (an attacker model rewrites the prompt each round) and Crescendo (an escalating chat).

A protocol talks through a ``Talk`` callable that the runner provides, and returns the final
output with every turn, so all rounds are stored and the final answer is judged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Callable

from .cache import CacheMark
from .prompting import Recipe
from .refs import fill
from .types import (FINISH_CANCELLED, MAX_SEED, DecodingParams, GenerationResult, Item, Message,
                    Turn, Verdict)

TARGET, ATTACKER = "target", "attacker"
# (actor, messages, params) -> result; returns a cancelled result when the run is cancelled.
Talk = Callable[[str, tuple[Message, ...], DecodingParams], GenerationResult]
# The verdict that decides whether an iterative attack succeeded.
Decide = Callable[[Item, str], Verdict | None]

REPLY_CHARS = 1200  # how much of the target's reply the attacker sees each round


@dataclass
class ItemOutcome:
    result: GenerationResult  # the final output; tokens and time summed over every turn
    messages: tuple[Message, ...]  # the conversation that produced the final output
    turns: list[Turn] = field(default_factory=list)
    cache: CacheMark | None = None  # its place in the result cache (single-turn items)
    verdicts: tuple[Verdict, ...] | None = None  # a cached answer's, when still valid

    @property
    def cancelled(self) -> bool:
        return self.result.finish_reason == FINISH_CANCELLED


def _outcome(turns: list[Turn], last: Turn) -> ItemOutcome:
    results = [t.result for t in turns]
    final = replace(
        last.result,
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        duration_ms=sum(r.duration_ms for r in results),
        ttft_ms=results[0].ttft_ms)
    return ItemOutcome(final, last.messages, turns)


def _stop(result: GenerationResult) -> bool:
    return result.error is not None or result.finish_reason == FINISH_CANCELLED


def self_reflect(recipe: Recipe, item: Item, first: tuple[Message, ...], talk: Talk,
                 params: DecodingParams) -> ItemOutcome:
    answer = talk(TARGET, first, params)
    turns = [Turn(TARGET, first, answer)]
    if _stop(answer):
        return _outcome(turns, turns[0])
    second = first + (Message("assistant", answer.text),
                      Message("user", recipe.reasoning.reflect or ""))
    turns.append(Turn(TARGET, second, talk(TARGET, second, params)))
    return _outcome(turns, turns[-1])


def crescendo(recipe: Recipe, item: Item, first: tuple[Message, ...], talk: Talk,
              params: DecodingParams) -> ItemOutcome:
    entry, attack = recipe.attack.entry, recipe.attack
    turns_total = attack.int_param("turns", 2, len(entry["steps"]) + 1)
    values = attack.topic_values(item)
    later = [fill(s, values) for s in entry["steps"][1:turns_total - 1]]
    later.append(fill(entry["final"], values))
    messages = first
    turns: list[Turn] = []
    for n in range(turns_total):
        result = talk(TARGET, messages, params)
        turns.append(Turn(TARGET, messages, result))
        if _stop(result) or n == turns_total - 1:
            break
        messages = messages + (Message("assistant", result.text),
                               Message("user", recipe.wrap(later[n])))
    return _outcome(turns, turns[-1])


def parse_attacker_prompt(text: str) -> str | None:
    """The "prompt" of the attacker's JSON answer; tolerant of prose and code fences around it,
    and of a bare prompt when the attacker ignored the format."""
    for match in re.finditer(r"\{.*\}", text, re.S):
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("prompt"), str) and data["prompt"].strip():
            return data["prompt"].strip()
    quoted = re.search(r'"prompt"\s*:\s*"((?:[^"\\]|\\.)+)"', text)
    if quoted:
        return quoted.group(1).replace('\\"', '"').replace("\\n", "\n").strip()
    bare = text.strip().strip("`").strip()
    return bare or None


def attacker_opening(recipe: Recipe, item: Item) -> tuple[Message, ...]:
    """The first messages PAIR sends to its attacker model for an item."""
    entry, attack = recipe.attack.entry, recipe.attack
    values = {"prompt": item.prompt, "opener": attack.opener(item)}
    return (Message("system", fill(entry["attacker_system"], values)),
            Message("user", entry["attacker_first"]))


def first_turn(recipe: Recipe, item: Item,
               planned: tuple[Message, ...]) -> tuple[str, tuple[Message, ...]]:
    """Who is addressed first for an item, and with what: what a dry run shows."""
    if recipe.protocol == "iterative" and item.kind in ("harmful", "privacy"):
        return ATTACKER, attacker_opening(recipe, item)
    return TARGET, planned


def pair(recipe: Recipe, item: Item, first: tuple[Message, ...], talk: Talk,
         params: DecodingParams, decide: Decide) -> ItemOutcome:
    entry, attack = recipe.attack.entry, recipe.attack
    rounds = attack.int_param("rounds", 1, 20)
    chat = attacker_opening(recipe, item)
    turns: list[Turn] = []
    last_target: Turn | None = None
    for n in range(rounds):
        # The attacker samples (seeded per round) so that it does not repeat itself.
        attacker_params = replace(params, temperature=1.0, top_p=0.95, top_k=0,
                                  seed=(params.seed + n) % (MAX_SEED + 1),
                                  max_tokens=max(params.max_tokens, 256))
        written = talk(ATTACKER, chat, attacker_params)
        turns.append(Turn(ATTACKER, chat, written))
        if _stop(written):
            return _outcome(turns, last_target or turns[-1])
        prompt = parse_attacker_prompt(written.text) or item.prompt
        target_messages = recipe.messages(item, request=prompt)
        reply = talk(TARGET, target_messages, params)
        verdict = None if _stop(reply) else decide(item, recipe.attack.decode(reply.text))
        last_target = Turn(TARGET, target_messages, reply, verdict)
        turns.append(last_target)
        if _stop(reply) or (verdict is not None and verdict.passed is False):
            break
        feedback = fill(entry["attacker_feedback"], {
            "reply": reply.text[:REPLY_CHARS],
            "verdict": verdict.label if verdict else "undecided"})
        chat = chat + (Message("assistant", written.text), Message("user", feedback))
    assert last_target is not None
    return _outcome(turns, last_target)


def run_item(recipe: Recipe, item: Item, first: tuple[Message, ...], talk: Talk,
             params: DecodingParams, decide: Decide) -> ItemOutcome:
    """Run one item under the recipe's protocol (not called for single-turn runs)."""
    protocol = recipe.protocol
    if protocol == "self-reflect":
        return self_reflect(recipe, item, first, talk, params)
    if protocol == "multiturn" and item.kind in ("harmful", "privacy"):
        return crescendo(recipe, item, first, talk, params)
    if protocol == "iterative" and item.kind in ("harmful", "privacy"):
        return pair(recipe, item, first, talk, params, decide)
    # Attacks never touch math or benign items: one plain turn.
    result = talk(TARGET, first, params)
    return _outcome([Turn(TARGET, first, result)], Turn(TARGET, first, result))

