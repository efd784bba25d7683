import struct

import pytest

from saferlab.engine.environment import environment
from saferlab.engine.errors import SaferlabError
from saferlab.engine.gguf_meta import gguf_summary, human_count, read_gguf_header


def gguf_bytes(kv: list[tuple[str, int, bytes]], tensors: list[tuple[str, list[int]]]) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, vtype, value in kv:
        out += s(key) + struct.pack("<I", vtype) + value
    for name, dims in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", 0, 0)
    return out


def string_value(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def test_a_crafted_header_is_read(tmp_path):
    vocab = b"".join(string_value(f"tok{i}") for i in range(1000))
    path = tmp_path / "tiny.gguf"
    path.write_bytes(gguf_bytes([
        ("general.architecture", 8, string_value("llama")),
        ("general.name", 8, string_value("Tiny")),
        ("general.file_type", 4, struct.pack("<I", 15)),
        ("llama.context_length", 4, struct.pack("<I", 2048)),
        ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 1000) + vocab),
        ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 1000) + b"\0" * 4000),
        ("some.small", 9, struct.pack("<IQ", 5, 3) + struct.pack("<iii", 1, -2, 3)),
    ], [("tok_embd", [64, 1000]), ("out", [64])]) + b"\0" * 32)
    meta, tensors = read_gguf_header(path)
    assert meta["tokenizer.ggml.tokens"] == {"array_length": 1000}
    assert meta["some.small"] == [1, -2, 3]
    assert tensors == [("tok_embd", [64, 1000]), ("out", [64])]
    summary = gguf_summary(path)
    assert summary["quantization"] == "Q4_K_M" and summary["parameters"] == 64_064
    assert summary["context_length"] == 2048 and summary["name"] == "Tiny"
    assert not summary["chat_template"]


@pytest.mark.parametrize("content,message", [
    (b"", "not a GGUF file"),
    (b"PK\x03\x04 not a model", "not a GGUF file"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 2), "truncated"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40), "corrupt"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string_value("k") + struct.pack("<I", 99), "value type 99"),
])
def test_bad_headers_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(SaferlabError, match=message):
        gguf_summary(path)


def test_the_embedded_model_describes_itself(embedded_path):
    s = gguf_summary(embedded_path)
    assert s["architecture"] == "llama" and s["quantization"] == "Q4_1"
    assert 134_000_000 < s["parameters"] < 135_000_000  # transformers counts 134.5M
    assert s["context_length"] == 8192 and s["chat_template"]
    assert human_count(s["parameters"]) == "135M"


def test_environment_names_the_machine():
    env = environment()
    assert env["cpu"] and env["cpu_count"] >= 1 and env["python"].count(".") == 2
    assert env["libraries"]["saferlab"]
