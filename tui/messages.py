"""What the batch worker tells the interface. Named for what happened; "latest value"
messages replace their queued predecessor, so a fast model never floods the screen."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class SessionBegan(Message):
    def __init__(self, session_id: int, runs: int, items: int) -> None:
        super().__init__()
        self.session_id, self.runs, self.items = session_id, runs, items


class RunBegan(Message):
    def __init__(self, run_id: int, title: str, total: int, done: int) -> None:
        super().__init__()
        self.run_id, self.title, self.total, self.done = run_id, title, total, done


class ItemBegan(Message):
    def __init__(self, run_id: int, key: str, prompt: str) -> None:
        super().__init__()
        self.run_id, self.key, self.prompt = run_id, key, prompt


class TokensStreamed(Message):
    """Tokens of the current item, gathered over FLUSH_S (bridge.py), with the progress
    line of that moment: both change in one repaint."""

    def __init__(self, run_id: int, key: str, text: str,
                 progress: "ProgressChanged | None" = None) -> None:
        super().__init__()
        self.run_id, self.key, self.text = run_id, key, text
        self.progress = progress


class ItemJudged(Message):
    def __init__(self, run_id: int, key: str, kind: str, prompt: str, output: str,
                 verdicts: list[dict[str, Any]], error: str | None, cached: bool = False) -> None:
        super().__init__()
        self.run_id, self.key, self.kind, self.prompt = run_id, key, kind, prompt
        self.output, self.verdicts, self.error = output, verdicts, error
        self.cached = cached  # answered from the result cache, not decoded


class MetersChanged(Message):
    def __init__(self, run_id: int, meters: dict[str, dict[str, Any]], done: int,
                 total: int) -> None:
        super().__init__()
        self.run_id, self.meters, self.done, self.total = run_id, meters, done, total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MetersChanged) and message.run_id == self.run_id


class ProgressChanged(Message):
    """Items done over the whole batch, tokens/s and the estimated time left."""

    def __init__(self, done: int, total: int, tokens_per_s: float | None,
                 eta_s: float | None) -> None:
        super().__init__()
        self.done, self.total = done, total
        self.tokens_per_s, self.eta_s = tokens_per_s, eta_s

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProgressChanged)


class RunEnded(Message):
    def __init__(self, run_id: int, status: str, error: str | None = None) -> None:
        super().__init__()
        self.run_id, self.status, self.error = run_id, status, error


class BatchEnded(Message):
    def __init__(self, session_id: int | None, status: str, error: str | None = None) -> None:
        super().__init__()
        self.session_id, self.status, self.error = session_id, status, error


class ModelLoaded(Message):
    def __init__(self, spec: str, summary: dict[str, Any]) -> None:
        super().__init__()
        self.spec, self.summary = spec, summary


class ModelFailed(Message):
    def __init__(self, spec: str, error: str) -> None:
        super().__init__()
        self.spec, self.error = spec, error
