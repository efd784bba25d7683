"""The persistence seam: the engine calls a Recorder; db/ implements it over SQLite, and
NullRecorder serves --no-log and unit tests."""

from __future__ import annotations

import itertools
from typing import Any, Protocol, Sequence

from .cache import CachedAnswer, CacheMark
from .types import GenerationResult, Item, Message, Meter, Turn, Verdict


class Recorder(Protocol):
    def start_session(self, config: dict[str, Any]) -> int: ...

    def create_run(self, session_id: int, config: dict[str, Any],
                   items: Sequence[tuple[Item, Sequence[Message]]]) -> int:
        """Store a planned run (status "pending") with its items and their messages. All runs
        of a session are created before the first starts, so a resume knows every one."""
        ...

    def begin_run(self, run_id: int, retry_errors: bool = False) -> dict[str, list[Verdict]]:
        """Mark the run running; return the verdicts of the items already generated, by item
        id (an item whose generation failed maps to an empty list). With ``retry_errors``,
        failed generations are dropped first, so their items are generated again."""
        ...

    def record_generation(self, run_id: int, item: Item, messages: Sequence[Message],
                          result: GenerationResult, verdicts: Sequence[Verdict],
                          turns: Sequence[Turn] = (), cache: CacheMark | None = None) -> None:
        """Store one generation, its verdicts and, for conversations, every turn (attacker
        rounds included) durably, in one transaction."""
        ...

    def cached_answer(self, key: str, judges_key: str | None = None) -> CachedAnswer | None:
        """The stored answer (not an error, not cancelled) to the request of cache ``key``;
        one judged by ``judges_key`` first, when there is one."""
        ...

    def finish_run(self, run_id: int, status: str, meters: dict[str, Meter],
                   error: str | None = None) -> None: ...

    def finish_session(self, session_id: int, status: str) -> None: ...


class NullRecorder:
    """Keeps nothing but ids and counts."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.generations = 0
        self.statuses: dict[int, str] = {}

    def start_session(self, config: dict[str, Any]) -> int:
        return next(self._ids)

    def create_run(self, session_id, config, items) -> int:
        run_id = next(self._ids)
        self.statuses[run_id] = "pending"
        return run_id

    def begin_run(self, run_id, retry_errors=False) -> dict[str, list[Verdict]]:
        self.statuses[run_id] = "running"
        return {}

    def record_generation(self, run_id, item, messages, result, verdicts, turns=(),
                          cache=None) -> None:
        self.generations += 1

    def cached_answer(self, key, judges_key=None) -> CachedAnswer | None:
        return None

    def finish_run(self, run_id, status, meters, error=None) -> None:
        self.statuses[run_id] = status

    def finish_session(self, session_id, status) -> None:
        pass


class TrainingRecorder(Protocol):
    """Where a fine-tuning run is kept: its configuration and exact training set first, then
    the loss of every step, then what it made."""

    def start_training(self, config: dict[str, Any], examples: Sequence[dict[str, Any]],
                       data_sha256: str) -> int: ...

    def record_training_step(self, training_id: int, step: int, loss: float | None,
                             learning_rate: float | None, tokens: int,
                             elapsed_ms: float) -> None: ...

    def finish_training(self, training_id: int, status: str, result: dict[str, Any]) -> None:
        """``result``: duration, tokens/s, peak memory, the adapter's paths and sha256, or the
        error; a finished training's adapters are registered too."""
        ...


class NullTrainingRecorder:
    def __init__(self) -> None:
        self.steps: list[tuple[int, float | None]] = []
        self.results: dict[int, tuple[str, dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def start_training(self, config, examples, data_sha256) -> int:
        return next(self._ids)

    def record_training_step(self, training_id, step, loss, learning_rate, tokens,
                             elapsed_ms) -> None:
        self.steps.append((step, loss))

    def finish_training(self, training_id, status, result) -> None:
        self.results[training_id] = (status, result)
