"""The result cache: an identical request is answered from an earlier run, marked as cached,
judged again only when the judges changed, and never when the request differs."""

import io
import json

from saferlab.db import Store
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import REFUSAL, FakeBackend
from saferlab.engine.cache import judges_key, run_scope
from saferlab.db.exchange import export
from saferlab.engine.types import DecodingParams


def spec(**kw) -> SessionSpec:
    return SessionSpec(**(dict(model="fake", suites=("harmful", "benign"), limit=4,
                               params=DecodingParams(max_tokens=20)) | kw))


def counting():
    calls = []

    def script(request):
        calls.append(request.id)
        return REFUSAL if "harmful" in request.id else "Sure, here is how: step one."
    return FakeBackend(script=script), calls


def run(store, backend, cache=True, **kw):
    lab = Lab(recorder=store, cache=cache)
    return lab.run(lab.plan(spec(**kw)), backend=backend).runs[0]


def rows(store, run_id):
    return list(store.query("SELECT item_id, output, cached, cache_key, judges_key FROM "
                            "generations WHERE run_id = ? ORDER BY item_id", [run_id]))


def verdicts(store, run_id):
    return sorted((r["item_id"], r["judge"], r["label"]) for r in store.query(
        "SELECT g.item_id, v.judge, v.label FROM verdicts v JOIN generations g "
        "ON g.id = v.generation_id WHERE g.run_id = ?", [run_id]))


def test_an_identical_request_is_answered_from_the_cache(tmp_path):
    store = Store(tmp_path / "lab.db")
    backend, calls = counting()
    first = run(store, backend)
    assert len(calls) == 8 and first.cached == 0
    second = run(store, backend)
    assert len(calls) == 8  # nothing decoded again
    assert second.cached == second.generated == 8 and second.completion_tokens == 0
    a, b = rows(store, first.run_id), rows(store, second.run_id)
    assert [r["output"] for r in a] == [r["output"] for r in b]
    assert [r["cache_key"] for r in a] == [r["cache_key"] for r in b]
    assert not any(r["cached"] for r in a) and all(r["cached"] for r in b)
    # The same judges: their verdicts are kept, not made again.
    assert [v[1:] for v in verdicts(store, first.run_id)] == \
        [v[1:] for v in verdicts(store, second.run_id)]
    assert second.meters["safety"].to_dict() == first.meters["safety"].to_dict()
    # The exports say which answers were cached.
    out = io.StringIO()
    export(store, [f"r{second.run_id}"], "jsonl", out, False)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    generation_records = [r for r in records if r["record"] == "generation"]
    assert sum(r["cached"] for r in generation_records) == 8


def test_no_cache_decodes_again_and_a_changed_request_is_not_a_hit(tmp_path):
    store = Store(tmp_path / "lab.db")
    backend, calls = counting()
    run(store, backend)
    run(store, backend, cache=False)
    assert len(calls) == 16
    run(store, backend, params=DecodingParams(max_tokens=21))  # other decoding parameters
    assert len(calls) == 24
    run(store, backend, modifiers=("safety-system",))  # other messages
    assert len(calls) == 32


def test_changed_judges_judge_the_cached_answer_again(tmp_path):
    store = Store(tmp_path / "lab.db")
    backend, calls = counting()
    first = run(store, backend, judges=("refusal-heuristic",))
    second = run(store, backend, judges=("refusal-keywords",))
    assert len(calls) == 8 and second.cached == 8
    judges = {v[1] for v in verdicts(store, second.run_id)}
    assert judges == {"refusal-keywords"}
    assert {v[1] for v in verdicts(store, first.run_id)} == {"refusal-heuristic"}
    # A third run with the first judges finds the answer those judges gave verdicts on.
    third = run(store, backend, judges=("refusal-heuristic",))
    assert third.cached == 8
    assert {v[1] for v in verdicts(store, third.run_id)} == {"refusal-heuristic"}


def test_failed_answers_are_never_served_from_the_cache(tmp_path):
    store = Store(tmp_path / "lab.db")
    down = FakeBackend(fail=lambda request: "connection refused")
    run(store, down)
    backend, calls = counting()
    again = run(store, backend)
    assert len(calls) == 8 and again.cached == 0 and again.errors == 0


def test_only_models_pinned_by_a_digest_are_cached():
    gguf = {"backend": {"backend": "llama.cpp", "batch_size": 8, "n_threads": 2,
                        "path": "/a/model.gguf"}, "model_sha256": "ab" * 32}
    served = {"backend": {"backend": "openai", "base_url": "http://x/v1"}, "model": "openai:x"}
    assert run_scope(gguf, None) and run_scope(served, None) is None
    # The batch size is part of the request: llama.cpp's outputs depend on it.
    other_batch = {**gguf, "backend": {**gguf["backend"], "batch_size": 1}}
    assert run_scope(other_batch, None) != run_scope(gguf, None)
    # Where the model file lies is not.
    moved = {**gguf, "backend": {**gguf["backend"], "path": "/b/model.gguf"}}
    assert run_scope(moved, None) == run_scope(gguf, None)
    assert judges_key({"judges": ["a"]}) != judges_key({"judges": ["b"]})


def test_no_cache_also_decodes_a_conversation_repeated_within_the_session(tmp_path):
    # Attacks never touch math items: two attacks send the same math messages twice.
    store = Store(tmp_path / "lab.db")
    backend, calls = counting()
    spec = dict(suites=("math",), attacks=("none", "prefix-injection"))
    run(store, backend, **spec)
    assert len(calls) == 4  # the second run's math answers came from the first
    run(store, backend, cache=False, **spec)
    assert len(calls) == 4 + 8
