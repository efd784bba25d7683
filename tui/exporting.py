"""Writing an export to a file, shared by `saferlab export -o` and the interface's export
key: written beside the target and renamed at the end, so a failed export leaves no half file
and never clobbers a good one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from saferlab.engine.errors import EXIT_USAGE, SaferlabError


def check_target(store, path: Path) -> None:
    """Refuse a target an export must not replace: the database itself (or its journal), a
    folder, a device, or a path whose folder is not there."""
    if not path.parent.is_dir():
        raise SaferlabError(f"cannot write {path}: folder {path.parent} does not exist",
                            EXIT_USAGE)
    try:
        target = path.resolve()
        database = Path(store.path).resolve()
        there, regular, folder = path.exists(), path.is_file(), path.is_dir()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise SaferlabError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}",
                            EXIT_USAGE) from None
    side = target.with_name(target.name + ".manifest.json")
    for own in (database, *(database.with_name(database.name + s)
                            for s in ("-wal", "-shm", "-journal"))):
        if own in (target, side):
            raise SaferlabError(f"{path} is the database being exported ({database}); "
                                "choose another file", EXIT_USAGE)
    if there and not regular:
        what = "a folder" if folder else "not a regular file"
        raise SaferlabError(f"cannot write {path}: it is {what}", EXIT_USAGE)


def export_file(store, targets: list[str], fmt: str, path: Path, redact: bool) -> dict[str, Any]:
    from saferlab.db.exchange import export

    path = Path(path).expanduser()
    check_target(store, path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a read-only folder
        raise SaferlabError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}",
                            EXIT_USAGE) from None
    try:
        # A BOM lets spreadsheet programs read a CSV as UTF-8; newline="" keeps csv's CRLF.
        encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
        with os.fdopen(fd, "w", encoding=encoding, newline="" if fmt == "csv" else None) as out:
            result = export(store, targets, fmt, out, redact)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it private; an export is an ordinary file
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SaferlabError(f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fmt == "csv":  # a CSV has no room for the manifest: it goes beside it
        side = path.with_name(path.name + ".manifest.json")
        side.write_text(json.dumps(result["manifest"], indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    return result
