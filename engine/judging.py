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


class JudgePanel:
    def __init__(self, names: Sequence[str], model: Backend | None = None) -> None:
        self.judges: list[Judge | ModelJudge] = [make_judge(n) for n in names]
        model_judges = needs_model(names)
        if model_judges and model is None:
            raise SaferlabError(
                f"{', '.join(model_judges)} need a judge model: add --judge-model SPEC", EXIT_USAGE)
        self.model = model
        # With a template that builds Llama Guard's prompt itself, send it the bare exchange.
        self.guard_template = bool(model is not None and model.info().get("guard_template"))

    def _one(self, judge: Judge | ModelJudge, item: Item, text: str) -> Verdict:
        try:
            if isinstance(judge, ModelJudge):
                return self._ask(judge, item, text)
            return judge.judge(item, text)
        except Exception as exc:  # a broken judge must not end the batch
            return Verdict(judge.name, judge.meter, None, "error",
                           error=f"{type(exc).__name__}: {exc}")

    def _ask(self, judge: ModelJudge, item: Item, text: str) -> Verdict:
        assert self.model is not None
        ask = judge.request(item, text)
        messages = ask.messages
        if self.guard_template and hasattr(judge, "conversation"):
            messages = judge.conversation(item, text)
        request = GenerationRequest(f"judge:{judge.name}:{item.key}", messages,
                                    DecodingParams(max_tokens=ask.max_tokens), grammar=ask.grammar)
        # Never cancelled: a verdict half-asked is worth nothing, and judging is short.
        (result,) = list(self.model.generate([request]))
        if result.error:
            meter = METER_OF_KIND.get(item.kind, judge.meter)
            return Verdict(judge.name, meter, None, "error",
                           error=f"the judge model failed: {result.error}")
        return judge.parse(item, text, result.text)

    def verdicts(self, item: Item, text: str, parts: Parts | None = None) -> tuple[Verdict, ...]:
        """Every applicable judge on the full output, and on its reasoning and answer."""
        out = []
        for judge in self.judges:
            if not judge.applies_to(item):
                continue
            full = self._one(judge, item, text)
            out.append(full)
            if parts is not None and full.meter in SPLIT_METERS:
                for part, part_text in (("reasoning", parts.reasoning), ("answer", parts.answer)):
                    v = self._one(judge, item, part_text)
                    out.append(Verdict(v.judge, v.meter, v.passed, v.label, v.score,
                                       v.detail | {"split": parts.how}, v.error, part))
        return tuple(out)

    def decide(self, item: Item, text: str) -> Verdict | None:
        """The primary verdict on ``text``: what an iterative attack counts as success."""
        meter = METER_OF_KIND.get(item.kind)
        for judge in self.judges:
            if judge.applies_to(item):
                v = self._one(judge, item, text)
                if v.meter == meter and v.passed is not None:
                    return v
        return None
