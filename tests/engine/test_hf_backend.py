"""The transformers backend on the embedded model (its GGUF read through transformers), and
PEFT LoRA adapters, one trained here, switched per request on one resident base."""

import copy
import json
import struct
import threading
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
save_safetensors = pytest.importorskip("safetensors.torch").save_file
load_safetensors = pytest.importorskip("safetensors.torch").load_file

from saferlab.engine.adapters import (check_gguf_lora, check_peft_adapter,  # noqa: E402
                                      describe_adapter)
from saferlab.engine.backends import load_backend  # noqa: E402
from saferlab.engine.backends.hf import HfBackend  # noqa: E402
from saferlab.engine.errors import EXIT_MODEL, SaferlabError  # noqa: E402
from saferlab.engine.models import embedded_model_path, parse_model_spec  # noqa: E402
from saferlab.engine.types import DecodingParams, GenerationRequest, Message  # noqa: E402

QUESTION = "What is your favourite fruit?"
PROMPTS = ["What is the capital of France?", "Name three colours.",
           "Write one sentence about the sea, please, in a calm and friendly tone.", "Hi"]


def ask(text, rid=None, adapter=None, **params):
    return GenerationRequest(rid or text[:20], (Message("user", text),),
                             DecodingParams(**({"max_tokens": 16} | params)), adapter=adapter)


@pytest.fixture(scope="module")
def gguf_ref():
    pytest.importorskip("gguf")
    path = embedded_model_path()
    return parse_model_spec(f"hf:{path.parent}#{path.name}")


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch spins its threads at every operation's barrier: with as many threads as cores,
    any other busy process on a 2-core machine slows decoding tenfold (16 min against 100 s
    for this file). One thread keeps the tests' time steady; n_threads is the same option
    that --threads sets."""
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hf_backend(gguf_ref, one_torch_thread):
    backend = HfBackend(gguf_ref, device="cpu", batch_size=4, n_threads=one_torch_thread)
    assert torch.get_num_threads() == one_torch_thread
    yield backend
    backend.close()


# -- the base model ---------------------------------------------------------------------------


@pytest.mark.model
def test_loads_the_gguf_with_its_chat_template(hf_backend):
    info = hf_backend.info()
    assert info["backend"] == "hf" and info["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["base_loads"] == 1
    assert info["chat_template"] == "gguf" and info["architecture"] == "llama"
    assert info["transformers_version"] == transformers.__version__ and info["adapters"] == []
    prompt = hf_backend.render((Message("system", "S"), Message("user", "U")))
    assert prompt.startswith("<|im_start|>system\nS<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.model
def test_a_greedy_batch_is_deterministic_and_counts_tokens(hf_backend):
    reqs = [ask(p) for p in PROMPTS]
    first = list(hf_backend.generate(reqs))
    second = list(hf_backend.generate(reqs))
    assert sorted(r.request_id for r in first) == sorted(q.id for q in reqs)
    by_id = {r.request_id: r for r in second}
    for r in first:
        assert r.ok and r.text.strip() and r.text == by_id[r.request_id].text
        assert 0 < r.completion_tokens <= 16 and r.prompt_tokens > 10
        assert (r.finish_reason == "length") == (r.completion_tokens == 16)
        assert r.duration_ms >= (r.ttft_ms or 0) > 0
    counts = {r.request_id: r.prompt_tokens for r in first}
    # Non-pad tokens only: the long prompt counts more than the short one in the same batch.
    assert counts[reqs[2].id] > counts[reqs[3].id] + 5
    assert len({r.duration_ms for r in first}) == 1  # one batch, one duration


@pytest.mark.model
def test_left_padding_does_not_change_greedy_answers(hf_backend, monkeypatch):
    reqs = [ask(p) for p in PROMPTS]
    texts = {}
    for size in (4, 2, 1):
        monkeypatch.setattr(hf_backend, "batch_size", size)
        texts[size] = {r.request_id: r.text for r in hf_backend.generate(reqs)}
    assert texts[4] == texts[1] and texts[2] == texts[1]


@pytest.mark.model
def test_max_tokens_and_sampling_seed(hf_backend):
    (r,) = hf_backend.generate([ask("Write a long story about a dragon.", max_tokens=5)])
    assert r.completion_tokens == 5 and r.finish_reason == "length"
    sampled = [ask("Tell me a short joke.", rid=f"s{seed}", max_tokens=24, temperature=1.0,
                   top_p=0.95, top_k=40, seed=seed) for seed in (1, 1, 2)]
    a, b, c = (next(hf_backend.generate([req])).text for req in sampled)
    assert a == b and a != c


@pytest.mark.model
def test_cancel_between_tokens_stops_the_batch_and_what_follows(hf_backend, monkeypatch):
    monkeypatch.setattr(hf_backend, "batch_size", 2)
    cancel = threading.Event()
    pieces: dict[str, list[str]] = {}

    def on_token(request_id, text):
        pieces.setdefault(request_id, []).append(text)
        if sum(map(len, pieces.values())) >= 3:
            cancel.set()

    reqs = [ask(f"Write a long story about a dragon named {n}.", rid=n, max_tokens=200)
            for n in ("Ann", "Bob", "Cid", "Dan")]
    results = list(hf_backend.generate(reqs, cancel, on_token))
    assert len(results) == 2  # the batch in flight, nothing after it
    for r in results:
        assert r.finish_reason == "cancelled" and not r.ok
        assert 1 <= r.completion_tokens <= 3
        assert "".join(pieces[r.request_id]) == r.text
    assert list(hf_backend.generate(reqs, cancel)) == []  # set before the call: nothing runs


@pytest.mark.model
def test_out_of_memory_halves_the_batch_and_retries(hf_backend, monkeypatch):
    reqs = [ask(p) for p in PROMPTS]
    expected = {r.request_id: r.text for r in hf_backend.generate(reqs)}
    real, sizes = hf_backend.model.generate, []

    def tight(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if sizes[-1] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(hf_backend.model, "generate", tight)
    results = list(hf_backend.generate(reqs))
    assert sizes == [4, 2, 1, 1, 1, 1]  # 4 fails, 2 fails, then one at a time
    assert {r.request_id: r.text for r in results} == expected


@pytest.mark.model
def test_item_failures_are_results(hf_backend):
    results = list(hf_backend.generate([ask("Hi", rid="a", adapter="nope"), ask("Hi", rid="b")]))
    assert results[0].request_id == "a" and "unknown adapter 'nope'" in results[0].error
    assert "none loaded" in results[0].error
    assert results[1].ok


@pytest.mark.model
def test_a_model_folder_answers_like_the_gguf(hf_backend, tmp_path):
    """hf:DIR, a transformers folder: the embedded model's dequantized weights saved as
    safetensors (save_pretrained refuses a model loaded from GGUF) with its tokenizer."""
    model = hf_backend.model
    config = copy.deepcopy(model.config)
    del config.quantization_config
    config.save_pretrained(tmp_path)
    tied = config.tie_word_embeddings
    save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()
                      if not (tied and k == "lm_head.weight")},
                     str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf_backend.tokenizer.save_pretrained(tmp_path)
    folder = HfBackend(parse_model_spec(f"hf:{tmp_path}"), device="cpu")
    info = folder.info()
    assert info["gguf_file"] is None and info["path"] == str(tmp_path)
    assert info["chat_template"] == "tokenizer" and info["dtype"] == "float32"
    reqs = [ask(p) for p in PROMPTS[:2]]
    assert ({r.request_id: r.text for r in folder.generate(reqs)}
            == {r.request_id: r.text for r in hf_backend.generate(reqs)})
    folder.close()


# -- a LoRA adapter trained here ------------------------------------------------------------


@pytest.fixture(scope="module")
def banana_adapter(hf_backend, tmp_path_factory):
    """A LoRA (r=8 on q_proj, v_proj) that teaches the model to answer BANANA to QUESTION,
    trained on a copy of the resident model until its greedy answer changes."""
    tok = hf_backend.tokenizer
    prompt = tok(hf_backend.render((Message("user", QUESTION),)), add_special_tokens=False)
    prompt_ids = prompt["input_ids"]
    answer_ids = tok("BANANA", add_special_tokens=False)["input_ids"] + [hf_backend.stop_ids[0]]
    ids = torch.tensor([prompt_ids + answer_ids])
    labels = ids.clone()
    labels[0, :len(prompt_ids)] = -100  # learn the answer only
    torch.manual_seed(0)
    with warnings.catch_warnings():  # transformers 5 deprecates a name PEFT still calls
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        model = peft.get_peft_model(copy.deepcopy(hf_backend.model), peft.LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
            task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for step in range(1, 81):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 5 == 0:
            with torch.inference_mode():
                out = model.generate(input_ids=torch.tensor([prompt_ids]), max_new_tokens=4,
                                     do_sample=False)
            if tok.decode(out[0, len(prompt_ids):], skip_special_tokens=True).startswith("BAN"):
                break
    else:
        pytest.fail("80 LoRA steps did not teach the model its answer")
    folder = tmp_path_factory.mktemp("adapters") / "banana.v1"  # a dot PEFT would refuse
    with warnings.catch_warnings():  # PEFT cannot tell whether a GGUF's vocabulary changed
        warnings.filterwarnings("ignore", "Could not find a config file")
        model.save_pretrained(folder, safe_serialization=True)
    del model, optimizer
    return folder


@pytest.fixture(scope="module")
def zero_adapter(banana_adapter, tmp_path_factory):
    """The banana adapter with its B matrices zeroed: loaded, active, and a no-op."""
    folder = tmp_path_factory.mktemp("adapters") / "zero"
    folder.mkdir()
    (folder / "adapter_config.json").write_bytes(
        (banana_adapter / "adapter_config.json").read_bytes())
    weights = load_safetensors(str(banana_adapter / "adapter_model.safetensors"))
    save_safetensors({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in weights.items()},
                     str(folder / "adapter_model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def lora_backend(gguf_ref, banana_adapter, zero_adapter):
    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained
    transformers.AutoModelForCausalLM.from_pretrained = (
        lambda *a, **k: calls.append(a) or real(*a, **k))
    try:
        backend = HfBackend(gguf_ref, device="cpu", adapters=[banana_adapter, zero_adapter])
    finally:
        transformers.AutoModelForCausalLM.from_pretrained = real
    backend.from_pretrained_calls = calls
    yield backend
    backend.close()


@pytest.mark.model
def test_adapters_switch_per_request_on_one_resident_base(lora_backend, banana_adapter):
    info = lora_backend.info()
    banana, zero = info["adapters"]
    assert banana["name"] == "banana.v1" and banana["path"] == str(banana_adapter.resolve())
    assert zero["name"] == "zero" and banana["sha256"] != zero["sha256"]
    assert len(banana["sha256"]) == 64 and info["peft_version"] == peft.__version__

    def answer(adapter):
        (r,) = lora_backend.generate([ask(QUESTION, adapter=adapter, max_tokens=8)])
        assert r.ok, r.error
        return r.text

    base, tuned = answer(None), answer("banana.v1")
    assert tuned.startswith("BANANA") and not base.startswith("BAN") and base != tuned
    sequence = (None, "banana.v1", "zero", None, "banana.v1", "zero")
    assert [answer(a) for a in sequence] == [base, tuned, base, base, tuned, base]
    # All in one call: grouped by adapter, each group decoded under its own.
    mixed = {r.request_id: r.text for r in lora_backend.generate(
        [ask(QUESTION, rid=f"r{i}", adapter=a, max_tokens=8) for i, a in enumerate(sequence)])}
    assert [mixed[f"r{i}"] for i in range(6)] == [base, tuned, base, base, tuned, base]
    (bad,) = lora_backend.generate([ask(QUESTION, adapter="cherry")])
    assert "unknown adapter 'cherry'" in bad.error and "banana.v1, zero" in bad.error
    assert lora_backend.info()["base_loads"] == 1 and len(lora_backend.from_pretrained_calls) == 1


@pytest.mark.model
def test_adapters_stack_with_scales(lora_backend):
    def answer(adapter):
        (r,) = lora_backend.generate([ask(QUESTION, adapter=adapter, max_tokens=8)])
        assert r.ok, r.error
        return r.text

    base, tuned = answer(None), answer("banana.v1")
    assert answer("banana.v1@0") == base  # at scale 0 the adapter adds nothing
    assert answer("zero+banana.v1") == tuned  # deltas add: the zero adapter adds nothing
    assert answer("banana.v1+zero@0.5") == tuned
    assert answer("banana.v1") == tuned  # scales are put back after a scaled stack
    (bad,) = lora_backend.generate([ask(QUESTION, adapter="banana.v1+cherry")])
    assert "unknown adapter 'cherry'" in bad.error


@pytest.mark.model
def test_the_base_answer_is_the_plain_models(hf_backend, lora_backend):
    (plain,) = hf_backend.generate([ask(QUESTION, max_tokens=8)])
    (disabled,) = lora_backend.generate([ask(QUESTION, max_tokens=8)])
    assert disabled.text == plain.text


# -- checks before loading: no model needed --------------------------------------------------


def lora_folder(folder, weights="adapter_model.safetensors", peft_type="LORA"):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": peft_type, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"}))
    (folder / weights).write_bytes(b"\x80\x04not really weights")
    return folder


def test_a_damaged_adapter_is_named_when_it_does_not_load(gguf_ref, banana_adapter, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "adapter_config.json").write_bytes(
        (banana_adapter / "adapter_config.json").read_bytes())
    weights = (banana_adapter / "adapter_model.safetensors").read_bytes()
    (damaged / "adapter_model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(SaferlabError) as err:
        HfBackend(gguf_ref, device="cpu", adapters=[banana_adapter, damaged])
    assert err.value.exit_code == 3
    assert f"the LoRA adapter {damaged} does not load" in err.value.message
    assert "a damaged file" in err.value.message


def test_a_pickled_adapter_is_refused_before_any_model_loads(tmp_path):
    bad = lora_folder(tmp_path / "pickled", weights="adapter_model.bin")
    with pytest.raises(SaferlabError) as err:
        check_peft_adapter(bad)
    assert str(err.value) == f"only safetensors adapters are loaded: {bad} has adapter_model.bin"
    with pytest.raises(SaferlabError, match="only safetensors adapters"):
        HfBackend(parse_model_spec("hf:saferlab-tests/no-such-model"), adapters=[bad])


def test_adapter_checks(tmp_path):
    good = lora_folder(tmp_path / "good")
    info = check_peft_adapter(good)
    assert info["name"] == "good" and info["base_model"] == "HuggingFaceTB/SmolLM2-135M"
    (good / "adapter_model.safetensors").write_bytes(b"other weights")
    assert check_peft_adapter(good)["sha256"] != info["sha256"]
    with pytest.raises(SaferlabError, match="adapter not found") as err:
        check_peft_adapter(tmp_path / "missing")
    assert err.value.exit_code == EXIT_MODEL
    with pytest.raises(SaferlabError, match="only LoRA adapters"):
        check_peft_adapter(lora_folder(tmp_path / "ia3", peft_type="IA3"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaferlabError, match="no adapter_config.json"):
        check_peft_adapter(tmp_path / "empty")


def test_describe_adapter_tells_the_kinds_apart(tmp_path):
    peft_info = describe_adapter(lora_folder(tmp_path / "p"))
    assert peft_info["kind"] == "peft" and peft_info["name"] == "p"
    lora = gguf_file(tmp_path / "g.gguf", {"general.type": "adapter", "adapter.type": "lora"})
    assert describe_adapter(lora)["kind"] == "gguf-lora"
    with pytest.raises(SaferlabError, match="LoRA file not found"):
        describe_adapter(tmp_path / "gone.gguf")
    with pytest.raises(SaferlabError, match="adapter not found"):
        describe_adapter(tmp_path / "gone")


def gguf_file(path, meta):
    """A GGUF header with string key-values only, like a LoRA's."""
    blob = b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta))
    for key, value in meta.items():
        blob += struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", 8)
        blob += struct.pack("<Q", len(value)) + value.encode()
    path.write_bytes(blob)
    return path


def test_gguf_lora_checks(tmp_path, embedded_path):
    lora = gguf_file(tmp_path / "l.gguf", {"general.type": "adapter", "adapter.type": "lora"})
    assert check_gguf_lora(lora)["name"] == "l"
    with pytest.raises(SaferlabError, match="is a GGUF model, not a LoRA adapter"):
        check_gguf_lora(gguf_file(tmp_path / "m.gguf", {"general.type": "model"}))
    with pytest.raises(SaferlabError, match="not a LoRA adapter"):
        check_gguf_lora(embedded_path)
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(SaferlabError, match="not a GGUF LoRA file"):
        check_gguf_lora(tmp_path / "x.gguf")
    with pytest.raises(SaferlabError, match="LoRA file not found"):
        check_gguf_lora(tmp_path / "none.gguf")


def test_a_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(SaferlabError) as err:
        load_backend(parse_model_spec("hf:saferlab-tests/no-such-model"))
    assert err.value.exit_code == EXIT_MODEL
    assert "huggingface-cli download saferlab-tests/no-such-model" in str(err.value)
    assert "HF_HUB_OFFLINE" in str(err.value)
    with pytest.raises(SaferlabError, match="model folder not found"):
        HfBackend(parse_model_spec(f"hf:{tmp_path}/nothing/here"))
    with pytest.raises(SaferlabError, match="model file not found"):
        HfBackend(parse_model_spec(f"hf:{tmp_path}#nothing.gguf"))
    with pytest.raises(SaferlabError, match="no config.json"):
        HfBackend(parse_model_spec(f"hf:{tmp_path}"))
