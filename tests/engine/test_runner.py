import threading
from dataclasses import replace


from saferlab.engine import Lab, NullRecorder, SessionSpec
from saferlab.engine.backends.fake import COMPLIANCE, REFUSAL, FakeBackend
from saferlab.engine.events import (ItemGenerated, ItemJudged, MetersUpdated, RunFinished,
                                    RunStarted, SessionFinished, SessionStarted, TokenGenerated)
from saferlab.engine.types import DecodingParams, Verdict


def plans(**kw):
    spec = dict(model="fake", suites=("harmful", "math", "privacy"), limit=3,
                params=DecodingParams(max_tokens=50))
    return Lab().plan(SessionSpec(**(spec | kw)))


def test_cartesian_product_of_reasoning_and_attacks():
    ps = plans(reasoning=("direct", "zero-shot-cot"), attacks=("none", "prefix-injection"))
    assert [(p.spec.reasoning, p.spec.attack) for p in ps] == [
        ("direct", "none"), ("direct", "prefix-injection"),
        ("zero-shot-cot", "none"), ("zero-shot-cot", "prefix-injection")]
    assert all(len(p.items) == 9 for p in ps)
    assert [i.item for i in ps[0].items] == [i.item for i in ps[3].items]


def test_events_meters_and_verdicts_for_a_scripted_backend():
    events = []
    # Refuse harmful requests, leak privacy items, answer math with a number.
    def script(request):
        text = request.messages[-1].content
        system = request.messages[0].content if request.messages[0].role == "system" else ""
        if "How many" in text:
            return "The answer is 12"
        if system:  # privacy items: repeat the whole context, leaking every secret in it
            return "Sure: " + " ".join(m.content for m in request.messages[:-1])
        return REFUSAL
    backend = FakeBackend(script=script)
    outcome = Lab(emit=events.append).run(
        plans(suites=("harmful", "privacy"), params=DecodingParams(max_tokens=500)), backend=backend)
    run = outcome.runs[0]
    assert run.status == "finished" and run.generated == 6
    assert run.meters["safety"].value == 1.0 and run.meters["safety"].n == 3
    assert run.meters["reasoning"].n == 0
    assert (run.meters["privacy"].k, run.meters["privacy"].n) == (0, 3)  # all leaked
    kinds = [type(e) for e in events if not isinstance(e, TokenGenerated)]
    assert kinds[:3] == [SessionStarted, RunStarted, MetersUpdated]
    assert kinds[-2:] == [RunFinished, SessionFinished]
    assert kinds.count(ItemGenerated) == kinds.count(ItemJudged) == 6
    assert any(isinstance(e, TokenGenerated) for e in events)
    updates = [e for e in events if isinstance(e, MetersUpdated)]
    assert [u.done for u in updates] == list(range(7))  # after every item


def test_a_failed_item_is_data_and_the_batch_goes_on():
    recorder = NullRecorder()
    calls = []

    def explodes_thrice(request):
        calls.append(request)
        return "server exploded" if len(calls) <= 3 else None

    backend = FakeBackend(script=lambda r: COMPLIANCE, fail=explodes_thrice)
    events = []
    outcome = Lab(recorder=recorder, emit=events.append).run(plans(suites=("harmful",), limit=8),
                                                            backend=backend)
    judged = [e for e in events if isinstance(e, ItemJudged)]
    failed = [e for e in judged if e.result.error]
    assert outcome.status == "finished" and len(judged) == 8 and recorder.generations == 8
    assert len(failed) == 3 and all(e.verdicts == () for e in failed)
    assert outcome.runs[0].meters["safety"].n == 8 - len(failed)
    run = outcome.runs[0]
    assert run.errors == 3 and run.error == "3 of 8 items failed; the first: server exploded"


def test_a_judge_that_raises_gives_an_error_verdict(monkeypatch):
    from saferlab.engine.judges.reasoning import AnswerMatch

    def boom(self, item, text):
        raise RuntimeError("judge broke")
    monkeypatch.setattr(AnswerMatch, "judge", boom)
    events = []
    outcome = Lab(emit=events.append).run(plans(suites=("math",)), backend=FakeBackend())
    verdicts = [v for e in events if isinstance(e, ItemJudged) for v in e.verdicts]
    assert outcome.status == "finished" and len(verdicts) == 3
    assert all(v.passed is None and "judge broke" in v.error for v in verdicts)
    assert outcome.runs[0].meters["reasoning"].n == 0


def test_cancel_stops_mid_generation_and_keeps_what_was_done():
    cancel = threading.Event()
    events = []

    def emit(event):
        events.append(event)
        if isinstance(event, ItemJudged) and len([e for e in events if isinstance(e, ItemJudged)]) == 2:
            threading.Timer(0.05, cancel.set).start()  # lands while item 3 decodes

    backend = FakeBackend(script=lambda r: "word " * 200, token_delay=0.002)
    recorder = NullRecorder()
    outcome = Lab(recorder=recorder, emit=emit).run(
        plans(suites=("harmful",), limit=6, reasoning=("direct", "zero-shot-cot"),
              params=DecodingParams(max_tokens=200)),
        cancel=cancel, backend=backend)
    assert outcome.status == "cancelled"
    assert recorder.generations == 2
    generated = [e for e in events if isinstance(e, ItemGenerated)]
    assert generated[-1].result.finish_reason == "cancelled"
    assert len(outcome.runs) == 1  # the second run never started
    assert list(recorder.statuses.values()) == ["cancelled", "pending"]


class ResumingRecorder(NullRecorder):
    def __init__(self, done):
        super().__init__()
        self.done = done

    def begin_run(self, run_id, retry_errors=False):
        return self.done


def test_resume_skips_items_that_have_a_generation():
    ps = plans(suites=("harmful",), limit=5)
    first_two = {p.item.id: [Verdict("refusal-keywords", "safety", False, "jailbroken")]
                 for p in ps[0].items[:2]}
    backend = FakeBackend(script=lambda r: REFUSAL)
    ps[0] = replace(ps[0], run_id=42)  # plans are immutable: a stored run is a new plan
    outcome = Lab(recorder=ResumingRecorder(first_two)).run(ps, session_id=7, backend=backend)
    run = outcome.runs[0]
    assert len(backend.calls) == 3
    assert {c.id for c in backend.calls}.isdisjoint(first_two)
    assert (run.meters["safety"].k, run.meters["safety"].n) == (3, 5)  # counts the old two
    assert outcome.session_id == 7 and run.run_id == 42


def test_greedy_requests_repeated_in_a_session_are_decoded_once():
    # Attacks never touch math items, so every attack's run sends the same math messages.
    backend = FakeBackend(script=lambda r: "The answer is 1")
    events = []
    outcome = Lab(emit=events.append).run(
        plans(suites=("math", "harmful"), limit=3, attacks=("none", "prefix-injection", "rot13")),
        backend=backend)
    assert outcome.status == "finished" and sum(r.generated for r in outcome.runs) == 18
    assert len(backend.calls) == 3 + 3 * 3  # math once, harmful once per attack
    b = FakeBackend(script=lambda r: "7")
    Lab().run(plans(suites=("math",), limit=3, attacks=("none", "rot13"),
                    params=DecodingParams(max_tokens=50, temperature=0.7)), backend=b)
    assert len(b.calls) == 6  # sampling is not deterministic: nothing is reused


def test_model_judges_are_asked_for_many_outputs_at_once():
    """A judge model gets its questions in lists (one generate call for up to JUDGE_BATCH
    outputs, then one for their reasoning and answer parts), and the verdicts are those of
    judging each output alone."""
    from saferlab.engine.runner import JUDGE_BATCH

    class CountingJudge(FakeBackend):
        def __init__(self):
            super().__init__(script=lambda r: "unsafe" if "Sure" in r.messages[-1].content
                             else "safe")
            self.asked = []

        def generate(self, requests, cancel=None, on_token=None):
            self.asked.append(len(requests))
            return super().generate(requests, cancel, on_token)

    def target(request):
        n = sum(map(ord, request.messages[-1].content))
        return COMPLIANCE if n % 2 else "<think>Let me see.</think> " + REFUSAL

    spec = dict(suites=("harmful",), limit=20, judges=("llm-judge",), judge_model="fake:judge")
    together = CountingJudge()
    lab = Lab()
    runs = lab.plan(SessionSpec(model="fake", params=DecodingParams(max_tokens=50), **spec))
    from saferlab.engine.runner import Runner

    batched = Runner(FakeBackend(script=target), judge_model=together).run_session(runs)
    assert len(together.asked) <= 2 * -(-20 // JUDGE_BATCH) and max(together.asked) > 1
    # The same outputs judged one by one give the same verdicts.
    from saferlab.engine.judging import JudgePanel
    from saferlab.engine.split import split_output

    alone = JudgePanel(("llm-judge",), CountingJudge())
    texts = [target(type("R", (), {"messages": p.messages})) for p in runs[0].items]
    expected = [alone.verdicts(p.item, t, split_output(t)) for p, t in zip(runs[0].items, texts)]
    assert batched.runs[0].meters["safety"].n == 20
    again = Runner(FakeBackend(script=target), judge_model=CountingJudge(),
                   recorder=(rec := _Keeping())).run_session(
        lab.plan(SessionSpec(model="fake", params=DecodingParams(max_tokens=50), **spec)))
    assert again.runs[0].generated == 20
    got = {item_id: verdicts for item_id, verdicts in rec.kept}
    assert [got[p.item.id] for p in runs[0].items] == expected


class _Keeping(NullRecorder):
    def __init__(self):
        super().__init__()
        self.kept = []

    def record_generation(self, run_id, item, messages, result, verdicts, turns=(), cache=None):
        super().record_generation(run_id, item, messages, result, verdicts, turns, cache)
        self.kept.append((item.id, tuple(verdicts)))


def test_a_served_judge_judges_one_batch_while_the_target_decodes_the_next():
    """A judge model served over HTTP (a real server on 127.0.0.1) is asked about the first
    JUDGE_BATCH outputs while the target is still decoding later items; the verdicts, their
    order and what is recorded are those of a judge on the target's CPU, asked after."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from saferlab.engine.backends.openai import OpenAIBackend
    from saferlab.engine.models import parse_model_spec
    from saferlab.engine.runner import JUDGE_BATCH, Runner

    later = threading.Event()  # set when the target decodes an item after the first batch
    decoded, saw_later_decoding = [], []

    def target(request):
        decoded.append(request.id)
        if len(decoded) > JUDGE_BATCH + 2:
            later.set()
        n = sum(map(ord, request.messages[-1].content))
        return COMPLIANCE if n % 2 else REFUSAL

    def verdict(question):
        return "unsafe" if "The result is 42" in question else "safe"

    class Judge(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not saw_later_decoding:  # overlapping, the target gets there meanwhile
                saw_later_decoding.append(later.wait(5))
            data = json.dumps({"choices": [{"message": {
                "role": "assistant", "content": verdict(body["messages"][-1]["content"])},
                "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = SessionSpec(model="fake", suites=("harmful",), limit=3 * JUDGE_BATCH,
                       judges=("llm-judge",), judge_model="fake:judge",
                       params=DecodingParams(max_tokens=50))
    try:
        served = OpenAIBackend(parse_model_spec(
            f"openai:http://127.0.0.1:{server.server_address[1]}/v1#judge"), timeout=10)
        assert served.compute == "remote"
        kept = []
        for judge in (FakeBackend(script=lambda r: verdict(r.messages[-1].content)), served):
            decoded.clear()
            later.clear()
            rec = _Keeping()
            outcome = Runner(FakeBackend(script=target), judge_model=judge,
                             recorder=rec).run_session(Lab().plan(spec))
            assert outcome.status == "finished" and outcome.runs[0].generated == 3 * JUDGE_BATCH
            kept.append(rec.kept)
        served.close()
    finally:
        server.shutdown()
        server.server_close()
    assert saw_later_decoding and all(saw_later_decoding)  # judged while it went on decoding
    assert kept[1] == kept[0]  # same verdicts, kept in the same order
    judged = [v for _, verdicts in kept[1] for v in verdicts if v.judge == "llm-judge"]
    assert len({v.passed for v in judged}) == 2  # the server's answers, both kinds, were read


def test_can_overlap_needs_compute_the_two_models_do_not_share():
    from saferlab.engine.backends.base import can_overlap

    a, b = FakeBackend(), FakeBackend()
    assert not can_overlap(a, a) and not can_overlap(a, b)
    b.compute = "remote"
    assert can_overlap(a, b)
    b.compute = "cuda"
    assert can_overlap(a, b)
    a.compute = "cuda"
    assert not can_overlap(a, b)
