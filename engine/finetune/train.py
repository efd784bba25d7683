"""PEFT LoRA supervised fine-tuning with transformers' Trainer.

The base loads as the hf backend loads it (a GGUF file dequantized, or a Hugging Face folder),
adapters named by ``--on`` are merged into it, and a fresh LoRA on every linear layer learns the
training set. The loss is on the assistant's tokens only, the prompt being rendered with the
model's own chat template exactly as inference renders it. Progress leaves as events, the
cancel event stops after the current step with a checkpoint, and a resumed run continues from
it. torch, transformers and peft are imported here only.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..adapter_refs import resolve_stacks, to_load
from ..backends.hf import HfBackend
from ..errors import EXIT_CANCELLED, EXIT_USAGE, SaferlabError
from ..events import (Emit, TrainingFinished, TrainingStage, TrainingStarted, TrainingStep,
                      ignore)
from ..models import HashCache, ModelRef, parse_model_spec
from ..paths import home_dir
from ..recorder import NullTrainingRecorder, TrainingRecorder
from ..saved_adapters import TRAINED, read_saved
from ..types import DecodingParams, GenerationRequest, Message
from .build import build_training_set
from .data import TrainingSet, examples_sha256
from .disjoint import evaluation_set
from .save import base_description, save_adapter
from .spec import Resume, TrainOutcome, TrainSpec, lora_targets
from .tensors import Examples, answer_loss, collate_with, encode_all


def hf_ref(spec: str) -> ModelRef:
    """The transformers view of a model spec: a GGUF file loads dequantized."""
    ref = parse_model_spec(spec)
    if ref.scheme == "gguf":
        assert ref.path is not None
        path = ref.path.expanduser()
        return ModelRef(spec, "hf", f"{path.parent}#{path.name}")
    return ref


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


# -- progress, cancel and the step log ---------------------------------------------------------

class _Watch(TrainerCallback):
    def __init__(self, training_id: int, recorder: TrainingRecorder, emit: Emit,
                 cancel: threading.Event) -> None:
        self.training_id, self.recorder, self.emit, self.cancel = (training_id, recorder, emit,
                                                                    cancel)
        self.started = time.perf_counter()
        self.first_step: int | None = None
        self.tokens0 = 0
        self.tokens = 0
        self.losses: list[float] = []
        self.interrupted = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step = state.global_step
        self.tokens0 = int(state.num_input_tokens_seen or 0)
        self.started = time.perf_counter()

    def _stop_if_cancelled(self, control):
        if self.cancel.is_set():
            # Trainer saves a checkpoint at this step, then stops.
            self.interrupted = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        return self._stop_if_cancelled(control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        loss = float(logs["loss"])
        lr = logs.get("learning_rate")
        self.losses.append(loss)
        elapsed = time.perf_counter() - self.started
        self.tokens = int(state.num_input_tokens_seen or 0) - self.tokens0
        done = state.global_step - (self.first_step or 0)
        rate = self.tokens / elapsed if elapsed > 0 else None
        eta = (elapsed / done * (state.max_steps - state.global_step)) if done else None
        self.recorder.record_training_step(self.training_id, state.global_step, loss,
                                           None if lr is None else float(lr), self.tokens,
                                           elapsed * 1000)
        self.emit(TrainingStep(self.training_id, state.global_step, state.max_steps, loss,
                               None if lr is None else float(lr), self.tokens, rate, eta))
        # Logging comes after the step's own check: a cancel set meanwhile stops this step.
        return self._stop_if_cancelled(control)


# -- the run -----------------------------------------------------------------------------------

CANCELLED_EARLY = "cancelled before training began; nothing was saved"


def _distill(backend: HfBackend, on: str | None, max_tokens: int, base: dict[str, Any],
             on_adapters: dict[str, Any], emit: Emit, cancel: threading.Event):
    """Keep data answered by the model being trained (with ``on`` applied), greedily. The
    answers are kept in $SAFERLAB_HOME/cache by what decides them (weights, adapters, prompts,
    budget), so a second training on the same base does not decode them again."""
    def answer(conversations: list[tuple[Message, ...]]) -> list[str]:
        key = json.dumps({"base": base.get("sha256") or base.get("source"),
                          "on": on, "adapters": {n: a.get("sha256")
                                                 for n, a in on_adapters.items()},
                          "max_tokens": max_tokens, "device": str(backend.device),
                          "dtype": str(backend.dtype),
                          "prompts": [[m.to_dict() for m in c] for c in conversations]},
                         sort_keys=True)
        cache = home_dir() / "cache" / f"keep-{hashlib.sha256(key.encode()).hexdigest()}.json"
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        emit(TrainingStage(None, f"answering {len(conversations)} keep instructions with the "
                                 "model itself"))
        requests = [GenerationRequest(f"keep-{i}", c, DecodingParams(max_tokens=max_tokens),
                                      adapter=on) for i, c in enumerate(conversations)]
        results = {r.request_id: r for r in backend.generate(requests, cancel)}
        if cancel.is_set():  # nothing is kept: the same command starts it again
            raise SaferlabError(CANCELLED_EARLY, EXIT_CANCELLED)
        answers = ["" if results[q.id].error else results[q.id].text for q in requests]
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(answers), encoding="utf-8")
        except OSError:
            pass  # a cache is a convenience
        return answers
    return answer


def _merge_on(backend: HfBackend, stack_key: str | None) -> Any:
    """The base with the ``on`` adapters merged in at their scales: training on top of them is
    then exactly what stacking computes at inference (the LoRA deltas add)."""
    model = backend.model
    if not stack_key:
        return model
    from ..types import AdapterStack

    keys = {a["name"]: a["key"] for a in backend.adapters}
    uses = AdapterStack.parse(stack_key).uses
    model.base_model.set_adapter([keys[u.name] for u in uses])
    backend.scale_adapters({keys[u.name]: u.scale for u in uses})
    return model.merge_and_unload(adapter_names=[keys[u.name] for u in uses])


def _dequantized(model: Any) -> Any:
    """A GGUF base that transformers unpacked into plain float weights still carries its GGUF
    quantizer, and Trainer refuses to train a quantized model; the flag goes, the weights are
    what they are. Weights still packed in GGUF blocks cannot be trained."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or type(quantizer).__name__ != "GgufHfQuantizer":
        return model
    if getattr(quantizer, "packed_modules", None) or getattr(quantizer, "quantized", None):
        raise SaferlabError("this transformers release keeps the GGUF weights packed, so they "
                            "cannot be fine-tuned; use an hf: model folder", EXIT_USAGE)
    model.hf_quantizer = None
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def _latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"),
                   key=lambda p: int(p.name.rpartition("-")[2]) if p.name.rpartition("-")[2]
                   .isdigit() else -1)
    return found[-1] if found else None


def _check_folders(spec: TrainSpec, resume: Resume | None) -> None:
    """Refuse what would overwrite another training's work: an adapter folder that is there
    already (a resume may only finish its own), and the checkpoint of an unfinished training
    (a new training of that name would resume from it, then delete it)."""
    folder = spec.folder
    if resume is None:
        if folder.exists():
            raise SaferlabError(f"{folder} exists already; choose another --name or --out, "
                                "or remove it", EXIT_USAGE)
        if _latest_checkpoint(spec.checkpoints) is not None:
            raise SaferlabError(
                f"{spec.checkpoints} holds the checkpoint of an unfinished training of "
                f"{spec.name}: continue it with saferlab finetune --resume {spec.name}, or "
                "remove that folder to start afresh", EXIT_USAGE)
    elif folder.exists():
        made_by = read_saved(folder, TRAINED)
        if made_by is None or (made_by.meta.get("training") or {}).get("id") != resume.training_id:
            raise SaferlabError(
                f"{folder} holds another adapter; resuming training t{resume.training_id} "
                "would replace it: move it away first", EXIT_USAGE)


def _arguments(spec: TrainSpec, backend: HfBackend) -> TrainingArguments:
    device = backend.device
    return TrainingArguments(
        output_dir=str(spec.checkpoints), max_steps=spec.steps or -1,
        num_train_epochs=spec.epochs or 1.0, per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.lr, lr_scheduler_type="cosine",
        warmup_steps=max(1, (spec.steps or 0) // 20), weight_decay=0.0, max_grad_norm=1.0,
        logging_steps=1, save_strategy="steps", save_steps=spec.save_every, save_total_limit=1,
        seed=spec.seed, data_seed=spec.seed, report_to="none", disable_tqdm=True,
        use_cpu=device.type == "cpu", dataloader_num_workers=0, remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        # Batches of similar lengths: less padding, about a third fewer tokens computed.
        train_sampling_strategy="group_by_length",
        bf16=device.type == "cuda" and backend.dtype == torch.bfloat16,
        fp16=device.type == "cuda" and backend.dtype == torch.float16)


def train(spec: TrainSpec, recorder: TrainingRecorder | None = None, emit: Emit = ignore,
          cancel: threading.Event | None = None, resume: Resume | None = None,
          hash_cache: HashCache | None = None) -> TrainOutcome:
    """Build the training set (or take the stored one when resuming), train, save the adapter
    in both formats, and record everything. Raises SaferlabError for a set-up problem."""
    spec = spec.with_steps()
    spec.check()
    recorder = recorder or NullTrainingRecorder()
    cancel = cancel or threading.Event()
    _check_folders(spec, resume)
    started = time.perf_counter()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)

    on_key, on_adapters = None, {}
    if spec.on:
        keys, on_adapters = resolve_stacks(f"hf:{hf_ref(spec.model).target}", [spec.on],
                                           hash_cache)
        on_key = keys[0]
    emit(TrainingStage(None, f"loading {spec.model}"))
    backend = HfBackend(hf_ref(spec.model), device=spec.device, dtype=spec.dtype, batch_size=32,
                        adapters=to_load(on_adapters))
    base = base_description(spec.model, backend, hash_cache)

    if resume is None:
        emit(TrainingStage(None, "building the training set"))
        ev = evaluation_set(Path(spec.datasets).expanduser() if spec.datasets else None)
        datasets = Path(spec.datasets).expanduser() if spec.datasets else None
        distill = _distill(backend, on_key, spec.keep_budget, base, on_adapters, emit, cancel)
        training = build_training_set(spec.data, ev, distill, datasets,
                                      trim_keep=spec.trims_keep)
        if cancel.is_set():
            raise SaferlabError(CANCELLED_EARLY, EXIT_CANCELLED)
    else:
        examples = resume.examples
        training = TrainingSet(examples, examples_sha256(examples), {})
    rows, dropped = encode_all(backend.tokenizer, training.examples, spec.max_len,
                              spec.keep_loss_tokens)

    config = {"spec": spec.to_dict(), "base": base, "on": on_adapters, "on_key": on_key,
              "sources": training.sources, "excluded": training.excluded,
              "counts": training.counts, "too_long": dropped, "trained_examples": len(rows),
              "backend": backend.info()}
    if resume is None:
        training_id = recorder.start_training(config, [e.to_dict() for e in training.examples],
                                              training.sha256)
    else:
        training_id = resume.training_id
    ending = _Ending(training_id, recorder, emit)
    try:
        return _fit(spec, backend, on_key, on_adapters, base, training, rows, resume, ending,
                    emit, cancel, started)
    except BaseException as exc:  # whatever stops it, the row does not stay "running"
        if not ending.done:
            ending(("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"),
                   {"error": f"{type(exc).__name__}: {exc}"})
        raise


class _Ending:
    """Records how a training ended, once."""

    def __init__(self, training_id: int, recorder: TrainingRecorder, emit: Emit) -> None:
        self.training_id, self.recorder, self.emit = training_id, recorder, emit
        self.done = False

    def __call__(self, status: str, result: dict[str, Any], folder: Path | None = None) -> None:
        self.recorder.finish_training(self.training_id, status, result)
        self.done = True
        self.emit(TrainingFinished(self.training_id, status, str(folder) if folder else None))


def _scales_logits(model: Any) -> bool:
    """Whether the model does more to its logits than its output layer (Gemma 2's soft cap,
    Cohere's scale): answer_loss would then not be its loss."""
    config = getattr(model, "config", None)
    return any(getattr(config, name, None) not in (None, 1, 1.0)
               for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"))


class _AnswerLossTrainer(Trainer):
    """Trainer with the loss of ``answer_loss``: the output layer only where a token is
    learned. Checked once, on the first batch, against the model's own loss; a model whose
    logits are more than its output layer over its decoder (a soft cap, a scale) trains with
    the model's own loss throughout."""

    answer_only: bool | None = None  # None until the first batch has checked it

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.answer_only is None and _scales_logits(model):
            self.answer_only = False
        if return_outputs or self.answer_only is False or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = answer_loss(model, inputs, num_items_in_batch)
        if self.answer_only is None:
            with torch.no_grad():
                full = super().compute_loss(model, inputs, False, num_items_in_batch)
            # bf16 and fp16 logits may round differently when fewer rows are multiplied
            half = model.get_output_embeddings().weight.dtype != torch.float32
            self.answer_only = bool(torch.allclose(loss.detach(), full.float(),
                                                   rtol=2e-2 if half else 1e-4, atol=1e-5))
            if not self.answer_only:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return loss


def _fit(spec: TrainSpec, backend: HfBackend, on_key: str | None, on_adapters: dict[str, Any],
         base: dict[str, Any], training: TrainingSet, rows: list, resume: Resume | None,
         ending: _Ending, emit: Emit, cancel: threading.Event, started: float) -> TrainOutcome:
    """Train (the training ``ending`` records) and save its adapter."""
    folder, training_id = spec.folder, ending.training_id
    model = _dequantized(_merge_on(backend, on_key))
    backend.model = None
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, target_modules=lora_targets(spec.targets),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # PEFT calls a name transformers 5 deprecates
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        model = get_peft_model(model, lora)
    device = backend.device
    watch = _Watch(training_id, ending.recorder, emit, cancel)
    trainer = _AnswerLossTrainer(model=model, args=_arguments(spec, backend),
                                 train_dataset=Examples(rows),
                                 data_collator=collate_with(backend.pad_id), callbacks=[watch])
    for printer in (PrinterCallback, ProgressCallback):  # progress is ours to show
        trainer.remove_callback(printer)
    total = trainer.args.max_steps if trainer.args.max_steps > 0 else math.ceil(
        (spec.epochs or 1.0) * math.ceil(len(rows) / spec.batch_size))
    checkpoint = _latest_checkpoint(spec.checkpoints) if resume is not None else None
    emit(TrainingStarted(training_id, spec.name, total, len(rows),
                         int(checkpoint.name.rpartition("-")[2]) if checkpoint else 0))
    with warnings.catch_warnings():
        # transformers and PEFT warn about their own internals; nothing the user can act on.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Could not find a config file")
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    duration = time.perf_counter() - started
    elapsed = time.perf_counter() - watch.started
    rate = watch.tokens / elapsed if elapsed > 0 else None
    steps = trainer.state.global_step
    result: dict[str, Any] = {"steps": steps, "total_steps": total,
                              "duration_ms": duration * 1000, "tokens_per_s": rate,
                              "tokens": watch.tokens, "peak_rss_mb": peak_rss_mb(),
                              "final_loss": watch.losses[-1] if watch.losses else None,
                              # the output layer applied to learned tokens only, or everywhere
                              "loss_on": "answers" if trainer.answer_only else "every token"}
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / (1 << 20)
    outcome = TrainOutcome(training_id, "finished", None, steps, total, watch.losses, rate,
                           result["peak_rss_mb"], duration, training.sha256)
    if watch.interrupted or (cancel.is_set() and steps < total):
        ending("interrupted", result)
        return replace(outcome, status="interrupted")
    emit(TrainingStage(training_id, f"saving the adapter to {folder}"))
    try:
        meta = save_adapter(model, spec, base, on_adapters, on_key, training_id,
                            training.sha256, result)
    except Exception as exc:  # the checkpoint stays: a resume saves it again, untrained
        ending("interrupted", result | {"error": f"saving failed: {type(exc).__name__}: {exc}"})
        raise SaferlabError(f"saving the adapter failed ({type(exc).__name__}: {exc}); the "
                            f"trained weights are kept in {spec.checkpoints}: saferlab finetune "
                            f"--resume {spec.name} saves them again", EXIT_USAGE) from exc
    shutil.rmtree(spec.checkpoints, ignore_errors=True)
    result |= {"adapter_path": str(folder), "adapter_sha256": meta["sha256"]["peft"],
               "gguf_path": meta.get("gguf_path"), "gguf_sha256": meta["sha256"].get("gguf"),
               "registered": meta["registered"]}
    ending("finished", result, folder)
    return replace(outcome, folder=folder, adapter=meta)

