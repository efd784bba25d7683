"""No command lets data drive the terminal: on a hostile dataset, a hostile model and a hostile
user file, nothing any command prints holds ESC, BEL, a C1 control or a bidi control."""

import json
import re

from typer.testing import CliRunner

from saferlab.tui.cli import app

# ESC[2J clears the screen, OSC 0 sets the title, OSC 8 makes a link, 0x9b is an 8-bit CSI,
# U+202E reverses what follows.
HOSTILE = ("Explain \x1b[2Jhow \x1b]0;owned\x07to \x1b]8;;https://x.example\x1b\\click\x1b]8;;"
           "\x1b\\ \x9b31mforge \u202egnp.exe a \u2066signature\u2069 \x00")
FORBIDDEN = re.compile("[\x1b\x07\x00\x80-\x9f\u202a-\u202e\u2066-\u2069]")
runner = CliRunner()


def clean(result, *args):
    for stream in (result.stdout, result.stderr):
        found = FORBIDDEN.search(stream)
        assert found is None, (args, repr(stream[max(0, found.start() - 40):found.end() + 40]))
    return result


def invoke(*args, input=None):
    return clean(runner.invoke(app, list(args), input=input), *args)


def test_every_command_shows_hostile_data_literally(saferlab_home, tmp_path):
    suites = saferlab_home / "prompts" / "suites"
    suites.mkdir(parents=True)
    (suites / "hostile.toml").write_text(
        'kind = "harmful"\n'
        f'description = {json.dumps("Requests " + HOSTILE)}\n'
        '[[items]]\nid = "a"\n'
        f'prompt = {json.dumps(HOSTILE)}\ncategory = "fraud"\n'
        '[[items]]\nid = "b"\n'
        f'prompt = {json.dumps("Write " + HOSTILE)}\ncategory = "fraud"\n')
    db = str(tmp_path / "lab.db")
    invoke("prompts")
    invoke("run", "--suite", "hostile", "--dry-run")
    result = invoke("run", "--suite", "hostile", "--model", "fake:echo", "--reasoning", "direct",
                    "--reasoning", "zero-shot-cot", "--db", db)
    assert result.exit_code == 0, result.stderr
    for args in (["runs"], ["report", "1"], ["compare", "1", "2"], ["tradeoff", "s1"],
                 ["export", "s1", "-o", str(tmp_path / "s.html")]):
        assert invoke(*args, "--db", db).exit_code == 0
    invoke("label", "1", "--all", "--db", db, input="n\nq\n")
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"id": HOSTILE, "prompt": HOSTILE, "response": HOSTILE})
                         + "\n")
    assert invoke("judge", str(responses)).exit_code == 0
    # an error that quotes the bad input
    assert invoke("run", "--suite", "nope" + HOSTILE, "--dry-run").exit_code == 2
    assert invoke("run", "--suite", "hostile", "--model", "gguf:/no/such" + HOSTILE,
                  "--db", db).exit_code == 3
    html = (tmp_path / "s.html").read_text()
    assert "\u202e" not in html and "\\u202e" in html


def test_paths_and_names_a_command_prints_are_shown_literally(saferlab_home, tmp_path):
    # a --db path, an adapter folder left out of the list, the experiment's planned commands
    name = HOSTILE.replace("/", "").replace("\x00", "")  # what a file name may hold
    assert invoke("db", "path", "--db", str(tmp_path / (name + ".db"))).exit_code == 0
    bad = saferlab_home / "adapters" / name
    bad.mkdir(parents=True)
    (bad / "saferlab.json").write_text("{not json")
    result = invoke("adapters")
    assert "left out" in result.stderr
    model = tmp_path / (name + ".gguf")
    model.write_bytes(b"GGUF")
    result = invoke("experiment", "finetune", "--dry-run", "--model", f"gguf:{model}")
    assert result.exit_code == 0, result.stderr
    assert "signature" in result.stdout
