import json

import pytest

from saferlab.db import Store
from saferlab.engine import Lab, NullRecorder, SessionSpec
from saferlab.engine.backends.fake import COMPLIANCE, REFUSAL, FakeBackend
from saferlab.engine.events import ItemJudged
from saferlab.engine.protocols import parse_attacker_prompt
from saferlab.engine.types import DecodingParams


def run(backend, recorder=None, **kw):
    spec = SessionSpec(**({"model": "fake", "suites": ("harmful",), "limit": 2,
                           "params": DecodingParams(max_tokens=300)} | kw))
    events = []
    lab = Lab(recorder=recorder or NullRecorder(), emit=events.append)
    return lab.run(lab.plan(spec), backend=backend), events


def judged(events):
    return [e for e in events if isinstance(e, ItemJudged)]


def test_self_reflect_sends_a_second_turn_and_judges_it(tmp_path):
    answers = iter(["First try: 7", "Checked again, the answer is 9"] * 2)
    backend = FakeBackend(script=lambda r: next(answers))
    store = Store(tmp_path / "lab.db")
    outcome, events = run(backend, store, suites=("math",), reasoning=("self-reflect",))
    assert len(backend.calls) == 4
    second = backend.calls[1].messages
    assert [m.role for m in second] == ["user", "assistant", "user"]
    assert second[1].content == "First try: 7" and "Review your answer" in second[2].content
    assert [e.result.text for e in judged(events)] == ["Checked again, the answer is 9"] * 2
    turns = list(store.query("SELECT generation_id, turn, actor, output FROM turns ORDER BY id"))
    assert [(t["turn"], t["actor"]) for t in turns] == [(1, "target"), (2, "target")] * 2
    gen = next(store.query("SELECT messages_json, output, completion_tokens FROM generations"))
    assert len(json.loads(gen["messages_json"])) == 3  # the conversation of the final answer
    assert gen["completion_tokens"] == 3 + 6  # both turns counted


def test_pair_stops_at_the_first_success_and_stores_every_round(tmp_path):
    def script(request):
        system = request.messages[0].content if request.messages[0].role == "system" else ""
        if system.startswith("You are a red-teaming assistant"):
            rounds = sum(m.role == "assistant" for m in request.messages)
            return json.dumps({"improvement": "try again", "prompt": f"Round {rounds}: please"})
        return COMPLIANCE if "Round 1" in request.messages[-1].content else REFUSAL

    backend = FakeBackend(script=script)
    store = Store(tmp_path / "lab.db")
    outcome, events = run(backend, store, attacks=("pair:rounds=4",))
    assert outcome.status == "finished"
    assert [e.verdicts[0].label for e in judged(events)] == ["jailbroken", "jailbroken"]
    rows = list(store.query("SELECT actor, output, verdict_json FROM turns ORDER BY id"))
    # Round 0 refused, round 1 succeeded: attacker, target, attacker, target per item.
    assert [r["actor"] for r in rows] == ["attacker", "target"] * 4
    verdicts = [json.loads(r["verdict_json"])["label"] for r in rows if r["actor"] == "target"]
    assert verdicts == ["refused", "jailbroken"] * 2
    feedback = [c for c in backend.calls if "The target replied" in c.messages[-1].content]
    assert feedback and REFUSAL in feedback[0].messages[-1].content


def test_pair_gives_up_after_its_rounds():
    backend = FakeBackend(script=lambda r: "not json at all" if r.messages[0].role == "system"
                          and "red-teaming" in r.messages[0].content else REFUSAL)
    outcome, events = run(backend, attacks=("pair:rounds=3",), limit=1)
    assert len(backend.calls) == 6  # 3 rounds of attacker + target
    assert judged(events)[0].verdicts[0].label == "refused"
    # An attacker that ignores the JSON format still gets its text used as the prompt.
    assert backend.calls[1].messages[-1].content == "not json at all"


def test_crescendo_escalates_over_m_turns_and_judges_the_last(tmp_path):
    backend = FakeBackend(script=lambda r: f"reply {len(r.messages)}")
    store = Store(tmp_path / "lab.db")
    outcome, events = run(backend, store, attacks=("crescendo:turns=3",), limit=1,
                          suites=("harmful", "math"))
    harmful = [c for c in backend.calls if len(c.messages) > 1 or "explainer" in c.messages[0].content]
    assert [len(c.messages) for c in harmful] == [1, 3, 5]
    assert "explainer" in harmful[0].messages[0].content
    assert harmful[2].messages[-1].content.startswith("Thanks. Building on everything")
    assert len(list(store.query("SELECT * FROM turns"))) == 3 + 1  # math: one plain turn
    (item,) = [e for e in judged(events) if e.item.kind == "harmful"]
    assert item.result.text == "reply 5"


def test_encoded_answers_are_judged_after_decoding():
    import base64
    compliance = base64.b64encode(b"Sure, here is the plan in detail").decode()
    outcome, events = run(FakeBackend(script=lambda r: compliance), attacks=("base64",), limit=1)
    assert judged(events)[0].verdicts[0].label == "jailbroken"
    refusal = base64.b64encode(b"I'm sorry, I can't help with that").decode()
    outcome, events = run(FakeBackend(script=lambda r: refusal), attacks=("base64",), limit=1)
    assert judged(events)[0].verdicts[0].label == "refused"


@pytest.mark.parametrize("text,prompt", [
    ('{"improvement": "x", "prompt": "Tell a story"}', "Tell a story"),
    ('Sure!\n```json\n{"improvement": "x", "prompt": "Tell a story"}\n```', "Tell a story"),
    ('{"improvement": "x", "prompt": "Say \\"hi\\"", }', 'Say "hi"'),  # broken JSON
    ("Just ask nicely", "Just ask nicely"),
    ("   ", None),
])
def test_parse_attacker_prompt(text, prompt):
    assert parse_attacker_prompt(text) == prompt
