"""Frozen values that cross the engine's surface: requests and results of a backend, items of a
suite, verdicts of a judge, meters of a run."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

from .errors import EXIT_USAGE, SaferlabError

Role = Literal["system", "user", "assistant"]
ItemKind = Literal["harmful", "benign", "math", "privacy"]
MeterName = Literal["safety", "reasoning", "privacy", "over_refusal"]

FINISH_STOP = "stop"  # the model ended its turn
FINISH_LENGTH = "length"  # max_tokens reached
FINISH_CANCELLED = "cancelled"  # the cancel event was set mid-generation
FINISH_ERROR = "error"  # the request failed; see GenerationResult.error


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Message":
        return cls(role=d["role"], content=d["content"])


# Seeds are 32-bit in llama.cpp, whose 0xFFFFFFFF means "pick one at random": a seed above
# this would not reproduce, or would collide with a smaller one.
MAX_SEED = 2 ** 32 - 2
MAX_TOKENS = 1 << 20  # no context holds more: a larger budget is a typo


@dataclass(frozen=True)
class DecodingParams:
    """Greedy by default: temperature 0 makes a run reproducible without a seed."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    # Budgets for the items of some kinds, instead of max_tokens: (("math", 384),). A math
    # answer needs room to reason; a refusal is read from an answer's opening.
    max_tokens_by_kind: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:  # llama.cpp reads MAX_SEED + 1 as "any seed"
            raise SaferlabError(f"--seed must be between 0 and {MAX_SEED}, not {self.seed}",
                                EXIT_USAGE)
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise SaferlabError(f"--temperature must be a finite number of 0 or more, not "
                                f"{self.temperature}", EXIT_USAGE)

    def for_kind(self, kind: str) -> "DecodingParams":
        """The parameters of one item of ``kind``: its own budget, if it has one."""
        if not self.max_tokens_by_kind:
            return self
        budget = dict(self.max_tokens_by_kind).get(kind, self.max_tokens)
        return replace(self, max_tokens=budget, max_tokens_by_kind=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.max_tokens_by_kind:
            del d["max_tokens_by_kind"]
        else:
            d["max_tokens_by_kind"] = dict(self.max_tokens_by_kind)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecodingParams":
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "max_tokens_by_kind" in fields:
            fields["max_tokens_by_kind"] = tuple(sorted(
                (str(k), int(v)) for k, v in dict(fields["max_tokens_by_kind"]).items()))
        return cls(**fields)


@dataclass(frozen=True)
class AdapterUse:
    """One adapter of a stack, by the name it was loaded under, with its scale."""

    name: str
    scale: float = 1.0

    @property
    def key(self) -> str:
        return self.name if self.scale == 1.0 else f"{self.name}@{self.scale:g}"


@dataclass(frozen=True)
class AdapterStack:
    """The LoRA adapters active together for a request, each with its scale: ``aligned``,
    ``aligned+cot``, ``aligned+long-cot@0.5``. Its ``key`` is that text, the one name of the
    combination in run configurations, the database and exports."""

    uses: tuple[AdapterUse, ...]

    @property
    def key(self) -> str:
        return "+".join(u.key for u in self.uses)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.uses)

    @classmethod
    def parse(cls, text: str) -> "AdapterStack":
        """``NAME[@SCALE](+NAME[@SCALE])*``; raises ValueError for an empty name, a scale that
        is not a number or a name given twice."""
        uses = []
        for part in text.split("+"):
            name, at, scale = part.strip().partition("@")
            name = name.strip()
            if not name:
                raise ValueError(f"empty adapter name in {text!r}")
            try:
                if "_" in scale:  # float() reads "1_0" as 10
                    raise ValueError(scale)
                value = float(scale) if at else 1.0
            except ValueError:
                raise ValueError(f"adapter scale {scale.strip()!r} in {text!r} is not a "
                                 "number") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"adapter scale in {text!r} must be finite")
            uses.append(AdapterUse(name, value))
        if len({u.name for u in uses}) != len(uses):
            raise ValueError(f"an adapter is named twice in {text!r}")
        return cls(tuple(uses))


@dataclass(frozen=True)
class GenerationRequest:
    """One unit of a backend's work: a conversation and how to continue it. ``adapter`` is
    the stack of LoRA adapters to apply (None: the base model); text such as
    ``"aligned+cot@0.5"`` is parsed into an :class:`AdapterStack`."""

    id: str
    messages: tuple[Message, ...]
    params: DecodingParams = DecodingParams()
    adapter: AdapterStack | None = None
    grammar: str | None = None  # GBNF; backends that cannot constrain decoding ignore it

    def __post_init__(self) -> None:
        if isinstance(self.adapter, str):
            object.__setattr__(self, "adapter", AdapterStack.parse(self.adapter))


@dataclass(frozen=True)
class GenerationResult:
    """What a backend yields for one request. A failed request is a result with ``error`` set,
    never an exception."""

    request_id: str
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None  # time to first token (prompt evaluation included)
    duration_ms: float = 0.0
    finish_reason: str = FINISH_STOP
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.finish_reason != FINISH_CANCELLED

    @property
    def tokens_per_s(self) -> float | None:
        decode_ms = self.duration_ms - (self.ttft_ms or 0.0)
        if self.completion_tokens <= 1 or decode_ms <= 0:
            return None
        return (self.completion_tokens - 1) * 1000.0 / decode_ms


@dataclass(frozen=True)
class Item:
    """One test case of a suite.

    ``kind`` decides which meter it counts toward; ``answer`` (math), ``secret`` (privacy) and
    ``target`` (the affirmative opener of a harmful request) are what judges and attacks use.
    """

    key: str  # readable and stable, e.g. "harmful/007" or "math/s0-0003"
    suite: str
    kind: ItemKind
    prompt: str
    category: str = ""
    system: str = ""
    answer: str | None = None
    secret: str | None = None
    target: str | None = None
    # Turns that come before the request, e.g. a record looked up earlier in the chat.
    context: tuple[Message, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", {}, ())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Item":
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "context" in fields:
            fields["context"] = tuple(Message.from_dict(m) for m in fields["context"])
        return cls(**fields)

    @cached_property
    def id(self) -> str:
        """Key plus a digest of the content, so an edited item never aliases its old self.
        Worked out once per item: a run asks for it several times per generation."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return f"{self.key}#{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one generation.

    ``passed`` is the good side: safe (not jailbroken), correct, kept (not leaked), answered
    (a benign item not refused). ``None`` with ``error`` set means the judge could not decide.
    """

    judge: str
    meter: MeterName
    passed: bool | None
    label: str
    score: float | None = None
    detail: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    error: str | None = None
    part: str = "full"  # "full" output, or its "reasoning" or "answer" (see split.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Turn:
    """One exchange of a conversation (self-reflect, PAIR, Crescendo): who was addressed,
    with what, what came back, and the verdict that decided the next round, if any."""

    actor: str
    messages: tuple[Message, ...]
    result: GenerationResult
    verdict: Verdict | None = None


@dataclass(frozen=True)
class Meter:
    """A proportion with its Wilson 95% interval; ``value`` is None until n > 0."""

    name: MeterName
    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "k": self.k}
