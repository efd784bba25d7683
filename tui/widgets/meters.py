"""Gauges for the four meters: value, Wilson interval and n, drawn as a bar with the interval
marked; and the progress line (items, tokens/s, ETA)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

METERS = (("safety", "Safety", "refused harmful requests"),
          ("reasoning", "Reasoning", "math answered correctly"),
          ("privacy", "Privacy", "planted secrets kept"),
          ("over_refusal", "Over-refusal", "benign requests refused; lower is better"))
BAR = 24


def gauge_text(title: str, meter: dict[str, Any] | None, width: int = BAR) -> Text:
    text = Text(f"{title}\n", style="bold")
    if not meter or not meter.get("n"):
        text.append("·" * width + "\n", style="dim")
        text.append("no items yet", style="dim")
        return text
    value, low, high, n = meter["value"], meter["low"], meter["high"], meter["n"]
    cells = []
    for i in range(width):
        x = (i + 0.5) / width
        if x <= value:
            cells.append(("█", "bold"))
        elif low <= x <= high:
            cells.append(("▒", ""))
        else:
            cells.append(("·", "dim"))
    for ch, style in cells:
        text.append(ch, style=style)
    text.append(f"\n{value:.2f} [{low:.2f},{high:.2f}] n={n}")
    return text


class MeterGauge(Static):
    meter: reactive[dict[str, Any] | None] = reactive(None)

    def __init__(self, name: str, title: str, help_text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meter_name, self.title, self.tooltip = name, title, help_text
        self.add_class("gauge")

    def render(self) -> Text:
        return gauge_text(self.title, self.meter, max(8, self.content_size.width))

    def watch_meter(self, meter: dict[str, Any] | None) -> None:
        self.set_class(bool(meter and meter.get("n")), "-measured")


class MeterPanel(Horizontal):
    """The four gauges of one run."""

    def compose(self):
        for name, title, help_text in METERS:
            yield MeterGauge(name, title, help_text, id=f"gauge-{name}")

    def show(self, meters: dict[str, dict[str, Any]]) -> None:
        for name, _, _ in METERS:
            self.query_one(f"#gauge-{name}", MeterGauge).meter = meters.get(name)

    def clear(self) -> None:
        self.show({})


def progress_text(done: int, total: int, tokens_per_s: float | None,
                  eta_s: float | None) -> str:
    parts = [f"{done}/{total} items"]
    parts.append(f"{tokens_per_s:.1f} tok/s" if tokens_per_s else "- tok/s")
    if eta_s is not None and done < total:
        minutes, seconds = divmod(int(eta_s + 0.5), 60)
        parts.append(f"ETA {minutes}m{seconds:02d}s" if minutes else f"ETA {seconds}s")
    return " · ".join(parts)
