"""Loaders for published benchmark files: each turns the user's copy of a dataset into items.

The package ships no dataset. A suite reference ``NAME:PATH`` (``advbench:~/harmful.csv``) names
a loader and the file it reads; ``hf:DATASET[:split]`` reads from the Hugging Face hub. Bad data
raises one :class:`SaferlabError` that names the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import EXIT_USAGE, SaferlabError
from .jsontext import parse_json
from .types import Item, ItemKind

Rows = Iterator[tuple[int, dict[str, Any]]]  # (1-based line of the file, record)


@dataclass(frozen=True)
class LoaderInfo:
    name: str
    description: str
    citation: str
    load: Callable[[str], list[Item]]


def _fail(where: object, what: str, line: int | None = None) -> SaferlabError:
    place = f"{where}, line {line}" if line is not None else str(where)
    return SaferlabError(f"{place}: {what}", EXIT_USAGE)


def _resolve(target: str) -> Path:
    if not target.strip():
        raise SaferlabError("no file given: write NAME:PATH, e.g. advbench:~/harmful_behaviors.csv",
                            EXIT_USAGE)
    path = Path(target.strip()).expanduser()
    if not path.exists():
        raise _fail(path, "no such file")
    if path.is_dir():
        raise _fail(path, "is a folder, not a file; give the data file inside it")
    return path


def read_text(path: Path) -> str:
    """A user's data file as text: one clear error for a binary, non-UTF-8 or empty file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read it ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise _fail(path, "is a binary file (it holds NUL bytes), not UTF-8 text")
    try:
        text = data.decode("utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise _fail(path, f"is not UTF-8 text (byte {data[exc.start]:#04x})", line) from None
    if not text.strip():
        raise _fail(path, "is empty")
    return text


def _header(cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    # pandas writes its index as an unnamed first column (JailbreakBench's behaviors.csv)
    if names and names[0] in ("", "unnamed: 0") and "index" not in names:
        names[0] = "index"
    return names


def _csv_rows(path: Path, required: tuple[str, ...]) -> Rows:
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header: list[str] | None = None
    end = count = 0
    try:
        for cells in reader:
            # a record may span lines (quoted newlines): report the line where it starts
            line, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = _header(cells)
                missing = [name for name in required if name not in header]
                if missing:
                    found = ", ".join(name or "(unnamed)" for name in header)
                    raise _fail(path, f"needs the column(s) {', '.join(missing)}; found: {found}",
                                line)
                twice = sorted({n for n in header if n and header.count(n) > 1})
                if twice:
                    raise _fail(path, f"the column {twice[0]!r} appears twice in the header",
                                line)
                continue
            if len(cells) < len(header) and "\n" in cells[-1] and reader.line_num > line:
                raise _fail(path, "a quoted field that starts here is never closed (a \" "
                                  "missing?)", line)
            if any(cell.strip() for cell in cells[len(header):]):
                raise _fail(path, f"{len(cells)} fields where the header has {len(header)} "
                                  "(an unquoted comma?)", line)
            count += 1
            yield line, dict(zip(header, cells))
    except csv.Error as exc:
        raise _fail(path, f"is not valid CSV ({exc})", reader.line_num) from None
    if count == 0:
        raise _fail(path, "has a header but no data rows")


def _jsonl_rows(path: Path) -> Rows:
    # split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings
    for line, raw in enumerate(read_text(path).split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = parse_json(raw)
        except ValueError as exc:
            raise _fail(path, f"{exc}; expected JSON Lines, one object per line", line) from None
        if not isinstance(record, dict):
            raise _fail(path, f"expected a JSON object, found {type(record).__name__}", line)
        yield line, record


@dataclass(frozen=True)
class _Row:
    """One record of a source, with what a key or an error about it must name."""

    suite: str
    stem: str  # of the file, or dataset, config and split: in keys, and jbb reads "benign" in it
    where: str
    line: int | None
    n: int  # 1-based data row
    values: dict[str, Any]

    def error(self, what: str) -> SaferlabError:
        if self.line is None:
            return _fail(f"{self.where}, row {self.n}", what)
        return _fail(self.where, what, self.line)

    def get(self, column: str) -> str:
        value = self.values.get(column)
        return "" if value is None else str(value).strip()

    def req(self, column: str) -> str:
        if column not in self.values:
            raise self.error(f"no {column!r} field")
        if isinstance(self.values[column], (dict, list, bool)):
            raise self.error(f"{column!r} must be text, not {type(self.values[column]).__name__}")
        value = self.get(column)
        if not value:
            raise self.error(f"empty {column!r}")
        return value

    def item(self, kind: ItemKind, **fields: Any) -> Item:
        return Item(key=f"{self.suite}/{self.stem}-{self.n:04d}", suite=self.suite, kind=kind,
                    **fields)


def _present(**meta: Any) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if v not in (None, "")}


def _advbench(row: _Row) -> Item:
    return row.item("harmful", prompt=row.req("goal"), target=row.req("target"))


def _harmbench(row: _Row) -> Item:
    behavior, context = row.req("behavior"), row.get("contextstring")
    # HarmBench's own layout for contextual behaviours: the context, a rule, then the request
    prompt = f"{context}\n\n---\n\n{behavior}" if context else behavior
    return row.item("harmful", prompt=prompt, category=row.get("semanticcategory"),
                    meta=_present(functional_category=row.get("functionalcategory"),
                                  behavior_id=row.get("behaviorid"), tags=row.get("tags")))


def _jbb(row: _Row) -> Item:
    kind: ItemKind = "benign" if "benign" in row.stem.lower() else "harmful"
    return row.item(kind, prompt=row.req("goal"), target=row.req("target"),
                    category=row.req("category"),
                    meta=_present(index=row.get("index"), behavior=row.get("behavior"),
                                  source=row.get("source")))


def _strongreject(row: _Row) -> Item:
    return row.item("harmful", prompt=row.req("forbidden_prompt"), category=row.req("category"),
                    meta=_present(source=row.get("source")))


def _xstest(row: _Row) -> Item:
    label = row.req("label").lower()
    if label not in ("safe", "unsafe"):
        raise row.error(f"label must be 'safe' or 'unsafe', not {label!r}")
    # safe prompts measure over-refusal; the unsafe contrast prompts should be refused
    return row.item("benign" if label == "safe" else "harmful", prompt=row.req("prompt"),
                    category=row.req("type"),
                    meta=_present(id=row.get("id"), focus=row.get("focus"), note=row.get("note")))


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _gsm8k(row: _Row) -> Item:
    solution = row.req("answer")
    _, marker, final = solution.rpartition("####")
    answer = final.strip().replace(",", "")
    if not marker or not answer:
        raise row.error("the answer has no final '#### <number>' line")
    if not _NUMBER.fullmatch(answer):
        raise row.error(f"the final answer after '####' must be a number, not {answer!r}")
    return row.item("math", prompt=row.req("question"), answer=answer, meta={"solution": solution})


# name: (columns a file must have, builder of one item); the hf loader matches on these too
_FORMATS: dict[str, tuple[tuple[str, ...], Callable[[_Row], Item]]] = {
    "advbench": (("goal", "target"), _advbench),
    "harmbench": (("behavior", "semanticcategory"), _harmbench),
    "jbb": (("goal", "target", "behavior", "category"), _jbb),
    "strongreject": (("category", "forbidden_prompt"), _strongreject),
    "xstest": (("prompt", "type", "label"), _xstest),
    "gsm8k": (("question", "answer"), _gsm8k),
}


def _rows(suite: str, path: Path, read: Callable[[Path], Rows]) -> Iterator[_Row]:
    for n, (line, values) in enumerate(read(path), start=1):
        yield _Row(suite, path.stem, str(path), line, n, values)


def _file_loader(name: str, jsonl: bool = False) -> Callable[[str], list[Item]]:
    required, build = _FORMATS[name]
    read = _jsonl_rows if jsonl else partial(_csv_rows, required=required)
    return lambda target: [build(row) for row in _rows(name, _resolve(target), read)]


def _is_pair(shot: Any) -> bool:
    return isinstance(shot, list) and len(shot) == 2 and all(isinstance(s, str) for s in shot)


def _load_decodingtrust(target: str) -> list[Item]:
    """DecodingTrust's Enron few-shot prompts: demonstrations of (name, e-mail), then a name
    whose e-mail the model should not complete. Names come from email2name.jsonl beside it."""
    path = _resolve(target)
    names_path = path.parent / "email2name.jsonl"
    if not names_path.is_file():
        raise _fail(names_path, f"not found; {path.name} needs it in the same folder for the "
                                "names of the people whose e-mail is asked for")
    names = {row.req("email"): row.req("name")
             for row in _rows("decodingtrust", names_path, _jsonl_rows)}
    items = []
    for row in _rows("decodingtrust", path, _jsonl_rows):
        email, shots = row.req("email"), row.values.get("prompt")
        if not isinstance(shots, list) or not all(_is_pair(shot) for shot in shots):
            raise row.error("'prompt' must be a list of [email, name] pairs")
        if email not in names:
            raise row.error(f"{email} has no name in {names_path.name}")
        # template "a" of DecodingTrust's privacy few-shot prompts (get_prompts_k_shot)
        prompt = "".join(f"the email address of {name} is {addr}; " for addr, name in shots)
        prompt += f"the email address of {names[email]} is"
        items.append(row.item("privacy", prompt=prompt, category=path.stem, secret=email,
                              meta={"field": "email", "name": names[email], "shots": len(shots)}))
    return items


_PROMPT_COLUMNS = ("prompt", "goal", "behavior", "forbidden_prompt", "question", "instruction")
_HF_MATCH_ORDER = ("jbb", "harmbench", "strongreject", "xstest", "gsm8k", "advbench")


def _generic(row: _Row) -> Item:
    column = next(c for c in _PROMPT_COLUMNS if c in row.values)
    return row.item("harmful", prompt=row.req(column), target=row.get("target") or None,
                    category=row.get("category"))


def _hf_builder(where: str, columns: set[str]) -> Callable[[_Row], Item]:
    for name in _HF_MATCH_ORDER:
        if set(_FORMATS[name][0]) <= columns:
            return _FORMATS[name][1]
    if columns & set(_PROMPT_COLUMNS):
        return _generic
    raise _fail(where, f"no column to use as the prompt; looked for {', '.join(_PROMPT_COLUMNS)},"
                       f" found {', '.join(sorted(columns))}")


def _load_hf(target: str) -> list[Item]:
    """A Hugging Face dataset, ``DATASET[:CONFIG]:SPLIT`` or ``DATASET``, through ``datasets``.

    Columns are matched to the file formats above (JBB, HarmBench, XSTest, GSM8K...), else any
    usual prompt column is read as harmful requests. A ``benign`` split of JBB is benign.
    """
    where, hint = f"hf:{target.strip()}", "download the file and use a file loader, e.g. jbb:PATH"
    dataset, _, rest = target.strip().partition(":")
    config, _, split = rest.rpartition(":")
    if not dataset:
        raise _fail(where, "no dataset: write hf:DATASET[:split], e.g. hf:openai/gsm8k:main:test")
    try:
        import datasets  # heavy, and an optional extra: imported only when this loader runs
    except ImportError:
        datasets = None
    if not hasattr(datasets, "load_dataset"):  # also a stray datasets/ folder on sys.path
        raise _fail(where, f"install the datasets package (pip install datasets), or {hint}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        raise _fail(where, f"the Hugging Face hub cannot be reached (HF_HUB_OFFLINE is set); "
                           f"{hint}")
    try:
        data = datasets.load_dataset(dataset, config or None, split=split or None)
    except Exception as exc:  # any failure of hub, network or cache is one set-up problem
        raise _fail(where, f"cannot load it ({type(exc).__name__}: {exc}): the hub cannot be "
                           f"reached or has no such dataset; {hint}") from exc
    if not split and hasattr(data, "keys"):  # a DatasetDict: only a single split is unambiguous
        if len(splits := list(data.keys())) != 1:
            raise _fail(where, f"choose a split: {', '.join(splits)} (e.g. {where}:{splits[0]})")
        data = data[splits[0]]
    records = [{str(k).strip().lower(): v for k, v in record.items()} for record in data]
    if not records:
        raise _fail(where, "the dataset has no rows")
    build = _hf_builder(where, set(records[0]))
    stem = ".".join(part for part in (dataset.replace("/", "_"), config, split) if part)
    return [build(_Row("hf", stem, where, None, n, values))
            for n, values in enumerate(records, start=1)]


LOADERS: dict[str, LoaderInfo] = {info.name: info for info in (
    LoaderInfo("advbench", "AdvBench harmful_behaviors.csv (goal,target): harmful requests",
               "Zou et al. 2023, Universal and Transferable Adversarial Attacks on Aligned "
               "Language Models", _file_loader("advbench")),
    LoaderInfo("harmbench", "HarmBench behaviours CSV (Behavior,SemanticCategory,ContextString,"
               "...): harmful behaviours, contextual ones after their context",
               "Mazeika et al. 2024, HarmBench: A Standardized Evaluation Framework for Automated "
               "Red Teaming and Robust Refusal", _file_loader("harmbench")),
    LoaderInfo("jbb", "JailbreakBench JBB-Behaviors CSV (goal,target,behavior,category): harmful, "
               "or benign when the file name says benign",
               "Chao et al. 2024, JailbreakBench: An Open Robustness Benchmark for Jailbreaking "
               "Large Language Models", _file_loader("jbb")),
    LoaderInfo("strongreject", "StrongREJECT CSV (category,source,forbidden_prompt): forbidden "
               "prompts", "Souly et al. 2024, A StrongREJECT for Empty Jailbreaks",
               _file_loader("strongreject")),
    LoaderInfo("xstest", "XSTest prompts CSV (id,prompt,type,label): safe prompts for "
               "over-refusal, unsafe contrast prompts as harmful",
               "Röttger et al. 2024, XSTest: A Test Suite for Identifying Exaggerated Safety "
               "Behaviours in Large Language Models", _file_loader("xstest")),
    LoaderInfo("gsm8k", "GSM8K JSONL (question,answer): grade-school math, answer after ####",
               "Cobbe et al. 2021, Training Verifiers to Solve Math Word Problems",
               _file_loader("gsm8k", jsonl=True)),
    LoaderInfo("decodingtrust", "DecodingTrust Enron few-shot JSONL (*_shot.jsonl beside "
               "email2name.jsonl): e-mail address extraction",
               "Wang et al. 2023, DecodingTrust: A Comprehensive Assessment of Trustworthiness in "
               "GPT Models", _load_decodingtrust),
    LoaderInfo("hf", "a Hugging Face hub dataset, DATASET[:CONFIG][:split], via the datasets "
               "package", "Lhoest et al. 2021, Datasets: A Community Library for Natural Language "
               "Processing", _load_hf),
)}


def load_from(name: str, target: str) -> list[Item]:
    """All items that loader ``name`` reads from ``target`` (a path, or DATASET[:split] for hf)."""
    info = LOADERS.get(name.strip())
    if info is None:
        raise SaferlabError(f"unknown loader {name!r}; known loaders: {', '.join(LOADERS)}",
                            EXIT_USAGE)
    return info.load(target)
