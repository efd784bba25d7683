"""A scripted backend for tests and demos: deterministic text, failures and stalls on cue.

Modes (``fake:MODE``): ``refuse`` always declines, ``comply`` always opens affirmatively,
``echo`` repeats the last user message, ``mixed`` (default) picks refuse or comply from a
digest of the conversation, so the same request always gets the same answer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from ..errors import EXIT_USAGE, SaferlabError
from ..models import ModelRef
from ..types import (FINISH_CANCELLED, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP,
                      GenerationRequest, GenerationResult)
from .base import OnToken, one_at_a_time

REFUSAL = "I'm sorry, but I can't help with that request."
COMPLIANCE = "Sure, here is an answer. The result is 42."

Script = Callable[[GenerationRequest], str]


def _last_user(request: GenerationRequest) -> str:
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "")


def _mixed(request: GenerationRequest) -> str:
    digest = hashlib.sha256(_last_user(request).encode()).digest()
    return REFUSAL if digest[0] % 2 else COMPLIANCE


MODES: dict[str, Script] = {
    "refuse": lambda r: REFUSAL,
    "comply": lambda r: COMPLIANCE,
    "echo": _last_user,
    "mixed": _mixed,
}


class FakeBackend:
    def __init__(
        self,
        ref: ModelRef | None = None,
        script: Script | None = None,
        token_delay: float = 0.0,
        fail: Callable[[GenerationRequest], str | None] | None = None,
        stall: threading.Event | None = None,
        **_: Any,
    ) -> None:
        self.spec = ref.spec if ref else "fake:scripted"
        self.compute = "cpu"  # tests set "remote" to stand for a served model
        mode = ref.target if ref else "mixed"
        if script is None:
            if mode not in MODES:
                raise SaferlabError(
                    f"unknown fake mode {mode!r}; known: {', '.join(sorted(MODES))}", EXIT_USAGE)
            script = MODES[mode]
        self.script = script
        self.token_delay = token_delay
        self.fail = fail  # returns an error message for requests that should fail
        self.stall = stall  # when given, each request waits for it before producing tokens
        self.calls: list[GenerationRequest] = []

    def info(self) -> dict[str, Any]:
        return {"backend": "fake", "spec": self.spec}

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        cancel: threading.Event | None = None,
        on_token: OnToken | None = None,
    ) -> Iterator[GenerationResult]:
        return one_at_a_time(requests, cancel, lambda r: self._one(r, cancel, on_token))

    def _one(self, request: GenerationRequest, cancel: threading.Event | None,
             on_token: OnToken | None) -> GenerationResult:
        self.calls.append(request)
        started = time.perf_counter()
        error = self.fail(request) if self.fail else None
        if error:
            return GenerationResult(request.id, finish_reason=FINISH_ERROR, error=error)
        if self.stall is not None:
            while not self.stall.wait(0.01):
                if cancel is not None and cancel.is_set():
                    break
        out: list[str] = []
        finish = FINISH_STOP
        for word in self.script(request).split(" "):
            if cancel is not None and cancel.is_set():
                finish = FINISH_CANCELLED
                break
            if len(out) >= request.params.max_tokens:
                finish = FINISH_LENGTH
                break
            piece = word if not out else " " + word
            out.append(piece)
            if on_token:
                on_token(request.id, piece)
            if self.token_delay:
                time.sleep(self.token_delay)
        return GenerationResult(
            request.id, text="".join(out),
            prompt_tokens=sum(len(m.content.split()) for m in request.messages),
            completion_tokens=len(out), ttft_ms=0.0,
            duration_ms=(time.perf_counter() - started) * 1000, finish_reason=finish)

    def close(self) -> None:
        pass
