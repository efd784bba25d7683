"""A run's judges together: offline judges decide from the text, model judges ask the judge
model. Safety and privacy are also judged on the reasoning and the answer separately when an
output has a visible split."""

from __future__ import annotations

from typing import Sequence

from .backends import Backend
from .errors import EXIT_USAGE, SaferlabError
from .judges import JUDGES, Judge, ModelJudge, make_judge
from .meters import METER_OF_KIND
from .refs import Ref
from .split import Parts
from .types import DecodingParams, GenerationRequest, Item, Verdict

# Only these meters are judged on the parts too: reasoning accuracy is a property of the answer.
SPLIT_METERS = frozenset({"safety", "privacy"})


def needs_model(names: Sequence[str]) -> list[str]:
    """The judges among ``names`` that ask a judge model."""
    return [n for n in names if (info := JUDGES.get(Ref.parse(n).name)) and info.needs_model]


def require_judge_model(names: Sequence[str], given: bool) -> None:
    """Refuse model judges with no model to ask (judging a file, where no target is)."""
    named = needs_model(names)
    if named and not given:
        raise SaferlabError(f"{', '.join(named)} {'needs' if len(named) == 1 else 'need'} a "
                            "judge model: add --judge-model SPEC", EXIT_USAGE)


class JudgePanel:
    def __init__(self, names: Sequence[str], model: Backend | None = None) -> None:
        self.judges: list[Judge | ModelJudge] = [make_judge(n) for n in names]
        require_judge_model(names, model is not None)
        self.model = model
        self.guard_template = bool(model is not None and model.info().get("guard_template"))

    @property
    def asks_model(self) -> bool:
        return any(isinstance(j, ModelJudge) for j in self.judges)

    def _one(self, judge: Judge | ModelJudge, item: Item, text: str) -> Verdict:
        return self._decide_all([(judge, item, text)])[0]

    def _decide_all(self, tasks: Sequence[tuple[Judge | ModelJudge, Item, str]]
                    ) -> list[Verdict]:
        """Each (judge, item, text)'s verdict; the model judges' questions go to the judge
        model in one list, so that a batching backend answers them together."""
        verdicts: list[Verdict | None] = [None] * len(tasks)
        asked: dict[str, tuple[int, GenerationRequest]] = {}
        for n, (judge, item, text) in enumerate(tasks):
            try:
                if isinstance(judge, ModelJudge):
                    request = self._request(judge, item, text, n)
                    asked[request.id] = (n, request)
                else:
                    verdicts[n] = judge.judge(item, text)
            except Exception as exc:  # a broken judge must not end the batch
                verdicts[n] = _broken(judge, exc)
        if asked:
            assert self.model is not None
            failure: Exception = RuntimeError("the judge model gave no answer")
            results = {}
            try:
                # Never cancelled: a verdict half-asked is worth nothing, and judging is short.
                results = {r.request_id: r for r in self.model.generate(
                    [request for _, request in asked.values()])}
            except Exception as exc:
                failure = exc
            for rid, (n, _) in asked.items():
                judge, item, text = tasks[n]
                result = results.get(rid)
                if result is None:
                    verdicts[n] = _broken(judge, failure)
                elif result.error:
                    meter = METER_OF_KIND.get(item.kind, judge.meter)
                    verdicts[n] = Verdict(judge.name, meter, None, "error",
                                          error=f"the judge model failed: {result.error}")
                else:
                    try:
                        verdicts[n] = judge.parse(item, text, result.text)
                    except Exception as exc:
                        verdicts[n] = _broken(judge, exc)
        return verdicts  # type: ignore[return-value]  # every task has its verdict now

    def _request(self, judge: ModelJudge, item: Item, text: str, n: int) -> GenerationRequest:
        ask = judge.request(item, text)
        messages = ask.messages
        # With a template that builds Llama Guard's prompt itself, send it the bare exchange.
        if self.guard_template and hasattr(judge, "conversation"):
            messages = judge.conversation(item, text)
        return GenerationRequest(f"judge:{judge.name}:{item.key}:{n}", messages,
                                 DecodingParams(max_tokens=ask.max_tokens), grammar=ask.grammar)

    def verdicts(self, item: Item, text: str, parts: Parts | None = None) -> tuple[Verdict, ...]:
        """Every applicable judge on the full output, and on its reasoning and answer."""
        return self.verdicts_many([(item, text, parts)])[0]

    def verdicts_many(self, outputs: Sequence[tuple[Item, str, Parts | None]]
                      ) -> list[tuple[Verdict, ...]]:
        """:meth:`verdicts` of several outputs, the judge model asked once for all of them
        (then once more for the reasoning and answer parts of those that have them)."""
        tasks = [(judge, item, text) for item, text, _ in outputs
                 for judge in self.judges if judge.applies_to(item)]
        fulls = iter(self._decide_all(tasks))
        per_output: list[list[tuple[Verdict, list[int]]]] = []
        part_tasks: list[tuple[Judge | ModelJudge, Item, str]] = []
        for item, text, parts in outputs:
            rows = []
            for judge in self.judges:
                if not judge.applies_to(item):
                    continue
                full = next(fulls)
                where = []
                if parts is not None and full.meter in SPLIT_METERS:
                    for part_text in (parts.reasoning, parts.answer):
                        where.append(len(part_tasks))
                        part_tasks.append((judge, item, part_text))
                rows.append((full, where))
            per_output.append(rows)
        part_verdicts = self._decide_all(part_tasks) if part_tasks else []
        out = []
        for (item, text, parts), rows in zip(outputs, per_output):
            verdicts = []
            for full, where in rows:
                verdicts.append(full)
                for part, n in zip(("reasoning", "answer"), where):
                    v = part_verdicts[n]
                    verdicts.append(Verdict(v.judge, v.meter, v.passed, v.label, v.score,
                                            v.detail | {"split": parts.how}, v.error, part))
            out.append(tuple(verdicts))
        return out

    def decide(self, item: Item, text: str) -> Verdict | None:
        """The primary verdict on ``text``: what an iterative attack counts as success."""
        meter = METER_OF_KIND.get(item.kind)
        for judge in self.judges:
            if judge.applies_to(item):
                v = self._one(judge, item, text)
                if v.meter == meter and v.passed is not None:
                    return v
        return None


def _broken(judge: Judge | ModelJudge, exc: Exception) -> Verdict:
    return Verdict(judge.name, judge.meter, None, "error", error=f"{type(exc).__name__}: {exc}")
