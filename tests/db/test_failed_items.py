"""Failed items are stored and not done: a run where every item failed is failed, and a
resume generates failed items again (unless told to keep them)."""

import json

from typer.testing import CliRunner

from saferlab.db import Store, list_runs, resumable
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import REFUSAL, FakeBackend
from saferlab.engine.types import DecodingParams


def spec(**kw) -> SessionSpec:
    return SessionSpec(**(dict(model="fake", suites=("harmful", "math"), limit=3,
                               params=DecodingParams(max_tokens=20)) | kw))


def generations(store: Store) -> list[dict]:
    return list(store.query("SELECT run_id, item_id, error FROM generations ORDER BY id"))


def test_a_run_where_every_item_failed_is_failed_and_resume_retries_it(tmp_path):
    store = Store(tmp_path / "lab.db")
    lab = Lab(recorder=store)
    down = FakeBackend(fail=lambda request: "cannot connect: connection refused")
    outcome = lab.run(lab.plan(spec(attacks=("none", "prefix-injection"))), backend=down)
    assert outcome.status == "failed" and len(outcome.runs) == 1  # the session stops there
    run = outcome.runs[0]
    assert run.status == "failed" and run.errors == run.generated == 6
    assert run.error == "every item failed (6); the first: cannot connect: connection refused"
    rows = list_runs(store)
    assert [(r["status"], r["errors"]) for r in rows] == [("pending", 0), ("failed", 6)]
    # The server is back: a resume generates the six failed items and the run never started.
    session_id, plans = resumable(store, f"s{outcome.session_id}")
    assert [len(p.items) for p in plans] == [6, 6] and all(p.retry_errors for p in plans)
    again = Lab(recorder=store).run(plans, session_id=session_id,
                                    backend=FakeBackend(script=lambda request: REFUSAL))
    assert again.status == "finished" and [r.errors for r in again.runs] == [0, 0]
    rows = generations(store)
    assert len(rows) == 12 and not any(r["error"] for r in rows)
    assert len({(r["run_id"], r["item_id"]) for r in rows}) == 12
    assert resumable(store, f"s{session_id}")[1] == []


def test_a_run_with_some_failed_items_finishes_with_errors_kept_or_retried(tmp_path):
    store = Store(tmp_path / "lab.db")
    calls = []

    def flaky(request):
        calls.append(request.id)
        return "HTTP 500 from the server" if len(calls) <= 2 else None

    lab = Lab(recorder=store)
    outcome = lab.run(lab.plan(spec()), backend=FakeBackend(script=lambda r: REFUSAL,
                                                            fail=flaky))
    run = outcome.runs[0]
    assert outcome.status == run.status == "finished" and run.errors == 2
    assert run.error == "2 of 6 items failed; the first: HTTP 500 from the server"
    # Kept: nothing left to run. Retried: the two failed items only.
    assert resumable(store, "last", retry_errors=False)[1] == []
    # Retried while the server still fails: the message counts what this resume generated.
    session_id, plans = resumable(store, "last")
    still = Lab(recorder=store).run(plans, session_id=session_id, backend=FakeBackend(
        fail=lambda request: "HTTP 500 again"))
    assert still.runs[0].error == ("2 of the 2 items generated on resume (6 in the run) failed; "
                                   "the first: HTTP 500 again")
    session_id, plans = resumable(store, "last")
    backend = FakeBackend(script=lambda request: REFUSAL)
    Lab(recorder=store).run(plans, session_id=session_id, backend=backend)
    assert len(backend.calls) == 2
    assert [r["errors"] for r in list_runs(store)] == [0]
    meters = json.loads(next(store.query("SELECT meters_json FROM runs"))["meters_json"])
    assert meters["safety"]["n"] == 3 and meters["reasoning"]["n"] == 3


def test_the_command_exits_5_with_the_first_error_when_a_server_is_down(tmp_path):
    from saferlab.tui.cli import app

    db = str(tmp_path / "lab.db")
    args = ["run", "--model", "openai:http://127.0.0.1:9/v1#x", "--suite", "harmful",
            "--limit", "2", "--max-tokens", "4", "--db", db]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 5
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("saferlab: error: run 1: every item failed (2); the first: ")
    assert last.endswith(f"retry them: saferlab run --resume s1 --db {db}") and "refused" in last
    # still down: the resume retries both items, and fails the same way
    result = CliRunner().invoke(app, ["run", "--resume", "last", "--db", db])
    assert result.exit_code == 5 and "every item failed (2)" in result.output
    # the errors kept: nothing left to run, and the run stays failed
    result = CliRunner().invoke(app, ["run", "--resume", "last", "--no-retry-errors", "--db", db])
    assert result.exit_code == 0 and "nothing left to run; saferlab tradeoff s1" in result.output
    assert "session s1\n" not in result.output  # no empty table
    result = CliRunner().invoke(app, ["runs", "--db", db])
    assert "failed with 2 errors" in result.output


def test_two_resumes_of_one_session_at_once_store_each_item_once(tmp_path):
    import threading

    path = tmp_path / "lab.db"
    store = Store(path)
    lab = Lab(recorder=store)
    cancel = threading.Event()
    cancel.set()  # plan and create the runs, generate nothing
    first = lab.run(lab.plan(spec(limit=4)), cancel=cancel,
                    backend=FakeBackend(script=lambda r: REFUSAL))
    errors, outcomes = [], []

    def resume():
        try:
            own = Store(path)  # another process would have its own connection
            session_id, plans = resumable(own, f"s{first.session_id}")
            backend = FakeBackend(script=lambda r: REFUSAL, token_delay=0.002)
            outcomes.append(Lab(recorder=own).run(plans, session_id=session_id,
                                                  backend=backend))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    workers = [threading.Thread(target=resume) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == [] and len(outcomes) == 2
    rows = generations(store)
    assert len(rows) == 8 and len({(r["run_id"], r["item_id"]) for r in rows}) == 8
    assert [r["status"] for r in list_runs(store)] == ["finished"]


def test_an_output_preview_goes_past_a_nul_byte(tmp_path):
    from saferlab.db.browse import run_items

    store = Store(tmp_path / "lab.db")
    lab = Lab(recorder=store)
    outcome = lab.run(lab.plan(spec(suites=("harmful",), limit=1)),
                      backend=FakeBackend(script=lambda r: "Sure\x00, here" + " x" * 300))
    (row,) = run_items(store, outcome.runs[0].run_id)
    (stored,) = [g["output"] for g in store.query("SELECT output FROM generations")]
    assert stored.startswith("Sure\x00, here x x") and row["preview"] == stored[:200]
