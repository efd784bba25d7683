"""GGUF models through llama-cpp-python.

The prompt is rendered with the model's own chat template (GGUF metadata) and decoded token by
token with ``Llama.generate``, so that token counts are exact and the cancel event is read
between tokens. Shared prompt prefixes are reused only where that cannot change an answer.
One generation at a time per model.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from typing import Any, Iterator, Sequence

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ..errors import EXIT_MODEL, EXIT_USAGE, SaferlabError
from ..models import ModelRef
from ..types import (FINISH_CANCELLED, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP,
                     AdapterStack, GenerationRequest, GenerationResult, Message)
from .base import (CHATML, DEFAULT_BATCH, DEFAULT_CTX, AdapterArg, OnToken, named_adapters,
                   one_at_a_time, render_chat)
from .llama_batch import BatchDecoder, set_loras, shared_length

CHUNK = 16  # prompt evaluation block; see _reuse_prefix


def default_threads() -> int:
    # llama-cpp-python's own default is half the cores, which on a 2-core laptop is one.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


class LlamaCppBackend:
    def __init__(self, ref: ModelRef, n_ctx: int = DEFAULT_CTX, n_threads: int | None = None,
                 n_gpu_layers: int | None = None, adapters: Sequence[AdapterArg] = (),
                 batch_size: int = DEFAULT_BATCH, share_prefix: bool = True, **_: Any) -> None:
        if int(batch_size) < 1:
            raise SaferlabError(f"batch size must be at least 1, not {batch_size}", EXIT_USAGE)
        self.batch_size = int(batch_size)
        self.share_prefix = share_prefix  # off only to measure what sharing saves
        self.spec = ref.spec
        self.path = str(ref.path)
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        self.n_threads = n_threads or default_threads()
        try:
            self.llm = llama_cpp.Llama(
                model_path=self.path, n_ctx=n_ctx, n_threads=self.n_threads, n_batch=CHUNK,
                n_gpu_layers=n_gpu_layers, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise SaferlabError(f"llama.cpp could not load {self.path}: {exc}", EXIT_MODEL) from None
        self.n_ctx = self.llm.n_ctx()
        self.compute = "gpu" if n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload() \
            else "cpu"
        self._lock = threading.Lock()
        self._grammars: dict[str, llama_cpp.LlamaGrammar] = {}
        self._setup_template()
        self._loras: dict[str, Any] = {}  # adapter name -> llama.cpp LoRA handle
        self._lora_paths: dict[str, str] = {}
        self._active: AdapterStack | None = None
        self._offset = 0  # where the blocks of the prompt in Llama's cache start (_reuse_prefix)
        self._batcher: BatchDecoder | None = None  # made at the first batch
        self._batch_lock = threading.Lock()
        self._batch_active: AdapterStack | None = None
        for name, path in named_adapters(adapters):
            self._load_lora(path, name)
        vocab = getattr(getattr(self.llm, "_model", None), "vocab", None)
        if vocab is not None and hasattr(llama_cpp, "llama_vocab_is_eog"):
            self._is_eog = lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))
        else:
            eos = self.llm.token_eos()
            self._is_eog = lambda token: token == eos

    def _setup_template(self) -> None:
        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        self.template_source = "gguf" if template else "chatml-fallback"
        model = self.llm._model
        eos_id, bos_id = self.llm.token_eos(), self.llm.token_bos()
        eos = model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        self.formatter = Jinja2ChatFormatter(template or CHATML, eos_token=eos, bos_token=bos)

    def info(self) -> dict[str, Any]:
        meta = self.llm.metadata
        return {
            "backend": "llama.cpp",
            "llama_cpp_version": llama_cpp.__version__,
            "path": self.path,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "batch_size": self.batch_size,
            "share_prefix": self.share_prefix,
            "chat_template": self.template_source,
            # A Llama Guard GGUF whose own template builds the moderation prompt from a chat.
            "guard_template": "UNSAFE CONTENT CATEGORIES" in (
                self.llm.metadata.get("tokenizer.chat_template") or ""),
            "architecture": meta.get("general.architecture"),
            "name": meta.get("general.name"),
            "file_type": meta.get("general.file_type"),
            "adapters": dict(self._lora_paths),
        }

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(messages, lambda chat: self.formatter(messages=chat).prompt)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: threading.Event | None = None,
        on_token: OnToken | None = None,
    ) -> Iterator[GenerationResult]:
        if self.batch_size > 1:
            return self._batched(requests, cancel, on_token)
        return self._sequential(requests, cancel, on_token)

    def _sequential(self, requests: Sequence[GenerationRequest],
                    cancel: threading.Event | None, on_token: OnToken | None
                    ) -> Iterator[GenerationResult]:
        def locked(request: GenerationRequest) -> GenerationResult:
            with self._lock:
                return self._one(request, cancel, on_token)

        return one_at_a_time(requests, cancel, locked)

    def _batched(self, requests: Sequence[GenerationRequest],
                 cancel: threading.Event | None, on_token: OnToken | None
                 ) -> Iterator[GenerationResult]:
        """Requests grouped by adapter stack (in order of first use), each group decoded by
        continuous batching; results as they end."""
        if not self._batch_lock.acquire(blocking=False):
            # The batch context is busy: the target judging its own answers between the
            # results of a batch. The judge's requests go one at a time through Llama's own.
            yield from self._sequential(requests, cancel, on_token)
            return
        try:
            groups: dict[AdapterStack | None, list[tuple[GenerationRequest, list[int]]]] = {}
            for request in requests:
                prepared = self._prepare(request)
                if isinstance(prepared, GenerationResult):
                    yield prepared
                    continue
                stack = request.adapter if request.adapter and request.adapter.uses else None
                groups.setdefault(stack, []).append((request, prepared))
            for stack, group in groups.items():
                if cancel is not None and cancel.is_set():
                    return
                batcher = self._batch_decoder()
                try:
                    self._use_batch_adapter(batcher, stack)
                except RuntimeError as exc:
                    for request, tokens in group:
                        yield GenerationResult(request.id, prompt_tokens=len(tokens),
                                               finish_reason=FINISH_ERROR, error=str(exc))
                    continue
                for result in batcher.decode(group, self.n_ctx, cancel, on_token):
                    yield result
                    if result.finish_reason == FINISH_CANCELLED:
                        return
        finally:
            self._batch_lock.release()

    def _batch_decoder(self) -> BatchDecoder:
        if self._batcher is None:
            self._batcher = BatchDecoder(self.llm, self.batch_size, self.n_ctx, self.n_threads,
                                         self._is_eog, self.share_prefix)
        return self._batcher

    def _use_batch_adapter(self, batcher: BatchDecoder, stack: AdapterStack | None) -> None:
        if stack == self._batch_active:
            return
        uses = stack.uses if stack else ()
        set_loras(batcher.ctx, [self._loras[u.name] for u in uses], [u.scale for u in uses])
        self._batch_active = stack

    def _prepare(self, request: GenerationRequest) -> list[int] | GenerationResult:
        """The prompt's tokens, or the result that says why this request cannot run."""
        unknown = [n for n in (request.adapter.names if request.adapter else ())
                   if n not in self._loras]
        if unknown:
            known = ", ".join(sorted(self._loras)) or "none loaded"
            return GenerationResult(request.id, finish_reason=FINISH_ERROR,
                                    error=f"unknown adapter {unknown[0]!r} ({known})")
        try:
            prompt = self.render(request.messages)
            tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        except Exception as exc:  # a template or tokenizer failure is this item's, not the run's
            return GenerationResult(request.id, finish_reason=FINISH_ERROR,
                                    error=f"could not build the prompt: {exc}")
        if len(tokens) >= self.n_ctx:
            return GenerationResult(
                request.id, prompt_tokens=len(tokens), finish_reason=FINISH_ERROR,
                error=f"prompt is {len(tokens)} tokens but the context holds {self.n_ctx}")
        return tokens

    def _one(self, request: GenerationRequest, cancel: threading.Event | None,
             on_token: OnToken | None) -> GenerationResult:
        started = time.perf_counter()
        prepared = self._prepare(request)
        if isinstance(prepared, GenerationResult):
            return prepared
        tokens = prepared
        try:
            self._use_adapter(request.adapter)
        except Exception as exc:
            return GenerationResult(request.id, prompt_tokens=len(tokens),
                                    finish_reason=FINISH_ERROR, error=str(exc))
        budget = min(request.params.max_tokens, self.n_ctx - len(tokens))
        params = request.params
        self.llm.set_seed(params.seed)
        todo = self._reuse_prefix(tokens, self._block_offset(request, tokens))
        out: list[int] = []
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        finish = FINISH_LENGTH
        ttft_ms: float | None = None
        try:
            grammar = self._grammar(request.grammar) if request.grammar else None
            for token in self.llm.generate(
                todo, temp=params.temperature, top_k=params.top_k, top_p=params.top_p,
                min_p=0.0, repeat_penalty=1.0, grammar=grammar, reset=False,
            ):
                if ttft_ms is None:
                    ttft_ms = (time.perf_counter() - started) * 1000
                if self._is_eog(token):
                    finish = FINISH_STOP
                    break
                out.append(token)
                if on_token is not None:
                    piece = decoder.decode(self.llm.detokenize([token]))
                    if piece:
                        on_token(request.id, piece)
                if cancel is not None and cancel.is_set():
                    finish = FINISH_CANCELLED
                    break
                if len(out) >= budget:
                    break
        except Exception as exc:
            return GenerationResult(
                request.id, text=self._text(out), prompt_tokens=len(tokens),
                completion_tokens=len(out), ttft_ms=ttft_ms,
                duration_ms=(time.perf_counter() - started) * 1000,
                finish_reason=FINISH_ERROR, error=f"llama.cpp failed while decoding: {exc}")
        return GenerationResult(
            request.id, text=self._text(out), prompt_tokens=len(tokens),
            completion_tokens=len(out), ttft_ms=ttft_ms,
            duration_ms=(time.perf_counter() - started) * 1000, finish_reason=finish)

    def _load_lora(self, path: str, name: str | None = None) -> None:
        from ..adapters import check_gguf_lora

        name = name or check_gguf_lora(path)["name"]
        handle = llama_cpp.llama_adapter_lora_init(self.llm._model.model, path.encode("utf-8"))
        if not handle:
            self.close()
            raise SaferlabError(f"llama.cpp could not load the LoRA adapter {path}: is it a "
                                "GGUF LoRA made for this model?", EXIT_MODEL)
        self._loras[name] = handle
        self._lora_paths[name] = path

    def _use_adapter(self, stack: AdapterStack | None) -> None:
        """Switch the active LoRA adapters on the resident model (None: the base); llama.cpp
        adds every adapter of a stack, each with its scale."""
        stack = stack if stack and stack.uses else None
        if stack == self._active:
            return
        uses = stack.uses if stack else ()
        set_loras(self.llm._ctx.ctx, [self._loras[u.name] for u in uses],
                  [u.scale for u in uses])
        self._active = stack
        self.llm.reset()  # the cached prompt was computed with other weights

    def _block_offset(self, request: GenerationRequest, tokens: list[int]) -> int:
        """Where this prompt's evaluation blocks start (below CHUNK): so that the tokens before
        its last message's content (the chat template's opening, a system prompt, few-shot
        demonstrations: the same for every item of a run) end on a block boundary. A function
        of the request alone."""
        if not request.messages:
            return 0
        last = request.messages[-1]
        try:
            bare = self.render([*request.messages[:-1], Message(last.role, "")])
            opening = self.llm.tokenize(bare.encode("utf-8"), add_bos=False, special=True)
        except Exception:  # a template that refuses an empty message: blocks from 0
            return 0
        offset = shared_length(opening, tokens) % CHUNK
        return offset if offset < len(tokens) else 0

    def _reuse_prefix(self, tokens: list[int], offset: int = 0) -> list[int]:
        """Keep the cached prompt prefix this prompt shares, cut to whole evaluation blocks,
        and return the tokens still to evaluate.

        Logits depend slightly on how a prompt is cut into batches. A prompt is therefore
        evaluated in blocks that depend on the prompt alone: a first one of ``offset`` tokens
        (see _block_offset), then blocks of CHUNK (n_batch = CHUNK). Only whole blocks of a
        cache cut the same way are reused: the reused cache then holds exactly what a fresh
        evaluation would compute, and an answer never depends on what ran before it. The
        opening every item of a run shares is evaluated once, and few-shot demonstrations
        once instead of per item.
        """
        llm = self.llm
        try:
            common = shared_length(llm._input_ids[: llm.n_tokens], tokens)
            # At least one token is evaluated afresh: its logits start the decode.
            usable = min(common, len(tokens) - 1)
            keep = 0
            if offset == self._offset and usable >= offset:
                keep = offset + (usable - offset) // CHUNK * CHUNK
            if keep and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
                llm.n_tokens = keep
                return tokens[keep:]
        except (AttributeError, TypeError):  # internals of another llama-cpp-python release
            pass
        llm.reset()
        self._offset = offset
        if offset:
            llm.eval(tokens[:offset])  # the first block; generate() goes on in blocks of CHUNK
        return tokens[offset:]

    def _grammar(self, gbnf: str) -> "llama_cpp.LlamaGrammar":
        # Compiled once per grammar text; judges send the same grammar for every item.
        if gbnf not in self._grammars:
            self._grammars[gbnf] = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def _text(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is None:
            return
        if self._batcher is not None:  # before the model and adapters it uses
            self._batcher.close()
            self._batcher = None
        if self._active is not None:
            set_loras(llm._ctx.ctx, [], [])
        for handle in self._loras.values():  # before the model they belong to
            llama_cpp.llama_adapter_lora_free(handle)
        self._loras.clear()
        llm.close()
