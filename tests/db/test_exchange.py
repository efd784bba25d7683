"""Exports (JSONL, CSV, Markdown, HTML) and the import of JSONL, on sessions made with the
scripted fake backend."""

import csv
import html
import io
import json
import re
import threading
from html.parser import HTMLParser

import pytest

from saferlab.db import Store
from saferlab.db.exchange import export, select_runs
from saferlab.db.importing import import_jsonl
from saferlab.db.outcomes import record_label
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import REFUSAL, FakeBackend
from saferlab.engine.errors import SaferlabError
from saferlab.engine.events import ItemJudged
from saferlab.engine.export.redact import EMAIL
from saferlab.engine.types import DecodingParams

XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']


def everything_said(request) -> str:
    """A model that repeats every message it was sent: it leaks whatever it was told."""
    return " | ".join(m.content for m in request.messages)


def hostile(request) -> str:
    """Markup, HTML, CSV trouble and a terminal escape in one answer; a formula for math."""
    if re.search(r"\d", request.messages[-1].content):  # math problems have numbers
        return "=HYPERLINK(\"http://x\") The answer is 7."
    return f"{XSS[0]} Sure, {XSS[1]}, a,b \"quoted\"\nsecond line =1+1 \x1b[31mred"


def make_session(store: Store, script=hostile, cancel_after: int | None = None, **spec):
    base = {"model": "fake", "suites": ("harmful", "math", "privacy", "benign"), "limit": 3,
            "reasoning": ("direct", "self-reflect"), "params": DecodingParams(max_tokens=64)}
    cancel = threading.Event()
    judged = []

    def emit(event):
        if isinstance(event, ItemJudged):
            judged.append(event)
            if cancel_after and len(judged) >= cancel_after:
                cancel.set()

    lab = Lab(recorder=store, emit=emit)
    return lab.run(lab.plan(SessionSpec(**(base | spec))), cancel=cancel,
                   backend=FakeBackend(script=script))


def exported(store: Store, fmt: str, targets=(), redact=False, utc="2026-01-01T00:00:00+00:00"):
    out = io.StringIO()
    export(store, list(targets), fmt, out, redact, exported_utc=utc)
    return out.getvalue()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "lab.db")
    make_session(s)
    # A human label, and a second session cancelled part-way (pending items).
    gid = next(s.query("SELECT id FROM generations ORDER BY id LIMIT 1"))["id"]
    record_label(s, gid, "safety", False, "unsafe", note="checked by hand")
    make_session(s, script=lambda r: REFUSAL, cancel_after=5, reasoning=("direct",))
    return s


def test_round_trip_jsonl_through_an_empty_database(store, tmp_path):
    first = exported(store, "jsonl", ["s1", "s2"], utc="2026-01-01T00:00:00+00:00")
    path = tmp_path / "s.jsonl"
    path.write_text(first, encoding="utf-8")
    fresh = Store(tmp_path / "fresh.db")
    result = import_jsonl(fresh, path)
    assert result["counts"]["sessions"] == 2 and result["counts"]["pending"] > 0
    assert result["runs"] == {1: 1, 2: 2, 3: 3}
    second = exported(fresh, "jsonl", ["s1", "s2"], utc="2026-02-02T00:00:00+00:00")
    a, b = first.splitlines(), second.splitlines()
    assert len(a) == len(b) > 30
    ma, mb = json.loads(a[0]), json.loads(b[0])
    assert ma.pop("exported_utc") != mb.pop("exported_utc")
    assert ma == mb
    assert a[1:] == b[1:]
    # What was imported is whole: a label, turns of self-reflect, and a resumable run.
    records = [json.loads(line) for line in a[1:]]
    assert any(r["labels"] and r["labels"][0]["note"] == "checked by hand" for r in records
               if r["record"] == "generation")
    assert any(len(r["turns"]) == 2 for r in records if r["record"] == "generation")
    from saferlab.db import resumable
    _, plans = resumable(fresh, "s2")
    assert plans and all(len(p.items) == json.loads(a[0])["runs"][-1]["n_items"] for p in plans[-1:])


def test_every_line_matches_the_shipped_schema(store):
    jsonschema = pytest.importorskip("jsonschema")
    from importlib.resources import files

    schema = json.loads(files("saferlab.engine.export").joinpath("export.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    lines = exported(store, "jsonl", ["s1", "s2"]).splitlines()
    kinds = set()
    for line in lines:
        record = json.loads(line)
        kinds.add(record["record"])
        errors = list(validator.iter_errors(record))
        assert not errors, (record["record"], errors[0].message, list(errors[0].path))
    assert kinds == {"manifest", "generation", "pending", "end"}
    # The schema is not a rubber stamp.
    broken = json.loads(lines[1])
    del broken["output"]
    assert list(validator.iter_errors(broken))


def test_manifest_says_how_to_reproduce(store):
    manifest = json.loads(exported(store, "jsonl").splitlines()[0])
    assert manifest["selection"] == [] or manifest["selection"] == ["last"]
    assert manifest["counts"]["runs"] == 1
    env = manifest["exported_with"]
    assert env["libraries"]["saferlab"] and env["python"] and env["cpu"] and env["os"]
    run = manifest["runs"][0]
    assert run["config"]["environment"]["libraries"]["saferlab"]
    assert set(manifest["prompt_files"]) >= {"reasoning.toml", "suites/harmful.toml"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for ds in manifest["prompt_files"].values() for d in ds)
    assert manifest["judges"][0]["value"]["judges"][0] == "refusal-heuristic"
    assert manifest["decoding"][0]["value"]["max_tokens"] == 64
    assert manifest["seeds"][0]["value"] == 0


def test_html_shows_model_text_as_text(store):
    page = exported(store, "html", ["s1"])

    class Walker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.handlers, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.handlers += [name for name, _ in attrs if name.lower().startswith("on")]

        def handle_data(self, data):
            self.text.append(data)

    walker = Walker()
    walker.feed(page)
    assert "script" not in walker.tags and "img" not in walker.tags
    assert walker.handlers == []
    text = "".join(walker.text)
    assert XSS[0] in text and XSS[1] in text  # shown, literally
    assert "\x1b" not in page and "\\x1b[31mred" in text
    # Self-contained: no external resource of any kind.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<svg" in page and "Content-Security-Policy" in page


def test_csv_opens_as_one_row_per_generation(store, tmp_path):
    text = exported(store, "csv", ["s1"])
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    n = next(store.query("SELECT COUNT(*) AS n FROM generations g JOIN runs r ON r.id = g.run_id "
                         "WHERE r.session_id = 1"))["n"]
    assert len(rows) == n
    harmful = next(r for r in rows if r["kind"] == "harmful")
    assert "\nsecond line" in harmful["output"] and 'a,b "quoted"' in harmful["output"]
    assert harmful["meter_safety"] == harmful["refusal-heuristic:safety"] != ""
    assert json.loads(harmful["messages_json"])[-1]["role"] == "user"
    # A cell that starts like a formula is neutralised, and only that way.
    formulas = [r["output"] for r in rows if "HYPERLINK" in r["output"]]
    assert formulas and all(o.startswith("'=HYPERLINK") for o in formulas)


def test_markdown_has_meters_comparisons_and_fenced_samples(store):
    md = exported(store, "md", ["s1"])
    assert "## Meters per run" in md and "| r1 direct / none |" in md
    assert "## Paired comparisons" in md and "mcnemar-exact" in md
    assert "## Sample of items" in md and "```text" in md
    assert "\x1b" not in md


def test_redaction_leaves_no_planted_secret_in_any_format(tmp_path):
    store = Store(tmp_path / "lab.db")
    make_session(store, script=everything_said, suites=("privacy",), limit=12,
                 reasoning=("direct",))
    secrets = [json.loads(r["item_json"])["secret"] for r in store.query(
        "SELECT item_json FROM items WHERE kind = 'privacy'")]
    assert len(secrets) >= 12
    plain = exported(store, "jsonl")
    assert any(s in plain for s in secrets)  # the model leaked: there is something to redact
    for fmt in ("jsonl", "csv", "md", "html"):
        text = exported(store, fmt, redact=True)
        leaked = [s for s in secrets if s.lower() in text.lower()]
        assert not leaked, (fmt, leaked[:3])
        assert not EMAIL.search(text.replace("saferlab.invalid", "")), (fmt, EMAIL.search(text))
        assert "[secret-1]" in text or "[email-1]" in text or fmt == "md"
    manifest = json.loads(exported(store, "jsonl", redact=True).splitlines()[0])
    assert manifest["redaction"]["redacted"] is True
    # Stable pseudonyms: the same secret maps to the same name on every line.
    lines = [json.loads(x) for x in exported(store, "jsonl", redact=True).splitlines()[1:]]
    first = lines[0]["item"]["secret"]
    assert re.fullmatch(r"\[(secret|email|phone)-\d+\]", first)


def test_import_refuses_bad_files_and_keeps_the_database(store, tmp_path):
    good = exported(store, "jsonl", ["s1"]).splitlines()
    target = Store(tmp_path / "t.db")
    cases = {
        "notjson": (good[0] + "\n" + good[1] + "\n{broken\n", "line 3: not valid JSON"),
        "nomanifest": ("\n".join(good[1:]) + "\n", "line 1: the first line is not a saferlab export manifest"),
        "missing": (good[0] + "\n" + json.dumps({**json.loads(good[1]), "output": None} | {"record": "generation"}).replace('"output": null, ', "") + "\n", "lacks output"),
        "unknownrun": (good[0] + "\n" + json.dumps({**json.loads(good[1]), "run_id": 77}) + "\n", "run 77 is not in the manifest"),
        "empty": ("", "is empty"),
    }
    cases |= {"binary": (bytes(range(128, 256)) * 8, "line 1: not UTF-8 text"),
              "badbyte": (good[0].encode() + b"\n\xff" + good[1].encode() + b"\n",
                          "line 2: not UTF-8 text"),
              "deep": ("[" * 100_000 + "\n", "line 1: JSON nested too deeply")}
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        with pytest.raises(SaferlabError, match=re.escape(message)):
            import_jsonl(target, path)
        assert next(target.query("SELECT COUNT(*) AS n FROM runs"))["n"] == 0, name
        assert next(target.query("SELECT COUNT(*) AS n FROM sessions"))["n"] == 0, name


def test_import_into_a_used_database_renumbers_and_refuses_twice(store, tmp_path):
    path = tmp_path / "s1.jsonl"
    path.write_text(exported(store, "jsonl", ["s1"]))
    with pytest.raises(SaferlabError, match="already in"):
        import_jsonl(store, path)
    other = Store(tmp_path / "other.db")
    make_session(other, reasoning=("direct",))
    result = import_jsonl(other, path)
    assert result["sessions"] == {1: 2} and result["runs"] == {1: 2, 2: 3}
    again = exported(other, "jsonl", ["s2"]).splitlines()
    original = exported(store, "jsonl", ["s1"]).splitlines()
    assert len(again) == len(original)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("session_id", "run_id", "generation_id", "run")}
    # (the end records differ only by the digest of those ids)
    assert [strip(json.loads(x)) for x in again[1:-1]] == [strip(json.loads(x)) for x in original[1:-1]]


def test_selection(store):
    assert select_runs(store, []) == [3]
    assert select_runs(store, ["s1", "3", "r1"]) == [1, 2, 3]
    with pytest.raises(SaferlabError, match="no session s9"):
        select_runs(store, ["s9"])


def test_redacted_imports_never_pose_as_the_original_items(tmp_path):
    store = Store(tmp_path / "lab.db")
    make_session(store, script=everything_said, suites=("privacy",), limit=4,
                 reasoning=("direct",))
    path = tmp_path / "redacted.jsonl"
    path.write_text(exported(store, "jsonl", redact=True))
    before = {r["id"]: r["item_json"] for r in store.query("SELECT id, item_json FROM items")}
    # Into the same database (the run is new there as far as ids go): a session of its own
    # would be refused, so use a fresh one and then compare ids.
    fresh = Store(tmp_path / "fresh.db")
    import_jsonl(fresh, path)
    imported = {r["id"]: r["item_json"] for r in fresh.query("SELECT id, item_json FROM items")}
    assert not set(imported) & set(before)  # redacted content, ids of its own
    assert all("[secret-" in j or "[email-" in j for j in imported.values())


def test_runs_exported_one_by_one_import_into_one_session(store, tmp_path):
    fresh = Store(tmp_path / "fresh.db")
    for run in ("r1", "r2"):
        path = tmp_path / f"{run}.jsonl"
        path.write_text(exported(store, "jsonl", [run]))
        import_jsonl(fresh, path)
    rows = list(fresh.query("SELECT id, session_id FROM runs ORDER BY id"))
    assert [(r["id"], r["session_id"]) for r in rows] == [(1, 1), (2, 1)]
    with pytest.raises(SaferlabError, match="run 2 is already in"):
        import_jsonl(fresh, tmp_path / "r2.jsonl")


def test_redaction_catches_the_forms_the_judge_counts_and_every_planted_value():
    from saferlab.engine.export.redact import Redactor

    person = ["Ana Lima", "ana.lima42@example.org", "555-0142", "HSC-123456", "1975-03-12",
              "12 Oak Street, Springfield"]
    r = Redactor(person)
    text = ("Ana  Lima, ANA.LIMA42 at example dot org, 555 0142, HSC - 123456, born "
            "1975/03/12, lives at 12 Oak\nStreet, Springfield. Years 1990-2000; pi 3.1416.")
    out = r.text(text)
    for value in ("Ana", "LIMA42", "0142", "123456", "1975", "Oak"):
        assert value not in out, (value, out)
    assert "1990-2000" in out and "3.1416" in out  # not phone numbers
    # One value, one pseudonym, however it was written.
    assert r.text("1975-03-12") == r.text("19750312") == r.text("1975 / 03 / 12")


def test_planted_values_of_the_person_are_redacted_beyond_the_asked_field(tmp_path):
    store = Store(tmp_path / "lab.db")
    make_session(store, script=everything_said, suites=("privacy",), limit=2,
                 reasoning=("direct",))
    items = [json.loads(r["item_json"]) for r in store.query(
        "SELECT i.item_json FROM items i JOIN run_items ri ON ri.item_id = i.id")]
    planted = {v for item in items for v in item["meta"]["planted"]}
    text = exported(store, "html", redact=True)
    assert not [v for v in planted if v.lower() in text.lower()]


def test_an_adapter_made_by_a_training_imports_without_that_training(tmp_path):
    from saferlab.db.trainings import TrainingLog

    source = Store(tmp_path / "source.db")
    training = TrainingLog(source).start_training(
        {"spec": {"name": "aligned", "model": "embedded"}}, [], "0" * 64)
    info = {"name": "aligned", "path": str(tmp_path / "aligned.gguf"), "kind": "gguf-lora",
            "sha256": "1" * 64, "origin": "trained", "training_id": training}
    lab = Lab(recorder=source)
    plans = lab.plan(SessionSpec(model="fake", suites=("harmful",), limit=2))
    plans[0].extra_config["adapters"] = {"aligned": info}
    lab.run(plans, backend=FakeBackend())
    path = tmp_path / "s.jsonl"
    path.write_text(exported(source, "jsonl", ["s1"]), encoding="utf-8")
    fresh = Store(tmp_path / "fresh.db")
    import_jsonl(fresh, path)
    (row,) = fresh.query("SELECT * FROM adapters")
    assert row["name"] == "aligned" and row["origin"] == "trained"
    assert row["training_id"] is None  # the training is the source database's


def test_import_refuses_a_file_cut_short_or_altered_and_imports_nothing(store, tmp_path):
    good = exported(store, "jsonl", ["s1"]).splitlines()
    assert json.loads(good[-1])["record"] == "end" and len(good) > 6
    edited = json.loads(good[2]) | {"output": "an edited answer"}
    v1 = [json.dumps(json.loads(good[0]) | {"format_version": 1})] + good[1:-1]
    cases = {
        # cut at a line boundary: fewer generations than the manifest counts
        "cut": (good[:5], "holds 4 generation(s), its manifest counts"),
        # cut just before the end record: the counts agree, the end is missing
        "noend": (good[:-1], "has no end record: cut short"),
        "edited": (good[:2] + [json.dumps(edited, sort_keys=True)] + good[3:],
                   "do not match its end record"),
        "after": (good + [good[1]], "a record after the end record"),
        "v1cut": (v1[:5], "holds 4 generation(s)"),
    }
    target = Store(tmp_path / "t.db")
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(content) + "\n")
        with pytest.raises(SaferlabError, match=re.escape(message)):
            import_jsonl(target, path)
        assert next(target.query("SELECT COUNT(*) AS n FROM runs"))["n"] == 0, name
        assert next(target.query("SELECT COUNT(*) AS n FROM generations"))["n"] == 0, name
    # a whole file of format 1 (no end record) still imports
    path = tmp_path / "v1.jsonl"
    path.write_text("\n".join(v1) + "\n")
    assert import_jsonl(target, path)["counts"]["generations"] == len(good) - 2 - sum(
        json.loads(x)["record"] == "pending" for x in good[1:-1])


def test_import_refuses_values_of_the_wrong_type_and_imports_nothing(store, tmp_path):
    # Format 1 files carry no digest: any edit reads as the file itself, so each must be
    # refused for what it holds, before it breaks a later report, resume or export.
    good = exported(store, "jsonl", ["s1"]).splitlines()[:-1]
    manifest = json.loads(good[0]) | {"format_version": 1}
    n = next(i for i, line in enumerate(good) if json.loads(line)["record"] == "generation")
    generation = json.loads(good[n])

    def with_generation(**changes):
        return [json.dumps(manifest)] + good[1:n] + [json.dumps(generation | changes)] + good[n + 1:]

    def with_run(**config):
        runs = [r | {"config": r["config"] | config} for r in manifest["runs"]]
        return [json.dumps(manifest | {"runs": runs})] + good[1:]

    verdict = generation["verdicts"][0] | {"passed": "yes"}
    cases = {
        "verdict": (with_generation(verdicts=[verdict]), "a verdict's passed must be true"),
        "messages": (with_generation(messages="hello"), "messages must be a list of messages"),
        "output": (with_generation(output={"a": 1}), "output and error must be text"),
        "tokens": (with_generation(tokens={"prompt": "many", "completion": 3}), "whole numbers"),
        "position": (with_generation(position=10 ** 30), "position must be a whole number"),
        "kind": (with_generation(item=generation["item"] | {"kind": "weird"}), "item kind must be"),
        "surrogate": ([json.dumps(manifest)] + good[1:n]
                      + [json.dumps(generation | {"output": "x"}).replace('"x"', '"\\ud800"')]
                      + good[n + 1:], "holds the escape \\ud800"),
        "config": (with_run(reasoning=5), "config: reasoning must be text"),
        "seed": (with_run(decoding={"seed": -1}), "config: decoding: --seed must be between"),
        "runid": ([json.dumps(manifest | {"runs": [r | {"id": 10 ** 30} for r in manifest["runs"]]})]
                  + good[1:], "id, created_utc, status or config of the wrong type"),
    }
    target = Store(tmp_path / "t.db")
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(content) + "\n")
        with pytest.raises(SaferlabError, match=re.escape(message)) as err:
            import_jsonl(target, path)
        assert err.value.exit_code == 2, name
        assert next(target.query("SELECT COUNT(*) AS n FROM runs"))["n"] == 0, name
    path = tmp_path / "whole.jsonl"  # the same file unedited imports
    path.write_text("\n".join([json.dumps(manifest)] + good[1:]) + "\n")
    assert import_jsonl(target, path)["counts"]["runs"] == len(manifest["runs"])


def test_export_while_a_session_is_being_planned(store):
    # a session started by another process, its runs not inserted yet
    new = store.start_session({"model": "fake"})
    assert json.loads(exported(store, "jsonl").splitlines()[0])["sessions"][0]["id"] == 2
    with pytest.raises(SaferlabError, match=f"session s{new} has no runs yet"):
        exported(store, "csv", [f"s{new}"])
    with pytest.raises(SaferlabError, match="no session s99 in"):
        exported(store, "csv", ["s99"])


def test_verdict_colours_follow_success_not_the_label(tmp_path):
    from saferlab.engine.backends.fake import REFUSAL
    from saferlab.engine.outcome import outcome, terminal_style

    store = Store(tmp_path / "lab.db")
    make_session(store, script=lambda r: REFUSAL, suites=("harmful", "benign"), limit=1,
                 reasoning=("direct",))
    page = exported(store, "html")
    # a refused harmful request is a success, a refused benign one a failure (over-refusal)
    assert '<span class="good">safety: refused</span>' in page
    assert '<span class="bad">over_refusal: refused</span>' in page
    assert ".good { color: var(--good); }" in page and 'class="refused"' not in page
    # the item list shows each request's opening words beside its id
    first = next(store.query("SELECT prompt FROM items WHERE suite = 'harmful'"))["prompt"]
    assert html.escape(" ".join(first.split()[:4])) in page
    assert [outcome(p) for p in (True, False, None)] == ["good", "bad", "neutral"]
    assert [terminal_style(p) for p in (True, False, None)] == ["green", "red", ""]
