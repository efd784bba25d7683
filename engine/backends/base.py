"""The backend interface: a list of requests in, results out as each one completes."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, Protocol, Sequence, Union

from ..types import FINISH_CANCELLED, GenerationRequest, GenerationResult, Message

# Requests decoded together by the llama.cpp and transformers backends: fixed, never tuned to
# the machine, because greedy outputs depend on the batch shape and a run must reproduce.
DEFAULT_BATCH = 8
DEFAULT_CTX = 4096  # the llama.cpp backend's context, in tokens

# Called with (request id, text piece) as tokens arrive; used for live transcripts.
OnToken = Callable[[str, str], None]

# What a backend is given to load beside its model: a path (named after its file or folder)
# or a (name, path) pair, the name being what requests' adapter stacks use.
AdapterArg = Union[str, tuple[str, str]]


def named_adapters(adapters: Sequence[AdapterArg]) -> list[tuple[str | None, str]]:
    """(name or None, path) for each adapter argument."""
    return [(a[0], a[1]) if isinstance(a, tuple) else (None, a) for a in adapters]


def compute_of(backend: Any) -> str:
    """Where a backend's work runs: "remote" (a server), "cpu", or a GPU ("cuda", "mps",
    "gpu"). Backends say so in their ``compute`` attribute; "cpu" when they do not."""
    return str(getattr(backend, "compute", "cpu"))


def can_overlap(a: Any, b: Any) -> bool:
    """Whether two loaded models can work at the same time without taking each other's
    compute: different models, one of them served elsewhere or the two on different devices.
    Two models on this machine's CPU (or one GPU) would only share it and slow each other."""
    if a is b:
        return False
    where_a, where_b = compute_of(a), compute_of(b)
    return "remote" in (where_a, where_b) or where_a != where_b


class Backend(Protocol):
    """One loaded model.

    ``generate`` yields one result per request, in completion order, and never raises for a
    single request's failure: the result carries ``error``. When ``cancel`` is set it stops
    after the current token, yields the request in flight with finish_reason "cancelled",
    and yields nothing more.
    """

    spec: str
    compute: str  # where it runs: "remote", "cpu", "cuda", "mps" or "gpu" (see compute_of)

    def info(self) -> dict[str, Any]: ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: threading.Event | None = None,
        on_token: OnToken | None = None,
    ) -> Iterator[GenerationResult]: ...

    def close(self) -> None: ...


def one_at_a_time(
    requests: Sequence[GenerationRequest],
    cancel: threading.Event | None,
    generate_one: Callable[[GenerationRequest], GenerationResult],
) -> Iterator[GenerationResult]:
    """The ``generate`` loop of a backend that decodes one request at a time: yields each
    result, and stops after a cancelled one or before the next once ``cancel`` is set."""
    for request in requests:
        if cancel is not None and cancel.is_set():
            return
        result = generate_one(request)
        yield result
        if result.finish_reason == FINISH_CANCELLED:
            return


# Used only when a model carries no chat template; backends record it in info().
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def render_chat(messages: Sequence[Message],
                apply: Callable[[list[dict[str, str]]], str]) -> str:
    """A conversation through a chat template. Some templates (Gemma's, for one) refuse a
    system role: then it is folded into the first user turn, as their model cards advise."""
    chat = [m.to_dict() for m in messages]
    try:
        return apply(chat)
    except Exception:
        if not chat or chat[0]["role"] != "system":
            raise
        system, rest = chat[0]["content"], chat[1:]
        if rest and rest[0]["role"] == "user":
            rest[0] = {"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}
        return apply(rest)
