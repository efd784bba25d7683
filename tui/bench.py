"""`saferlab bench`: every speed figure in one run, as ratios beside plain llama-cpp-python.

Decoding (engine/bench.py): plain llama-cpp-python one request at a time, the lab at batch
sizes 1, 2, 4 and 8, few-shot-cot:k=8 with and without its shared prefix evaluated once.
Here: a 100-item batch run twice in processes of their own (the second from the result
cache; the first gives the peak RSS), the lab's interface and `saferlab run`'s runner
decoding the same batch at batch size 8, each in a process of its own as they run, start-up
(`saferlab --help`, the interface's first frame) and the rate at which the database records
generations from the instant fake backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from saferlab.engine.errors import EXIT_ITEMS_FAILED, SaferlabError

from .bench_export import CHILD as COMMAND_RSS  # a saferlab command that reports its peak RSS

Progress = Callable[[str], None]
CLI = [sys.executable, "-m", "saferlab.tui.cli"]
# Rounds of the decodings compared: a round's ratio moves by up to 10% on a shared 2-core VM,
# and the median of five is steadier against one slow round than the median of three.
REPEATS = 5

# (figure, target, whether higher is better): the goals of the lab on 2 cores.
TARGETS = {"sequential_end_to_end": (0.93, True), "sequential_generation": (0.97, True),
           "batched_8": (1.5, True), "prefix_reuse": (2.0, True), "cached_rerun": (50.0, True),
           "tui_vs_cli": (0.95, True), "help_s": (0.3, False), "first_frame_s": (1.5, False),
           "peak_rss_mb": (600.0, False), "recording_per_s": (2000.0, True)}


def _store(folder: str, name: str):
    from saferlab.db import Store

    return Store(Path(folder) / name)


def decode(model: str, items: int, max_tokens: int, threads: int, folder: str,
           progress: Progress, sizes: tuple[int, ...] = (1, 2, 4, 8),
           tag: str = "", backwards: bool = False) -> dict[str, Any]:
    """One round: plain llama-cpp-python, then the lab at each batch size, on the same items
    (``backwards``: the lab from the largest batch size down, then plain)."""
    from saferlab.engine.bench import lab_decode, plain_llama_cpp

    spec, conversations, path = _batch(model, items, max_tokens)
    base = {"n_threads": threads}
    out: dict[str, Any] = {"lab": {}}

    def plain() -> None:
        out["plain"] = plain_llama_cpp(path, conversations, max_tokens, threads, progress)

    if not backwards:
        plain()
    for n in sorted(sizes, reverse=backwards):
        out["lab"][str(n)] = lab_decode(spec, base | {"batch_size": n}, progress,
                                        f"saferlab, batch {n}", _store(folder, f"b{n}{tag}.db"))
    if backwards:
        plain()
    out["lab"] = {str(n): out["lab"][str(n)] for n in sorted(sizes)}
    return out


def _batch(model: str, items: int, max_tokens: int):
    from saferlab.engine.lab import Lab
    from saferlab.engine.models import check_gguf, parse_model_spec
    from saferlab.engine.plan import SessionSpec
    from saferlab.engine.types import DecodingParams

    ref = parse_model_spec(model)
    check_gguf(ref.path)
    spec = SessionSpec(model=model, suites=("harmful",), limit=items,
                       params=DecodingParams(max_tokens=max_tokens))
    conversations = [[m.to_dict() for m in p.messages] for p in Lab().plan(spec)[0].items]
    return spec, conversations, str(ref.path)


def prefix(model: str, items: int, max_tokens: int, threads: int, folder: str,
           progress: Progress) -> dict[str, Any]:
    """few-shot-cot:k=8 with its shared prefix evaluated once, and per item."""
    from saferlab.engine.bench import lab_decode

    spec, _, _ = _batch(model, items, max_tokens)
    few_shot = replace(spec, reasoning=("few-shot-cot:k=8",))
    base = {"n_threads": threads}
    return {"shared": lab_decode(few_shot, base, progress, "few-shot-cot:k=8, prefix shared",
                                 _store(folder, "prefix.db")),
            "not_shared": lab_decode(few_shot, base | {"share_prefix": False}, progress,
                                     "few-shot-cot:k=8, prefix not shared",
                                     _store(folder, "noprefix.db"))}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median duration among repeats of the same decoding, with every duration."""
    ranked = sorted(runs, key=lambda r: r["seconds"])
    return ranked[(len(ranked) - 1) // 2] | {"repeats_s": [r["seconds"] for r in runs]}


def _stored(db: Path) -> dict[str, float]:
    """From ``db``: the newest run's wall time (its stored start and end), and the
    generations and completion tokens it holds."""
    from saferlab.db import Store
    from saferlab.db.queries import generation_totals, newest_run_seconds

    store = Store(db)
    try:
        generations, tokens = generation_totals(store)
        return {"seconds": newest_run_seconds(store) or 0.0, "generations": generations,
                "tokens": tokens}
    finally:
        store.close()


def cached_rerun(model: str, items: int, max_tokens: int, folder: str,
                 progress: Progress) -> dict[str, Any]:
    """`saferlab run` on ``items`` harmful and benign items, twice, each in a process of its
    own: the first decodes (its peak RSS is the figure), the second reads the cache."""
    db = Path(folder) / "cache.db"
    args = ["run", "-m", model, "--suite", "harmful", "--suite", "benign", "--limit",
            str(max(1, items // 2)), "--max-tokens", str(max_tokens), "--db", str(db), "--json"]
    figures: dict[str, Any] = {}
    for name in ("first", "rerun"):
        progress(f"  {items}-item batch, {name} (a process of its own)")
        started = time.perf_counter()
        proc = _child([COMMAND_RSS, *args], folder, "saferlab run")
        (run,) = json.loads(proc.stdout)
        figures[name] = {"process_s": time.perf_counter() - started,
                         "run_s": _stored(db)["seconds"], "items": run["generated"],
                         "cached": run["cached"], "tokens": run["completion_tokens"],
                         "peak_rss_mb": int(proc.stderr.strip().splitlines()[-1]) / 1024}
    return figures


def _child(argv: list[str], folder: str, what: str) -> subprocess.CompletedProcess:
    """``python -c ARGV`` with $SAFERLAB_HOME at ``folder``; a failure raises with the last
    line it wrote."""
    proc = subprocess.run([sys.executable, "-c", *argv], capture_output=True, text=True,
                          env=os.environ | {"SAFERLAB_HOME": folder})
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        raise RuntimeError(f"{what} failed: {lines[-1]}")
    return proc


CHILD = ("import json, sys; from saferlab.tui import bench; "
         "print(json.dumps(getattr(bench, sys.argv[1])(sys.argv[2], int(sys.argv[3]), "
         "int(sys.argv[4]), sys.argv[5], lambda line: None, sys.argv[6])))")


def in_process(function: str, model: str, items: int, max_tokens: int, folder: str,
               progress: Progress, tag: str = "") -> dict[str, Any]:
    """``function`` of this module (``tui_decode`` or ``runner_decode``) in a process of its
    own, as the interface and the command line run: both sides of their ratio start alike,
    and llama.cpp does not decode beside compute threads other decodings left behind."""
    progress(f"  {function.replace('_decode', '')}, batch 8 (a process of its own)")
    proc = _child([CHILD, function, model, str(items), str(max_tokens), folder, tag], folder,
                  function)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def runner_decode(model: str, items: int, max_tokens: int, folder: str,
                  progress: Progress, tag: str = "") -> dict[str, Any]:
    """The runner (what `saferlab run` calls) at batch 8 on the batch the interface fires."""
    from saferlab.engine.backends.base import DEFAULT_BATCH
    from saferlab.engine.backends.llama_cpp import default_threads
    from saferlab.engine.bench import lab_decode

    spec, _, _ = _batch(model, items, max_tokens)
    return lab_decode(spec, {"n_threads": default_threads(), "batch_size": DEFAULT_BATCH},
                      progress, f"saferlab run, batch {DEFAULT_BATCH}",
                      _store(folder, f"cli{tag}.db"))


def tui_decode(model: str, items: int, max_tokens: int, folder: str,
               progress: Progress, tag: str = "") -> dict[str, Any]:
    """The lab's interface (headless, 120x40) firing the batch the runner decoded, the model
    loaded and warmed up beforehand as the runner's is: the run's span as stored, and from the
    key press to the batch's end."""
    from saferlab.engine.bench import warm_up

    from .app import LabApp
    from .settings import Settings, save_settings

    settings_file = Path(folder) / f"tui{tag}.json"
    save_settings(Settings(model=model, reasoning="direct", modifiers=[], adapters=[],
                           attacks=["none"], suites=["harmful"], sample=items,
                           max_tokens=max_tokens), settings_file)
    db = Path(folder) / f"tui{tag}.db"
    app = LabApp(db, settings_file=settings_file, autoload=False)
    spec, _, _ = _batch(model, items, max_tokens)
    figures: dict[str, Any] = {}

    async def fire() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            loaded = app.model_thread.submit(app._load, model, []).result()
            app.model_thread.submit(warm_up, spec, model=loaded).result()
            progress("  the lab's interface, firing the batch")
            started = time.perf_counter()
            await pilot.press("f")
            await pilot.pause(0.05)
            while app.batch_running:  # not pilot.pause: it would keep the interface busy
                await asyncio.sleep(0.05)
            figures["key_to_end_s"] = time.perf_counter() - started

    asyncio.run(fire())
    stored = _stored(db)
    # The run's own span, as the runner's figure is the session's: decoding in the lab.
    figures |= {"tokens": stored["tokens"], "items": stored["generations"],
                "seconds": stored["seconds"]}
    figures["tokens_per_s"] = figures["tokens"] / figures["seconds"] if figures["seconds"] else 0
    return figures


def startup(folder: str) -> dict[str, Any]:
    env = os.environ | {"SAFERLAB_HOME": folder}
    times = []
    for _ in range(4):  # the first warms the file cache
        started = time.perf_counter()
        subprocess.run(CLI + ["--help"], capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - started)
    return {"help_s": min(times[1:]), "first_frame_s": _first_frame(env)}


def _first_frame(env: dict[str, str]) -> float | None:
    """The interface started on a pseudo-terminal; it exits at its first frame and says how
    long after the process began that was."""
    parent, child = pty.openpty()
    proc = subprocess.Popen(CLI, stdin=child, stdout=child, stderr=child, close_fds=True,
                            env=env | {"SAFERLAB_TUI_EXIT_ON_READY": "1",
                                       "TERM": "xterm-256color"})
    os.close(child)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(parent, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=30)
    os.close(parent)
    found = re.search(rb"first frame (\d+) ms", output)
    return int(found.group(1)) / 1000 if found else None


def recording(n: int, folder: str) -> dict[str, Any]:
    """Generations per second into SQLite with the instant fake backend."""
    from saferlab.engine.backends.fake import FakeBackend
    from saferlab.engine.bench import SessionClock
    from saferlab.engine.lab import Lab
    from saferlab.engine.plan import SessionSpec
    from saferlab.engine.types import DecodingParams

    clock = SessionClock()
    lab = Lab(recorder=_store(folder, "recording.db"), emit=clock, cache=False)
    spec = SessionSpec(model="fake:echo", suites=(f"math:n={n}",), limit=n,
                       params=DecodingParams(max_tokens=32))
    generated = lab.run(lab.plan(spec), backend=FakeBackend()).runs[0].generated
    return {"generations": generated, "seconds": clock.seconds,
            "per_s": generated / clock.seconds}


def measure(model: str, items: int, max_tokens: int, threads: int | None, cache_items: int,
            progress: Progress, repeats: int = REPEATS) -> dict[str, Any]:
    """Every figure, and the ratios the targets are about. The decodings compared with one
    another (plain, the lab at each batch size, the interface) run in ``repeats`` rounds, one
    after another within a round, so that each ratio is taken within a round and a machine
    that slows down between rounds moves both sides; each figure is the round's median.
    Every other round runs backwards (the interface, the lab from batch 8 down, plain), so
    that a machine slowing down within rounds favours neither side of a ratio."""
    from saferlab.engine.backends.llama_cpp import default_threads

    threads = threads or default_threads()
    with tempfile.TemporaryDirectory(prefix="saferlab-bench-") as folder:
        figures: dict[str, Any] = {"model": model, "items": items, "max_tokens": max_tokens,
                                   "threads": threads, "cores": os.cpu_count(),
                                   "repeats": repeats}
        rounds = []
        for r in range(repeats):
            progress(f"  round {r + 1} of {repeats}")
            backwards = r % 2 == 1
            # The command line and the interface, each in a process of its own, next to each
            # other: after the decodings of this process, or before them when backwards.
            order = ("runner_decode", "tui_decode")[::-1 if backwards else 1]

            def apart(tag: str = f"-{r}") -> dict[str, Any]:
                return {f: in_process(f, model, items, max_tokens, folder, progress, tag=tag)
                        for f in order}

            both = apart() if backwards else None
            one = decode(model, items, max_tokens, threads, folder, progress, tag=f"-{r}",
                         backwards=backwards)
            both = both or apart()
            rounds.append(one | {"tui": both["tui_decode"], "cli": both["runner_decode"]})
        figures["rounds"] = rounds
        figures["decode"] = {
            "plain": median_run([o["plain"] for o in rounds]),
            "lab": {n: median_run([o["lab"][n] for o in rounds]) for n in rounds[0]["lab"]},
            "prefix": prefix(model, items, max_tokens, threads, folder, progress)}
        figures["tui"] = median_run([o["tui"] for o in rounds])
        figures["cli"] = median_run([o["cli"] for o in rounds])
        figures["cache"] = cached_rerun(model, cache_items, max_tokens, folder, progress)
        progress("  start-up")
        figures["startup"] = startup(folder)
        progress("  recording with the fake backend")
        figures["recording"] = recording(2000, folder)
    figures.update(summarise(figures))
    return figures


def summarise(figures: dict[str, Any]) -> dict[str, Any]:
    """The ratios and absolute figures the targets are about, and whether each is met."""
    from saferlab.engine.bench import ratio

    d = figures["decode"]
    rounds = figures.get("rounds") or [d | {"tui": figures["tui"]}]

    def paired(within: Callable[[dict[str, Any]], float | None]) -> dict[str, Any]:
        """A ratio taken within each round, and its median over the rounds."""
        each = [within(r) for r in rounds]
        known = sorted(x for x in each if x is not None)
        middle = (known[(len(known) - 1) // 2] + known[len(known) // 2]) / 2 if known else None
        return {"median": middle, "rounds": each}

    def generation(run: dict[str, Any]) -> float | None:
        return run["tokens"] / run["decode_s"] if run["decode_s"] else None

    per_round = {
        "sequential_end_to_end": paired(lambda r: ratio(r["lab"]["1"]["tokens_per_s"],
                                                        r["plain"]["tokens_per_s"])),
        "sequential_generation": paired(lambda r: ratio(generation(r["lab"]["1"]),
                                                        r["plain"]["tokens_per_s"])),
        **{f"batched_{n}": paired(lambda r, n=n: ratio(r["lab"][n]["tokens_per_s"],
                                                       r["plain"]["tokens_per_s"]))
           for n in d["lab"] if n != "1"},
        "tui_vs_cli": paired(lambda r: ratio(r["tui"]["tokens_per_s"],
                                             r.get("cli", r["lab"]["8"])["tokens_per_s"])),
    }
    ratios = {name: p["median"] for name, p in per_round.items()}
    ratios["prefix_reuse"] = ratio(d["prefix"]["shared"]["tokens_per_s"],
                                   d["prefix"]["not_shared"]["tokens_per_s"])
    ratios["cached_rerun"] = ratio(figures["cache"]["first"]["run_s"],
                                   figures["cache"]["rerun"]["run_s"])
    absolute = {"help_s": figures["startup"]["help_s"],
                "first_frame_s": figures["startup"]["first_frame_s"],
                "peak_rss_mb": figures["cache"]["first"]["peak_rss_mb"],
                "recording_per_s": figures["recording"]["per_s"]}
    values = ratios | absolute
    targets = {name: {"target": target, "higher_is_better": higher,
                      "met": _met(values.get(name), target, higher)}
               for name, (target, higher) in TARGETS.items()}
    return {"ratios": ratios, "ratio_rounds": {n: p["rounds"] for n, p in per_round.items()},
            "absolute": absolute, "targets": targets}


def _met(value: float | None, target: float, higher: bool) -> bool | None:
    if value is None:
        return None
    return value >= target if higher else value < target


def lines(figures: dict[str, Any]) -> Iterator[str]:
    d, plain = figures["decode"], figures["decode"]["plain"]
    yield (f"{figures['model']}: {figures['items']} harmful requests, {figures['max_tokens']} "
           f"tokens, greedy, {figures['threads']} threads on {figures['cores']} cores; "
           "ratios against plain llama-cpp-python")
    repeats = figures.get("repeats", 1)
    if repeats > 1:
        yield (f"  decoding in {repeats} rounds: each time the round's median, each ratio the "
               "median of the ratios within a round (each round's in brackets)")
    spread = figures.get("ratio_rounds", {})

    def row(label: str, detail: str, name: str | None = None, shown: str = "") -> str:
        mark = ""
        if name is not None:
            target = figures["targets"][name]
            sign = ">=" if target["higher_is_better"] else "<"
            met = {True: "met", False: "NOT met", None: "n/a"}[target["met"]]
            mark = f"   target {sign} {target['target']:g}: {met}"
        if len(spread.get(name, ())) > 1:
            mark += "   [" + " ".join(f"{x:.2f}" if x else "-" for x in spread[name]) + "]"
        return f"  {label:<40}{detail:<34}{shown:>8}{mark}"

    def rate(r: dict[str, Any]) -> str:
        return f"{r['tokens']} tok in {r['seconds']:.2f} s = {r['tokens_per_s']:.1f} tok/s"

    ratios = figures["ratios"]

    def times(name: str) -> str:
        """A ratio with two decimals, or three where two would print a miss as its target
        (0.969 is not 0.97)."""
        value, target = ratios[name], figures["targets"].get(name, {}).get("target")
        shown = f"{value:.2f}"
        if target is not None and float(shown) == target and value < target:
            shown = f"{value:.3f}"
        return shown + "x"

    yield row("plain llama-cpp-python, one at a time", rate(plain), shown="1.00x")
    one = d["lab"]["1"]
    yield row("saferlab, batch 1, end to end", rate(one), "sequential_end_to_end",
              times("sequential_end_to_end"))
    yield row("saferlab, batch 1, generation only",
              f"{one['tokens']} tok in {one['decode_s']:.2f} s", "sequential_generation",
              times("sequential_generation"))
    for n, r in d["lab"].items():
        if n != "1":
            yield row(f"saferlab, batch {n}, end to end", rate(r),
                      "batched_8" if n == "8" else None, times(f"batched_{n}"))
    shared, not_shared = d["prefix"]["shared"], d["prefix"]["not_shared"]
    yield row("few-shot-cot:k=8, prefix not shared", rate(not_shared), shown="1.00x")
    yield row("few-shot-cot:k=8, prefix shared", rate(shared), "prefix_reuse",
              times("prefix_reuse"))
    first, rerun = figures["cache"]["first"], figures["cache"]["rerun"]
    yield row(f"{first['items']}-item batch, then again", f"run {first['run_s']:.2f} s, "
              f"then {rerun['run_s']:.3f} s ({rerun['cached']} cached)", "cached_rerun",
              f"{ratios['cached_rerun']:.0f}x")
    tui = figures["tui"]
    yield row("the lab's interface vs saferlab run",
              f"{tui['tokens']} tok in {tui['seconds']:.2f} s = {tui['tokens_per_s']:.1f} tok/s",
              "tui_vs_cli", times("tui_vs_cli"))
    a = figures["absolute"]
    yield row("saferlab --help", f"{a['help_s']:.2f} s", "help_s")
    frame = a["first_frame_s"]
    yield row("the interface's first frame",
              f"{frame:.2f} s" if frame is not None else "not measured", "first_frame_s")
    yield row(f"peak RSS, {first['items']}-item run", f"{a['peak_rss_mb']:.0f} MB",
              "peak_rss_mb")
    rec = figures["recording"]
    yield row("recording, fake backend",
              f"{rec['generations']} in {rec['seconds']:.2f} s = {rec['per_s']:.0f}/s",
              "recording_per_s")


def runner_only(model: str, items: int, max_tokens: int, threads: int | None,
                options: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """A model that is not a GGUF file (hf:, openai:): the runner's speed alone."""
    from saferlab.engine.bench import lab_decode
    from saferlab.engine.plan import SessionSpec
    from saferlab.engine.types import DecodingParams

    spec = SessionSpec(model=model, suites=("harmful",), limit=items,
                       params=DecodingParams(max_tokens=max_tokens))
    with tempfile.TemporaryDirectory(prefix="saferlab-bench-") as folder:
        r = lab_decode(spec, options | ({"n_threads": threads} if threads else {}), progress,
                       model, _store(folder, "runner.db"))
    if r["failed"] and not r["tokens"]:
        raise SaferlabError(f"{model}: no speed to give, {r['error'] or 'every item failed'}",
                            EXIT_ITEMS_FAILED)
    failed = f"; {r['failed']} items failed" if r["failed"] else ""
    return {"model": model, "runner": r,
            "line": f"{model} through saferlab: {r['tokens']} tokens in {r['seconds']:.2f} s = "
                    f"{r['tokens_per_s'] or 0:.1f} tokens/s (load {r['load_s']:.1f} s; "
                    f"generate, judge and record included{failed})"}
