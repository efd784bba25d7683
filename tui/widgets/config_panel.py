"""The configuration panel: one reasoning prompt, safety modifiers as toggles, adapters,
attacks (several), suites with a sample size, and judges."""

from __future__ import annotations

import re
from typing import Any

from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.content import Content
from textual.widgets import Checkbox, Input, Label, Select, SelectionList
from textual.validation import Integer

from ..settings import Settings

# Entries that take a parameter are offered with usable values; those that need a file
# (gcg-suffix:PATH, jbb-artifact:PATH) are for the command line.
PRESETS = {"few-shot-cot": ["few-shot-cot:k=1", "few-shot-cot:k=2", "few-shot-cot:k=4",
                            "few-shot-cot:k=8"],
           "in-context": ["in-context:k=2", "in-context:k=4"],
           "pair": ["pair:rounds=2"], "crescendo": ["crescendo:turns=3"],
           "gcg-suffix": [], "jbb-artifact": []}


def widget_id(prefix: str, index: int, name: str) -> str:
    """A valid widget id for a library entry, whatever its (user-given) name."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return f"{prefix}-{slug}" if slug == name else f"{prefix}-{index}-{slug}"


def choices(entries: list[dict[str, Any]]) -> list[str]:
    out = []
    for entry in entries:
        out += PRESETS.get(entry["name"], [entry["name"]])
    return out


class ConfigPanel(VerticalScroll):
    def __init__(self, catalog: dict[str, Any], settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog, self.settings = catalog, settings
        self.reasoning_names = choices(catalog["reasoning_prompts"])
        self.attack_names = choices(catalog["attacks"])
        self.adapters: list[dict[str, Any]] = []

    def compose(self):
        s = self.settings
        # first, so that it is in view on the smallest terminal
        yield Label("Items per suite", classes="section")
        yield Input(str(s.sample), type="integer", id="sample", placeholder="e.g. 5",
                    validators=[Integer(minimum=1)])
        yield Label("Reasoning prompt", classes="section")
        yield Select([(Content(n), n) for n in self.reasoning_names], allow_blank=False,
                     value=s.reasoning if s.reasoning in self.reasoning_names else "direct",
                     id="reasoning", compact=True)
        yield Label("Safety modifiers", classes="section")
        for i, m in enumerate(self.catalog["modifiers"]):
            yield Checkbox(Content(m["name"]), m["name"] in s.modifiers,
                           id=widget_id("mod", i, m["name"]), classes="modifier",
                           tooltip=m.get("description"))
        yield Label("Adapters (LoRA)", classes="section")
        yield SelectionList[str](id="adapters")
        yield Label("None: saferlab finetune", id="no-adapters", classes="hint")
        yield Input(s.adapter_stack, id="adapter-stack",
                    placeholder="a stack: aligned+cot@0.5", tooltip=(
                        "Adapters joined by + are applied together, each at its @scale "
                        "(default 1); the stack runs beside the base model."))
        yield Label("Attacks", classes="section")
        yield SelectionList[str](*[(Content(n), n, n in s.attacks) for n in self.attack_names],
                                 id="attacks")
        yield Label("Suites", classes="section")
        yield SelectionList[str](*[(Content(x["name"]), x["name"], x["name"] in s.suites)
                                   for x in self.catalog["suites"]], id="suites")
        yield Label("Judges", classes="section")
        yield SelectionList[str](*[(Content(j["name"] + (" (model)" if j.get("needs_model")
                                                         else "")), j["name"],
                                    j["name"] in s.judges) for j in self.catalog["judges"]],
                                 id="judges")
        yield Input(s.judge_model, id="judge-model",
                    placeholder="judge model: the target", tooltip=(
                        "The model that (model) judges ask, as a model spec (embedded, "
                        "gguf:PATH, hf:NAME, openai:URL#MODEL); empty: the target judges its "
                        "own answers."))
        yield Label("Batch size", classes="section")
        yield Input(str(s.batch_size), type="integer", id="batch-size",
                    validators=[Integer(minimum=1)], tooltip=(
            "Requests decoded together by GGUF and Hugging Face models. Outputs reproduce "
            "for a fixed batch size; 1 decodes one at a time (the reference)."))

    # Every change is kept at once, so the choices survive however the app ends.
    def _changed(self) -> None:
        try:
            self.read()
        except NoMatches:  # still composing
            return
        self.app.save()

    def on_select_changed(self) -> None:
        self._changed()

    def on_checkbox_changed(self) -> None:
        self._changed()

    def on_selection_list_selected_changed(self) -> None:
        self._changed()

    def on_input_changed(self) -> None:
        self._changed()

    def show_adapters(self, adapters: list[dict[str, Any]]) -> None:
        """The adapters the chosen model's backend can load; saferlab's own are offered as
        they were trained (``aligned+cot``: cot on top of aligned)."""
        self.adapters = adapters
        widget = self.query_one("#adapters", SelectionList)
        widget.clear_options()
        for a in adapters:
            key = a["use_as"]
            origin = a.get("origin") or a["kind"]
            widget.add_option((Content(f"{key} ({origin})"), key, key in self.settings.adapters))
        widget.display = bool(adapters)
        self.query_one("#no-adapters").display = not adapters

    def read(self) -> Settings:
        """The choices now on screen, as settings."""
        s = self.settings
        reasoning = self.query_one("#reasoning", Select).value
        s.reasoning = reasoning if isinstance(reasoning, str) else "direct"
        s.modifiers = [m["name"] for i, m in enumerate(self.catalog["modifiers"])
                       if self.query_one("#" + widget_id("mod", i, m["name"]), Checkbox).value]
        adapters = self.query_one("#adapters", SelectionList)
        if adapters.option_count:  # before the model's adapters are listed, keep the choice
            s.adapters = list(adapters.selected)
        s.adapter_stack = self.query_one("#adapter-stack", Input).value.strip()
        s.judge_model = self.query_one("#judge-model", Input).value.strip()
        s.attacks = list(self.query_one("#attacks", SelectionList).selected)
        s.suites = list(self.query_one("#suites", SelectionList).selected)
        # A number below 1 is shown as invalid and the last good one is kept, as for text.
        s.sample = _positive(self.query_one("#sample", Input).value, s.sample)
        s.batch_size = _positive(self.query_one("#batch-size", Input).value, s.batch_size)
        s.judges = list(self.query_one("#judges", SelectionList).selected)
        return s


def _positive(text: str, last: int) -> int:
    """``text`` as a whole number of 1 or more, else ``last``."""
    try:
        value = int(text)
    except ValueError:
        return last
    return value if value >= 1 else last
