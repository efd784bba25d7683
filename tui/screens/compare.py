"""Compare two configurations, A and B, on the same items: their meters side by side, the
paired statistics (McNemar exact test, paired bootstrap interval), per-item A | B outputs with
flips highlighted, and every run of the session on the reasoning-safety plane."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Footer, Header, Label, Select, Static

from saferlab.engine.errors import SaferlabError

from .. import messages as msg
from ..literal import literal
from ..widgets.meters import MeterPanel, progress_text
from ..plans import build_plans

BASE = "(base model)"


class Side(Vertical):
    """One configuration: reasoning prompt, modifiers, attack and adapter."""

    def __init__(self, name: str, reasoning: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.side, self.reasoning = name, reasoning

    def compose(self):
        from ..widgets.config_panel import choices, widget_id

        app = self.app
        names = choices(app.catalog["reasoning_prompts"])
        attacks = choices(app.catalog["attacks"])
        s = app.settings
        yield Label(f"Configuration {self.side}", classes="title")
        yield Select([(Content(n), n) for n in names], allow_blank=False,
                     value=self.reasoning if self.reasoning in names else "direct",
                     id=f"{self.side}-reasoning", compact=True)
        for i, m in enumerate(app.catalog["modifiers"]):
            yield Checkbox(Content(m["name"]), self.side == "A" and m["name"] in s.modifiers,
                           id=widget_id(f"{self.side}-mod", i, m["name"]))
        first_attack = s.attacks[0] if s.attacks else "none"
        yield Select([(Content(n), n) for n in attacks], allow_blank=False,
                     value=first_attack if first_attack in attacks else "none",
                     id=f"{self.side}-attack", compact=True)
        yield Select([(Content(BASE), BASE)] + [(Content(p), p) for p in s.adapters],
                     allow_blank=False, value=BASE, id=f"{self.side}-adapter",
                     compact=True)

    def choice(self) -> dict[str, Any]:
        from ..widgets.config_panel import widget_id

        app = self.app
        return {
            "reasoning": self.query_one(f"#{self.side}-reasoning", Select).value,
            "modifiers": [m["name"] for i, m in enumerate(app.catalog["modifiers"])
                          if self.query_one("#" + widget_id(f"{self.side}-mod", i, m["name"]),
                                            Checkbox).value],
            "attack": self.query_one(f"#{self.side}-attack", Select).value,
            "adapter": self.query_one(f"#{self.side}-adapter", Select).value,
        }


class CompareScreen(Screen):
    BINDINGS = [
        Binding("f", "fire", "Fire A and B"),
        Binding("escape", "back_or_cancel", "Cancel / back"),
    ]

    def compose(self):
        s = self.app.settings
        yield Header()
        with Horizontal(id="compare-config"):
            yield Side("A", s.reasoning, id="side-a")
            yield Side("B", s.compare_b_reasoning, id="side-b")
        with Horizontal(id="compare-meters"):
            with Vertical():
                yield Static("A", id="title-a", classes="section")
                yield MeterPanel(id="meters-a")
            with Vertical():
                yield Static("B", id="title-b", classes="section")
                yield MeterPanel(id="meters-b")
        yield Static(progress_text(0, 0, None, None), id="compare-progress")
        with Horizontal(id="compare-lower"):
            yield DataTable(id="stats", cursor_type="none")
            yield Static(id="plane")
        yield DataTable(id="pairs", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="pair-detail"):
            yield Static(id="out-a", classes="output")
            yield Static(id="out-b", classes="output")
        yield Footer()

    def on_mount(self) -> None:
        self.runs: dict[str, int] = {}
        self._order: list[str] = []
        self.query_one("#stats", DataTable).add_columns("Meter", "A", "B", "B − A [95% CI]",
                                                        "p", "Test")
        self.query_one("#pairs", DataTable).add_columns("Item", "A", "B", "Flip")
        self.draw_plane(self.app.session_id)

    # -- firing ----------------------------------------------------------------------

    def action_fire(self) -> None:
        app = self.app
        settings = app.settings
        plans = []
        try:
            for side in ("A", "B"):
                c = self.query_one(f"#side-{side.lower()}", Side).choice()
                adapter = None if c["adapter"] == BASE else c["adapter"]
                side_plans = build_plans(settings, [adapter] if adapter else [],
                                         c["reasoning"], c["modifiers"], [c["attack"]])
                plans.append(side_plans[-1] if adapter else side_plans[0])
        except SaferlabError as exc:
            app.tell(exc.message, error=True)
            return
        settings.compare_b_reasoning = str(self.query_one("#B-reasoning", Select).value)
        app.save()
        self._order = ["A", "B"]
        self.runs = {}
        if app.start_batch(self, plans):
            self.add_class("-running")
            for side in ("a", "b"):
                self.query_one(f"#meters-{side}", MeterPanel).clear()

    def action_back_or_cancel(self) -> None:
        if self.app.batch_running and self.runs:
            self.app.cancel_batch()
            self.app.tell("cancelling after the current token")
        else:
            self.app.pop_screen()

    def on_run_began(self, message: msg.RunBegan) -> None:
        side = self._order[len(self.runs)] if len(self.runs) < len(self._order) else "B"
        self.runs[side] = message.run_id
        title = Text(f"{side}: r{message.run_id} ", style="bold")
        title.append_text(literal(message.title))
        self.query_one(f"#title-{side.lower()}", Static).update(title)

    def on_meters_changed(self, message: msg.MetersChanged) -> None:
        for side, run_id in self.runs.items():
            if run_id == message.run_id:
                self.query_one(f"#meters-{side.lower()}", MeterPanel).show(message.meters)

    def on_progress_changed(self, message: msg.ProgressChanged) -> None:
        self.query_one("#compare-progress", Static).update(
            progress_text(message.done, message.total, message.tokens_per_s, message.eta_s),
            layout=False)

    def on_tokens_streamed(self, message: msg.TokensStreamed) -> None:
        if message.progress is not None:  # the compare screen shows no tokens, only progress
            self.on_progress_changed(message.progress)

    def on_batch_ended(self, message: msg.BatchEnded) -> None:
        self.remove_class("-running")
        if message.error:
            self.app.show_error("The batch failed", message.error)
            return
        if "A" in self.runs and "B" in self.runs:
            self.show_comparison(self.runs["A"], self.runs["B"])
        self.draw_plane(message.session_id)

    # -- results ---------------------------------------------------------------------

    def show_comparison(self, run_a: int, run_b: int) -> None:
        from saferlab.db.analyses import compare
        from saferlab.db.browse import run_items

        store = self.app.store
        stats = self.query_one("#stats", DataTable)
        stats.clear()
        for row in compare(store, run_a, run_b):
            if row.diff is None:
                stats.add_row(row.meter, "-", "-", "-", "-", row.test)
                continue
            stats.add_row(row.meter, f"{row.a:.2f}", f"{row.b:.2f}",
                          f"{row.diff:+.2f} [{row.low:+.2f}, {row.high:+.2f}]",
                          f"{row.p_value:.3g}", row.test)
        a_rows = {r["key"]: r for r in run_items(store, run_a)}
        b_rows = {r["key"]: r for r in run_items(store, run_b)}
        pairs = self.query_one("#pairs", DataTable)
        pairs.clear()
        self.pair_ids: dict[str, tuple[int, int]] = {}
        for key, a in a_rows.items():
            b = b_rows.get(key)
            if b is None:
                continue
            flipped = [m for m in a["primary"] if m in b["primary"]
                       and a["primary"][m] != b["primary"][m]]
            flip = literal(", ".join(f"{m}: {a['labels'][m]} → {b['labels'][m]}"
                                     for m in flipped), "bold red" if flipped else "")
            pairs.add_row(literal(key), literal(" ".join(a["labels"].values())),
                          literal(" ".join(b["labels"].values())), flip, key=key)
            self.pair_ids[key] = (a["id"], b["id"])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "pairs" or event.row_key is None:
            return
        from saferlab.db.exchange import generation_detail

        ids = getattr(self, "pair_ids", {}).get(event.row_key.value)
        if not ids:
            return
        for side, gid in zip(("a", "b"), ids):
            r = generation_detail(self.app.store, gid)
            text = Text(f"{side.upper()} · r{r['run_id']}\n", style="bold")
            text.append_text(literal(r["output"] if not r["error"] else r["error"]))
            self.query_one(f"#out-{side}", Static).update(text)

    def draw_plane(self, session_id: int | None) -> None:
        """Every run of the session on the reasoning-safety plane (text plot)."""
        from saferlab.db.analyses import analyse_session

        from ..widgets.plane import plane_text

        plane = self.query_one("#plane", Static)
        if session_id is None:
            plane.update(plane_text(None))
            return
        try:
            data = analyse_session(self.app.store, f"s{session_id}").tradeoff(lambda r: "")
        except SaferlabError as exc:
            plane.update(Text(exc.message, style="red"))
            return
        plane.update(plane_text(data))
