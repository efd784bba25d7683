"""Engine events to interface messages, inside the batch worker's thread.

The engine emits an event per token; the bridge gathers tokens and posts them with the
progress line every FLUSH_S (items that end together share one progress line), and turns the
rest into the messages of tui/messages.py. It never touches a widget."""

from __future__ import annotations

import time
from typing import Callable

from textual.message import Message

from saferlab.engine import events as ev
from saferlab.engine.export import config_title

from . import messages as msg

FLUSH_S = 0.25
METERS_S = 0.25


class Bridge:
    def __init__(self, post: Callable[[Message], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.post, self.clock = post, clock
        self._prompts: dict[str, str] = {}
        self._key: str | None = None
        self._buffers: dict[str, list[str]] = {}
        self._flushed = self._progressed = self._metered = 0.0
        self._meters: msg.MetersChanged | None = None  # not posted yet
        self._started = 0.0
        self._tokens = 0
        self._done = 0
        self._total = 0

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.TokenGenerated):
            # Batched backends interleave several items' tokens: one item is shown at a time,
            # the others gather quietly until their turn.
            self._buffers.setdefault(event.item_key, []).append(event.text)
            self._tokens += 1
            if self._key is None:
                self._key = event.item_key
                self.post(msg.ItemBegan(event.run_id, event.item_key,
                                        self._prompts.get(event.item_key, "")))
            if self.clock() - self._flushed >= FLUSH_S:
                if not self._flush(event.run_id, with_progress=True):
                    self._progress()
        elif isinstance(event, ev.ItemJudged):
            if event.item.key == self._key:
                self._key = None
            self._buffers.pop(event.item.key, None)
            self._done += 1
            r = event.result
            self.post(msg.ItemJudged(
                event.run_id, event.item.key, event.item.kind,
                self._prompts.get(event.item.key, event.item.prompt), r.text,
                [{"judge": v.judge, "meter": v.meter, "label": v.label, "part": v.part,
                  "passed": v.passed, "error": v.error} for v in event.verdicts], r.error,
                event.cached))
            # Items that end together share one progress line; the last one always has its own.
            if self.clock() - self._progressed >= FLUSH_S or self._done >= self._total:
                self._progress()
        elif isinstance(event, ev.MetersUpdated):
            # Items of a batch end in bursts: the gauges redraw at most every METERS_S, and
            # the run's last meters always reach them (at the run's end).
            self._meters = msg.MetersChanged(event.run_id,
                                             {k: m.to_dict() for k, m in event.meters.items()},
                                             event.done, event.total)
            if self.clock() - self._metered >= METERS_S:
                self._post_meters()
        elif isinstance(event, ev.SessionStarted):
            self._started = self._flushed = self.clock()
            self._total = event.items
            self.post(msg.SessionBegan(event.session_id, event.runs, event.items))
        elif isinstance(event, ev.RunStarted):
            self._prompts = dict(event.prompts)  # what the transcript shows, attack included
            self._done += event.done
            self.post(msg.RunBegan(event.run_id, config_title(event.config), event.total,
                                   event.done))
        elif isinstance(event, ev.RunFinished):
            self._flush(event.run_id)
            self._post_meters()
            self._progress()
            self.post(msg.RunEnded(event.run_id, event.status, event.error))
        elif isinstance(event, ev.RunFailed):
            self._post_meters()
            self.post(msg.RunEnded(event.run_id, "failed", event.error))

    def _flush(self, run_id: int, with_progress: bool = False) -> bool:
        """Post the shown item's gathered tokens (with the progress line, if asked); False
        when there were none."""
        self._flushed = self.clock()
        if self._key is None or not self._buffers.get(self._key):
            return False
        progress = self._progress_message() if with_progress else None
        self.post(msg.TokensStreamed(run_id, self._key, "".join(self._buffers[self._key]),
                                     progress))
        self._buffers[self._key] = []
        return True

    def _post_meters(self) -> None:
        self._metered = self.clock()
        if self._meters is not None:
            self.post(self._meters)
            self._meters = None

    def _progress_message(self) -> msg.ProgressChanged:
        elapsed = self.clock() - self._started
        tps = self._tokens / elapsed if elapsed > 0 and self._tokens else None
        eta = (elapsed / self._done * (self._total - self._done)
               if self._done and self._total >= self._done else None)
        self._progressed = self.clock()
        return msg.ProgressChanged(self._done, self._total, tps, eta)

    def _progress(self) -> None:
        self.post(self._progress_message())
