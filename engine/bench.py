"""`saferlab bench`: decode speed of the lab's runner beside plain llama-cpp-python.

Both decode the same harmful requests greedily with the same context and thread count; the
model load is left out of both figures, and each side decodes one warm-up request first.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Iterator

from .backends.llama_cpp import DEFAULT_CTX, default_threads
from .events import Event, ItemJudged, SessionFinished, SessionStarted
from .lab import Lab
from .models import check_gguf, parse_model_spec
from .plan import SessionSpec
from .types import DecodingParams


def _plain(path: str, conversations: list[list[dict]], max_tokens: int, threads: int,
           progress: Callable[[str], None]) -> tuple[int, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=DEFAULT_CTX, n_threads=threads, verbose=False)
    llm.create_chat_completion(messages=conversations[0], max_tokens=8, temperature=0.0)
    tokens, started = 0, time.perf_counter()
    for i, messages in enumerate(conversations, 1):
        out = llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                         temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
        progress(f"  plain llama-cpp-python {i}/{len(conversations)}")
    seconds = time.perf_counter() - started
    llm.close()
    return tokens, seconds


def bench(models: list[str], items: int, max_tokens: int, threads: int | None,
          progress: Callable[[str], None],
          backend_options: dict | None = None) -> Iterator[str]:
    """Lines of figures: for each model, saferlab's runner on the same prompts, and for GGUF
    models plain llama-cpp-python first."""
    threads = threads or default_threads()
    spec = SessionSpec(model=models[0], suites=("harmful",), limit=items,
                       params=DecodingParams(max_tokens=max_tokens))
    plans = Lab().plan(spec)
    conversations = [[m.to_dict() for m in p.messages] for p in plans[0].items]
    for model in models:
        ref = parse_model_spec(model)
        if ref.path is not None:
            check_gguf(ref.path)
            tokens, seconds = _plain(str(ref.path), conversations, max_tokens, threads, progress)
            yield (f"{model} plain llama-cpp-python: {tokens} tokens in {seconds:.2f} s = "
                   f"{tokens / seconds:.1f} tokens/s ({len(conversations)} prompts, "
                   f"{threads} threads)")
        yield _runner_line(model, spec, threads, progress, backend_options or {})


def _runner_line(model: str, spec: SessionSpec, threads: int, progress: Callable[[str], None],
                 backend_options: dict) -> str:
    marks: dict[str, float] = {}
    plans = Lab().plan(replace(spec, model=model))
    total = len(plans[0].items)
    done = [0]

    def emit(event: Event) -> None:
        if isinstance(event, SessionStarted):
            marks["start"] = time.perf_counter()
        elif isinstance(event, SessionFinished):
            marks["end"] = time.perf_counter()
        elif isinstance(event, ItemJudged):
            done[0] += 1
            progress(f"  {model} through saferlab {done[0]}/{total}")

    lab = Lab(emit=emit, backend_options={"n_threads": threads} | backend_options)
    started = time.perf_counter()
    backend, _ = lab.load_model(model)
    loaded = time.perf_counter() - started
    try:
        warm = replace(spec, model=model, limit=1, params=DecodingParams(max_tokens=8))
        Lab().run(lab.plan(warm), backend=backend)
        run = lab.run(plans, backend=backend).runs[0]
    finally:
        backend.close()
    seconds = marks["end"] - marks["start"]
    failed = total - run.generated
    return (f"{model} through saferlab: {run.completion_tokens} tokens in {seconds:.2f} s = "
            f"{run.completion_tokens / seconds:.1f} tokens/s (load {loaded:.1f} s; generate, "
            f"judge and emit included" + (f"; {failed} items failed" if failed else "") + ")")
