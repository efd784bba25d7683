"""The llama.cpp backend on the real embedded model, one request at a time (batch size 1,
the reference); tests/engine/test_llama_batch.py covers continuous batching."""

import threading

import pytest

from saferlab.engine.types import DecodingParams, GenerationRequest, Message

pytestmark = pytest.mark.model


def ask(text, **params):
    return GenerationRequest(text[:20], (Message("user", text),),
                             DecodingParams(**({"max_tokens": 24} | params)))


def test_uses_the_models_own_chat_template(embedded_backend):
    info = embedded_backend.info()
    assert info["chat_template"] == "gguf" and info["architecture"] == "llama"
    prompt = embedded_backend.render((Message("system", "S"), Message("user", "U")))
    assert prompt.startswith("<|im_start|>system\nS<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")


def test_greedy_is_deterministic_and_counts_tokens(embedded_backend):
    reqs = [ask("What is the capital of France?"), ask("Name three colours.")]
    first = list(embedded_backend.generate(reqs))
    second = list(embedded_backend.generate(reqs))
    assert [r.text for r in first] == [r.text for r in second]
    for r in first:
        assert r.error is None and r.text.strip()
        assert 0 < r.completion_tokens <= 24 and r.prompt_tokens > 10
        assert r.finish_reason in ("stop", "length") and r.duration_ms >= (r.ttft_ms or 0) > 0
    assert [r.request_id for r in first] == [q.id for q in reqs]


def test_max_tokens_is_respected(embedded_backend):
    (r,) = embedded_backend.generate([ask("Write a long story about a dragon.", max_tokens=5)])
    assert r.completion_tokens == 5 and r.finish_reason == "length"


def test_seeded_sampling_is_reproducible(embedded_backend):
    req = ask("Tell me a short joke.", temperature=1.0, top_p=0.95, top_k=40, seed=11)
    a = list(embedded_backend.generate([req]))[0].text
    b = list(embedded_backend.generate([req]))[0].text
    assert a == b


def test_cancel_between_tokens(embedded_backend):
    cancel = threading.Event()
    pieces = []

    def on_token(request_id, text):
        pieces.append(text)
        if len(pieces) == 3:
            cancel.set()

    reqs = [ask("Write a long story about a dragon.", max_tokens=200), ask("Second one.")]
    results = list(embedded_backend.generate(reqs, cancel, on_token))
    assert len(results) == 1  # nothing after the cancelled request
    assert results[0].finish_reason == "cancelled" and results[0].completion_tokens == 3
    assert "".join(pieces) == results[0].text


def test_too_long_prompt_is_an_item_error(embedded_backend):
    long = "word " * 5000
    results = list(embedded_backend.generate([ask(long), ask("Hi")]))
    assert results[0].error and "context holds 2048" in results[0].error
    assert results[1].error is None  # the batch went on


def test_an_answer_does_not_depend_on_what_ran_before(embedded_backend):
    a, b = ask("Name a fruit.", max_tokens=16), ask("Name a river.", max_tokens=16)
    after_a = list(embedded_backend.generate([a, b]))[1].text
    alone = list(embedded_backend.generate([b]))[0].text
    assert after_a == alone


def test_an_answer_does_not_depend_on_a_cache_cut_another_way(embedded_backend):
    """A system prompt moves where the evaluation blocks start; an answer after such a prompt
    is the answer after one cut like its own, and the answer alone."""
    b = ask("Name a river in Europe.", max_tokens=16)
    system = GenerationRequest("sys", (Message("system", "Answer in one word."),
                                       Message("user", "Name a river in Europe.")),
                               DecodingParams(max_tokens=16))
    runs = [list(embedded_backend.generate(order))[-1].text
            for order in ([ask("Name a fruit."), b], [system, b], [b])]
    assert runs[0] == runs[1] == runs[2]


def test_the_opening_every_item_shares_is_evaluated_once(embedded_backend):
    """Items of a run share the chat template's opening (and its system prompt): the second
    evaluates only its own message and what follows, whatever the opening's length."""
    first, second = ask("Name a fruit."), ask("Which rivers cross Europe?")
    list(embedded_backend.generate([first]))
    tokens = embedded_backend._prepare(second)
    bare = embedded_backend.render((Message("user", ""),))
    opening = embedded_backend.llm.tokenize(bare.encode(), add_bos=False, special=True)
    shared = next(i for i, (x, y) in enumerate(zip(opening, tokens)) if x != y)
    assert shared % 16 != 0  # the old blocks from position 0 would evaluate part of it again
    todo = embedded_backend._reuse_prefix(tokens, embedded_backend._block_offset(second, tokens))
    assert len(todo) == len(tokens) - shared


@pytest.mark.parametrize("params", [DecodingParams(max_tokens=12),
                                    DecodingParams(max_tokens=12, temperature=1.0, top_k=40,
                                                   top_p=0.95, seed=3)])
def test_a_shared_few_shot_prefix_is_reused_without_changing_answers(embedded_backend, params):
    from saferlab.engine.prompting import Recipe
    from saferlab.engine.suites import load_suite

    recipe = Recipe.from_names("few-shot-cot:k=4", (), "none")
    items = load_suite("math:n=3", seed=5)
    reqs = [GenerationRequest(i.key, recipe.messages(i), params) for i in items]
    together = list(embedded_backend.generate(reqs))
    # The same prompts one by one, each after an unrelated prompt has filled the cache.
    alone = []
    for req in reqs:
        list(embedded_backend.generate([ask("Say something unrelated.")]))
        alone.append(list(embedded_backend.generate([req]))[0])
    assert [r.text for r in together] == [r.text for r in alone]
    # Reuse is real: items after the first evaluate only what follows the demonstrations.
    assert together[1].ttft_ms < alone[1].ttft_ms / 2
