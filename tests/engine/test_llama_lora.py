"""llama.cpp LoRA adapters (GGUF) on the embedded model, switched per request."""

import pytest

from saferlab.engine.types import DecodingParams, GenerationRequest, Message

pytestmark = pytest.mark.model
gguf = pytest.importorskip("gguf")


def make_gguf_lora(path, model_path, rank=4, scale=0.5, seed=0):
    """A random LoRA on every attention value projection: no training, just big enough to
    change greedy outputs. Written with the gguf package in llama.cpp's adapter format."""
    import numpy as np

    shapes = {t.name: [int(x) for x in t.shape] for t in gguf.GGUFReader(str(model_path)).tensors}
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for name, shape in sorted(shapes.items()):
        if not name.endswith("attn_v.weight"):
            continue
        n_in, n_out = shape
        writer.add_tensor(f"{name}.lora_a", (rng.standard_normal((rank, n_in)) * scale).astype("float32"))
        writer.add_tensor(f"{name}.lora_b", (rng.standard_normal((n_out, rank)) * scale).astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def ask(adapter=None):
    return GenerationRequest("q", (Message("user", "Name three colours."),),
                             DecodingParams(max_tokens=16), adapter=adapter)


def test_gguf_lora_switches_on_the_resident_model(tmp_path, embedded_path, embedded_backend):
    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import parse_model_spec

    lora = make_gguf_lora(tmp_path / "noisy-v.gguf", embedded_path)
    backend = load_backend(parse_model_spec("embedded"), n_ctx=2048, adapters=[str(lora)])
    try:
        assert backend.info()["adapters"] == {"noisy-v": str(lora)}
        base = list(backend.generate([ask()]))[0]
        adapted = list(backend.generate([ask("noisy-v")]))[0]
        again = list(backend.generate([ask(), ask("noisy-v")]))
        unknown = list(backend.generate([ask("nope")]))[0]
    finally:
        backend.close()
    reference = list(embedded_backend.generate([ask()]))[0]
    assert base.error is None and adapted.error is None
    assert base.text == reference.text  # loading the adapter leaves the base untouched
    assert adapted.text != base.text
    assert [r.text for r in again] == [base.text, adapted.text]
    assert unknown.error and "unknown adapter 'nope'" in unknown.error


def test_gguf_loras_stack_with_scales(tmp_path, embedded_path):
    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import parse_model_spec

    one = make_gguf_lora(tmp_path / "one.gguf", embedded_path, seed=1)
    two = make_gguf_lora(tmp_path / "two.gguf", embedded_path, seed=2)
    backend = load_backend(parse_model_spec("embedded"), n_ctx=2048,
                           adapters=[("first", str(one)), ("second", str(two))])
    try:
        assert backend.info()["adapters"] == {"first": str(one), "second": str(two)}
        texts = {a: list(backend.generate([ask(a)]))[0].text
                 for a in (None, "first", "second", "first+second", "first+second@0.5")}
        again = list(backend.generate([ask("first")]))[0].text
    finally:
        backend.close()
    assert len(set(texts.values())) == 5  # every stack and scale decodes differently
    assert again == texts["first"]  # switching back restores the single adapter
