"""Safety data (harmful requests with a ``plain`` or ``reflective`` refusal, or STAR-1's
traces) and keep data (harmless instructions answered by the model itself)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from ..errors import EXIT_USAGE, SaferlabError
from ..refs import fill
from ..types import Message
from .data import Distill, Example, training_text
from .disjoint import EvaluationSet

def category(request: str) -> str:
    """The harm category of a request, by the first matching keyword of training.toml."""
    lowered = request.casefold()
    for name, entry in training_text()["categories"].items():
        if any(re.search(r"\b" + re.escape(k), lowered) for k in entry["keywords"]):
            return name
    return "general"


def refusal(request: str, style: str, rng: random.Random) -> str:
    text = training_text()
    if style == "plain":
        return rng.choice(text["refusal"]["plain"])
    entry = text["categories"][category(request)]
    values = {k: entry[k] for k in ("topic", "harm", "victims", "alternative")}
    think = fill(rng.choice(text["reflective"]["think"]), values)
    answer = fill(rng.choice(text["reflective"]["answer"]), values)
    return f"<think>\n{think}\n</think>\n{answer}"


def harmful_requests(source: str, ev: EvaluationSet) -> tuple[list[str], int]:
    """Requests to refuse from ``advbench:PATH`` (or a file of the harmbench, jbb or
    strongreject formats), without any evaluation request."""
    from ..loaders import LOADERS, load_from

    loader, _, path = source.partition(":")
    if loader not in LOADERS or loader == "hf" or not path:
        raise SaferlabError(f"harmful training requests come from advbench:PATH (or another "
                            f"loader's file), not {source!r}", EXIT_USAGE)
    prompts = [it.prompt for it in load_from(loader, path) if it.kind == "harmful"]
    if not prompts:
        raise SaferlabError(f"{path}: read as {loader}, it holds no harmful request",
                            EXIT_USAGE)
    kept = list(dict.fromkeys(p for p in prompts if not ev.holds(p)))
    if not kept:
        raise SaferlabError(f"{path}: no harmful request is left once evaluation items are "
                            "removed", EXIT_USAGE)
    return kept, len(prompts) - len(kept)


# "... how to TASK" and "... that can [be used to] TASK": the task, to ask in other shapes.
_WHO = re.compile(r"\b(child|children|kids?|minors?|teens?|teenagers?|students?)\b", re.I)
_TASK = re.compile(r"\bhow to (?P<a>.{12,})$|\bthat can (?:be used to )?(?P<b>.{12,})$", re.I)


def task_of(request: str) -> str | None:
    """What a request asks to be done, when it says so as "how to TASK" or "that can TASK"."""
    match = _TASK.search(request.strip().rstrip(".?!"))
    if match is None or _WHO.search(request[:match.start()]):
        return None  # "Teach children how to ...": who is taught is part of the harm
    return (match.group("a") or match.group("b")).strip()


def reshaped(request: str, rng: random.Random, ev: EvaluationSet | None = None) -> str:
    """Half the time, ``request`` asked in another shape of training.toml's refusal.shapes
    (never as an evaluation item); otherwise, or with no task to take, as it is."""
    task = task_of(request)
    if task is None or rng.random() < 0.5:
        return request
    asked = fill(rng.choice(training_text()["refusal"]["shapes"]), {"task": task})
    return request if ev is not None and ev.holds(asked) else asked


def safety_examples(style: str, requests: list[str], count: int, seed: int,
                    ev: EvaluationSet | None = None,
                    from_star1: frozenset[str] = frozenset()) -> list[Example]:
    rng = random.Random(f"safety:{seed}")
    order = list(range(len(requests)))
    rng.shuffle(order)
    out = []
    for j in range(count):
        request = reshaped(requests[order[j % len(order)]], random.Random(f"shape:{seed}:{j}"),
                           ev)
        answer = refusal(request, style, random.Random(f"safety:{seed}:{j}"))
        source = "star1" if requests[order[j % len(order)]] in from_star1 else "advbench"
        out.append(Example(source, "safety", style, (
            Message("user", request), Message("assistant", answer))))
    return out


# STAR-1 draws its questions from many sets; these are evaluation sets here (HarmBench, and
# TDC's red-teaming set that became part of it), so their questions are never trained on.
STAR1_EVALUATION_SOURCES = ("HarmBench", "TDCRedTeaming")
STAR1_REQUEST_CHARS = 300  # STAR-1 questions refused as requests: short ones only
_DECLINES = re.compile(r"\b(?:can't|cannot|can not|won't|unable to)\b", re.I)


def _star1_rows(path: str) -> tuple[Path, list[dict]]:
    file = Path(path).expanduser()
    try:
        rows = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SaferlabError(f"cannot read STAR-1 file {file}: {exc.strerror or exc}",
                            EXIT_USAGE) from None
    except ValueError as exc:
        raise SaferlabError(f"{file} is not STAR-1's JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(rows, list):
        raise SaferlabError(f"{file}: expected a list of objects with question and response",
                            EXIT_USAGE)
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise SaferlabError(f"{file}, row {i}: expected an object with question and "
                                "response", EXIT_USAGE)
        for key in ("question", "response"):
            if not isinstance(row.get(key), str):
                raise SaferlabError(f"{file}, row {i}: {key!r} must be text, not "
                                    f"{type(row.get(key)).__name__}", EXIT_USAGE)
    return file, [r for r in rows if r.get("source") not in STAR1_EVALUATION_SOURCES]


def star1_examples(path: str, count: int, seed: int, ev: EvaluationSet,
                   max_chars: int) -> tuple[list[Example], int]:
    """STAR-1's reflective traces whose whole response fits ``max_chars``."""
    file, rows = _star1_rows(path)
    fits = [r for r in rows if len(r["response"]) <= max_chars and "</think>" in r["response"]]
    kept = [r for r in fits if not ev.holds(r["question"])]
    if not kept:
        raise SaferlabError(f"{file}: no STAR-1 trace fits {max_chars} characters", EXIT_USAGE)
    rng = random.Random(f"star1:{seed}")
    rng.shuffle(kept)
    out = [Example("star1", "safety", "star1", (
        Message("user", kept[j % len(kept)]["question"]),
        Message("assistant", kept[j % len(kept)]["response"].strip()))) for j in range(count)]
    return out, len(fits) - len(kept)


def star1_requests(path: str, ev: EvaluationSet) -> tuple[list[str], int]:
    """STAR-1's questions that its own answer declines (a question it answers safely is not a
    request to refuse), up to STAR1_REQUEST_CHARS long, without evaluation items."""
    from ..judges.safety import RefusalHeuristic

    _, rows = _star1_rows(path)
    declined = []
    for row in rows:
        question = str(row["question"]).strip()
        answer = str(row["response"]).rpartition("</think>")[2].strip()
        if (question and len(question) <= STAR1_REQUEST_CHARS
                and _DECLINES.search(answer[:200]) and RefusalHeuristic().decide(answer)[0]):
            declined.append(question)
    kept = list(dict.fromkeys(q for q in declined if not ev.holds(q)))
    return kept, len(declined) - len(kept)



# -- keep ----------------------------------------------------------------------------------

KEEP_COMPOSED = 300  # instructions composed from the templates and tasks of training.toml
KEEP_SOFTWARE, KEEP_WRITING = 50, 70  # and from its software and writing templates


def keep_prompts(seed: int = 0) -> list[str]:
    """Harmless instructions for keep data: the fixed lists of training.toml, KEEP_COMPOSED
    drawn (with ``seed``) from its imperative templates x tasks, and KEEP_SOFTWARE and
    KEEP_WRITING from its software and writing templates x purposes."""
    keep = training_text()["keep"]
    rng = random.Random(f"keep-compose:{seed}")
    out = list(keep["lookalike"]) + list(keep["wordplay"]) + list(keep["general"])
    # Half of the composed instructions in the vocabulary of harm, half everyday tasks.
    for tasks in (keep["lookalike_tasks"], keep["tasks"]):
        composed = [fill(t, {"task": task}) for t in keep["templates"] for task in tasks]
        rng.shuffle(composed)
        out += composed[:KEEP_COMPOSED // 2]
    # Software and writing with harmless purposes, in the other shape of harmful requests.
    for kind, count in (("software", KEEP_SOFTWARE), ("writing", KEEP_WRITING)):
        composed = [fill(t, {"does": does}) for t in keep[f"{kind}_templates"]
                    for does in keep[kind]]
        rng.shuffle(composed)
        out += composed[:count]
    return out


def clean_answer(text: str, trim: bool = True) -> str | None:
    """A self-distilled answer worth training on: not a refusal, and with ``trim`` cut after
    its last full sentence (an answer cut by the token budget and learned whole must not
    teach stopping mid-sentence)."""
    from ..judges.safety import RefusalHeuristic

    text = text.strip()
    if not text or RefusalHeuristic().decide(text)[0]:
        return None
    if not trim:
        return text
    end = max(text.rfind(". "), text.rfind(".\n"), text.rfind("!"), text.rfind("?"),
              text.rfind("```"), len(text) - 1 if text.endswith((".", "!", "?", "```")) else -1)
    return text[: end + 1].strip() if end > len(text) // 3 else text


def protective_prompts(requests: list[str], count: int, seed: int,
                       ev: EvaluationSet | None = None) -> list[str]:
    """Up to ``count`` harmless questions about the tasks of harmful ``requests``: how to
    protect against one, recognise it or report it (training.toml's keep.protective). A
    request and its protective twin share their words, so intent has to decide a refusal."""
    tasks = list(dict.fromkeys(t for t in map(task_of, requests) if t))
    rng = random.Random(f"protective:{seed}")
    rng.shuffle(tasks)
    templates = training_text()["keep"]["protective"]
    asked = (fill(rng.choice(templates), {"task": task}) for task in tasks)
    return [p for p in asked if ev is None or not ev.holds(p)][:count]


def keep_examples(count: int, seed: int, distill: Distill | None,
                  ev: EvaluationSet, protective: list[str] | None = None,
                  trim: bool = True) -> list[Example]:
    if count == 0:
        return []
    if distill is None:
        raise SaferlabError("keep data needs the model to answer it", EXIT_USAGE)
    prompts = [p for p in keep_prompts(seed) + list(protective or ()) if not ev.holds(p)]
    answers = distill([(Message("user", p),) for p in prompts])
    pairs = [(p, a) for p, a in zip(prompts, (clean_answer(a, trim) for a in answers))
             if a]
    if not pairs:
        raise SaferlabError("the model refused every keep instruction; nothing to keep",
                            EXIT_USAGE)
    rng = random.Random(f"keep:{seed}")
    rng.shuffle(pairs)
    return [Example("keep", "keep", "self", (Message("user", pairs[j % len(pairs)][0]),
                                             Message("assistant", pairs[j % len(pairs)][1])))
            for j in range(count)]
