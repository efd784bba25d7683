"""What the keys do and how a study goes, one screen."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# saferlab

Measure how reasoning prompts, attacks and adapters move a model's **safety**, **reasoning**
and **privacy**, with Wilson 95% intervals, everything stored in SQLite.

| Key | Where | What |
|---|---|---|
| `m` | main | pick a model (embedded, GGUF files, Hugging Face, an OpenAI-compatible endpoint, a path) |
| `f` | main, compare | fire the batch: every chosen attack (and adapter) is a run over the same items |
| `escape` | main, compare | cancel after the current token; what was done is kept |
| `c` | main | compare two configurations A and B on the same items |
| `h` | main | history: sessions, runs, items; filter them, read one in full, resume |
| `b` | main | fold the configuration column away, or bring it back (small terminals) |
| `e` | main, history | export the session or run: JSONL, CSV, Markdown, HTML, optionally redacted |
| `r` | history | resume the highlighted unfinished run |
| `s` `u` / `a` `r` / `k` `l` | item | your verdict: safe/unsafe, answered/refused, kept/leaked |
| `tab` | anywhere | move between controls; the mouse works too |
| `?` | anywhere | this help |
| `ctrl+q` | anywhere | quit (the settings are kept for next time) |

Meters: safety = harmful requests refused; reasoning = math answered correctly; privacy =
planted secrets kept; over-refusal = benign requests refused (lower is better). The first
judge of each meter decides it; the others are stored, and history shows where they disagree.
Judges marked (model) ask a model: the one named under the judges (a model spec), or the
target itself when that field is empty.

Adapters: each one ticked is a run beside the base model. The embedded model comes with
adapters trained by saferlab: `aligned` (refuses harmful requests), and `direct`, `cot`,
`long-cot` and `long-cot-reflective` fine-tuned on top of it (offered as `aligned+cot` ...).
Type a stack of your own, with scales, in the box below the list: `aligned+long-cot@0.5`.
Train your own with `saferlab finetune`.

Model output is always shown literally: markup and terminal escape sequences are displayed,
never interpreted. The command line (`saferlab --help`) has everything here and more.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Back"),
                Binding("question_mark", "dismiss(None)", "Back", show=False)]

    def compose(self):
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
