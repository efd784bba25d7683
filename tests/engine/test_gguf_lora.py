"""PEFT LoRA adapters converted to llama.cpp LoRA files: the conversion's parts on small arrays,
then one adapter on the embedded model, run by llama.cpp and by transformers + PEFT."""

import json
import warnings

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
save_file = pytest.importorskip("safetensors.numpy").save_file

from saferlab.engine.adapters import check_gguf_lora  # noqa: E402
from saferlab.engine.errors import EXIT_MODEL, SaferlabError  # noqa: E402
from saferlab.engine.finetune.gguf_lora import (base_model_params, gguf_tensor_name,  # noqa: E402
                                                peft_to_gguf, rope_permute)
from saferlab.engine.types import DecodingParams, GenerationRequest, Message  # noqa: E402

PREFIX = "base_model.model.model.layers"


def write_peft(folder, weights, **config):
    """A PEFT LoRA folder as peft saves it, written by hand (no torch)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_rslora": False,
              "use_dora": False, "target_modules": ["q_proj", "k_proj", "v_proj"]} | config
    (folder / "adapter_config.json").write_text(json.dumps(config))
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
              str(folder / "adapter_model.safetensors"))
    return folder


def small_lora(rank=2, hidden=8, kv=4, seed=0):
    """One layer of a model with 2 query heads of 4 dims and 1 key/value head."""
    rng = np.random.default_rng(seed)
    weights = {}
    for module, rows in (("q_proj", hidden), ("k_proj", kv), ("v_proj", kv)):
        key = f"{PREFIX}.0.self_attn.{module}"
        weights[f"{key}.lora_A.weight"] = rng.standard_normal((rank, hidden))
        weights[f"{key}.lora_B.weight"] = rng.standard_normal((rows, rank))
    return weights


def read_lora(path):
    reader = gguf.GGUFReader(str(path))
    fields = {f.name: f.contents() for f in reader.fields.values()}
    tensors = {t.name: t for t in reader.tensors}
    return fields, tensors


def test_peft_keys_map_to_llama_cpp_names():
    assert (gguf_tensor_name(f"{PREFIX}.3.self_attn.q_proj.lora_A.weight")
            == "blk.3.attn_q.weight.lora_a")
    assert (gguf_tensor_name(f"{PREFIX}.12.self_attn.o_proj.lora_B.weight")
            == "blk.12.attn_output.weight.lora_b")
    assert (gguf_tensor_name(f"{PREFIX}.0.mlp.down_proj.lora_B.weight")
            == "blk.0.ffn_down.weight.lora_b")
    for key in (f"{PREFIX}.0.self_attn.rotary.lora_A.weight",
                "base_model.model.lm_head.lora_A.weight",
                "base_model.model.model.embed_tokens.lora_embedding_A",
                f"{PREFIX}.0.self_attn.q_proj.lora_magnitude_vector"):
        with pytest.raises(SaferlabError) as err:
            gguf_tensor_name(key)
        assert err.value.exit_code == EXIT_MODEL


def test_permuting_lora_b_rows_permutes_the_weight_update():
    """llama.cpp's converter reorders the rows of q and k; B @ A must follow (A stays)."""
    rng = np.random.default_rng(1)
    n_head, head_dim, hidden, rank = 3, 8, 24, 4
    a, b = rng.standard_normal((rank, hidden)), rng.standard_normal((n_head * head_dim, rank))

    def reference(w):  # per head: row i of the first half, then row i of the second half
        half = head_dim // 2
        return w[[h * head_dim + side * half + i
                  for h in range(n_head) for i in range(half) for side in (0, 1)]]

    assert np.array_equal(rope_permute(b, n_head) @ a, reference(b @ a))
    assert np.array_equal(rope_permute(b @ a, n_head), reference(b @ a))
    assert not np.array_equal(rope_permute(b, n_head), b)
    with pytest.raises(SaferlabError):
        rope_permute(b, 5)


@pytest.mark.parametrize("dtype,ggml_type", [("f16", gguf.GGMLQuantizationType.F16),
                                             ("f32", gguf.GGMLQuantizationType.F32)])
def test_written_file_is_a_llama_cpp_lora(tmp_path, dtype, ggml_type):
    weights = small_lora()
    folder = write_peft(tmp_path / "tiny", weights)
    out = tmp_path / "out" / "tiny.gguf"
    assert peft_to_gguf(folder, out, arch="llama", n_head=2, n_head_kv=1, dtype=dtype,
                        base_name="Tiny Base") == out
    info = check_gguf_lora(out)
    assert (info["name"], info["alpha"], info["base_model"]) == ("tiny", 4.0, "Tiny Base")
    assert [p.name for p in out.parent.iterdir()] == ["tiny.gguf"]  # no temporary file left
    fields, tensors = read_lora(out)
    assert fields["general.architecture"] == "llama"
    assert len(tensors) == 6 and {t.tensor_type for t in tensors.values()} == {ggml_type}
    tol = 1e-2 if dtype == "f16" else 0
    q_a, q_b = (weights[f"{PREFIX}.0.self_attn.q_proj.lora_{x}.weight"] for x in "AB")
    k_b = weights[f"{PREFIX}.0.self_attn.k_proj.lora_B.weight"]
    v_b = weights[f"{PREFIX}.0.self_attn.v_proj.lora_B.weight"]
    # numpy shapes as PEFT has them; GGUF lists the dims reversed, as llama.cpp checks them
    assert list(tensors["blk.0.attn_q.weight.lora_a"].shape) == [8, 2]
    assert list(tensors["blk.0.attn_q.weight.lora_b"].shape) == [2, 8]
    np.testing.assert_allclose(tensors["blk.0.attn_q.weight.lora_a"].data, q_a, atol=tol)
    np.testing.assert_allclose(tensors["blk.0.attn_q.weight.lora_b"].data, rope_permute(q_b, 2),
                               atol=tol)
    np.testing.assert_allclose(tensors["blk.0.attn_k.weight.lora_b"].data, rope_permute(k_b, 1),
                               atol=tol)
    np.testing.assert_allclose(tensors["blk.0.attn_v.weight.lora_b"].data, v_b, atol=tol)

    # qwen2 keeps transformers' row order; rslora's alpha/sqrt(r) is carried by B
    peft_to_gguf(write_peft(tmp_path / "rs", weights, use_rslora=True), tmp_path / "rs.gguf",
                 arch="qwen2", n_head=2, n_head_kv=1, dtype=dtype)
    fields, tensors = read_lora(tmp_path / "rs.gguf")
    assert fields["general.architecture"] == "qwen2" and "general.base_model.0.name" not in fields
    np.testing.assert_allclose(tensors["blk.0.attn_q.weight.lora_b"].data, q_b * np.sqrt(2),
                               atol=2 * tol)


def test_bfloat16_weights_are_read_without_torch(tmp_path):
    """numpy has no bfloat16, which safetensors.numpy refuses; such adapters are widened."""
    weights = {k: v.astype(np.float32) for k, v in small_lora().items()}
    folder = write_peft(tmp_path / "bf16", weights)
    header, chunks, offset = {}, [], 0
    for key, value in weights.items():  # bfloat16 is the upper half of a float32
        data = (value.view(np.uint32) >> 16).astype("<u2").tobytes()
        header[key] = {"dtype": "BF16", "shape": list(value.shape),
                       "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    (folder / "adapter_model.safetensors").write_bytes(
        len(head).to_bytes(8, "little") + head + b"".join(chunks))
    out = peft_to_gguf(folder, tmp_path / "bf16.gguf", arch="qwen3", n_head=2, n_head_kv=1,
                       dtype="f32")
    _, tensors = read_lora(out)
    v_a = weights[f"{PREFIX}.0.self_attn.v_proj.lora_A.weight"]
    truncated = ((v_a.view(np.uint32) >> 16) << 16).view(np.float32)
    assert np.array_equal(tensors["blk.0.attn_v.weight.lora_a"].data, truncated)
    assert not np.array_equal(truncated, v_a)


@pytest.mark.parametrize("change,words", [
    ({"use_dora": True}, "DoRA"),
    ({"lora_bias": True}, "bias LoRA"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, "LoRA on embed_tokens"),
    ({"peft_type": "IA3"}, "only LoRA adapters"),
])
def test_what_llama_cpp_cannot_apply_is_refused(tmp_path, change, words):
    folder = write_peft(tmp_path / "bad", small_lora(), **change)
    with pytest.raises(SaferlabError, match=words) as err:
        peft_to_gguf(folder, tmp_path / "bad.gguf", arch="llama", n_head=2, n_head_kv=1)
    assert err.value.exit_code == EXIT_MODEL
    assert not (tmp_path / "bad.gguf").exists()


def test_unknown_module_arch_or_dtype_is_refused(tmp_path):
    weights = small_lora() | {f"{PREFIX}.0.self_attn.rotary.lora_A.weight": np.ones((2, 8)),
                              f"{PREFIX}.0.self_attn.rotary.lora_B.weight": np.ones((8, 2))}
    folder = write_peft(tmp_path / "odd", weights, target_modules="q_proj|rotary")
    with pytest.raises(SaferlabError, match="not rotary"):
        peft_to_gguf(folder, tmp_path / "odd.gguf", arch="llama", n_head=2, n_head_kv=1)
    good = write_peft(tmp_path / "good", small_lora())
    with pytest.raises(SaferlabError, match="'gemma2' architecture"):
        peft_to_gguf(good, tmp_path / "x.gguf", arch="gemma2", n_head=2, n_head_kv=1)
    with pytest.raises(SaferlabError, match="dtype 'q8_0'"):
        peft_to_gguf(good, tmp_path / "x.gguf", arch="llama", n_head=2, n_head_kv=1, dtype="q8_0")
    half = {k: v for k, v in small_lora().items() if "v_proj.lora_B" not in k}
    with pytest.raises(SaferlabError, match="A and B"):
        peft_to_gguf(write_peft(tmp_path / "half", half), tmp_path / "x.gguf", arch="llama",
                     n_head=2, n_head_kv=1)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*.tmp"))


def test_base_model_params_come_from_the_gguf_header(embedded_path, tmp_path):
    assert base_model_params(embedded_path) == {
        "arch": "llama", "n_head": 9, "n_head_kv": 3,
        "base_name": "Smollm2 135M 8k Lc100K Mix1 Ep2"}
    (tmp_path / "not.gguf").write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(SaferlabError, match="not a GGUF model"):
        base_model_params(tmp_path / "not.gguf")


# -- on the embedded model ---------------------------------------------------------------------

# Prompts whose base outputs agree between llama.cpp (Q4_1) and transformers (dequantized).
PROMPTS = ("Name three colours.", "What is 2 + 2?", "Who wrote Hamlet?")
SCALE = 0.5  # of PEFT's random B: outputs change, yet stay sentences


def make_peft_lora(folder, model_path, scale=SCALE, seed=0):
    """A random LoRA with non-zero B on every linear layer of the embedded model, saved by peft.
    A LoRA's weights do not depend on the base's, so peft wraps a model of the embedded one's
    shapes with random weights: reading the real ones would take ten seconds more."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from saferlab.engine.gguf_meta import read_gguf_header

    meta, _ = read_gguf_header(model_path)
    config = LlamaConfig(
        hidden_size=meta["llama.embedding_length"],
        intermediate_size=meta["llama.feed_forward_length"],
        num_hidden_layers=meta["llama.block_count"],
        num_attention_heads=meta["llama.attention.head_count"],
        num_key_value_heads=meta["llama.attention.head_count_kv"], vocab_size=64)
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # peft calls a name that transformers 5 deprecates
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        model = get_peft_model(LlamaForCausalLM(config), LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.mul_(scale)
    model.save_pretrained(str(folder))
    return folder


def ask(text, adapter=None):
    return GenerationRequest(f"{text}|{adapter}", (Message("user", text),),
                             DecodingParams(max_tokens=8), adapter=adapter)


def last_logits_llama_cpp(model_path, ids, lora=None):
    import llama_cpp

    extra = {"lora_path": str(lora)} if lora else {}
    llm = llama_cpp.Llama(str(model_path), n_ctx=256, n_threads=1, logits_all=True,
                          verbose=False, **extra)
    try:
        llm.eval(ids)
        return np.array(llm.scores[len(ids) - 1])
    finally:
        llm.close()


@pytest.mark.model
def test_converted_lora_decodes_in_llama_cpp_as_peft_in_transformers(tmp_path, embedded_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from saferlab.engine.backends import load_backend
    from saferlab.engine.models import parse_model_spec

    threads = torch.get_num_threads()
    peft_dir = make_peft_lora(tmp_path / "noisy", embedded_path)
    lora = peft_to_gguf(peft_dir, tmp_path / "noisy.gguf", **base_model_params(embedded_path))
    requests = [ask(text, adapter) for text in PROMPTS for adapter in (None, "noisy")]
    # One request at a time (the reference): batched kernels round differently, and the
    # comparison needs the base model's outputs to agree across the two engines.
    cpp = load_backend(parse_model_spec("embedded"), n_ctx=1024, n_threads=1,
                       adapters=[str(lora)], batch_size=1)
    try:
        by_cpp = {r.request_id: r for r in cpp.generate(requests)}
    finally:
        cpp.close()
    hf = load_backend(parse_model_spec(f"hf:{embedded_path.parent}#{embedded_path.name}"),
                      adapters=[str(peft_dir)], device="cpu", n_threads=1)
    try:
        by_hf = {r.request_id: r for r in hf.generate(requests)}
        # the adapted and base logits of one prompt's first generated token, in transformers
        ids = hf.tokenizer(hf.render((Message("user", PROMPTS[0]),)),
                           add_special_tokens=False)["input_ids"]
        assert len(hf.model.peft_config) == 1  # the one adapter, active unless disabled
        with torch.no_grad():
            hf_adapted = hf.model(torch.tensor([ids])).logits[0, -1].numpy()
            with hf.model.disable_adapter():
                hf_base = hf.model(torch.tensor([ids])).logits[0, -1].numpy()
    finally:
        hf.close()
        torch.set_num_threads(threads)
    assert all(r.error is None for r in [*by_cpp.values(), *by_hf.values()])

    text = {(engine, r.request_id): r.text for engine, got in (("cpp", by_cpp), ("hf", by_hf))
            for r in got.values()}
    compared = []
    for prompt in PROMPTS:
        base, adapted = f"{prompt}|None", f"{prompt}|noisy"
        if text["cpp", base] != text["hf", base]:
            continue  # Q4_1 in llama.cpp against its dequantized weights: the base differs
        compared.append(prompt)
        assert text["cpp", adapted] == text["hf", adapted], prompt
        assert text["cpp", adapted] != text["cpp", base], prompt
    assert compared, f"the base model decodes differently in both engines: {text}"

    cpp_base = last_logits_llama_cpp(embedded_path, ids)
    cpp_adapted = last_logits_llama_cpp(embedded_path, ids, lora)
    # the adapter changes the first token, the same way in both engines
    assert cpp_base.argmax() == hf_base.argmax() != hf_adapted.argmax() == cpp_adapted.argmax()
    assert np.corrcoef(cpp_adapted - cpp_base, hf_adapted - hf_base)[0, 1] > 0.9
