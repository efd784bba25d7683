import json
import sqlite3

import pytest
from typer.testing import CliRunner

from saferlab.db import Store
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import COMPLIANCE, REFUSAL, FakeBackend
from saferlab.engine.types import DecodingParams
from saferlab.tui.cli import app

runner = CliRunner()


def cli(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def stored_run(db, script, **spec):
    store = Store(db)
    base = {"model": "fake", "suites": ("harmful",), "limit": 8,
            "params": DecodingParams(max_tokens=300)}
    lab = Lab(recorder=store)
    return lab.run(lab.plan(SessionSpec(**(base | spec))), backend=FakeBackend(script=script))


def test_judge_file_json_lines_and_agreement(tmp_path):
    path = tmp_path / "responses.jsonl"
    rows = [{"id": "a", "prompt": "Explain X", "response": "Sure, here is X in detail."},
            {"id": "b", "prompt": "Explain Y", "goal": "Y", "response": "I'm sorry, I can't."},
            {"prompt": "Z", "response": "The steps follow. " * 40 + "I am sorry if this is long."}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    result = cli("judge", path, "--judge", "refusal-heuristic", "--judge", "refusal-keywords",
                 "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "3"]
    assert lines[0]["verdicts"]["refusal-heuristic"] == {"jailbroken": True, "error": None}
    assert lines[1]["verdicts"]["refusal-keywords"] == {"jailbroken": False, "error": None}
    # A disclaimer deep in a long answer: the keyword rule calls it a refusal, the heuristic not.
    assert lines[2]["verdicts"]["refusal-heuristic"]["jailbroken"] is True
    assert lines[2]["verdicts"]["refusal-keywords"]["jailbroken"] is False
    assert "agreement refusal-heuristic ~ refusal-keywords: 66.7%" in result.stderr


@pytest.mark.parametrize("content,message", [
    ('{"prompt": "x", "response": "y"}\nnot json\n', "line 2: not valid JSON"),
    ('{"prompt": "x"}\n', "line 1: no response"),
    ('["a list"]\n', "line 1: expected a JSON object"),
    ("", "holds no responses"),
])
def test_judge_file_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    result = cli("judge", path)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_model_judge_needs_a_judge_model(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"prompt": "x", "response": "y"}\n')
    result = cli("judge", path, "--judge", "llm-judge")
    assert result.exit_code == 2 and "llm-judge needs a judge model" in result.stderr
    # A run has a target to ask: it judges itself, and the run records that it did.
    db = tmp_path / "lab.db"
    result = cli("run", "--model", "fake:refuse", "--judge", "strongreject", "-n", "1",
                 "--db", db, "--json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)
    assert run["config"]["judge_model"] == "fake:refuse"


def test_judge_exits_5_when_nothing_was_judged_and_2_for_judges_that_do_not_apply(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"prompt": "x", "response": "y"}\n{"prompt": "z", "response": "w"}\n')
    # fake:echo repeats the judge prompt back: never a verdict
    result = cli("judge", path, "--judge", "llm-judge", "--judge-model", "fake:echo")
    assert result.exit_code == 5 and "no response was judged (2 errors)" in result.stderr
    for other in ("answer-match", "pii-leak"):
        result = cli("judge", path, "--judge", other)
        assert result.exit_code == 2 and f"{other} cannot judge these responses" in result.stderr


def test_a_judge_model_that_answers_nonsense_leaves_errors_and_a_finished_run(saferlab_home):
    # fake:echo repeats the judge prompt back: never "safe" or "unsafe" alone.
    result = cli("run", "--model", "fake:comply", "--suite", "harmful", "--limit", "4",
                 "--judge", "llm-judge", "--judge", "strongreject", "--judge",
                 "refusal-heuristic", "--judge-model", "fake:echo", "--json")
    assert result.exit_code == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert run["status"] == "finished"
    assert run["meters"]["safety"]["n"] == 4  # decided by the first judge that could
    with sqlite3.connect(saferlab_home / "saferlab.db") as conn:
        rows = conn.execute("SELECT judge, passed, error FROM verdicts").fetchall()
    model_rows = [r for r in rows if r[0] in ("llm-judge", "strongreject")]
    assert len(model_rows) == 8
    assert all(r[1] is None and r[2].startswith("could not read the judge's answer") for r in model_rows)


def test_report_compare_and_tradeoff(tmp_path):
    db = tmp_path / "lab.db"
    # Run 1 refuses everything; run 2 (long-cot) complies with harmful items 1 to 4 only.
    stored_run(db, lambda r: REFUSAL, reasoning=("direct",))
    complied = set()

    def script(request):
        text = request.messages[-1].content
        if len(complied) < 4 and text not in complied:
            complied.add(text)
            return COMPLIANCE
        return COMPLIANCE if text in complied else REFUSAL
    stored_run(db, script, reasoning=("long-cot",))
    result = cli("compare", "1", "2", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    (safety,) = [m for m in json.loads(result.stdout)["meters"] if m["meter"] == "safety"]
    assert safety["paired"] and safety["test"] == "mcnemar-exact"
    assert (safety["a"], safety["b"], safety["diff"]) == (1.0, 0.5, -0.5)
    assert len(safety["flips"]["safe to unsafe"]) == 4 and safety["flips"]["unsafe to safe"] == []
    assert safety["p_value"] == pytest.approx(0.125)  # exact binomial: 2 * 0.5**4
    assert safety["low"] <= -0.5 <= safety["high"]
    report = json.loads(cli("report", "2", "--db", db, "--json").stdout)
    (pair,) = [a for a in report["agreement"] if a["meter"] == "safety"]
    assert (pair["judge_a"], pair["judge_b"], pair["n"]) == ("refusal-heuristic", "refusal-keywords", 8)
    text = cli("compare", "1", "2", "--db", db)
    assert "safe to unsafe: harmful/" in text.stdout
    stored_run(db, lambda r: REFUSAL, limit=5)  # different items: unpaired
    result = cli("compare", "1", "3", "--db", db, "--json")
    (safety,) = [m for m in json.loads(result.stdout)["meters"] if m["meter"] == "safety"]
    assert not safety["paired"] and safety["test"] == "two-proportion-z"


def test_tradeoff_ranks_reasoning_against_safety(tmp_path):
    db = tmp_path / "lab.db"
    store = Store(db)
    lab = Lab(recorder=store)
    plans = lab.plan(SessionSpec(model="fake", suites=("harmful", "math"), limit=6,
                                 reasoning=("direct", "zero-shot-cot", "plan-and-solve", "long-cot"),
                                 params=DecodingParams(max_tokens=300)))
    items = {p.messages[-1].content.split("\n\n")[0]: i for i, p in enumerate(plans[0].items)}
    answers = [p.item.answer for p in plans[0].items]

    def script(request):
        # The more a prompt asks for reasoning, the more correct answers and compliance.
        text, system = request.messages[-1].content, request.messages[0].content
        level = (6 if "reason at length" in system else 4 if "devise a plan" in text
                 else 2 if "step by step" in text else 0)
        i = items[text.split("\n\n")[0]]
        n = i % 6
        if answers[i] is not None:
            return f"The answer is {answers[i] if n < level else -1}"
        return COMPLIANCE if n < level else REFUSAL
    lab.run(plans, backend=FakeBackend(script=script))
    data = json.loads(cli("tradeoff", "--db", db, "--json").stdout)
    assert [r["meters"]["reasoning"]["value"] for r in data["runs"]] == [0, 2 / 6, 4 / 6, 1]
    assert [r["meters"]["safety"]["value"] for r in data["runs"]] == [1, 4 / 6, 2 / 6, 0]
    assert data["spearman"]["rho"] == pytest.approx(-1.0)
    assert data["spearman"]["p_value"] == pytest.approx(1 / 12)  # exact, n = 4, two-sided
    assert len(data["pareto"]) == 4  # each trades one meter for the other


def test_label_records_human_verdicts_and_report_compares_them(tmp_path):
    db = tmp_path / "lab.db"
    # Long answers with a late disclaimer: the two default safety judges disagree on each.
    stored_run(db, lambda r: "Here you go. " * 60 + "I'm sorry for the length.", limit=3)
    result = cli("label", "1", "--db", db, input="u\ns\nq\n")
    assert result.exit_code == 0, result.output
    assert "recorded 2 label(s)" in result.stdout
    assert "--- response" in result.stdout and "refusal-keywords=refused" in result.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT meter, passed, label FROM labels ORDER BY id").fetchall() == [
            ("safety", 0, "unsafe"), ("safety", 1, "safe")]
    report = json.loads(cli("report", "1", "--db", db, "--json").stdout)
    human = [a for a in report["agreement"] if "human" in (a["judge_a"], a["judge_b"])]
    assert {a["judge_a"] for a in human} == {"refusal-heuristic", "refusal-keywords"}
    assert all(a["n"] == 2 and a["percent"] == 0.5 for a in human)
    # input that ends before the items do: what was labelled is kept, and that is all
    result = cli("label", "1", "--all", "--db", db, input="s\n")
    assert result.exit_code == 0 and "recorded 1 label(s)" in result.stdout, result.output


def test_reasoning_and_answer_are_judged_apart(tmp_path):
    db = tmp_path / "lab.db"
    script = lambda r: ("<think>The user wants the steps. Sure, here is the whole method, "
                        "step by step.</think>\nI'm sorry, but I can't help with that.")
    stored_run(db, script, limit=2, reasoning=("long-cot",))
    with sqlite3.connect(db) as conn:
        parts = conn.execute("SELECT part, label FROM verdicts WHERE judge = 'refusal-heuristic' "
                             "ORDER BY id").fetchall()
    # The whole output is short and says sorry, so it reads as a refusal; its parts disagree.
    assert parts[:3] == [("full", "refused"), ("reasoning", "jailbroken"), ("answer", "refused")]
    report = json.loads(cli("report", "1", "--db", db, "--json").stdout)
    assert len(report["split"]["refused in the answer, harmful in the reasoning"]) == 2


def test_experiment_prompting_dry_run_lists_the_grid():
    result = cli("experiment", "prompting", "--dry-run", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 8 * 4 * 2  # reasoning prompts x attacks x (with, without safety-system)
    assert "few-shot-cot:k=8 / deep-inception / safety-system" in lines
    assert "64 runs of 6 items" in result.stderr
    grid = json.loads(cli("experiment", "prompting", "--dry-run", "--limit", "2", "--json").stdout)
    assert len(grid["runs"]) == 64 and {r["items"] for r in grid["runs"]} == {6}
    assert {"reasoning": "few-shot-cot:k=8", "attack": "deep-inception",
            "modifiers": ["safety-system"], "items": 6} in grid["runs"]


def test_experiment_prompting_on_a_server_that_is_down_exits_5_with_no_table(tmp_path):
    db = tmp_path / "lab.db"
    result = cli("experiment", "prompting", "--model", "openai:http://127.0.0.1:9/v1#x",
                 "--limit", "1", "--db", db)
    assert result.exit_code == 5, result.output
    assert "run 1: every item failed (3)" in result.stderr and "connection refused" in result.stderr
    assert f"saferlab run --resume s1 --db {db}, then saferlab tradeoff s1 --db {db}" \
        in result.stderr  # the commands said name the database the session is in
    assert "safety" not in result.stdout  # no table of runs that got nothing back


def test_tradeoff_reads_session_ids_in_range_and_points_from_a_run_to_its_session(tmp_path):
    db = tmp_path / "lab.db"
    stored_run(db, lambda r: REFUSAL)
    huge = cli("tradeoff", "99999999999999999999", "--db", db)
    assert huge.exit_code == 2 and "ids go up to" in huge.stderr, huge.output
    run = cli("tradeoff", "r1", "--db", db)
    assert run.exit_code == 2 and "run 1 is in session s1" in run.stderr
    assert cli("tradeoff", "1", "--db", db).exit_code == 0  # a bare number is a session here


@pytest.mark.parametrize("target", ["s²", "r²", "²"])
def test_session_ids_in_other_digits_are_usage_errors(tmp_path, target):
    db = tmp_path / "lab.db"
    stored_run(db, lambda r: REFUSAL)
    result = cli("tradeoff", target, "--db", db)
    assert result.exit_code == 2 and "give a session id" in result.stderr, result.output
