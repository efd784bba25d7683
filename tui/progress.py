"""The CLI's view of a running session: a progress bar fed by engine events, and the
worker thread that runs it so that Ctrl-C becomes a clean cancel."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from saferlab.engine.export import config_title
from saferlab.engine.events import (Event, ItemJudged, RunFinished, RunStarted, SessionFinished,
                                    SessionStarted)


class ProgressView:
    """Receives events on the runner's thread; rich's Progress is safe to update from there."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=console, transient=False, disable=not enabled,
        )
        self.task: TaskID | None = None
        self.tokens = 0
        self.started = time.perf_counter()
        self.lock = threading.Lock()
        self.run_labels: dict[int, str] = {}

    def __enter__(self) -> "ProgressView":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.started = time.perf_counter()
            self.task = self.progress.add_task(f"session s{event.session_id}",
                                               total=event.items, rate="")
        elif isinstance(event, RunStarted) and self.task is not None:
            label = f"run {event.run_id} {config_title(event.config)}"
            self.run_labels[event.run_id] = label
            # Items a resumed run already has are not work of this call: keep the ETA honest.
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, description=label, total=total - event.done)
        elif isinstance(event, ItemJudged) and self.task is not None:
            self.tokens += event.result.completion_tokens
            elapsed = time.perf_counter() - self.started
            rate = f"{self.tokens / elapsed:5.1f} tok/s" if elapsed > 0 else ""
            self.progress.update(self.task, advance=1, rate=rate)
        elif isinstance(event, RunFinished) and event.status != "finished":
            self.console.print(f"{self.run_labels.get(event.run_id, event.run_id)}: {event.status}")
        elif isinstance(event, SessionFinished) and self.task is not None:
            self.progress.stop()


class TrainingView:
    """A fine-tuning run's progress bar: step, loss, tokens/s and ETA; stages as lines."""

    def __init__(self, console: Console, enabled: bool) -> None:
        from rich.progress import SpinnerColumn

        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}"), console=console,
            transient=False, disable=not enabled)
        self.task: TaskID | None = None
        self.lock = threading.Lock()

    def __enter__(self) -> "TrainingView":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        from saferlab.engine.events import (TrainingFinished, TrainingStage, TrainingStarted,
                                            TrainingStep)

        with self.lock:
            if not self.enabled:  # a log file: a plain line per stage and every 10 steps
                self._plain(event)
            elif isinstance(event, TrainingStage):
                self.progress.console.print(event.text)
            elif isinstance(event, TrainingStarted):
                self.task = self.progress.add_task(
                    f"t{event.training_id} {event.name}", total=event.total_steps,
                    completed=event.done_steps, loss="-", rate="", eta="-")
            elif isinstance(event, TrainingStep) and self.task is not None:
                eta = "-" if event.eta_s is None else time.strftime(
                    "%H:%M:%S", time.gmtime(event.eta_s))
                self.progress.update(
                    self.task, completed=event.step,
                    loss="-" if event.loss is None else f"{event.loss:.3f}",
                    rate=f"{event.tokens_per_s:.0f} tok/s" if event.tokens_per_s else "",
                    eta=eta)
            elif isinstance(event, TrainingFinished) and self.task is not None:
                self.progress.stop()

    def _plain(self, event: Event) -> None:
        from saferlab.engine.events import TrainingStage, TrainingStep

        if isinstance(event, TrainingStage):
            self.console.print(event.text, highlight=False, markup=False)
        elif isinstance(event, TrainingStep) and (event.step % 10 == 0
                                                  or event.step == event.total_steps):
            rate = f", {event.tokens_per_s:.0f} tok/s" if event.tokens_per_s else ""
            eta = f", eta {event.eta_s / 60:.1f} min" if event.eta_s is not None else ""
            loss = "-" if event.loss is None else f"{event.loss:.3f}"
            self.console.print(f"step {event.step}/{event.total_steps}, loss {loss}{rate}{eta}",
                               highlight=False, markup=False)


def execute(store: Any, plans: list, session_id: int | None,
            backend_options: dict | None = None, cache: bool = True) -> Any:
    """Run plans with a progress bar on stderr; Ctrl-C cancels cleanly. ``store`` None keeps
    nothing; ``cache`` False decodes every item even when an identical request was answered
    before."""
    from saferlab.engine import Lab, NullRecorder

    from .literal import LiteralConsole

    err = LiteralConsole(stderr=True)
    cancel = threading.Event()
    with ProgressView(err, enabled=err.is_terminal) as view:
        lab = Lab(recorder=store if store is not None else NullRecorder(), emit=view,
                  hash_cache=store, backend_options=backend_options or {}, cache=cache)
        return run_in_thread(lambda: lab.run(plans, cancel=cancel, session_id=session_id),
                             cancel, err)


def run_in_thread(work: Callable[[], Any], cancel: threading.Event, err: Any,
                  stopping: str = "cancelling after the current token (Ctrl-C again to quit "
                                  "now)") -> Any:
    """Run the session in a worker so Ctrl-C lands here and becomes a clean cancel."""
    box: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the main thread below
            box["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=target, name="saferlab-run", daemon=True).start()
    # Wait on an Event, not Thread.join: a KeyboardInterrupt that lands inside join() can
    # leave the thread looking finished while it still runs.
    while not finished.is_set():
        try:
            finished.wait(0.2)
        except KeyboardInterrupt:
            if cancel.is_set():
                raise
            cancel.set()
            err.print(stopping)
    if "error" in box:
        raise box["error"]
    return box["value"]
