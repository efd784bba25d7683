"""The SQLite store: one object per database file, made of classes with one job each.

database.py opens, migrates and queries the file; recording.py is the engine's Recorder;
registry.py remembers adapters and file digests. Importers keep using ``Store``.
"""

from __future__ import annotations

from .database import Database, dumps, utc_now
from .recording import RunRecorder
from .registry import FileDigests


class Store(RunRecorder, FileDigests):
    """A saferlab database file. Opening it applies any migrations it lacks."""


__all__ = ["Database", "Store", "dumps", "utc_now"]
