"""Hugging Face models through transformers, with PEFT LoRA adapters on one resident base.

``hf:MODEL_ID_OR_DIR`` loads a local folder or a model already in the Hugging Face cache;
``hf:DIR#FILE.gguf`` loads a GGUF file through transformers (dequantized). Prompts are rendered
with the tokenizer's chat template and decoded in left-padded batches of requests that share
decoding parameters and adapter. A stopping criterion runs between decoding steps: it reads the
cancel event, notes the first token's time and streams text to ``on_token``. Adapters are
loaded once on top of the base weights and chosen per request; the base is never reloaded.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import re
import threading
import time
import warnings
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import transformers
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig,
                          StoppingCriteria, StoppingCriteriaList)

from ..adapters import check_peft_adapter
from ..errors import EXIT_MODEL, EXIT_USAGE, SaferlabError
from ..models import ModelRef, check_gguf
from ..types import (FINISH_CANCELLED, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP,
                     AdapterStack, DecodingParams, GenerationRequest, GenerationResult, Message)
from .base import CHATML, DEFAULT_BATCH, AdapterArg, OnToken, named_adapters, render_chat

# Turn ends of common chat formats. A model stops at any of them that its vocabulary has, as
# llama.cpp's end-of-generation set does, even when its config names a single EOS.
TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>",
             "<end_of_turn>", "</s>")

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16}


def pick_device(device: str | None) -> torch.device:
    if device:
        try:
            chosen = torch.device(device)
        except (RuntimeError, ValueError):
            raise SaferlabError(f"unknown torch device {device!r}", EXIT_USAGE) from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise SaferlabError(f"device {device!r} asked for, but torch sees no CUDA GPU",
                                EXIT_USAGE)
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, dtype: str | None) -> torch.dtype:
    if dtype:
        if dtype.lower() not in DTYPES:
            raise SaferlabError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}", EXIT_USAGE)
        return DTYPES[dtype.lower()]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_target(target: str) -> tuple[str, str | None, bool]:
    """``(source, gguf_file, is_local)`` for an hf: target; checks local paths on disk."""
    name, _, gguf_file = target.partition("#")
    local = Path(name).expanduser()
    # A Hub id is NAME or ORG/NAME; anything else that is written like a path is one.
    if not (name.startswith(("/", ".", "~")) or name.count("/") > 1 or local.exists()):
        return name, gguf_file or None, False
    if not local.is_dir():
        raise SaferlabError(f"model folder not found: {local}", EXIT_MODEL)
    if gguf_file:
        check_gguf(local / gguf_file)
    elif not (local / "config.json").is_file():
        raise SaferlabError(
            f"{local} holds no transformers model (no config.json); for a GGUF file in it, "
            f"write hf:{local}#FILE.gguf", EXIT_MODEL)
    return str(local), gguf_file or None, True


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Observer(StoppingCriteria):
    """Runs after every decoding step of one batch: stops it once ``cancel`` is set, notes
    when the first token came, and streams each row's new text to ``on_token``."""

    def __init__(self, backend: HfBackend, ids: list[str], width: int,
                 cancel: threading.Event | None, on_token: OnToken | None) -> None:
        self.backend, self.ids, self.width = backend, ids, width
        self.cancel, self.on_token = cancel, on_token
        self.first_at: float | None = None
        self.cancelled = False
        self.sent = [""] * len(ids)
        self.ended = [False] * len(ids)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        if self.on_token is not None:
            for row, request_id in enumerate(self.ids):
                if not self.ended[row]:
                    tokens, ended = self.backend._cut(input_ids[row, self.width:].tolist())
                    self.ended[row] = ended
                    self.stream(row, request_id, self.backend._decode(tokens), final=ended)
        stop = self.cancel is not None and self.cancel.is_set()
        self.cancelled = self.cancelled or stop
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    def stream(self, row: int, request_id: str, text: str, final: bool) -> None:
        # A trailing U+FFFD is a character whose bytes have not all arrived yet.
        if self.on_token is None or (text.endswith("\ufffd") and not final):
            return
        if text.startswith(self.sent[row]) and len(text) > len(self.sent[row]):
            self.on_token(request_id, text[len(self.sent[row]):])
            self.sent[row] = text


class HfBackend:
    def __init__(self, ref: ModelRef, device: str | None = None, batch_size: int = DEFAULT_BATCH,
                 adapters: Sequence[AdapterArg] = (), trust_remote_code: bool = False,
                 dtype: str | None = None, n_threads: int | None = None, **_: Any) -> None:
        if int(batch_size) < 1:
            raise SaferlabError(f"batch size must be at least 1, not {batch_size}", EXIT_USAGE)
        self.spec = ref.spec
        self.batch_size = int(batch_size)
        # Adapters are checked before any weights are read: a bad one fails in a second.
        self.adapters = self._name_adapters(
            [check_peft_adapter(path) | ({"name": name} if name else {})
             for name, path in named_adapters(adapters)])
        self.source, self.gguf_file, self.is_local = resolve_target(ref.target)
        if n_threads:  # torch's own default is every core, which a busy machine punishes
            torch.set_num_threads(int(n_threads))
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.compute = self.device.type
        self.base_loads = 0
        self._lock = threading.Lock()
        self.tokenizer, base = self._load(trust_remote_code)
        self._setup_tokens()
        self.n_ctx: int | None = getattr(base.config, "max_position_embeddings", None)
        self.config = base.config
        # generate() fills every value a call leaves unset from the model's own generation
        # config (a repetition penalty, a temperature); made neutral, only the run's decoding
        # parameters decide the output.
        base.generation_config = GenerationConfig(
            bos_token_id=base.generation_config.bos_token_id, eos_token_id=self.stop_ids or None,
            pad_token_id=self.pad_id)
        self.model = self._attach_adapters(base) if self.adapters else base
        self.model.eval()

    # -- loading -------------------------------------------------------------------------

    @staticmethod
    def _name_adapters(checked: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Requests name an adapter by its folder's name (made unique). PEFT keys modules by
        name and refuses a dot, so each also gets a ``key`` of safe characters."""
        seen: set[str] = set()
        for info in checked:
            name, n = info["name"], 1
            while name in seen:
                n += 1
                name = f"{info['name']}-{n}"
            seen.add(name)
            info["name"] = name
            info["key"] = f"a{len(seen)}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        return checked

    def _what(self) -> str:
        return f"{self.source}#{self.gguf_file}" if self.gguf_file else self.source

    def _load(self, trust_remote_code: bool) -> tuple[Any, Any]:
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        # transformers renamed torch_dtype to dtype (4.56); the old name warns or is gone.
        dtype_key = "dtype" if _newer_than(transformers.__version__, (4, 56)) else "torch_dtype"
        try:
            with _quiet():
                tokenizer = AutoTokenizer.from_pretrained(self.source, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(self.source, **kwargs,
                                                             **{dtype_key: self.dtype})
            self.base_loads += 1
        except ImportError as exc:
            hint = "pip install gguf" if self.gguf_file else "install saferlab[hf]"
            raise SaferlabError(f"transformers cannot load {self._what()}: {exc}; {hint}",
                                EXIT_MODEL) from None
        except OSError as exc:
            if self.is_local:
                raise SaferlabError(f"cannot load {self._what()}: {_first_line(exc)}",
                                    EXIT_MODEL) from None
            get = f"huggingface-cli download {self.source}"
            if self.gguf_file:
                get += f" {self.gguf_file}"
            why = " (HF_HUB_OFFLINE is set, so nothing is downloaded)" if _offline() else ""
            raise SaferlabError(
                f"model {self.source} is not a local folder nor in the Hugging Face cache{why}; "
                f"get it with `{get}`, or use a local folder: hf:/path/to/model", EXIT_MODEL,
            ) from None
        except Exception as exc:  # an unsupported architecture, a damaged file, ...
            raise SaferlabError(f"transformers could not load {self._what()}: "
                                f"{type(exc).__name__}: {_first_line(exc)}", EXIT_MODEL) from None
        return tokenizer, model.to(self.device)

    def _attach_adapters(self, base: Any) -> Any:
        from peft import PeftModel

        model = None
        for info in self.adapters:
            try:
                with warnings.catch_warnings():
                    # PEFT calls a name that transformers 5 deprecates; not the user's concern.
                    warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
                    if model is None:
                        model = PeftModel.from_pretrained(base, info["path"],
                                                          adapter_name=info["key"],
                                                          is_trainable=False)
                    else:
                        model.load_adapter(info["path"], adapter_name=info["key"],
                                           is_trainable=False)
            except Exception as exc:
                raise SaferlabError(
                    f"the LoRA adapter {info['path']} does not load on {self._what()} (a damaged "
                    f"file, or one made for another model): {type(exc).__name__}: "
                    f"{_first_line(exc)}", EXIT_MODEL) from None
        return model.to(self.device)

    def _setup_tokens(self) -> None:
        tok = self.tokenizer
        tok.padding_side = "left"
        special = tok.get_added_vocab()
        stops = [tok.eos_token_id] + [special[t] for t in TURN_ENDS if t in special]
        self.stop_ids = list(dict.fromkeys(i for i in stops if isinstance(i, int)))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (
            self.stop_ids[0] if self.stop_ids else 0)
        if getattr(tok, "chat_template", None):
            self.template_source = "gguf" if self.gguf_file else "tokenizer"
        else:
            tok.chat_template = CHATML
            self.template_source = "chatml-fallback"

    # -- surface ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "backend": "hf",
            "spec": self.spec,
            "model": self.source,
            "path": self.source if self.is_local else None,
            "gguf_file": self.gguf_file,
            # The hub commit the weights came from (None for a local folder).
            "revision": getattr(self.config, "_commit_hash", None),
            "architecture": getattr(self.config, "model_type", None),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "n_ctx": self.n_ctx,
            "batch_size": self.batch_size,
            "n_threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            "chat_template": self.template_source,
            "adapters": [{k: v for k, v in a.items() if k != "key"} for a in self.adapters],
            "base_loads": self.base_loads,
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "peft_version": _version("peft"),
        }

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(messages, self._apply_template)

    def _apply_template(self, chat: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: threading.Event | None = None,
        on_token: OnToken | None = None,
    ) -> Iterator[GenerationResult]:
        """Batches of up to ``batch_size`` requests with equal decoding parameters and
        adapter, shortest prompts together; each batch's results as it completes."""
        groups: dict[tuple[DecodingParams, AdapterStack | None],
                     list[tuple[GenerationRequest, list[int]]]]
        groups = {}
        for request in requests:
            if cancel is not None and cancel.is_set():
                return
            prepared = self._prepare(request)
            if isinstance(prepared, GenerationResult):
                yield prepared
            else:
                groups.setdefault((request.params, request.adapter), []).append(
                    (request, prepared))
        for todo in groups.values():
            todo.sort(key=lambda pair: len(pair[1]))
            size = self.batch_size
            while todo:
                if cancel is not None and cancel.is_set():
                    return
                batch, todo = todo[:size], todo[size:]
                try:
                    with self._lock:
                        results = self._run_batch(batch, cancel, on_token)
                except torch.cuda.OutOfMemoryError:
                    _free_memory()
                    if len(batch) > 1:  # retry the same requests in smaller batches
                        size = max(1, len(batch) // 2)
                        todo = batch + todo
                        continue
                    results = [_error(batch[0][0], "out of memory even at batch size 1")]
                except Exception as exc:
                    results = ([_error(batch[0][0], _failure(exc))] if len(batch) == 1
                               else [self._alone(pair, cancel, on_token) for pair in batch])
                yield from results
                if any(r.finish_reason == FINISH_CANCELLED for r in results):
                    return

    def _prepare(self, request: GenerationRequest) -> list[int] | GenerationResult:
        unknown = [n for n in (request.adapter.names if request.adapter else ())
                   if n not in self.adapter_names]
        if unknown:
            known = ", ".join(self.adapter_names) or "none loaded"
            return _error(request, f"unknown adapter {unknown[0]!r}; known: {known}")
        try:
            ids = self.tokenizer(self.render(request.messages), add_special_tokens=False)
            tokens = list(ids["input_ids"])
        except Exception as exc:  # a template or tokenizer failure is this item's
            return _error(request, f"could not build the prompt: {exc}")
        if self.n_ctx and len(tokens) >= self.n_ctx:
            return GenerationResult(
                request.id, prompt_tokens=len(tokens), finish_reason=FINISH_ERROR,
                error=f"prompt is {len(tokens)} tokens but the context holds {self.n_ctx}")
        return tokens

    @property
    def adapter_names(self) -> list[str]:
        return [a["name"] for a in self.adapters]

    def _alone(self, pair: tuple[GenerationRequest, list[int]], cancel: threading.Event | None,
               on_token: OnToken | None) -> GenerationResult:
        """A request of a failed batch, decoded on its own so that one bad item fails alone."""
        request = pair[0]
        if cancel is not None and cancel.is_set():
            return GenerationResult(request.id, finish_reason=FINISH_CANCELLED)
        try:
            with self._lock:
                return self._run_batch([pair], cancel, on_token)[0]
        except Exception as exc:
            return _error(request, _failure(exc))

    def _run_batch(self, batch: list[tuple[GenerationRequest, list[int]]],
                   cancel: threading.Event | None,
                   on_token: OnToken | None) -> list[GenerationResult]:
        params, adapter = batch[0][0].params, batch[0][0].adapter
        width = max(len(tokens) for _, tokens in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, tokens) in enumerate(batch):
            input_ids[row, width - len(tokens):] = torch.tensor(tokens, dtype=torch.long)
            attention[row, width - len(tokens):] = 1
        budget = params.max_tokens if not self.n_ctx else min(params.max_tokens,
                                                               self.n_ctx - width)
        observer = _Observer(self, [r.id for r, _ in batch], width, cancel, on_token)
        if params.temperature > 0:
            torch.manual_seed(params.seed)
        started = time.perf_counter()
        with torch.inference_mode(), self._adapter(adapter):
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                generation_config=self._generation_config(params, budget),
                stopping_criteria=StoppingCriteriaList([observer]))
        duration_ms = (time.perf_counter() - started) * 1000
        ttft_ms = (observer.first_at - started) * 1000 if observer.first_at else None
        results = []
        for row, (request, tokens) in enumerate(batch):
            completion, ended = self._cut(out[row, width:].tolist())
            text = self._decode(completion)
            observer.stream(row, request.id, text, final=True)
            finish = (FINISH_CANCELLED if observer.cancelled
                      else FINISH_STOP if ended else FINISH_LENGTH)
            results.append(GenerationResult(
                request.id, text=text, prompt_tokens=len(tokens),
                completion_tokens=len(completion), ttft_ms=ttft_ms, duration_ms=duration_ms,
                finish_reason=finish))
        return results

    def _generation_config(self, params: DecodingParams, budget: int) -> GenerationConfig:
        # Every value set here; what is left unset comes from the neutral config of __init__.
        sample = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=max(1, budget), do_sample=sample, num_beams=1,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=params.top_k if sample else None,
            eos_token_id=self.stop_ids or None, pad_token_id=self.pad_id)

    @contextmanager
    def _adapter(self, stack: AdapterStack | None) -> Iterator[None]:
        """The adapters of ``stack`` active together, each at its scale (PEFT adds their
        outputs, as llama.cpp does); None: the base model."""
        if not self.adapters:
            yield
            return
        if stack is None or not stack.uses:
            with self.model.disable_adapter():
                yield
            return
        keys = {a["name"]: a["key"] for a in self.adapters}
        scales = {keys[u.name]: u.scale for u in stack.uses}
        self.model.base_model.set_adapter(list(scales), inference_mode=True)
        self.scale_adapters(scales)
        try:
            yield
        finally:
            self.scale_adapters(dict.fromkeys(scales, 1.0))

    def scale_adapters(self, scales: dict[str, float]) -> None:
        """Each adapter (by PEFT key) at a multiple of its trained scale alpha/rank."""
        from peft.tuners.lora import LoraLayer

        for module in self.model.modules():
            if isinstance(module, LoraLayer):
                for key, scale in scales.items():
                    module.set_scale(key, scale)

    def _cut(self, tokens: list[int]) -> tuple[list[int], bool]:
        """The completion up to (excluding) its first stop token, and whether it had one;
        padding comes only after a stop token."""
        for i, token in enumerate(tokens):
            if token in self.stop_ids:
                return tokens[:i], True
        return tokens, False

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True,
                                     clean_up_tokenization_spaces=False)

    def close(self) -> None:
        self.model = None
        _free_memory()


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars on a terminal that a front end owns: transformers' own are switched
    off, and the GGUF converter's plain tqdm bar goes to a swallowed stderr."""
    bars = transformers.utils.logging
    was_disabled = not bars.is_progress_bar_enabled()
    bars.disable_progress_bar()
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        if not was_disabled:
            bars.enable_progress_bar()


def _newer_than(version: str, floor: tuple[int, int]) -> bool:
    parts = re.findall(r"\d+", version)[:2]
    return tuple(int(p) for p in parts) >= floor


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _failure(exc: BaseException) -> str:
    return f"transformers failed while decoding: {type(exc).__name__}: {_first_line(exc)}"


def _error(request: GenerationRequest, message: str) -> GenerationResult:
    return GenerationResult(request.id, finish_reason=FINISH_ERROR, error=message)
