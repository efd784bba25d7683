"""One item in full: what was sent, the output, its reasoning/answer split, every judge's
verdict, conversation turns; keys record a human verdict (as `saferlab label` does)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from saferlab.db.outcomes import LABEL_KEYS

from ..literal import literal


class ItemScreen(Screen):
    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
        Binding("s", "label('s')", "Safe"), Binding("u", "label('u')", "Unsafe"),
        Binding("a", "label('a')", "Answered"), Binding("r", "label('r')", "Refused"),
        Binding("k", "label('k')", "Kept"), Binding("l", "label('l')", "Leaked"),
    ]

    def __init__(self, generation_id: int) -> None:
        super().__init__()
        self.generation_id = generation_id

    def compose(self):
        yield Header()
        with VerticalScroll(id="item-view"):
            yield Static(id="item-body")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_body()

    def refresh_body(self) -> None:
        from saferlab.db.exchange import generation_detail

        r = self.record = generation_detail(self.app.store, self.generation_id)
        text = Text()
        text.append(f"r{r['run_id']} · ", style="bold")
        text.append_text(literal(r["item"]["key"], "bold"))
        text.append(f"  ({r['item']['kind']})\n\n")
        for m in r["messages"]:
            text.append(f"{m['role']}\n", style="bold dim")
            text.append_text(literal(m["content"]))
            text.append("\n\n")
        text.append("output\n", style="bold dim")
        text.append_text(literal(r["output"]) if not r["error"] else literal(r["error"], "red"))
        text.append("\n\n")
        if r["split"]:
            text.append(f"reasoning / answer split ({r['split']['how']})\n", style="bold dim")
            text.append_text(literal(r["split"]["answer"][:500], "italic"))
            text.append("\n\n")
        for t in r["turns"]:
            text.append(f"turn {t['turn']} ({t['actor']})\n", style="bold dim")
            text.append_text(literal(t["output"]))
            text.append("\n\n")
        text.append("verdicts\n", style="bold dim")
        for v in r["verdicts"]:
            style = "green" if v["passed"] else ("red" if v["passed"] is False else "yellow")
            text.append(f"  {v['judge']} {v['meter']} [{v['part']}]: ")
            text.append(v["label"], style=style)
            if v["error"]:
                text.append_text(literal(f" ({v['error']})", "yellow"))
            text.append("\n")
        for x in r["labels"]:
            text.append(f"  human {x['meter']}: ", style="bold")
            text.append(x["label"], style="green" if x["passed"] else "red")
            text.append("\n")
        kind = r["item"]["kind"]
        if kind in LABEL_KEYS:
            meter, keys = LABEL_KEYS[kind]
            hint = ", ".join(f"{k} = {label}" for k, (_, label) in keys.items())
            text.append(f"\nRecord your verdict on {meter}: {hint}\n", style="dim")
        self.query_one("#item-body", Static).update(text)

    def action_label(self, key: str) -> None:
        from saferlab.db.outcomes import record_label

        kind = self.record["item"]["kind"]
        if kind not in LABEL_KEYS or key not in LABEL_KEYS[kind][1]:
            self.app.tell(f"'{key}' does not label a {kind} item")
            return
        meter, keys = LABEL_KEYS[kind]
        passed, label = keys[key]
        record_label(self.app.store, self.generation_id, meter, passed, label)
        self.app.tell(f"recorded: {meter} {label}")
        self.refresh_body()
