"""`saferlab bench --export N`: time and peak memory of exporting N generations to each
format. The session is made with the scripted fake backend in a temporary database; each
export runs in its own process, so its peak RSS is its own."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

REASONING = ("direct", "zero-shot-cot", "step-back", "plan-and-solve", "long-cot")
ATTACKS = ("none", "prefix-injection")
FIXED = 64 + 64 + 56  # harmful, benign and privacy items in every run
FILLER = ("Let me think about this step by step. First, consider what is being asked, then "
          "work through it carefully, checking each part before giving the final answer. ")

# Runs the real `saferlab export` command, then reports this process's peak RSS in KiB.
CHILD = """
import resource, sys
from saferlab.tui.cli import app
try:
    app(args=sys.argv[1:], prog_name="saferlab")
except SystemExit as exc:
    if exc.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _answer(request) -> str:
    # About 600 characters, echoing the request as a chatty model would.
    return f"Sure. You asked: {request.messages[-1].content[:200]}\n" + FILLER * 3


def make_session(db: Path, generations: int) -> int:
    from saferlab.db import Store
    from saferlab.engine import Lab, SessionSpec
    from saferlab.engine.backends.fake import FakeBackend
    from saferlab.engine.types import DecodingParams

    runs = len(REASONING) * len(ATTACKS)
    math_items = max(1, generations // runs - FIXED)
    spec = SessionSpec(model="fake", reasoning=REASONING, attacks=ATTACKS,
                       suites=("harmful", "benign", "privacy", f"math:n={math_items}"),
                       params=DecodingParams(max_tokens=256))
    store = Store(db)
    lab = Lab(recorder=store)
    lab.run(lab.plan(spec), backend=FakeBackend(script=_answer))
    from saferlab.db.queries import generation_totals

    return generation_totals(store)[0]


def bench_export(generations: int, progress: Callable[[str], None]) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="saferlab-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        progress(f"making a session of about {generations} generations with the fake backend")
        started = time.perf_counter()
        made = make_session(db, generations)
        yield (f"session: {made} generations in {time.perf_counter() - started:.1f} s, "
               f"database {db.stat().st_size / 1e6:.1f} MB")
        yield f"{'format':<14}{'seconds':>9}{'peak RSS MB':>13}{'file MB':>9}"
        for fmt, redact in (("jsonl", False), ("csv", False), ("md", False), ("html", False),
                            ("jsonl", True)):
            out = Path(tmp) / f"export.{fmt}"
            args = ["export", "--db", str(db), "-f", fmt, "-o", str(out)]
            if redact:
                args.append("--redact")
            progress(f"exporting {fmt}{' --redact' if redact else ''}")
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True,
                                  text=True)
            seconds = time.perf_counter() - started
            if proc.returncode:
                lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
                yield f"{fmt}: failed: {lines[-1]}"
                continue
            rss_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
            label = fmt + (" --redact" if redact else "")
            yield f"{label:<14}{seconds:>9.2f}{rss_mb:>13.1f}{out.stat().st_size / 1e6:>9.2f}"
