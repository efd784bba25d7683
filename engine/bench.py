"""`saferlab bench`: the lab's decode figures beside plain llama-cpp-python, in one run.

Every figure decodes the same built-in harmful requests greedily with the same context and
thread count; model loading is left out, and each engine decodes a warm-up request first.
Plain llama-cpp-python is ``Llama.create_chat_completion`` in a loop, the way people script
it. The lab's figures are end to end: from the session's start to its end, judging and
recording included. tui/bench.py puts every figure together (it has the database and the
interface to measure as well).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from .backends.base import DEFAULT_CTX
from .events import Event, ItemJudged, SessionFinished, SessionStarted
from .lab import Lab
from .plan import SessionSpec
from .types import DecodingParams

Progress = Callable[[str], None]


def plain_llama_cpp(path: str, conversations: list[list[dict]], max_tokens: int, threads: int,
                    progress: Progress) -> dict[str, Any]:
    """Plain llama-cpp-python, one chat completion after another."""
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=DEFAULT_CTX, n_threads=threads, verbose=False)
    try:
        llm.create_chat_completion(messages=conversations[0], max_tokens=8, temperature=0.0)
        tokens, started = 0, time.perf_counter()
        for i, messages in enumerate(conversations, 1):
            out = llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                             temperature=0.0)
            tokens += out["usage"]["completion_tokens"]
            progress(f"  plain llama-cpp-python {i}/{len(conversations)}")
        seconds = time.perf_counter() - started
    finally:
        llm.close()
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


class SessionClock:
    """An emit that times a session from its start to its end and counts judged items."""

    def __init__(self, progress: Progress | None = None, label: str = "") -> None:
        self.progress, self.label = progress, label
        self.started = self.ended = 0.0
        self.items = 0
        self.decode_ms = 0.0  # the items' own decoding times (overlapping when batched)

    def __call__(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.started = time.perf_counter()
        elif isinstance(event, SessionFinished):
            self.ended = time.perf_counter()
        elif isinstance(event, ItemJudged):
            self.items += 1
            if not event.cached:
                self.decode_ms += event.result.duration_ms
            if self.progress and self.items % 4 == 0:
                self.progress(f"  {self.label} {self.items} items")

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def lab_decode(spec: SessionSpec, options: dict[str, Any], progress: Progress, label: str,
               recorder: Any = None, cache: bool = False) -> dict[str, Any]:
    """The lab's runner on ``spec``'s items with backend ``options``, end to end."""
    clock = SessionClock(progress, label)
    lab = Lab(recorder=recorder, emit=clock, backend_options=options, cache=cache)
    started = time.perf_counter()
    backend, config = lab.load_model(spec.model)
    loaded = time.perf_counter() - started
    try:
        warm_up(spec, backend=backend, model_config=config)
        outcome = lab.run(lab.plan(spec), backend=backend, model_config=config)
    finally:
        backend.close()
    runs = outcome.runs
    tokens = sum(r.completion_tokens for r in runs)
    return {"tokens": tokens, "seconds": clock.seconds,
            "tokens_per_s": tokens / clock.seconds if clock.seconds else None,
            "decode_s": clock.decode_ms / 1000, "items": sum(r.generated for r in runs),
            "cached": sum(r.cached for r in runs), "failed": sum(r.errors for r in runs),
            "error": next((r.error for r in runs if r.error), None), "load_s": loaded}


def warm_up(spec: SessionSpec, **model: Any) -> None:
    """One harmful item of 8 tokens, not recorded, on the model about to be timed (``model``:
    Lab.run's backend and model_config, or model): the batch context's creation and the first
    touch of its memory stay out of every span measured, the runner's and the interface's."""
    short = replace(spec, limit=1, suites=("harmful",), params=DecodingParams(max_tokens=8))
    lab = Lab(cache=False)
    lab.run(lab.plan(short), **model)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None
