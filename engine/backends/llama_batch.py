"""Continuous batching on llama.cpp: several sequences decoded together in one context.

llama-cpp-python's ``Llama`` holds one sequence, so the batch gets a context of its own, made
with ``n_seq_max`` slots through the low-level API; the model (and its LoRA adapters) are
shared with the ``Llama`` that loaded them. Every step is one ``llama_decode`` call carrying
the next token of each sequence that is generating and the prompt tokens of those just
admitted; a sequence that ends frees its slot and the next request takes it in the same step,
so the batch stays full to the end. The prompt prefix that every request of a call shares (a
system prompt, few-shot demonstrations) is evaluated once into a sequence of its own and
shared with each slot (the KV cache is unified, so sharing copies no data).

Each sequence has its own sampler chain (grammar, top-k, top-p, temperature, a distribution
seeded with the request's seed, or greedy), so sampling never depends on its neighbours. The
numbers may: llama.cpp's kernels are not batch-invariant, so outputs are reproducible for a
fixed batch size, request order and seed, and may differ between batch sizes.
"""

from __future__ import annotations

import codecs
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import llama_cpp

from ..types import (FINISH_CANCELLED, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP,
                     GenerationRequest, GenerationResult)

N_BATCH = 512  # tokens per llama_decode call at most (prompt tokens of admitted sequences)
CHUNK = 16  # the shared prefix is cut to a whole number of these blocks


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two token lists start with in common."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def set_loras(ctx: Any, handles: list[Any], scales: list[float]) -> None:
    """Make these LoRA adapters (llama.cpp handles, each at its scale) the ones a context
    applies; none: the base model."""
    import ctypes

    n = len(handles)
    if n == 0:
        status = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
    else:
        status = llama_cpp.llama_set_adapters_lora(
            ctx, (llama_cpp.llama_adapter_lora_p_ctypes * n)(*handles), n,
            (ctypes.c_float * n)(*scales))
    if status:
        raise RuntimeError(f"llama.cpp could not switch to {n} adapter(s) (status {status})")


@dataclass
class _Sequence:
    request: GenerationRequest
    tokens: list[int]  # the whole prompt
    todo: list[int]  # prompt tokens still to evaluate
    pos: int  # position of the next token
    budget: int
    sampler: Any
    started: float
    out: list[int] = field(default_factory=list)
    ttft_ms: float | None = None
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(
        errors="replace"))
    last: int | None = None  # the token sampled last, evaluated in the next step


class BatchDecoder:
    """A context of ``slots`` sequences over a loaded model, fed requests by ``decode``."""

    def __init__(self, llm: "llama_cpp.Llama", slots: int, n_ctx: int, n_threads: int,
                 is_eog: Callable[[int], bool], share_prefix: bool = True) -> None:
        self.llm, self.slots, self.is_eog = llm, slots, is_eog
        self.share_prefix = share_prefix
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = N_BATCH
        params.n_seq_max = slots + 1  # the last one holds the shared prefix
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = True
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not make a context of {slots} sequences "
                               "(it holds a limited number, and each needs memory): lower the "
                               "batch size")
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self.batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        # For tests and benchmarks: llama_decode calls made, tokens they evaluated, and the
        # length of the last shared prefix.
        self.decode_calls = self.tokens_evaluated = self.last_prefix = 0
        self.prefix_seq = slots

    # -- the decode loop ---------------------------------------------------------------

    def decode(self, prepared: Sequence[tuple[GenerationRequest, list[int]]], max_ctx: int,
               cancel: Any, on_token: Any) -> Iterator[GenerationResult]:
        """Decode ``(request, prompt tokens)`` pairs that share one adapter stack; yields
        each result as its sequence ends. ``max_ctx``: the context one sequence may use."""
        llama_cpp.llama_memory_clear(self.memory, True)
        prefix = self._shared_prefix([tokens for _, tokens in prepared]) \
            if self.share_prefix else []
        self.last_prefix = len(prefix)
        if prefix:
            self._evaluate_prefix(prefix)
        queue = deque(prepared)
        active: dict[int, _Sequence] = {}
        used = len(prefix)  # cells of the KV cache taken or promised
        try:
            while queue or active:
                if cancel is not None and cancel.is_set():
                    for seq in active.values():
                        yield self._result(seq, FINISH_CANCELLED)
                    return
                # Admit requests into free slots while the cache can hold them whole.
                while queue and len(active) < self.slots:
                    request, tokens = queue[0]
                    need = len(tokens) - len(prefix) + self._budget(request, tokens, max_ctx)
                    if active and used + need > self.n_ctx:
                        break
                    queue.popleft()
                    slot = next(s for s in range(self.slots) if s not in active)
                    active[slot] = self._admit(slot, request, tokens, prefix, max_ctx)
                    used += need
                outputs = self._fill(active)
                status = llama_cpp.llama_decode(self.ctx, self.batch)
                self.decode_calls += 1
                self.tokens_evaluated += self.batch.n_tokens
                if status != 0:
                    raise RuntimeError(f"llama_decode returned {status}"
                                       + (" (no room left in the KV cache)" if status == 1
                                          else ""))
                for slot, index in outputs:
                    seq = active[slot]
                    finish = self._sample(seq, index, on_token)
                    if finish is not None:
                        del active[slot]
                        used -= len(seq.tokens) - len(prefix) + seq.budget
                        llama_cpp.llama_memory_seq_rm(self.memory, slot, -1, -1)
                        yield self._result(seq, finish)
        except Exception as exc:  # a failed step fails the sequences in it, not the run
            error = f"llama.cpp failed while decoding: {exc}"
            for seq in active.values():
                yield self._result(seq, FINISH_ERROR, error)
            for request, tokens in queue:
                yield GenerationResult(request.id, prompt_tokens=len(tokens),
                                       finish_reason=FINISH_ERROR, error=error)
        finally:
            for seq in active.values():  # a generator closed early leaves these
                if seq.sampler is not None:
                    llama_cpp.llama_sampler_free(seq.sampler)
                    seq.sampler = None
            active.clear()

    @staticmethod
    def _budget(request: GenerationRequest, tokens: list[int], max_ctx: int) -> int:
        return max(1, min(request.params.max_tokens, max_ctx - len(tokens)))

    def _admit(self, slot: int, request: GenerationRequest, tokens: list[int],
               prefix: list[int], max_ctx: int) -> _Sequence:
        if prefix:
            llama_cpp.llama_memory_seq_cp(self.memory, self.prefix_seq, slot, 0, len(prefix))
        return _Sequence(request, tokens, tokens[len(prefix):], len(prefix),
                         self._budget(request, tokens, max_ctx), self._sampler(request),
                         time.perf_counter())

    def _fill(self, active: dict[int, _Sequence]) -> list[tuple[int, int]]:
        """Put each active sequence's next tokens in the batch: the last sampled token of a
        generating one, as much of the prompt as fits of one being admitted. Returns (slot,
        batch index) of the sequences whose logits this step gives."""
        batch, n, outputs = self.batch, 0, []
        generating = [s for s, seq in active.items() if not seq.todo]
        prompting = [s for s, seq in active.items() if seq.todo]
        for slot in sorted(generating):  # one token each, always in
            n = self._put(n, active[slot].last, active[slot], slot, True)
            outputs.append((slot, n - 1))
        for slot in sorted(prompting):
            seq = active[slot]
            room = N_BATCH - n
            if room <= 0:
                break
            take, seq.todo = seq.todo[:room], seq.todo[room:]
            for i, token in enumerate(take):
                last = not seq.todo and i == len(take) - 1
                n = self._put(n, token, seq, slot, last)
            if not seq.todo:
                outputs.append((slot, n - 1))
        batch.n_tokens = n
        return outputs

    def _put(self, n: int, token: int | None, seq: _Sequence, slot: int, logits: bool) -> int:
        batch = self.batch
        batch.token[n] = token
        batch.pos[n] = seq.pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = slot
        batch.logits[n] = logits
        seq.pos += 1
        return n + 1

    def _sample(self, seq: _Sequence, index: int, on_token: Any) -> str | None:
        """Sample the sequence's next token; the finish reason once it has ended."""
        token = llama_cpp.llama_sampler_sample(seq.sampler, self.ctx, index)
        if seq.ttft_ms is None:
            seq.ttft_ms = (time.perf_counter() - seq.started) * 1000
        if self.is_eog(token):
            return FINISH_STOP
        seq.out.append(token)
        seq.last = token
        if on_token is not None:
            piece = seq.decoder.decode(self.llm.detokenize([token]))
            if piece:
                on_token(seq.request.id, piece)
        if len(seq.out) >= seq.budget:
            return FINISH_LENGTH
        return None

    def _result(self, seq: _Sequence, finish: str, error: str | None = None
                ) -> GenerationResult:
        if seq.sampler is not None:
            llama_cpp.llama_sampler_free(seq.sampler)
            seq.sampler = None
        return GenerationResult(
            seq.request.id,
            text=self.llm.detokenize(seq.out).decode("utf-8", errors="replace"),
            prompt_tokens=len(seq.tokens), completion_tokens=len(seq.out), ttft_ms=seq.ttft_ms,
            duration_ms=(time.perf_counter() - seq.started) * 1000, finish_reason=finish,
            error=error)

    # -- the shared prefix -------------------------------------------------------------

    @staticmethod
    def _shared_prefix(prompts: list[list[int]]) -> list[int]:
        """The tokens every prompt starts with, cut to whole CHUNK blocks and leaving at least
        one token of each prompt to evaluate (its logits start the decode)."""
        if len(prompts) < 2:
            return []
        first, common = prompts[0], min(len(p) for p in prompts) - 1
        for other in prompts[1:]:
            common = shared_length(first[:common], other)
        return first[: common // CHUNK * CHUNK]

    def _evaluate_prefix(self, prefix: list[int]) -> None:
        batch = self.batch
        for start in range(0, len(prefix), N_BATCH):
            block = prefix[start:start + N_BATCH]
            for i, token in enumerate(block):
                batch.token[i] = token
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = self.prefix_seq
                batch.logits[i] = False
            batch.n_tokens = len(block)
            status = llama_cpp.llama_decode(self.ctx, batch)
            self.decode_calls += 1
            self.tokens_evaluated += len(block)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status} on the shared prefix")

    # -- sampling ----------------------------------------------------------------------

    def _sampler(self, request: GenerationRequest) -> Any:
        params = request.params
        chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params())
        add = lambda s: llama_cpp.llama_sampler_chain_add(chain, s)  # noqa: E731
        if request.grammar:
            grammar = llama_cpp.llama_sampler_init_grammar(
                self.vocab, request.grammar.encode("utf-8"), b"root")
            if not grammar:
                llama_cpp.llama_sampler_free(chain)
                raise ValueError("llama.cpp could not parse the judge's grammar")
            add(grammar)
        if params.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            add(llama_cpp.llama_sampler_init_dist(params.seed))  # below 0xFFFFFFFF: see MAX_SEED
        return chain

    def close(self) -> None:
        if self.ctx:
            set_loras(self.ctx, [], [])
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
