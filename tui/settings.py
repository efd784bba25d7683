"""The interface's choices, kept between sessions in $SAFERLAB_HOME/tui.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from saferlab.engine.backends.base import DEFAULT_BATCH
from saferlab.engine.judges import DEFAULT_JUDGES  # the engine owns the defaults
from saferlab.engine.types import MAX_TOKENS

DEFAULT_ADAPTERS = ("aligned", "aligned+cot")


@dataclass
class Settings:
    model: str = "embedded"
    reasoning: str = "direct"
    modifiers: list[str] = field(default_factory=list)
    # Shipped with saferlab for the embedded model: the first batch shows the trade-off
    # (aligned refuses; cot on top of it reasons better and refuses less).
    adapters: list[str] = field(default_factory=lambda: list(DEFAULT_ADAPTERS))
    adapter_stack: str = ""  # a stack typed by hand, run beside the chosen adapters
    judge_model: str = ""  # the model judges' model; empty: the target judges itself
    attacks: list[str] = field(default_factory=lambda: ["none"])
    suites: list[str] = field(default_factory=lambda: ["harmful", "math"])
    sample: int = 5
    judges: list[str] = field(default_factory=lambda: list(DEFAULT_JUDGES))
    max_tokens: int = 256
    batch_size: int = DEFAULT_BATCH  # requests decoded together (GGUF, hf); 1: one at a time
    export_format: str = "html"
    export_redact: bool = False
    compare_b_reasoning: str = "zero-shot-cot"


def settings_path() -> Path:
    from saferlab.engine.paths import home_dir

    return home_dir() / "tui.json"


def load_settings(path: Path | None = None) -> Settings:
    """The saved choices; a missing or damaged file gives the defaults (and is not fatal)."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    known = {f.name: f.type for f in fields(Settings)}
    defaults = Settings()
    kept = {}
    for key, value in data.items() if isinstance(data, dict) else ():
        if key in known and type(value) is type(getattr(defaults, key)) and _sound(key, value):
            kept[key] = value
    return Settings(**kept)


def _sound(key: str, value: object) -> bool:
    """Whether a saved value of the right type is one the interface can use."""
    if key in ("sample", "max_tokens", "batch_size"):
        return type(value) is int and value >= 1 and (key != "max_tokens" or value <= MAX_TOKENS)
    if key == "export_format":
        from saferlab.engine.export import FORMATS

        return value in FORMATS
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return True


def save_settings(settings: Settings, path: Path | None = None) -> None:
    path = path or settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(settings), indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # settings are a convenience: never lose a session over them
