"""What a fine-tuning run is asked to do, checked before any weights load."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import EXIT_USAGE, SaferlabError
from ..models import parse_model_spec
from ..saved_adapters import ADAPTER_NAME, trained_root
from .data import DataSpec, Example

NAME = ADAPTER_NAME
DEFAULT_STEPS = 100
# Keep answers: the tokens decoded beyond those learned, and the budget of whole answers.
KEEP_MARGIN = 16
KEEP_WHOLE_TOKENS = 128


@dataclass(frozen=True)
class TrainSpec:
    """A PEFT LoRA supervised fine-tuning run. ``on`` is an adapter stack merged into the base
    before training, so the new adapter learns on top of it (use them stacked: ON+NAME)."""

    name: str
    model: str = "embedded"
    data: DataSpec = field(default_factory=DataSpec)
    on: str | None = None
    out: str | None = None  # the adapter's folder; default $SAFERLAB_HOME/adapters/NAME
    steps: int | None = None  # None: DEFAULT_STEPS, unless epochs are given
    epochs: float | None = None
    lr: float = 2e-4
    rank: int = 8
    alpha: int = 16
    # The linear layers that get a LoRA: "all-linear", "attention" (q, k, v and o
    # projections), "mlp" (gate, up, down), or module names joined by commas.
    targets: str = "all-linear"
    batch_size: int = 8
    max_len: int = 512
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None
    datasets: str | None = None  # a folder of public datasets (AdvBench is read from it)
    # Tokens the model writes when it answers a keep instruction itself; None: keep_budget.
    # (Recipes recorded before None existed read 128, and are built as they were then.)
    keep_max_tokens: int | None = None
    # Keep answers are the model's own: what they teach is where an answer starts (helping,
    # not refusing). Learning only their first tokens gives that decision the weight a short
    # refusal's first tokens have, and does not teach stopping where distillation was cut.
    # 0 learns whole answers.
    keep_loss_tokens: int = 32
    save_every: int = 20  # steps between checkpoints
    recipe: str | None = None  # the shipped recipe this run reproduces

    def check(self) -> None:
        if not NAME.fullmatch(self.name):
            raise SaferlabError(
                f"adapter name {self.name!r}: use letters, digits, '.', '_' and '-' (at most "
                "64, no '+' or '@', which join and scale adapters in a stack)", EXIT_USAGE)
        ref = parse_model_spec(self.model)
        if ref.scheme not in ("gguf", "hf"):
            raise SaferlabError(f"fine-tuning needs local weights (embedded, gguf:PATH or "
                                f"hf:MODEL), not {self.model}", EXIT_USAGE)
        if self.steps is not None and self.epochs is not None:
            raise SaferlabError("give --steps or --epochs, not both", EXIT_USAGE)
        checks = (("--steps", self.steps, 1), ("--rank", self.rank, 1), ("--alpha", self.alpha, 1),
                  ("--batch-size", self.batch_size, 1), ("--max-len", self.max_len, 32),
                  ("--keep-loss-tokens", self.keep_loss_tokens, 0),
                  ("keep_max_tokens", self.keep_max_tokens, 1))
        for option, value, low in checks:
            if value is not None and value < low:
                raise SaferlabError(f"{option} must be at least {low}, not {value}", EXIT_USAGE)
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise SaferlabError(f"--epochs must be a number above 0, not {self.epochs}",
                                EXIT_USAGE)
        if not 0 < self.lr < 1:
            raise SaferlabError(f"--lr must be between 0 and 1, not {self.lr}", EXIT_USAGE)
        lora_targets(self.targets)
        if self.datasets and not Path(self.datasets).expanduser().is_dir():
            raise SaferlabError(f"--datasets {self.datasets}: no such folder", EXIT_USAGE)
        self.data.check()

    @property
    def folder(self) -> Path:
        return Path(self.out).expanduser() if self.out else trained_root() / self.name

    @property
    def checkpoints(self) -> Path:
        """Beside the adapter, never inside it: checkpoints hold pickled optimizer state, and
        an adapter folder holds safetensors only."""
        folder = self.folder
        return folder.parent / f".{folder.name}.checkpoints"

    @property
    def keep_budget(self) -> int:
        """Tokens decoded per keep answer. Only the first keep_loss_tokens are learned, and
        greedy decoding writes the same first tokens whatever the budget, so decoding further
        only costs time (128 keep instructions on 2 cores: 97 s at 128 tokens, 40 s at 48,
        with the same learned tokens). KEEP_MARGIN more keeps an answer cut by the budget
        from re-tokenizing into fewer tokens than are learned."""
        if self.keep_max_tokens is not None:
            return self.keep_max_tokens
        return self.keep_loss_tokens + KEEP_MARGIN if self.keep_loss_tokens else KEEP_WHOLE_TOKENS

    @property
    def trims_keep(self) -> bool:
        """Whether a keep answer is cut after its last full sentence. An answer learned whole
        must not teach stopping mid-sentence where the budget cut it; one learned on its
        opening only is never learned as far as its end when the budget cut it (it is
        KEEP_MARGIN tokens longer than what is learned), so it is kept as the model wrote it.
        Recipes with a keep_max_tokens of their own keep the cut they were built with."""
        return self.keep_max_tokens is not None or not self.keep_loss_tokens

    def with_steps(self) -> "TrainSpec":
        if self.steps is not None or self.epochs is not None:
            return self
        return replace(self, steps=DEFAULT_STEPS)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = self.data.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainSpec":
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        fields.setdefault("keep_loss_tokens", 0)  # recorded before it existed: whole answers
        fields["data"] = DataSpec(**{k: v for k, v in d.get("data", {}).items()
                                     if k in DataSpec.__dataclass_fields__})
        return cls(**fields)


def command_line(spec: TrainSpec) -> str:
    """The ``saferlab finetune`` command that asks for ``spec`` (paths as given)."""
    d = spec.data
    parts = ["saferlab finetune", f"--model {spec.model}", f"--name {spec.name}",
             f"--data {d.data}"]
    if d.reasoning_source != "math":
        parts.append(f"--reasoning-source {d.reasoning_source}")
    if d.safety != "none":
        parts.append(f"--safety {d.safety}")
        if d.safety_ratio:
            parts.append(f"--safety-ratio {d.safety_ratio:g}")
    if d.keep_ratio:
        parts.append(f"--keep-ratio {d.keep_ratio:g}")
    if d.protective:
        parts.append(f"--protective {d.protective}")
    if d.also_refuse:
        parts.append(f"--also-refuse {d.also_refuse}")
    if spec.keep_loss_tokens != TrainSpec.keep_loss_tokens:
        parts.append(f"--keep-loss-tokens {spec.keep_loss_tokens}")
    if d.harmful_source:
        parts.append(f"--harmful {d.harmful_source}")
    parts += [f"--n {d.n}"]
    parts.append(f"--epochs {spec.epochs:g}" if spec.epochs else f"--steps {spec.steps}")
    if spec.targets != "all-linear":
        parts.append(f"--targets {spec.targets}")
    parts += [f"--lr {spec.lr:g}", f"--rank {spec.rank}", f"--alpha {spec.alpha}",
              f"--batch-size {spec.batch_size}", f"--max-len {spec.max_len}",
              f"--seed {spec.seed}"]
    if spec.on:
        parts.append(f"--on {spec.on}")
    if spec.datasets:
        parts.append(f"--datasets {spec.datasets}")
    return " ".join(parts)


TARGET_GROUPS = {"attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
                 "mlp": ["gate_proj", "up_proj", "down_proj"]}


def lora_targets(text: str) -> str | list[str]:
    """PEFT's target_modules for ``--targets``: "all-linear", a group, or module names."""
    if text == "all-linear":
        return text
    if text in TARGET_GROUPS:
        return list(TARGET_GROUPS[text])
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = [n for group in TARGET_GROUPS.values() for n in group]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise SaferlabError(f"--targets is all-linear, attention, mlp or module names from "
                            f"{', '.join(known)}, not {text!r}", EXIT_USAGE)
    return names


# What a training gives back, and what continues one: torch-free, so that a training run in a
# process of its own hands them to a parent that never loads torch.
@dataclass
class TrainOutcome:
    training_id: int
    status: str  # "finished" or "interrupted"
    folder: Path | None
    steps: int
    total_steps: int
    losses: list[float]
    tokens_per_s: float | None
    peak_rss_mb: float
    duration_s: float
    data_sha256: str
    adapter: dict[str, Any] | None = None  # saferlab.json of the saved adapter


@dataclass(frozen=True)
class Resume:
    """A stored, interrupted training to continue: its id and exact training set."""

    training_id: int
    examples: list[Example]
