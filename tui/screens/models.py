"""The model picker: the embedded model, GGUF files found where people keep them, Hugging
Face models on disk (with the hf extra), an OpenAI-compatible endpoint, or a typed path.
GGUF metadata (size, quantization, parameters, context length) is read in a worker."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label

from saferlab.engine.errors import SaferlabError

from ..literal import literal


def typed_spec(text: str) -> str | SaferlabError:
    """What the picker's typed line names, read as ``--model`` reads it; a path that is no
    spec, to a file or a folder that is there, as ``gguf:PATH`` or ``hf:PATH``."""
    import os

    from saferlab.engine.models import parse_model_spec

    try:
        parse_model_spec(text)
        return text
    except SaferlabError as exc:
        path = os.path.expanduser(text)
        if os.path.isfile(path):
            return f"gguf:{text}"
        if os.path.isdir(path):
            return f"hf:{text}"
        return exc


class ModelPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Back")]

    def compose(self):
        with Vertical(id="picker"):
            yield Label("Pick a model (enter), or type one below", classes="title")
            yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
            yield Label("Path or spec (gguf:PATH, PATH.gguf, hf:ID_OR_DIR, fake:MODE)",
                        classes="section")
            yield Input(placeholder="~/models/model.gguf", id="typed")
            yield Label("OpenAI-compatible endpoint", classes="section")
            with Horizontal(classes="row"):
                yield Input(placeholder="http://127.0.0.1:8000/v1", id="url")
                yield Input(placeholder="model name", id="served")
            with Horizontal(classes="row"):
                yield Button("Use typed", id="use-typed", variant="primary")
                yield Button("Use endpoint", id="use-endpoint")
                yield Button("Back", id="back")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Model", "Source", "Size", "Quant", "Params", "Context")
        from saferlab.engine.models import available_models

        self.rows = []
        for row in available_models():
            if row.get("error"):  # the embedded model is not installed: nothing to pick
                continue
            self.rows.append(row)
            try:
                size = row["path"].stat().st_size / 1e6 if row["path"] else None
            except OSError:
                size, row["path"] = None, None
            table.add_row(literal(row["spec"]), row["source"],
                          f"{size:.0f} MB" if size else "-", "…" if row["path"] else "-",
                          "…" if row["path"] else "-", "…" if row["path"] else "-",
                          key=row["spec"])
        if not self.rows:
            self.query_one(".title", Label).update("No models found: type a path or spec below")
        table.focus()
        self.read_metadata(self.rows)

    @work(thread=True, exit_on_error=False, group="metadata")
    def read_metadata(self, rows: list[dict[str, Any]]) -> None:
        from saferlab.engine.errors import SaferlabError
        from saferlab.engine.gguf_meta import gguf_summary, human_count

        for row in rows:
            if row["path"] is None:
                continue
            try:
                s = gguf_summary(row["path"])
                cells = (literal(str(s["quantization"] or "?")), human_count(s["parameters"]),
                         literal(str(s["context_length"] or "?")))
            except SaferlabError as exc:
                cells = ("unreadable", literal(exc.message[-40:], "red"), "")
            except Exception as exc:  # whatever a strange file does, the picker stays up
                cells = ("unreadable", literal(f"{type(exc).__name__}", "red"), "")
            self.app.call_from_thread(self._fill, row["spec"], cells)

    def _fill(self, spec: str, cells: tuple) -> None:
        table = self.query_one(DataTable)
        for column, value in zip(list(table.columns)[3:], cells):
            try:
                table.update_cell(spec, column, value)
            except Exception:  # the row went away (screen closing)
                return

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "typed":
            self._use_typed()
        else:
            self._use_endpoint()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "use-typed":
            self._use_typed()
        elif event.button.id == "use-endpoint":
            self._use_endpoint()
        else:
            self.dismiss(None)

    def _use_typed(self) -> None:
        text = self.query_one("#typed", Input).value.strip()
        if not text:
            self.app.tell("type a path or a model spec first", error=True)
            return
        spec = typed_spec(text)
        if not isinstance(spec, str):  # no spec, and no file or folder of that name
            self.app.tell(spec.message, error=True)
            return
        self.dismiss(spec)

    def _use_endpoint(self) -> None:
        url = self.query_one("#url", Input).value.strip()
        served = self.query_one("#served", Input).value.strip()
        if not url or not served:
            self.app.tell("give the endpoint's URL and the model name it serves", error=True)
            return
        self.dismiss(f"openai:{url}#{served}")
