"""The main screen: configuration on the left; live meters, progress and the transcript on
the right. Fire (f) runs the batch in the app's worker; escape cancels after the current
token."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from saferlab.engine.errors import SaferlabError

from .. import messages as msg
from ..literal import literal
from ..plans import build_plans
from ..widgets.config_panel import ConfigPanel
from ..widgets.meters import MeterPanel, progress_text
from ..widgets.transcript import Transcript


def model_line(spec: str, summary: dict | None, state: str) -> Text:
    text = Text("Model ", style="bold")
    text.append_text(literal(spec))
    if summary and summary.get("quantization"):
        from saferlab.engine.gguf_meta import human_count

        text.append(f"\n{summary.get('quantization')} · {human_count(summary.get('parameters'))}"
                    f" params · ctx {summary.get('context_length') or '?'} · "
                    f"{summary.get('size_bytes', 0) / 1e6:.0f} MB", style="dim")
    text.append_text(literal(f"\n{state}",
                             {"loaded": "green", "loading": "yellow"}.get(state, "red")))
    return text


class MainScreen(Screen):
    # Narrow terminals (80 and 100 columns) get a slimmer configuration column and the four
    # meters in two rows; short ones (24 lines) shorter lists.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("f", "fire", "Fire"),
        Binding("escape", "cancel", "Cancel"),
        Binding("m", "pick_model", "Model"),
        Binding("c", "compare", "Compare"),
        Binding("h", "history", "History"),
        Binding("e", "export", "Export"),
        Binding("b", "toggle_config", "Configuration"),
    ]

    def compose(self):
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static(id="model-line")
                yield ConfigPanel(self.app.catalog, self.app.settings, id="config")
                yield Button("Fire (f)", id="fire", variant="primary")
            with Vertical(id="live"):
                yield Static(Text("No batch yet.", style="dim"), id="run-title")
                yield MeterPanel(id="meters")
                yield Static(progress_text(0, 0, None, None), id="progress")
                yield Transcript(id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        self._state = "not loaded"
        self._summary = None
        self._refresh_model()
        self._show_adapters()

    def autoload(self) -> None:
        """Load the last model; called once the first frame is up, so loading (a native
        library, a file map) never delays it."""
        self._state = "loading"
        self._refresh_model()
        self.app.load_model(self.app.settings.model, self)

    # -- model ---------------------------------------------------------------------

    def _refresh_model(self) -> None:
        line = self.query_one("#model-line", Static)
        line.update(model_line(self.app.settings.model, self._summary, self._state))
        line.set_class(self._state == "loading", "-loading")
        line.set_class(self._state.startswith("failed"), "-error")

    def _show_adapters(self) -> None:
        from saferlab.db.adapters import adapters_for

        panel = self.query_one(ConfigPanel)
        available = adapters_for(self.app.store, self.app.settings.model)
        # A choice that no longer exists (another model's, a deleted file) is dropped.
        keys = {a["use_as"] for a in available}
        self.app.settings.adapters = [a for a in self.app.settings.adapters if a in keys]
        panel.show_adapters(available)
        from saferlab.engine.saved_adapters import left_out_adapters

        for problem in left_out_adapters():  # left out of the panel: say which and why
            self.app.tell(f"adapter left out: {problem}", error=True)

    def on_model_loaded(self, message: msg.ModelLoaded) -> None:
        if message.spec == self.app.settings.model:
            self._state, self._summary = "loaded", message.summary
            self._refresh_model()

    def on_model_failed(self, message: msg.ModelFailed) -> None:
        self._state = f"failed: {message.error}"
        self._refresh_model()
        self.app.tell(f"cannot load {message.spec}: {message.error}", error=True)

    def action_pick_model(self) -> None:
        from .models import ModelPicker

        if self.app.batch_running:
            self.app.tell("a batch is running: cancel it (escape) before changing the model",
                          error=True)
            return
        self.app.push_screen(ModelPicker(), self._picked)

    def _picked(self, spec: str | None) -> None:
        # Repaint all of the screen the picker covered, not only the widgets that change.
        self.refresh(layout=True)
        if not spec:
            return
        self.app.settings.model = spec
        self._show_adapters()  # adapters chosen for another model do not follow it
        self.app.save()
        self._state, self._summary = "loading", None
        self._refresh_model()
        self.app.load_model(spec, self)

    # -- batch -----------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "fire":
            self.action_fire()

    def action_fire(self) -> None:
        app = self.app
        settings = self.query_one(ConfigPanel).read()
        app.save()
        try:
            plans = build_plans(settings)
        except SaferlabError as exc:
            app.tell(exc.message, error=True)
            return
        if app.start_batch(self, plans):
            self.query_one("#fire", Button).disabled = True
            self.add_class("-running")
            self.query_one(MeterPanel).clear()
            # Nothing of the last batch stays on screen: its title and its "n/n items".
            self.query_one("#run-title", Static).update(Text("Starting the batch...",
                                                             style="dim"))
            self.query_one("#progress", Static).update(
                progress_text(0, sum(len(p.items) for p in plans), None, None))
            transcript = self.query_one(Transcript)
            transcript.release()
            transcript.note(f"firing {len(plans)} run(s) of {len(plans[0].items)} items", "bold")

    def action_cancel(self) -> None:
        if self.app.cancel_batch():
            self.query_one(Transcript).note("cancelling after the current token", "yellow")

    def on_session_began(self, message: msg.SessionBegan) -> None:
        self.query_one(Transcript).note(
            f"session s{message.session_id}: {message.runs} run(s), {message.items} items")

    def on_run_began(self, message: msg.RunBegan) -> None:
        title = Text(f"r{message.run_id} ", style="bold")
        title.append_text(literal(message.title))
        self.query_one("#run-title", Static).update(title, layout=False)
        self.query_one(MeterPanel).clear()

    def on_item_began(self, message: msg.ItemBegan) -> None:
        self.query_one(Transcript).begin(message.run_id, message.key, message.prompt)

    def on_tokens_streamed(self, message: msg.TokensStreamed) -> None:
        self.query_one(Transcript).stream(message.key, message.text)
        if message.progress is not None:
            self.on_progress_changed(message.progress)

    def on_item_judged(self, message: msg.ItemJudged) -> None:
        self.query_one(Transcript).judged(message.run_id, message.key, message.prompt,
                                          message.output, message.verdicts, message.error,
                                          message.cached)

    def on_meters_changed(self, message: msg.MetersChanged) -> None:
        self.query_one(MeterPanel).show(message.meters)

    def on_progress_changed(self, message: msg.ProgressChanged) -> None:
        # One line that keeps its size: no layout pass for it.
        self.query_one("#progress", Static).update(
            progress_text(message.done, message.total, message.tokens_per_s, message.eta_s),
            layout=False)

    def on_run_ended(self, message: msg.RunEnded) -> None:
        style = "green" if message.status == "finished" and not message.error else "yellow"
        retry = "; retry the failed items from history (h, then r)" if message.error \
            and message.status != "cancelled" else ""
        self.query_one(Transcript).note(
            f"r{message.run_id} {message.status}"
            + (f": {message.error}{retry}" if message.error else ""),
            "red" if message.status == "failed" else style)

    def on_batch_ended(self, message: msg.BatchEnded) -> None:
        self.query_one("#fire", Button).disabled = False
        self.remove_class("-running")
        self.query_one(Transcript).release()  # the last item shown in the rows it needs
        if message.error:
            self.query_one(Transcript).note(f"batch failed: {message.error}", "red")
            self.app.show_error("The batch failed", message.error)
        else:
            self.query_one(Transcript).note(
                f"session s{message.session_id} {message.status}", "bold")

    def action_toggle_config(self) -> None:
        """Fold the configuration column away (the live view takes the whole width), or
        bring it back."""
        self.toggle_class("-folded")

    # -- other screens ---------------------------------------------------------------

    def action_compare(self) -> None:
        from .compare import CompareScreen

        self.query_one(ConfigPanel).read()
        self.app.push_screen(CompareScreen())

    def action_history(self) -> None:
        from .history import HistoryScreen

        self.app.push_screen(HistoryScreen())

    def action_export(self) -> None:
        from .export import ExportScreen

        self.app.push_screen(ExportScreen(self.app.session_id))
