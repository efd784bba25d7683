"""The one orchestration loop: plans in; generate, judge, emit and record each item."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

from .backends import Backend
from .backends.base import can_overlap
from .cache import CacheMark, judges_key, request_key, run_scope
from .events import (Emit, ItemGenerated, ItemJudged, MetersUpdated, RunFailed, RunFinished,
                     RunStarted, SessionFinished, SessionStarted, TokenGenerated, ignore)
from .judging import JudgePanel
from .meters import MeterTally
from .plan import PlannedItem, RunPlan
from .prompting import Recipe
from .protocols import ATTACKER, ItemOutcome, run_item
from .recorder import NullRecorder, Recorder
from .split import split_output
from .types import (FINISH_CANCELLED, DecodingParams, GenerationRequest, GenerationResult,
                    Message, Meter, Verdict)


@dataclass
class RunOutcome:
    run_id: int
    config: dict
    status: str  # finished, cancelled or failed
    meters: dict[str, Meter]
    generated: int  # generations made in this call
    total: int
    error: str | None = None
    completion_tokens: int = 0
    errors: int = 0  # items of this call whose generation failed (stored, retried on resume)
    # Wall-clock time of this call's items, judging and recording included: with batched
    # decoding the items' own durations overlap, so their sum would understate the speed.
    elapsed_ms: float = 0.0
    cached: int = 0  # items answered from the result cache instead of decoded


@dataclass
class SessionOutcome:
    session_id: int
    status: str
    runs: list[RunOutcome] = field(default_factory=list)


# Outputs whose model judges are asked together (engine/judging.py's verdicts_many).
JUDGE_BATCH = 16


class _Judging:
    """Judges batches of outputs and keeps them in order, on the calling thread or, with
    ``overlap``, in one worker thread, a batch at a time: the caller goes on decoding while a
    batch is judged. Keeping (recording, events) always happens on the calling thread."""

    def __init__(self, judge: Callable[[list], list], keep: Callable[..., None],
                 overlap: bool) -> None:
        self.judge, self.keep = judge, keep
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="saferlab-judge") if overlap \
            else None
        self.in_flight: tuple[list, Future] | None = None

    def submit(self, batch: list[tuple[PlannedItem, ItemOutcome]]) -> None:
        if self.pool is None:
            self._keep(batch, self.judge(batch))
            return
        self.finish()  # one batch judged at a time, kept in order
        self.in_flight = (batch, self.pool.submit(self.judge, batch))

    def keep_finished(self) -> None:
        """Keep the batch in flight if its verdicts are in (the meters move sooner)."""
        if self.in_flight is not None and self.in_flight[1].done():
            self.finish()

    def finish(self) -> None:
        """Wait for the batch in flight and keep it; raises what judging raised."""
        if self.in_flight is not None:
            batch, future = self.in_flight
            self.in_flight = None
            self._keep(batch, future.result())

    def _keep(self, batch, verdicts) -> None:
        for (planned, item_outcome), item_verdicts in zip(batch, verdicts):
            self.keep(planned, item_outcome, item_verdicts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class Runner:
    def __init__(self, backend: Backend, recorder: Recorder | None = None, emit: Emit = ignore,
                 cancel: threading.Event | None = None, attacker: Backend | None = None,
                 judge_model: Backend | None = None, cache: bool = True) -> None:
        self.backend = backend
        self.cache = cache  # answer identical requests from the database's earlier runs
        self.attacker = attacker or backend  # the attacker model of iterative attacks
        self.judge_model = judge_model  # for model judges (llm-judge, strongreject, ...)
        self._memo: dict[tuple, GenerationResult] = {}
        self.recorder = recorder or NullRecorder()
        self.emit = emit
        self.cancel = cancel or threading.Event()

    def run_session(self, plans: Sequence[RunPlan], session_id: int | None = None,
                    session_config: dict | None = None) -> SessionOutcome:
        """Run each plan in turn. ``session_id`` continues an existing session (resume)."""
        if session_id is None:
            session_id = self.recorder.start_session(session_config or {})
        outcome = SessionOutcome(session_id, "finished")
        self.emit(SessionStarted(session_id, len(plans), sum(len(p.items) for p in plans)))
        # Every run is stored before the first starts, so that a resume knows them all.
        plans = [plan if plan.run_id is not None else replace(
            plan, run_id=self.recorder.create_run(session_id, plan.config(),
                                                  [(p.item, p.messages) for p in plan.items]))
                 for plan in plans]
        try:
            for plan in plans:
                run = self._run(plan)
                outcome.runs.append(run)
                if run.status != "finished":
                    outcome.status = run.status
                    break
        finally:
            self.recorder.finish_session(session_id, outcome.status)
            self.emit(SessionFinished(session_id, outcome.status))
        return outcome

    def _run(self, plan: RunPlan) -> RunOutcome:
        assert plan.run_id is not None
        run_id, config = plan.run_id, plan.config()
        panel = JudgePanel(plan.spec.judges, self.judge_model)
        tally = MeterTally()
        done = self.recorder.begin_run(run_id, retry_errors=plan.retry_errors)
        for p in plan.items:
            if p.item.id in done:
                tally.add_item(p.item.kind, done[p.item.id])
        pending = [p for p in plan.items if p.item.id not in done]
        total = len(plan.items)
        count = total - len(pending)
        outcome = RunOutcome(run_id, config, "finished", tally.snapshot(), 0, total)
        self.emit(RunStarted(run_id, config, total, count,
                             {p.item.key: p.messages[-1].content for p in plan.items
                              if p.messages}))
        self.emit(MetersUpdated(run_id, outcome.meters, count, total))

        recipe = plan.get_recipe()
        errors: list[str] = []
        started = time.perf_counter()
        already = count

        def keep(planned: PlannedItem, item_outcome: ItemOutcome,
                 verdicts: tuple[Verdict, ...]) -> None:
            result = item_outcome.result
            self.recorder.record_generation(run_id, planned.item, item_outcome.messages,
                                            result, verdicts, item_outcome.turns,
                                            item_outcome.cache)
            tally.add_item(planned.item.kind, verdicts)
            outcome.generated += 1
            if result.error is not None:
                outcome.errors += 1
                errors.append(result.error)
            cached = item_outcome.cache is not None and item_outcome.cache.cached
            if cached:
                outcome.cached += 1
            else:
                outcome.completion_tokens += result.completion_tokens
            outcome.meters = tally.snapshot()
            self.emit(ItemJudged(run_id, planned.item, result, verdicts, cached))
            self.emit(MetersUpdated(run_id, outcome.meters, already + outcome.generated, total))

        # Model judges of single-turn runs are asked for JUDGE_BATCH outputs at once, so that
        # a batching judge model answers them together; the outputs wait that long to be kept.
        together = panel.asks_model and recipe.protocol == "single"
        waiting: list[tuple[PlannedItem, ItemOutcome]] = []
        # A judge model that does not share the target's compute (a served one, or one on
        # another device) judges a batch in a thread while the target decodes the next items;
        # otherwise the target decodes JUDGE_BATCH items, then the judge has the machine.
        overlap = together and self.judge_model is not None \
            and can_overlap(self.backend, self.judge_model)
        judging = _Judging(lambda batch: self._judge_many(panel, recipe, batch), keep,
                           overlap)

        def judge_waiting() -> None:
            judging.submit(list(waiting))
            waiting.clear()

        try:
            for planned, item_outcome in self._outcomes(
                    plan, recipe, panel, pending,
                    JUDGE_BATCH if together and not overlap else None):
                judging.keep_finished()
                self.emit(ItemGenerated(run_id, planned.item, item_outcome.result))
                if item_outcome.cancelled:
                    break  # the item in flight is not kept; resume redoes it
                if item_outcome.verdicts is not None:
                    keep(planned, item_outcome, item_outcome.verdicts)
                elif together and item_outcome.result.error is None:
                    waiting.append((planned, item_outcome))
                    if len(waiting) >= JUDGE_BATCH:
                        judge_waiting()
                else:
                    keep(planned, item_outcome,
                         self._judge_many(panel, recipe, [(planned, item_outcome)])[0])
                if self.cancel.is_set():
                    break
            if waiting:
                judge_waiting()
            judging.finish()
            count = already + outcome.generated
            first_error = errors[0] if errors else None
        except Exception as exc:
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            self.recorder.finish_run(run_id, "failed", outcome.meters, outcome.error)
            self.emit(RunFailed(run_id, outcome.error))
            raise
        finally:
            judging.close()
        if self.cancel.is_set() and count < total:
            outcome.status = "cancelled"
        elif outcome.errors and outcome.errors == outcome.generated \
                and not any(done.values()):
            # Nothing came back (a server down, a key refused): the run is not done.
            outcome.status = "failed"
            outcome.error = f"every item failed ({outcome.errors}); the first: {first_error}"
        elif outcome.errors:
            # On a resume, of the items generated this time, not of the whole run.
            of = (f"the {outcome.generated} items generated on resume ({total} in the run)"
                  if already else f"{outcome.generated} items")
            outcome.error = f"{outcome.errors} of {of} failed; the first: {first_error}"
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000
        self.recorder.finish_run(run_id, outcome.status, outcome.meters, outcome.error)
        self.emit(RunFinished(run_id, outcome.status, outcome.meters, outcome.error))
        return outcome

    @staticmethod
    def _judge_many(panel: JudgePanel, recipe: Recipe,
                    outputs: Sequence[tuple[PlannedItem, ItemOutcome]]
                    ) -> list[tuple[Verdict, ...]]:
        """The verdicts of each output (none for a failed generation)."""
        asked = []
        for planned, outcome in outputs:
            if outcome.result.error is not None:
                continue
            text = recipe.attack.decode(outcome.result.text)
            first = None
            if recipe.protocol == "self-reflect" and len(outcome.turns) == 2:
                first = recipe.attack.decode(outcome.turns[0].result.text)
            asked.append((planned.item, text, split_output(text, first)))
        answers = iter(panel.verdicts_many(asked) if asked else [])
        return [() if outcome.result.error is not None else next(answers)
                for _, outcome in outputs]

    def _outcomes(self, plan: RunPlan, recipe: Recipe, panel: JudgePanel,
                  pending: list[PlannedItem], chunk: int | None = None
                  ) -> Iterator[tuple[PlannedItem, ItemOutcome]]:
        """Each pending item's final output, as it completes. Single-turn runs hand the whole
        list to the backend; conversations go item by item through their protocol."""
        run_id = plan.run_id
        by_id = {p.item.id: p for p in pending}
        current = {"key": ""}

        def on_token(request_id: str, text: str) -> None:
            key = by_id[request_id].item.key if request_id in by_id else current["key"]
            self.emit(TokenGenerated(run_id, key, text))

        params, adapter = plan.spec.params, plan.spec.adapter_stack
        if recipe.protocol == "single":
            yield from self._single(plan, pending, on_token, chunk)
            return

        def talk(actor: str, messages: tuple[Message, ...], p: DecodingParams) -> GenerationResult:
            backend = self.attacker if actor == ATTACKER else self.backend
            request = GenerationRequest(f"{actor}:{current['key']}", messages, p,
                                        adapter=None if actor == ATTACKER else adapter)
            for result in backend.generate([request], self.cancel, on_token):
                return result
            return GenerationResult(request.id, finish_reason=FINISH_CANCELLED)

        for planned in pending:
            if self.cancel.is_set():
                return
            current["key"] = planned.item.key
            yield planned, run_item(recipe, planned.item, planned.messages, talk,
                                    params.for_kind(planned.item.kind), panel.decide)

    def _single(self, plan: RunPlan, pending: list[PlannedItem], on_token,
                chunk: int | None = None) -> Iterator[tuple[PlannedItem, ItemOutcome]]:
        """Single-turn items: those answered before come from this session's memory or the
        result cache; the rest go to the backend in one list, as they complete. With
        ``chunk``, in lists of that many, each decoded whole before its results are handed
        on: the backend is then free for the judge model (the target itself, often)."""
        params, adapter = plan.spec.params, plan.spec.adapter_stack
        config = plan.config()
        scope = run_scope(config, adapter) if self.cache else None
        judges = judges_key(config)
        # Greedy decoding is deterministic: a conversation already answered in this session
        # (a math item under each attack, which never touches it) is not decoded again,
        # unless the cache is off.
        memo = self._memo if params.temperature == 0 and self.cache else {}
        keys: dict[str, str] = {}
        todo = []
        for p in pending:
            item_params = params.for_kind(p.item.kind)
            if scope is not None:
                keys[p.item.id] = request_key(scope, p.messages, item_params)
            mark = CacheMark(keys[p.item.id], judges, cached=True) if scope else None
            remembered = memo.get((p.messages, item_params, adapter))
            if remembered is not None:
                yield p, ItemOutcome(replace(remembered, request_id=p.item.id), p.messages,
                                     cache=mark)
                continue
            hit = self.recorder.cached_answer(keys[p.item.id], judges) if scope else None
            if hit is not None:
                yield p, ItemOutcome(replace(hit.result, request_id=p.item.id), p.messages,
                                     cache=mark,
                                     verdicts=hit.verdicts if hit.judges_key == judges else None)
                continue
            todo.append(p)
        by_id = {p.item.id: p for p in todo}
        requests = [GenerationRequest(p.item.id, p.messages, params.for_kind(p.item.kind),
                                      adapter=adapter) for p in todo]
        size = chunk or len(requests) or 1
        for start in range(0, len(requests), size):
            results = self.backend.generate(requests[start:start + size], self.cancel, on_token)
            for result in (list(results) if chunk else results):
                planned = by_id[result.request_id]
                if result.error is None and result.finish_reason != FINISH_CANCELLED:
                    memo[(planned.messages, params.for_kind(planned.item.kind),
                          adapter)] = result
                mark = CacheMark(keys[planned.item.id], judges) if scope else None
                yield planned, ItemOutcome(result, planned.messages, cache=mark)
                if result.finish_reason == FINISH_CANCELLED:
                    return
