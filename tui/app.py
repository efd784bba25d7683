"""The Textual lab. The app owns the long work (loading a model, running a batch, exporting)
as thread workers that call the engine and post messages; screens show what they are told.
No widget is touched from a thread, and the database is reached only through db/. Models load
and decode on one thread of their own (see ``model_thread``)."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from saferlab.engine.adapter_refs import resolve_stacks, to_load
from saferlab.engine.errors import SaferlabError

from . import messages as msg
from .settings import Settings, load_settings, save_settings

if TYPE_CHECKING:  # the engine's lab loads when a model does, not before the first frame
    from saferlab.engine.lab import LoadedModel


class LabApp(App):
    CSS_PATH = "saferlab.tcss"
    TITLE = "saferlab"
    SUB_TITLE = "safety · reasoning · privacy"
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, db_path: Path | str | None = None, *,
                 backend_factory: Callable[[str], Any] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 settings_file: Path | None = None, autoload: bool = True) -> None:
        super().__init__()
        from saferlab.db import Store, default_db_path
        from saferlab.engine.catalog import catalog

        self.store = Store(db_path or default_db_path())
        self.catalog = catalog()
        self.settings_file = settings_file
        self.settings: Settings = load_settings(settings_file)
        # Tests and demos put a scripted backend here: spec -> backend.
        self.backend_factory = backend_factory
        self.clock = clock
        self.autoload = autoload
        self.model_lock = threading.Lock()
        self.loaded: LoadedModel | None = None  # the model batches run on, kept between them
        self.cancel_event = threading.Event()
        self.batch_running = False
        self.batch_idle = threading.Event()
        self.batch_idle.set()
        self.session_id: int | None = None
        # Every load and batch runs on this one thread. llama.cpp's OpenMP build keeps a pool
        # of compute threads for each thread that decodes; with a pool left over from another
        # thread, each decode waits longer for its own (measured on 2 cores: 4 to 6% slower).
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saferlab-model")

    def on_mount(self) -> None:
        from .screens.main import MainScreen

        self.push_screen(MainScreen())

    def on_ready(self) -> None:
        import os

        from .screens.main import MainScreen

        if self.autoload and isinstance(self.screen, MainScreen):
            self.screen.autoload()
        # For the startup figure: the first frame is on screen; how long since exec?
        if os.environ.get("SAFERLAB_TUI_EXIT_ON_READY"):
            age = process_age()
            self.exit(result=f"first frame {age * 1000:.0f} ms after the process started"
                      if age is not None else "first frame (process age unknown)")

    def save(self) -> None:
        save_settings(self.settings, self.settings_file)

    def on_unmount(self) -> None:
        self.cancel_event.set()
        self.save()
        # The batch stops after its current token; only then may the model go.
        self.batch_idle.wait(timeout=30)
        with self.model_lock:
            if self.loaded is not None:
                try:
                    self.loaded.close()
                except Exception:
                    pass
                self.loaded = None
        self.model_thread.shutdown(wait=False)

    # -- actions -----------------------------------------------------------------------

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def show_error(self, title: str, message: str) -> None:
        from .screens.error import ErrorScreen

        self.push_screen(ErrorScreen(title, message))

    def tell(self, text: str, error: bool = False) -> None:
        """A notification; model and file text inside is shown literally."""
        from .literal import visible

        self.notify(visible(text), severity="error" if error else "information", markup=False,
                    timeout=8 if error else 4)

    # -- model -------------------------------------------------------------------------

    def _load(self, spec: str, adapters: Sequence[tuple[str, str]] = (),
              resumed: dict[str, Any] | None = None) -> LoadedModel:
        """Load (in the calling worker thread) unless that model is already loaded as asked:
        with the lab's batch size, or with the options a resumed run was decoded with."""
        from saferlab.engine.backends.base import DEFAULT_CTX
        from saferlab.engine.lab import Lab, LoadedModel

        options = {"batch_size": self.settings.batch_size, "n_ctx": DEFAULT_CTX}
        options |= resumed or {}
        with self.model_lock:
            current = self.loaded
            if current is not None and current.serves(spec, adapters, options):
                return current
            if self.backend_factory is not None:
                backend = self.backend_factory(spec)
                model = LoadedModel(spec, backend, {"backend": backend.info()}, tuple(adapters),
                                    options)
            else:
                model = Lab(hash_cache=self.store, backend_options=options).open_model(
                    spec, sorted(adapters))
            if current is not None:
                current.close()
            self.loaded = model
            return model

    def _chosen_adapters(self, spec: str) -> list[tuple[str, str]]:
        """The adapters the lab's settings choose for ``spec``, to load beside it; none when
        they no longer resolve (the batch itself then says why)."""
        if spec != self.settings.model or not self.settings.adapters:
            return []
        try:
            _, adapters = resolve_stacks(spec, self.settings.adapters, self.store)
        except SaferlabError:
            return []
        return to_load(adapters)

    @work(thread=True, exclusive=True, exit_on_error=False, group="model")
    def load_model(self, spec: str, target: Any) -> None:
        try:
            loaded = self.model_thread.submit(self._load, spec,
                                              self._chosen_adapters(spec)).result()
        except SaferlabError as exc:
            target.post_message(msg.ModelFailed(spec, exc.message))
            return
        except Exception as exc:  # a backend's own failure: shown, never raised
            target.post_message(msg.ModelFailed(spec, f"{type(exc).__name__}: {exc}"))
            return
        target.post_message(msg.ModelLoaded(spec, loaded.summary))

    # -- batches -----------------------------------------------------------------------

    def start_batch(self, target: Any, plans: list, session_id: int | None = None) -> bool:
        if self.batch_running:
            self.tell("a batch is running: cancel it (escape) or wait", error=True)
            return False
        self.batch_running = True
        self.batch_idle.clear()
        self.cancel_event = threading.Event()
        self.run_batch(target, plans, session_id, self.cancel_event)
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="batch")
    def run_batch(self, target: Any, plans: list, session_id: int | None,
                  cancel: threading.Event) -> None:
        from saferlab.engine.lab import Lab, resumed_options

        from .bridge import Bridge

        post: Callable[[Message], Any] = target.post_message
        ended = msg.BatchEnded(None, "failed", "the batch ended unexpectedly")

        def decode() -> Any:
            adapters: dict[str, Any] = {}
            for plan in plans:
                adapters |= plan.extra_config.get("adapters", {})
            loaded = self._load(plans[0].spec.model, to_load(adapters), resumed_options(plans))
            post(msg.ModelLoaded(loaded.spec, loaded.summary))
            # A judge or attacker model of its own loads with the target's options, as in the CLI.
            lab = Lab(recorder=self.store, emit=Bridge(post, self.clock), hash_cache=self.store,
                      backend_options=loaded.options)
            return lab.run(plans, cancel=cancel, session_id=session_id, model=loaded)

        try:
            outcome = self.model_thread.submit(decode).result()
            self.session_id = outcome.session_id
            ended = msg.BatchEnded(outcome.session_id, outcome.status)
        except SaferlabError as exc:
            ended = msg.BatchEnded(None, "failed", exc.message)
        except Exception as exc:
            ended = msg.BatchEnded(None, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            # Free before telling: a Fire pressed on the news must be accepted.
            self.batch_running = False
            self.batch_idle.set()
            post(ended)

    def cancel_batch(self) -> bool:
        if not self.batch_running:
            return False
        self.cancel_event.set()
        return True

    # -- export ------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="export")
    def run_export(self, targets: list[str], fmt: str, path: Path, redact: bool) -> None:
        from .exporting import export_file

        try:
            result = export_file(self.store, targets, fmt, path, redact)
        except SaferlabError as exc:
            self.call_from_thread(self.show_error, "Export failed", exc.message)
            return
        except Exception as exc:  # e.g. a locked database: shown, never lost
            self.call_from_thread(self.show_error, "Export failed",
                                  f"{type(exc).__name__}: {exc}")
            return
        counts = result["manifest"]["counts"]
        self.call_from_thread(
            self.tell, f"exported {counts['runs']} run(s), {counts['generations']} "
            f"generation(s) to {path}")


def process_age() -> float | None:
    """Seconds since this process was started (Linux), interpreter start-up included."""
    import os

    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def run_app(db_path: Path | None = None) -> None:
    result = LabApp(db_path).run()
    if isinstance(result, str):  # the startup probe's figure
        sys.__stdout__.write(result + "\n")
        sys.__stdout__.flush()
