"""`saferlab bench`: decode speed of the lab's runner beside plain llama-cpp-python.

Both decode the same harmful requests greedily with the same context and thread count; the
model load is left out of both figures, and each side decodes one warm-up request first.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from .backends.llama_cpp import DEFAULT_CTX, default_threads
from .errors import EXIT_USAGE, SaferlabError
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


def bench_llama_cpp(model: str, items: int, max_tokens: int, threads: int | None,
                    progress: Callable[[str], None]) -> Iterator[str]:
    ref = parse_model_spec(model)
    if ref.path is None:
        raise SaferlabError("bench compares against llama-cpp-python: give a GGUF model", EXIT_USAGE)
    check_gguf(ref.path)
    threads = threads or default_threads()
    spec = SessionSpec(model=model, suites=("harmful",), limit=items,
                       params=DecodingParams(max_tokens=max_tokens))
    plans = Lab().plan(spec)
    conversations = [[m.to_dict() for m in p.messages] for p in plans[0].items]

    tokens, seconds = _plain(str(ref.path), conversations, max_tokens, threads, progress)
    yield (f"plain llama-cpp-python: {tokens} tokens in {seconds:.2f} s = "
           f"{tokens / seconds:.1f} tokens/s ({len(conversations)} prompts, {threads} threads)")

    marks: dict[str, float] = {}
    generated = [0]

    def emit(event: Event) -> None:
        if isinstance(event, SessionStarted):
            marks["start"] = time.perf_counter()
        elif isinstance(event, SessionFinished):
            marks["end"] = time.perf_counter()
        elif isinstance(event, ItemJudged):
            generated[0] += 1
            progress(f"  saferlab runner {generated[0]}/{len(conversations)}")

    lab = Lab(emit=emit, backend_options={"n_threads": threads})
    backend, _ = lab.load_model(model)
    try:
        warm = SessionSpec(model=model, suites=("harmful",), limit=1,
                           params=DecodingParams(max_tokens=8))
        Lab().run(lab.plan(warm), backend=backend)
        outcome = lab.run(plans, backend=backend)
    finally:
        backend.close()
    run = outcome.runs[0]
    seconds = marks["end"] - marks["start"]
    yield (f"saferlab runner:        {run.completion_tokens} tokens in {seconds:.2f} s = "
           f"{run.completion_tokens / seconds:.1f} tokens/s (generate, judge and emit included)")
