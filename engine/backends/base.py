"""The backend interface: a list of requests in, results out as each one completes."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..types import GenerationRequest, GenerationResult

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
