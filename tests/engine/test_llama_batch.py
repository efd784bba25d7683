"""Continuous batching on llama.cpp, on the real embedded model (four sequences at a time)."""

import math
import threading

import pytest

from saferlab.engine.types import DecodingParams, GenerationRequest, Message

pytestmark = pytest.mark.model

QUESTIONS = ["What is the capital of France?", "Name three colours.", "Write a haiku about rain.",
             "How do plants make food?", "Give me a tip for sleeping well.", "What is 7 times 8?",
             "Describe a cat in one sentence.", "Why is the sky blue?", "Name a river in Africa.",
             "What does a baker do?"]


def ask(i, text, **params):
    return GenerationRequest(f"r{i}", (Message("user", text),),
                             DecodingParams(**({"max_tokens": 16} | params)))


def test_a_batch_reproduces_token_for_token_and_yields_each_request_once(embedded_batched):
    reqs = [ask(i, q) for i, q in enumerate(QUESTIONS)]
    first = {r.request_id: r for r in embedded_batched.generate(reqs)}
    second = list(embedded_batched.generate(reqs))
    assert sorted(first) == sorted(q.id for q in reqs) and len(second) == len(reqs)
    assert {r.request_id: r.text for r in second} == {k: r.text for k, r in first.items()}
    for r in first.values():
        assert r.error is None and r.text.strip() and 0 < r.completion_tokens <= 16
        assert r.finish_reason in ("stop", "length") and r.prompt_tokens > 10
    assert embedded_batched.info()["batch_size"] == 4


def test_a_finished_sequence_frees_its_slot_at_once(embedded_batched):
    """One long answer beside many short ones: the short ones take the other three slots in
    turn, so the batch takes about as many steps as the long answer, not the sum of the
    longest answer of each group of four."""
    long = ask(0, "Write a long story about a dragon who learns to fly.", max_tokens=60)
    shorts = [ask(i, q, max_tokens=5) for i, q in enumerate(QUESTIONS * 2, 1)][:15]
    batcher = embedded_batched._batch_decoder()
    before = batcher.decode_calls
    results = {r.request_id: r for r in embedded_batched.generate([long] + shorts)}
    calls = batcher.decode_calls - before

    def steps(r):  # decode steps a sequence held its slot: one per token, one for the end
        return r.completion_tokens + (r.finish_reason == "stop")

    long_steps = steps(results["r0"])
    short_steps = sum(steps(results[q.id]) for q in shorts)
    assert calls <= max(long_steps, math.ceil(short_steps / 3)) + 1
    # Batches of four that wait for their slowest member would need far more steps.
    groups = [[long] + shorts[:3]] + [shorts[i:i + 4] for i in range(3, len(shorts), 4)]
    static = sum(max(steps(results[q.id]) for q in g) for g in groups)
    assert calls < static


def test_the_shared_prefix_is_evaluated_once(embedded_batched):
    from saferlab.engine.prompting import Recipe
    from saferlab.engine.suites import load_suite

    recipe = Recipe.from_names("few-shot-cot:k=4", (), "none")
    items = load_suite("math:n=4", seed=5)
    reqs = [GenerationRequest(i.key, recipe.messages(i), DecodingParams(max_tokens=8))
            for i in items]
    batcher = embedded_batched._batch_decoder()
    before = batcher.tokens_evaluated
    results = list(embedded_batched.generate(reqs))
    evaluated = batcher.tokens_evaluated - before
    generated = sum(r.completion_tokens for r in results)
    prompts = sum(r.prompt_tokens for r in results)
    assert batcher.last_prefix >= 256  # the demonstrations
    # Each prompt's own part, the prefix once, and the generated tokens (the last one of each
    # answer is sampled, never evaluated).
    assert evaluated <= prompts - 3 * batcher.last_prefix + generated
    assert all(r.error is None for r in results)


def test_grammars_seeds_and_errors_work_in_a_batch(embedded_batched):
    yes_no = 'root ::= "yes" | "no"'
    reqs = [GenerationRequest("g1", (Message("user", "Is water wet? Answer yes or no."),),
                              DecodingParams(max_tokens=8), grammar=yes_no),
            ask(1, "Tell me a short joke.", temperature=1.0, top_p=0.95, top_k=40, seed=11),
            ask(2, "word " * 3000),
            GenerationRequest("g2", (Message("user", "Is fire cold?"),),
                              DecodingParams(max_tokens=8), grammar=yes_no)]
    first = {r.request_id: r for r in embedded_batched.generate(reqs)}
    second = {r.request_id: r for r in embedded_batched.generate(reqs)}
    assert first["g1"].text in ("yes", "no") and first["g2"].text in ("yes", "no")
    assert first["r1"].text == second["r1"].text and first["r1"].text.strip()
    assert first["r2"].error and "context holds 2048" in first["r2"].error
    assert len(first) == 4


def test_cancel_stops_the_batch_and_yields_what_was_in_flight(embedded_batched):
    cancel = threading.Event()
    pieces: dict[str, list[str]] = {}

    def on_token(request_id, text):
        pieces.setdefault(request_id, []).append(text)
        if sum(map(len, pieces.values())) == 20:
            cancel.set()

    reqs = [ask(i, "Write a long story about a dragon.", max_tokens=200) for i in range(6)]
    results = list(embedded_batched.generate(reqs, cancel, on_token))
    assert 1 <= len(results) <= 4  # the sequences in flight, none of those still queued
    assert all(r.finish_reason == "cancelled" for r in results)
    for r in results:
        assert "".join(pieces.get(r.request_id, [])) == r.text
    # The backend is usable again at once.
    assert list(embedded_batched.generate([ask(9, "Say hi.")]))[0].error is None
