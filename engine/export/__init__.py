"""Exports: a session's generations as JSONL (with a manifest line; importable), CSV, Markdown
or one self-contained HTML file. Writers stream: they hold one record at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TextIO

FORMATS = ("jsonl", "csv", "md", "html")
SUFFIXES = {"jsonl": ".jsonl", "csv": ".csv", "md": ".md", "html": ".html"}

# Records of the selection in order; ``per_run`` limits how many come from each run.
RecordSource = Callable[..., Iterator[dict[str, Any]]]


@dataclass
class ExportData:
    manifest: dict[str, Any]
    records: RecordSource
    # Every (judge, meter, part) that decided something: the verdict columns of flat tables.
    verdict_columns: list[tuple[str, str, str]] = field(default_factory=list)
    # Trade-off and paired comparisons (engine.analysis shapes), for Markdown and HTML.
    analysis: dict[str, Any] = field(default_factory=dict)


# C0 and C1 controls but tab and newline, and the bidirectional embeddings, overrides and
# isolates (which reorder what a reader sees: U+202E makes "exe.txt" of "txt.exe").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escaped(text: str) -> str:
    """Control characters (terminal escape sequences among them) shown as \\xNN, and bidi
    controls as \\uNNNN, so that reading a report never lets model output drive a terminal
    or reorder the text around it."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def write(fmt: str, out: TextIO, data: ExportData) -> None:
    if fmt == "jsonl":
        from .flat import write_jsonl as writer
    elif fmt == "csv":
        from .flat import write_csv as writer
    elif fmt == "md":
        from .markdown import write_markdown as writer
    elif fmt == "html":
        from .html import write_html as writer
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    writer(out, data)


def config_title(config: dict[str, Any]) -> str:
    """'zero-shot-cot / prefix-injection +safety-system [adapter]' from a run configuration."""
    title = f"{config.get('reasoning')} / {config.get('attack')}"
    if config.get("modifiers"):
        title += " +" + "+".join(config["modifiers"])
    if config.get("adapter"):
        title += f" [{config['adapter']}]"
    return title


def run_title(run: dict[str, Any]) -> str:
    """'r7 ' and the configuration's title, from a manifest run."""
    return f"r{run['id']} {config_title(run['config'])}"


def meter_text(m: dict[str, Any] | None) -> str:
    if not m or not m.get("n"):
        return "-"
    return f"{m['value']:.2f} [{m['low']:.2f}, {m['high']:.2f}] n={m['n']}"


def p_text(p: float | None) -> str:
    return "-" if p is None else (f"{p:.3g}" if p >= 0.001 else "<0.001")


def comparison_cells(comparisons: list[dict[str, Any]], list_items: bool = False
                     ) -> Iterator[tuple[Any, ...]]:
    """Rows of a comparison table: (run A, run B, meter, A, B, 'B - A [low, high]', p, test,
    flips), only meters both runs measured. Flips are counted, or listed with ``list_items``."""
    for c in comparisons:
        for row in c["meters"]:
            if row["diff"] is None:
                continue
            flips = "; ".join(f"{k}: {', '.join(v) if list_items else len(v)}"
                              for k, v in row.get("flips", {}).items() if v)
            yield (c["a"], c["b"], row["meter"], f"{row['a']:.2f}", f"{row['b']:.2f}",
                   f"{row['diff']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]",
                   p_text(row["p_value"]), row["test"], flips or "-")
