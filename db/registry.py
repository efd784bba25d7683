"""What the database remembers besides runs: the adapters it has seen, and the digests of
files already hashed (by path, size and mtime, so a 40 GB model is read once)."""

from __future__ import annotations

from typing import Any

from saferlab.engine.adapter_refs import registry_key

from .database import Database, utc_now


class AdapterRegistry(Database):
    """The adapters `saferlab adapters` and the interface list."""

    def _register_adapter(self, adapter: dict[str, Any], used: bool = False) -> None:
        now = utc_now()
        self.db.execute(
            "INSERT INTO adapters (path, name, kind, base_model, sha256, registered_utc, "
            "last_used_utc, origin, training_id, on_adapters) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?) ON CONFLICT (path) DO UPDATE SET "
            "name = excluded.name, kind = excluded.kind, base_model = excluded.base_model, "
            "sha256 = excluded.sha256, last_used_utc = COALESCE(excluded.last_used_utc, "
            "adapters.last_used_utc), origin = COALESCE(adapters.origin, excluded.origin), "
            "training_id = COALESCE(excluded.training_id, adapters.training_id), "
            "on_adapters = COALESCE(excluded.on_adapters, adapters.on_adapters)",
            [registry_key(adapter), adapter["name"],
             adapter.get("kind", "served"), adapter.get("base_model"), adapter.get("sha256"),
             now, now if used else None, adapter.get("origin"), adapter.get("training_id"),
             adapter.get("on")])

    def register_adapter(self, adapter: dict[str, Any]) -> None:
        """Remember an adapter (PEFT folder or GGUF LoRA) for `saferlab adapters` and the TUI."""
        with self.transaction():
            self._register_adapter(adapter)



class FileDigests(Database):
    """Implements engine/models.py's HashCache."""

    def known_sha256(self, path: str, size: int, mtime_ns: int) -> str | None:
        rows = list(self.db.query(
            "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            [path, size, mtime_ns]))
        return rows[0]["sha256"] if rows else None

    def remember_sha256(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self.transaction():
            self.db["file_hashes"].upsert(
                {"path": path, "size": size, "mtime_ns": mtime_ns, "sha256": sha256,
                 "checked_utc": utc_now()}, pk="path")
