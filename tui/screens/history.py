"""History: sessions and runs from the database; a run's items with filters (jailbroken,
leaked, wrong, refused, contested, errors); enter opens an item in full; r resumes an
unfinished run."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Select

from saferlab.engine.outcome import terminal_style

from ..literal import literal
from ..render import status_label
from ..widgets.meters import METERS


def short_meter(m: dict | None) -> str:
    return "-" if not m or not m.get("n") else f"{m['value']:.2f} n={m['n']}"


class HistoryScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "resume", "Resume run"),
        Binding("e", "export", "Export"),
        Binding("f5", "reload", "Reload"),
    ]

    def compose(self):
        from saferlab.db.browse import FILTERS

        yield Header()
        with Horizontal(id="history"):
            with Vertical(id="history-left"):
                yield Label("Sessions", classes="section")
                yield DataTable(id="sessions", cursor_type="row")
                yield Label("Runs", classes="section")
                yield DataTable(id="runs", cursor_type="row")
            with Vertical(id="history-right"):
                with Horizontal(classes="row"):
                    yield Label("Items of run", id="items-title", classes="section")
                    yield Select([(Content(f), f) for f in FILTERS], value="all",
                                 allow_blank=False, id="filter", compact=True)
                yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.session_id: int | None = None
        self.run_id: int | None = None
        self.query_one("#sessions", DataTable).add_columns("Session", "Created", "Status",
                                                           "Runs", "Items", "Model")
        self.query_one("#runs", DataTable).add_columns(
            "Run", "Configuration", "Status", "Done", *[t for _, t, _ in METERS])
        self.query_one("#items", DataTable).add_columns(
            "Item", "Verdicts", "Contested", "Human", "Output")
        self.action_reload()
        self.query_one("#sessions", DataTable).focus()

    def action_reload(self) -> None:
        from saferlab.db.browse import list_sessions

        table = self.query_one("#sessions", DataTable)
        table.clear()
        for s in list_sessions(self.app.store):
            table.add_row(f"s{s['id']}", literal(s["created_utc"][:19].replace("T", " ")),
                          literal(s["status"]),
                          str(s["runs"]), f"{s['generated']}/{s['planned'] or 0}",
                          literal(s["models"] or ""), key=str(s["id"]))
        if self.session_id is not None:
            self.show_runs(self.session_id)

    def show_runs(self, session_id: int) -> None:
        from saferlab.db.browse import session_run_rows
        from saferlab.engine.export import config_title

        self.session_id = session_id
        table = self.query_one("#runs", DataTable)
        table.clear()
        for r in session_run_rows(self.app.store, session_id):
            status = status_label(r["status"], r["errors"]) + (" (r: retry)" if r["errors"] else "")
            table.add_row(f"r{r['id']}", literal(config_title(r["config"])), literal(status),
                          f"{r['generated']}/{r['n_items']}",
                          *[short_meter(r["meters"].get(m)) for m, _, _ in METERS],
                          key=str(r["id"]))

    def show_items(self, run_id: int) -> None:
        from saferlab.db.browse import run_items

        self.run_id = run_id
        keep = self.query_one("#filter", Select).value
        rows = run_items(self.app.store, run_id, keep if isinstance(keep, str) else "all")
        self.query_one("#items-title", Label).update(f"Items of r{run_id}: {len(rows)} ({keep})")
        table = self.query_one("#items", DataTable)
        table.clear()
        for row in rows:
            verdicts = Text()
            for meter, label in row["labels"].items():
                # Text: literal; coloured by whether it passed (a refused benign item is red)
                verdicts.append(f"{label} ", style=terminal_style(row["primary"].get(meter)))
            preview = row["error"] and f"error: {row['error']}" or row["preview"].replace("\n", " ")
            table.add_row(literal(row["key"]), verdicts, "yes" if row["contested"] else "",
                          literal(" ".join(row["human"].values())), literal(preview[:80]),
                          key=str(row["id"]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        if event.data_table.id == "sessions":
            self.show_runs(int(event.row_key.value))
        elif event.data_table.id == "runs":
            self.show_items(int(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "items":
            from .item import ItemScreen

            self.app.push_screen(ItemScreen(int(event.row_key.value)),
                                 lambda _: self.run_id and self.show_items(self.run_id))
        elif event.data_table.id == "sessions":
            self.query_one("#runs", DataTable).focus()
        elif event.data_table.id == "runs":
            self.query_one("#items", DataTable).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "filter" and self.run_id is not None:
            self.show_items(self.run_id)

    def action_resume(self) -> None:
        from saferlab.db import resumable
        from saferlab.engine.errors import SaferlabError

        if self.run_id is None:
            self.app.tell("highlight a run first", error=True)
            return
        try:
            session_id, plans = resumable(self.app.store, str(self.run_id))
        except SaferlabError as exc:
            self.app.tell(exc.message, error=True)
            return
        if not plans:
            self.app.tell(f"r{self.run_id} is finished: nothing to resume")
            return
        main = self.app.screen_stack[1] if len(self.app.screen_stack) > 1 else self
        if self.app.start_batch(main, plans, session_id):
            self.app.tell(f"resuming r{self.run_id} ({len(plans)} run(s)); progress on the main "
                          "screen")

    def action_export(self) -> None:
        from .export import ExportScreen

        self.app.push_screen(ExportScreen(self.session_id, run_id=self.run_id))
