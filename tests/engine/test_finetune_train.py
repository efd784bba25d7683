"""A tiny LoRA trained for a few steps on the embedded model: the loss falls, the prompt is
masked, the GGUF LoRA changes llama.cpp's output, the stored training set hashes to its
recorded sha256, and an interrupted training resumes from its checkpoint."""

import json
import threading

import pytest

pytestmark = pytest.mark.model
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")

from saferlab.engine.events import TrainingStep  # noqa: E402
from saferlab.engine.finetune.data import DataSpec, Example, examples_sha256  # noqa: E402
from saferlab.engine.finetune.spec import TrainSpec  # noqa: E402
from saferlab.engine.types import DecodingParams, GenerationRequest, Message  # noqa: E402

QUESTION = "Maya has 12 apples. Maya buys 5 more apples. How many apples does Maya have now?"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from saferlab.engine.models import embedded_model_path

    path = embedded_model_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def test_only_the_answer_and_its_end_of_turn_are_learned(tokenizer):
    from saferlab.engine.finetune.tensors import encode, turn_end

    end = turn_end(tokenizer)
    assert end == "<|im_end|>"
    messages = (Message("user", QUESTION), Message("assistant", "The answer is 17."))
    ids, labels = encode(tokenizer, messages, 512, end)
    prompt = tokenizer.apply_chat_template([messages[0].to_dict()], tokenize=False,
                                           add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert ids[:n_prompt] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert tokenizer.decode(ids[n_prompt:]) == "The answer is 17.<|im_end|>"
    assert encode(tokenizer, messages, n_prompt + 2, end) is None  # too long: left out


def test_keep_answers_are_learned_on_their_opening_only(tokenizer):
    """Keep examples (the model's own answers) are learned on their first keep_loss_tokens
    tokens, and cut there; refusals and reasoning are learned whole."""
    from saferlab.engine.finetune.tensors import encode_all

    answer = "Here is a plan. " + "Water the plants every morning and check the soil. " * 8
    keep = Example("keep", "keep", "self", (Message("user", "Plan my garden week."),
                                            Message("assistant", answer)))
    refusal = Example("advbench", "safety", "plain",
                      (Message("user", "Plan my garden week."), Message("assistant", answer)))
    (keep_ids, keep_labels), (ref_ids, ref_labels) = encode_all(tokenizer, [keep, refusal],
                                                                 512, 12)[0]
    learned = [t for t in keep_labels if t != -100]
    assert len(learned) == 12 and keep_ids[-12:] == learned
    assert tokenizer.decode(learned).startswith("Here is a plan.")
    assert ref_ids[:len(keep_ids)] == keep_ids and len(ref_ids) > len(keep_ids) + 60
    assert tokenizer.decode([t for t in ref_labels if t != -100]).endswith("<|im_end|>")
    whole = encode_all(tokenizer, [keep], 512, 0)[0][0]
    assert whole == (ref_ids, ref_labels)


def _spec(tmp_path, **kw) -> TrainSpec:
    return TrainSpec(**({"name": "tiny", "data": DataSpec(data="direct", n=24, seed=1),
                         "steps": 6, "batch_size": 4, "rank": 4, "alpha": 8, "lr": 3e-3,
                         "threads": 2, "save_every": 2, "max_len": 160,
                         "out": str(tmp_path / "tiny")} | kw))


def _tiny_peft_llama():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from saferlab.engine.finetune.tensors import collate_with

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    batch = collate_with(0)([  # prompts masked, answers of different lengths, one padded row
        {"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [-100, -100, -100, -100, 9, 10, 11]},
        {"input_ids": [12, 13, 14, 15], "labels": [-100, -100, 14, 15]}])
    return model, batch


def test_the_answer_only_loss_is_the_models_own_loss_and_gradient():
    from saferlab.engine.finetune.tensors import answer_loss

    model, batch = _tiny_peft_llama()
    for num_items in (None, torch.tensor(5)):
        grads = []
        for loss_of in (lambda: model(**batch, num_items_in_batch=num_items).loss,
                        lambda: answer_loss(model, batch, num_items)):
            model.zero_grad()
            loss = loss_of()
            loss.backward()
            grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()
                                          if p.requires_grad]))
        (full, full_grads), (ours, our_grads) = grads
        assert torch.allclose(ours, full, rtol=1e-5)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7)
                   for a, b in zip(our_grads, full_grads))


@pytest.mark.parametrize("case, answer_only", [("llama", True), ("soft cap", False),
                                               ("a loss that differs", False)])
def test_the_trainer_keeps_the_answer_only_loss_only_where_it_is_the_models(
        tmp_path, monkeypatch, case, answer_only):
    from transformers import TrainingArguments

    from saferlab.engine.finetune import train as train_module

    model, batch = _tiny_peft_llama()
    if case == "soft cap":
        model.config.final_logit_softcapping = 30.0
    if case == "a loss that differs":
        real = train_module.answer_loss
        monkeypatch.setattr(train_module, "answer_loss", lambda *a: real(*a) * 1.5)
    trainer = train_module._AnswerLossTrainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                            report_to="none"))
    model.train()
    full = model(**batch, num_items_in_batch=torch.tensor(5)).loss
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=torch.tensor(5))
    assert trainer.answer_only is answer_only
    assert torch.allclose(loss, full, rtol=1e-5)  # whichever way, the model's loss


def test_a_tiny_adapter_trains_resumes_converts_and_is_recorded(tmp_path, embedded_path):
    from saferlab.db import Store
    from saferlab.db.trainings import (TrainingLog, find_training, training_examples,
                                       training_losses)
    from saferlab.engine.backends.llama_cpp import LlamaCppBackend
    from saferlab.engine.finetune.train import Resume, train
    from saferlab.engine.models import parse_model_spec

    store = Store(tmp_path / "t.db")
    log = TrainingLog(store)
    spec = _spec(tmp_path)
    cancel = threading.Event()

    def stop_at_3(event):
        if isinstance(event, TrainingStep) and event.step == 3:
            cancel.set()

    first = train(spec, log, stop_at_3, cancel)
    assert first.status == "interrupted" and first.steps == 3
    assert spec.checkpoints.is_dir() and not spec.folder.exists()
    row = find_training(store, "tiny")
    assert row["status"] == "interrupted"
    # the stored training set is exactly what was trained on
    examples = [Example.from_dict(e) for e in training_examples(store, row["id"])]
    assert len(examples) == 24 and examples_sha256(examples) == row["data_sha256"]

    second = train(spec, log, resume=Resume(row["id"], examples))
    assert second.status == "finished" and second.steps == 6
    losses = training_losses(store, row["id"])
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6]  # continued, not restarted
    values = [loss for _, loss in losses]
    assert sum(values[-2:]) / 2 < sum(values[:2]) / 2  # the loss falls
    row = find_training(store, "tiny")
    assert row["status"] == "finished" and row["steps"] == 6 and row["peak_rss_mb"] > 0
    assert json.loads(row["result_json"])["loss_on"] == "answers"  # the check on batch 1 held
    assert not spec.checkpoints.exists()

    folder = spec.folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "adapter.gguf", "adapter_config.json", "adapter_model.safetensors", "saferlab.json"]
    meta = json.loads((folder / "saferlab.json").read_text())
    assert meta["training"]["data_sha256"] == row["data_sha256"]
    assert meta["spec"]["data"]["data"] == "direct" and meta["base"]["spec"] == "embedded"
    registered = {r["kind"]: r for r in store.query("SELECT * FROM adapters")}
    assert registered["peft"]["sha256"] == meta["sha256"]["peft"] == row["adapter_sha256"]
    assert registered["gguf-lora"]["training_id"] == row["id"]

    # the GGUF LoRA loads in llama.cpp and changes what the model says
    backend = LlamaCppBackend(parse_model_spec("embedded"), n_ctx=1024,
                              adapters=[("tiny", str(folder / "adapter.gguf"))])
    try:
        ask = [GenerationRequest(f"r{i}", (Message("user", QUESTION),),
                                 DecodingParams(max_tokens=12), adapter=a)
               for i, a in enumerate([None, "tiny", "tiny@0"])]
        base, tuned, off = [r.text for r in backend.generate(ask)]
    finally:
        backend.close()
    assert tuned != base
    assert off == base  # at scale 0 the adapter adds nothing
    assert "The answer is" in tuned


def test_bad_training_options_fail_before_any_weights_load(tmp_path):
    from saferlab.engine.errors import SaferlabError
    from saferlab.engine.finetune.train import train

    for bad in (_spec(tmp_path, name="a+b"), _spec(tmp_path, model="openai:http://x/v1#m"),
                _spec(tmp_path, steps=2, epochs=1.0), _spec(tmp_path, lr=3.0),
                _spec(tmp_path, data=DataSpec(data="verbose")),
                _spec(tmp_path, targets="lm_head"), _spec(tmp_path, targets=""),
                _spec(tmp_path, name=""), _spec(tmp_path, datasets=str(tmp_path / "nope")),
                _spec(tmp_path, data=DataSpec(data="direct", harmful_source="foo"))):
        with pytest.raises(SaferlabError) as err:
            train(bad)
        assert err.value.exit_code == 2
    for epochs in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(SaferlabError, match="--epochs must be a number above 0") as err:
            train(_spec(tmp_path, steps=None, epochs=epochs))
        assert err.value.exit_code == 2
    (tmp_path / "tiny").mkdir()
    with pytest.raises(SaferlabError, match="exists already"):
        train(_spec(tmp_path))


def test_no_training_overwrites_another_ones_checkpoint_or_adapter(tmp_path):
    from saferlab.engine.errors import SaferlabError
    from saferlab.engine.finetune.spec import Resume
    from saferlab.engine.finetune.train import train

    spec = _spec(tmp_path)
    # an interrupted training's checkpoint: a new training of that name would take it over
    (spec.checkpoints / "checkpoint-4").mkdir(parents=True)
    with pytest.raises(SaferlabError, match="unfinished training of tiny.*--resume tiny"):
        train(spec)
    assert (spec.checkpoints / "checkpoint-4").is_dir()
    # a finished adapter of that name from another training: a resume would replace it
    spec.folder.mkdir()
    meta = {"name": "tiny", "training": {"id": 2}}
    (spec.folder / "saferlab.json").write_text(json.dumps(meta))
    with pytest.raises(SaferlabError, match="holds another adapter; resuming training t1"):
        train(spec, resume=Resume(1, []))
    assert json.loads((spec.folder / "saferlab.json").read_text()) == meta


class _Calls:
    """A TrainingRecorder that remembers how each training ended."""

    def __init__(self):
        self.ends = []

    def start_training(self, config, examples, data_sha256):
        return 7

    def record_training_step(self, *args):
        pass

    def finish_training(self, training_id, status, result):
        self.ends.append((training_id, status, result.get("error")))


@pytest.mark.parametrize("raised, status", [(RuntimeError("out of memory"), "failed"),
                                            (KeyboardInterrupt(), "interrupted")])
def test_a_training_stopped_by_anything_is_not_left_running(tmp_path, monkeypatch, raised,
                                                             status):
    from saferlab.engine.finetune import train as training

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(training, "_fit", fail)
    calls = _Calls()
    with pytest.raises(type(raised)):
        training.train(_spec(tmp_path, data=DataSpec(data="direct", n=4, seed=1)), calls)
    assert calls.ends == [(7, status, f"{type(raised).__name__}: {raised}")]


def test_cancelling_while_keep_data_is_answered_saves_nothing_and_says_so(tmp_path):
    from saferlab.engine.errors import SaferlabError
    from saferlab.engine.events import ignore
    from saferlab.engine.finetune.train import _distill

    cancel = threading.Event()

    class Backend:
        device, dtype = "cpu", "float32"

        def generate(self, requests, cancel_event):
            cancel.set()  # Ctrl-C while the model answers
            return []

    answer = _distill(Backend(), None, 48, {"sha256": "x"}, {}, ignore, cancel)
    with pytest.raises(SaferlabError, match="cancelled before training began") as err:
        answer([(Message("user", "How do I bake bread?"),)])
    assert err.value.exit_code == 130


def test_lora_targets_name_groups_or_modules_and_reach_the_command_line(tmp_path):
    from saferlab.engine.finetune.spec import command_line, lora_targets

    assert lora_targets("all-linear") == "all-linear"
    assert lora_targets("attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert lora_targets("q_proj, v_proj") == ["q_proj", "v_proj"]
    assert "--targets attention" in command_line(_spec(tmp_path, targets="attention"))
    assert "--targets" not in command_line(_spec(tmp_path))
    # A recipe stored before the option existed reads as every linear layer.
    stored = _spec(tmp_path).to_dict()
    del stored["targets"]
    assert TrainSpec.from_dict(stored).targets == "all-linear"
    # and keep answers learned whole, as they were before --keep-loss-tokens
    assert "--keep-loss-tokens" not in command_line(_spec(tmp_path))
    assert "--keep-loss-tokens 0" in command_line(_spec(tmp_path, keep_loss_tokens=0))
    del stored["keep_loss_tokens"]
    assert TrainSpec.from_dict(stored).keep_loss_tokens == 0
    assert TrainSpec.from_dict(_spec(tmp_path).to_dict()).keep_loss_tokens == 32


def test_keep_answers_are_decoded_as_far_as_they_are_learned(tmp_path):
    """Learned on their first 32 tokens, keep answers are decoded to 48 and kept as written;
    learned whole, to 128 and cut after their last full sentence; a recipe recorded with a
    budget of its own (the shipped ones: 128) is built as it was."""
    from saferlab.engine.errors import SaferlabError

    new = _spec(tmp_path)
    assert (new.keep_budget, new.trims_keep) == (48, False)
    whole = _spec(tmp_path, keep_loss_tokens=0)
    assert (whole.keep_budget, whole.trims_keep) == (128, True)
    stored = new.to_dict() | {"keep_max_tokens": 128}
    recipe = TrainSpec.from_dict(stored)
    assert (recipe.keep_budget, recipe.trims_keep) == (128, True)
    assert TrainSpec.from_dict(new.to_dict()).keep_budget == 48
    with pytest.raises(SaferlabError, match="keep_max_tokens"):
        _spec(tmp_path, keep_max_tokens=0).check()
