"""The backend interface: a list of requests in, results out as each one completes."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..types import FINISH_CANCELLED, GenerationRequest, GenerationResult

# Called with (request id, text piece) as tokens arrive; used for live transcripts.
OnToken = Callable[[str, str], None]


class Backend(Protocol):
    """One loaded model.

    ``generate`` yields one result per request, in completion order, and never raises for a
    single request's failure: the result carries ``error``. When ``cancel`` is set it stops
    after the current token, yields the request in flight with finish_reason "cancelled",
    and yields nothing more.
    """

    spec: str

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
