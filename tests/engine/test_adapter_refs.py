"""Adapter identity: stacks with scales, and names resolved to the right file for the backend
(no model loads)."""

import json
import re

import pytest

from saferlab.engine.adapter_refs import resolve_stacks, safe_name, to_load
from saferlab.engine.errors import SaferlabError
from saferlab.engine.types import AdapterStack, AdapterUse, GenerationRequest, Message


def test_stacks_parse_into_names_and_scales_and_print_back():
    stack = AdapterStack.parse("aligned + long-cot@0.5")
    assert stack.uses == (AdapterUse("aligned"), AdapterUse("long-cot", 0.5))
    assert stack.key == "aligned+long-cot@0.5" and stack.names == ("aligned", "long-cot")
    assert AdapterStack.parse("a@1").key == "a" and AdapterStack.parse("a@-1.25").key == "a@-1.25"
    for bad in ("", "a++b", "a@", "a@x", "a+a@0.5", "a@inf", "a@nan", "a@1_0"):
        with pytest.raises(ValueError):
            AdapterStack.parse(bad)
    request = GenerationRequest("r", (Message("user", "hi"),), adapter="x+y@2")
    assert request.adapter == AdapterStack((AdapterUse("x"), AdapterUse("y", 2.0)))
    assert safe_name("my+lora@v2") == "my-lora-v2"


def _saved(root, name, base_spec="embedded", on=None, gguf=True):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights of " + name.encode())
    if gguf:
        (folder / "adapter.gguf").write_bytes(b"GGUF lora of " + name.encode())
    meta = {"name": name, "base": {"spec": base_spec, "name": "SmolLM2"},
            "on": {"key": on} if on else None, "sha256": {}}
    (folder / "saferlab.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture
def trained(saferlab_home):
    root = saferlab_home / "adapters"
    return {"aligned": _saved(root, "aligned"), "cot": _saved(root, "cot", on="aligned"),
            "other": _saved(root, "other", base_spec="gguf:/elsewhere/model.gguf"),
            "peft-only": _saved(root, "peft-only", gguf=False)}


def test_names_resolve_to_the_format_the_backend_loads(trained, embedded_path):
    keys, adapters = resolve_stacks("embedded", ["aligned", "aligned+cot@0.5"])
    assert keys == ["aligned", "aligned+cot@0.5"]
    assert adapters["cot"]["kind"] == "gguf-lora"
    assert adapters["cot"]["path"] == str((trained["cot"] / "adapter.gguf").resolve())
    assert adapters["cot"]["origin"] == "trained" and adapters["cot"]["on"] == "aligned"
    assert len(adapters["cot"]["sha256"]) == 64
    assert to_load(adapters) == [("aligned", adapters["aligned"]["path"]),
                                 ("cot", adapters["cot"]["path"])]
    # the same weights through transformers: the PEFT folder
    hf = f"hf:{embedded_path.parent}#{embedded_path.name}"
    _, adapters = resolve_stacks(hf, ["aligned+cot"])
    assert adapters["cot"]["kind"] == "peft"
    assert adapters["cot"]["path"] == str(trained["cot"].resolve())
    # a folder given by path is read the same way
    _, by_path = resolve_stacks("embedded", [f"{trained['aligned']}+{trained['cot']}"])
    assert set(by_path) == {"aligned", "cot"}


def test_a_bare_name_is_the_saved_adapter_even_beside_a_folder_so_named(trained, tmp_path,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = _saved(tmp_path, "aligned-here")
    (tmp_path / "aligned").symlink_to(local)  # ./aligned is another adapter
    _, by_name = resolve_stacks("embedded", ["aligned"])
    assert by_name["aligned"]["path"] == str((trained["aligned"] / "adapter.gguf").resolve())
    _, by_path = resolve_stacks("embedded", ["./aligned"])
    assert by_path["aligned-here"]["path"] == str((local / "adapter.gguf").resolve())


def test_unknown_foreign_and_formatless_adapters_are_one_clear_error(trained):
    with pytest.raises(SaferlabError, match="unknown adapter 'nope'.*aligned"):
        resolve_stacks("embedded", ["nope"])
    with pytest.raises(SaferlabError, match="'other' was trained on"):
        resolve_stacks("embedded", ["other"])
    with pytest.raises(SaferlabError, match="no GGUF LoRA"):
        resolve_stacks("embedded", ["peft-only"])
    with pytest.raises(SaferlabError, match="cannot read adapter stack"):
        resolve_stacks("embedded", ["aligned+aligned"])
    with pytest.raises(SaferlabError, match="takes no adapters"):
        resolve_stacks("fake:echo", ["aligned"])


@pytest.mark.parametrize("meta, says", [
    ('{"name": "broken", "base": "embedded"}', "'base' must be an object, not str"),
    ('{"name": "broken", "training": "x"}', "'training' must be an object"),
    ('{"name": "broken", "on": {"key": 5}}', "'on.key' must be text"),
    ('{"name": "a+b@2"}', "'name' must be an adapter name"),
    ('{"name": "broken", "base": {"path": 5}}', "'base.path' must be str, not int"),
    ("not json", "is not JSON")])
def test_a_damaged_saferlab_json_is_left_out_and_named_when_asked_for(trained, meta, says):
    from saferlab.engine.saved_adapters import left_out_adapters, saved_adapters

    folder = trained["aligned"].parent / "broken"
    folder.mkdir()
    (folder / "saferlab.json").write_text(meta)
    assert "broken" not in {a.name for a in saved_adapters()}
    assert {a.name for a in saved_adapters()} >= {"aligned", "cot"}  # the others still list
    (problem,) = left_out_adapters()
    assert says in problem and str(folder / "saferlab.json") in problem
    with pytest.raises(SaferlabError, match=re.escape(says)) as err:
        resolve_stacks("embedded", ["broken"])
    assert err.value.exit_code == 3


def test_two_trained_folders_of_one_name_are_noted(trained):
    from saferlab.engine.saved_adapters import find_saved, left_out_adapters

    again = _saved(trained["aligned"].parent, "zz-copy")
    meta = json.loads((again / "saferlab.json").read_text()) | {"name": "aligned"}
    (again / "saferlab.json").write_text(json.dumps(meta))
    assert left_out_adapters() == [f"{trained['aligned']} is also called 'aligned'; "
                                   f"{again} is used"]
    assert find_saved("aligned").folder == again


def test_a_model_path_that_cannot_be_looked_at_fits_no_adapter(trained, tmp_path):
    from saferlab.engine.saved_adapters import adapters_for

    too_long = f"gguf:{tmp_path / ('b' * 300)}.gguf"  # OSError: file name too long
    assert adapters_for(too_long) == []


def test_served_adapters_are_names_on_the_server():
    keys, adapters = resolve_stacks("openai:http://127.0.0.1:9/v1#base", ["cot-sft"])
    assert keys == ["cot-sft"] and adapters["cot-sft"]["kind"] == "served"
    assert to_load(adapters) == [("cot-sft", "cot-sft")]


def test_a_run_per_stack_beside_the_base(trained):
    from saferlab.engine.plan import SessionSpec, plan_session

    plans = plan_session(SessionSpec(suites=("harmful",), limit=2,
                                     adapters=("aligned", "aligned+cot@0.5")))
    assert [p.spec.adapter for p in plans] == [None, "aligned", "aligned+cot@0.5"]
    assert plans[2].spec.adapter_stack.uses[1] == AdapterUse("cot", 0.5)
    assert set(plans[1].extra_config["adapters"]) == {"aligned", "cot"}
